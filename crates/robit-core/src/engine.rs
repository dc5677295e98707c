//! Intake and scheduling: dedup, persist, then one queue per conversation.
//!
//! `submit` persists the event (dedup + user message, one transaction) before it returns, so
//! an adapter that acknowledges after `submit` never loses a message. Each conversation with
//! pending work has one worker task draining its queue in order; a global semaphore bounds
//! how many turns run at once. Workers exit when their queue is empty, so idle conversations
//! cost nothing.

use crate::call_budget::StoreCallBudget;
use crate::config::EngineConfig;
use crate::connections::Connections;
use crate::error::EngineError;
use crate::metrics as m;
use crate::turn;
use robit_llm::Provider;
use robit_mcp::ToolProvider;
use robit_sandbox::CodeRunner;
use robit_store::{Accepted, Conversation, NewEvent, NewMessage, Store};
use robit_types::{CallBudget, Command, ConversationKey, Inbound, InboundKind, ReplySink};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

/// How a turn ended, for adapters that want to know and for tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TurnOutcome {
    /// The model's answer was streamed and stored.
    Replied,
    /// A command was answered.
    Command,
    /// No provider is configured; the user was told how to configure one.
    NoProvider,
    /// The turn failed; the user was shown `0` (a short message).
    Failed(String),
    /// The event was not for the engine (a bot's message).
    Ignored,
    /// The engine shut down before the turn ended.
    Cancelled,
    /// An access rule, a rate limit or a quota kept the turn from running; the user was told
    /// why. `0` is the reason (`denied`, `not_admin`, `user_rate`, `channel_rate`, `quota`).
    Refused(String),
}

/// What `submit` did with an event.
#[derive(Debug)]
pub enum Submission {
    /// Persisted and queued; the handle resolves when its turn ends.
    Queued(TurnHandle),
    /// The event id was seen before; nothing was done.
    Duplicate,
    /// Not for the engine (bot author).
    Ignored,
}

impl Submission {
    /// Waits for the turn if one was queued.
    pub async fn wait(self) -> TurnOutcome {
        match self {
            Submission::Queued(h) => h.wait().await,
            Submission::Duplicate | Submission::Ignored => TurnOutcome::Ignored,
        }
    }
}

#[derive(Debug)]
pub struct TurnHandle(oneshot::Receiver<TurnOutcome>);

impl TurnOutcome {
    /// The metrics label.
    pub fn label(&self) -> &'static str {
        match self {
            TurnOutcome::Replied => "replied",
            TurnOutcome::Command => "command",
            TurnOutcome::NoProvider => "no_provider",
            TurnOutcome::Failed(_) => "failed",
            TurnOutcome::Ignored => "ignored",
            TurnOutcome::Cancelled => "cancelled",
            TurnOutcome::Refused(_) => "refused",
        }
    }
}

impl TurnHandle {
    pub async fn wait(self) -> TurnOutcome {
        self.0.await.unwrap_or(TurnOutcome::Cancelled)
    }
}

/// What a queued job asks the worker to do.
pub(crate) enum Work {
    Chat {
        text: String,
    },
    Command(Command),
    /// A command that could not be parsed; the message says why.
    BadCommand(String),
    /// `/reset`, already applied at submit time; the reply is queued so it arrives in order.
    ResetDone {
        ok: bool,
    },
    /// Kept out by an access rule or a limit; the reply says why.
    Refused(crate::access::Refusal),
}

pub(crate) struct Job {
    pub inbound: Inbound,
    pub work: Work,
    pub conversation: Conversation,
    /// The id of the stored user message that starts this turn, for chat turns.
    pub turn: Option<i64>,
    pub sink: Arc<dyn ReplySink>,
    pub done: oneshot::Sender<TurnOutcome>,
}

pub(crate) struct Inner {
    pub store: Arc<dyn Store>,
    pub provider: Option<Arc<dyn Provider>>,
    pub sandbox: Option<Arc<dyn CodeRunner>>,
    /// Tools of MCP servers, offered beside `run_code`.
    pub tools: Option<Arc<dyn ToolProvider>>,
    pub config: EngineConfig,
    pub access: crate::access::AccessState,
    queues: Mutex<HashMap<ConversationKey, mpsc::UnboundedSender<Job>>>,
    /// The running chat turn of each busy conversation, so a newer message can stop it.
    running: Mutex<HashMap<ConversationKey, CancellationToken>>,
    permits: Semaphore,
    tracker: TaskTracker,
    connections: Connections,
    /// Built once: adapters ask for it for every sink they make.
    call_budget: Option<Arc<dyn CallBudget>>,
    pub shutdown: CancellationToken,
}

/// The engine. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl Engine {
    pub fn new(
        config: EngineConfig,
        store: Arc<dyn Store>,
        provider: Option<Arc<dyn Provider>>,
        sandbox: Option<Arc<dyn CodeRunner>>,
    ) -> Self {
        let permits = Semaphore::new(config.max_concurrent_turns.max(1));
        Self {
            inner: Arc::new(Inner {
                call_budget: config
                    .lease
                    .as_ref()
                    .map(|_| Arc::new(StoreCallBudget::new(store.clone())) as Arc<dyn CallBudget>),
                store,
                provider,
                sandbox,
                tools: None,
                config,
                access: Default::default(),
                queues: Mutex::new(HashMap::new()),
                running: Mutex::new(HashMap::new()),
                permits,
                tracker: TaskTracker::new(),
                connections: Connections::default(),
                shutdown: CancellationToken::new(),
            }),
        }
    }

    /// Offers the model the tools of `tools` (MCP servers) beside `run_code`.
    ///
    /// # Panics
    /// When called after the engine was cloned or started work: tools are set once, while
    /// wiring, so every turn sees the same set.
    pub fn with_tools(mut self, tools: Arc<dyn ToolProvider>) -> Self {
        Arc::get_mut(&mut self.inner)
            .expect("with_tools is called before the engine is cloned")
            .tools = Some(tools);
        self
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// The adapters' connection states, for readiness.
    pub fn connections(&self) -> &Connections {
        &self.inner.connections
    }

    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }

    /// The platform call budget shared with other replicas, when the engine runs as one of
    /// several (leases configured); `None` for a single process, whose adapters' own pacing
    /// already sees every call.
    pub fn call_budget(&self) -> Option<Arc<dyn CallBudget>> {
        self.inner.call_budget.clone()
    }

    /// Whether robit already has a conversation for `key` (one of its turns was started
    /// there, on any replica): one indexed read, never a create. Adapters use it to tell
    /// whether a message not addressed to the bot continues one of its threads without
    /// asking the platform on their acknowledgement path.
    pub async fn has_conversation(&self, key: &ConversationKey) -> Result<bool, EngineError> {
        Ok(self.inner.store.find_conversation(key).await?.is_some())
    }

    /// Accepts one inbound event: dedups and persists it, then queues its turn on its
    /// conversation. Returns once the event is durable; the turn runs in the background.
    pub async fn submit(
        &self,
        inbound: Inbound,
        sink: Arc<dyn ReplySink>,
    ) -> Result<Submission, EngineError> {
        // One span per inbound event, with what identifies it and never its text; the
        // conversation id is filled in once the store has found it.
        let span = tracing::info_span!(
            "event",
            platform = %inbound.key.platform,
            workspace = %inbound.key.workspace,
            channel = %inbound.key.channel,
            event_id = %inbound.event_id,
            conversation = tracing::field::Empty,
        );
        self.submit_in_span(inbound, sink).instrument(span).await
    }

    async fn submit_in_span(
        &self,
        inbound: Inbound,
        sink: Arc<dyn ReplySink>,
    ) -> Result<Submission, EngineError> {
        if self.inner.tracker.is_closed() {
            return Err(EngineError::ShuttingDown);
        }
        // The second guard against bot loops: adapters filter bots, but the engine never
        // answers one whatever an adapter does.
        if inbound.author.is_bot {
            return Ok(Submission::Ignored);
        }
        let platform = inbound.key.platform.as_str();
        metrics::counter!(m::EVENTS_RECEIVED, "platform" => platform).increment(1);
        let work = match &inbound.kind {
            InboundKind::Command(c) => Work::Command(c.clone()),
            InboundKind::Message { text, .. } => match Command::parse_text(text) {
                Some(Ok(c)) => Work::Command(c),
                Some(Err(e)) => Work::BadCommand(e.to_string()),
                None => Work::Chat { text: text.clone() },
            },
        };
        let work = match work {
            Work::Command(Command::Ask { prompt }) => Work::Chat { text: prompt },
            w => w,
        };
        // Access is decided before anything is stored, so a refused user's words never enter
        // a conversation's history (and never reach the model in someone else's turn).
        let denied = crate::access::check(&self.inner, &inbound).await;
        let message = match &work {
            Work::Chat { text } if denied.is_none() => {
                Some(NewMessage::user(inbound.author.id.clone(), text.clone()))
            }
            _ => None,
        };
        let accepted = self
            .inner
            .store
            .accept(NewEvent {
                platform: inbound.key.platform,
                event_id: inbound.event_id.clone(),
                key: inbound.key.clone(),
                message,
            })
            .await?;
        let (conversation, turn) = match accepted {
            Accepted::Duplicate => {
                metrics::counter!(m::EVENTS_DEDUPLICATED, "platform" => platform).increment(1);
                tracing::debug!(event_id = %inbound.event_id, "duplicate event");
                return Ok(Submission::Duplicate);
            }
            Accepted::New {
                conversation,
                message_id,
            } => (conversation, message_id),
        };
        tracing::Span::current().record("conversation", conversation.id.0);
        tracing::debug!(queued = true, "event accepted");
        // Limits are taken only for a new event, so a redelivery is not counted twice.
        let work = match (denied, work) {
            (Some(refusal), _) => Work::Refused(refusal),
            (None, w @ (Work::Chat { .. } | Work::Command(Command::Run { .. }))) => {
                match crate::limits::check(&self.inner, &inbound).await {
                    Some(refusal) => Work::Refused(refusal),
                    None => w,
                }
            }
            (None, w) => w,
        };
        // A reset takes effect in submission order: messages sent after it start afresh even
        // if they were stored before the queue reached it.
        let work = match work {
            Work::Command(Command::Reset) => {
                let ok = match self.inner.store.reset(conversation.id).await {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::error!(error = %e, "reset failed");
                        false
                    }
                };
                Work::ResetDone { ok }
            }
            w => w,
        };
        if self.inner.config.cancel_on_new_message
            && matches!(work, Work::Chat { .. } | Work::ResetDone { .. })
        {
            if let Some(running) = self
                .inner
                .running
                .lock()
                .expect("poisoned")
                .get(&inbound.key)
            {
                tracing::info!("a newer message stops the running turn");
                running.cancel();
            }
        }
        let (done, rx) = oneshot::channel();
        self.enqueue(Job {
            inbound,
            work,
            conversation,
            turn,
            sink,
            done,
        });
        Ok(Submission::Queued(TurnHandle(rx)))
    }

    fn enqueue(&self, job: Job) {
        metrics::gauge!(m::QUEUE_DEPTH).increment(1.0);
        let key = job.inbound.key.clone();
        let mut queues = self.inner.queues.lock().expect("queue map poisoned");
        let job = match queues.get(&key) {
            Some(tx) => match tx.send(job) {
                Ok(()) => return,
                Err(mpsc::error::SendError(job)) => job,
            },
            None => job,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(job);
        queues.insert(key.clone(), tx);
        metrics::gauge!(m::ACTIVE_CONVERSATIONS).set(queues.len() as f64);
        drop(queues);
        let inner = self.inner.clone();
        self.inner.tracker.spawn(worker(inner, key, rx));
    }

    /// Conversations with queued or running turns.
    pub fn active_conversations(&self) -> usize {
        self.inner.queues.lock().expect("queue map poisoned").len()
    }

    /// Stops taking events and waits up to `grace` for running turns; turns still running
    /// then are cancelled (they tell their thread they were cut off) and awaited.
    pub async fn shutdown(&self, grace: std::time::Duration) {
        self.inner.tracker.close();
        if tokio::time::timeout(grace, self.inner.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("grace period over, cutting off running turns");
            self.inner.shutdown.cancel();
            self.inner.tracker.wait().await;
        }
        self.inner.shutdown.cancel();
    }
}

impl Inner {
    /// Registers the conversation's running turn; its token fires on shutdown or, when
    /// configured, when a newer message arrives.
    pub(crate) fn begin_turn(&self, key: &ConversationKey) -> CancellationToken {
        let token = self.shutdown.child_token();
        self.running
            .lock()
            .expect("poisoned")
            .insert(key.clone(), token.clone());
        token
    }

    pub(crate) fn end_turn(&self, key: &ConversationKey) {
        self.running.lock().expect("poisoned").remove(key);
    }
}

async fn worker(inner: Arc<Inner>, key: ConversationKey, mut rx: mpsc::UnboundedReceiver<Job>) {
    loop {
        let job = match rx.try_recv() {
            Ok(job) => job,
            Err(_) => {
                // Senders only send while holding the map lock, so checking again under the
                // lock cannot miss a job: either we see it, or the sender finds no entry and
                // starts a new worker.
                let mut queues = inner.queues.lock().expect("queue map poisoned");
                match rx.try_recv() {
                    Ok(job) => job,
                    Err(_) => {
                        queues.remove(&key);
                        metrics::gauge!(m::ACTIVE_CONVERSATIONS).set(queues.len() as f64);
                        return;
                    }
                }
            }
        };
        let Ok(_permit) = inner.permits.acquire().await else {
            return;
        };
        metrics::gauge!(m::QUEUE_DEPTH).decrement(1.0);
        turn::run_job(&inner, job).await;
    }
}
