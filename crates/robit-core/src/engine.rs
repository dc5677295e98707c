//! Intake and scheduling: dedup, persist, then one queue per conversation.
//!
//! `submit` persists the event (dedup + user message + the turn it needs, one transaction)
//! before it returns, so an adapter that acknowledges after `submit` never loses a message
//! or its answer: a turn whose process dies is taken over from the journal (`resume_turns`).
//! Each conversation with pending work has one worker task draining its queue in order; a
//! global semaphore bounds how many turns run at once. Workers exit when their queue is
//! empty, so idle conversations cost nothing. Pending turns are capped per conversation and
//! in total; past the caps the user is told instead of the queue growing.

use crate::call_budget::StoreCallBudget;
use crate::config::EngineConfig;
use crate::connections::Connections;
use crate::error::EngineError;
use crate::journal::{JournalSink, StoredJob, StoredWork, Ticket};
use crate::metrics as m;
use crate::outcome::TurnOutcome;
use crate::reply::say;
use crate::shared::Shared;
use crate::turn;
use robit_llm::Provider;
use robit_mcp::ToolProvider;
use robit_sandbox::CodeRunner;
use robit_store::{Accepted, Conversation, NewEvent, NewMessage, NewTurn, Question, Store};
use robit_store::{QuestionEdit, SettingPlace, TurnStatus};
use robit_types::{
    CallBudget, Command, ConversationKey, Inbound, InboundKind, Platform, ReplySink, SettingKey,
    SinkOpener,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

mod resume;

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
    /// The journaled turn, when the work is journaled.
    pub ticket: Option<Ticket>,
    /// The span the turn's own span is a child of: the one that accepted the event, or the
    /// takeover's. Carried by hand because the worker task runs outside it.
    pub trace: tracing::Span,
}

/// The engine's own state: queues and the journal's bookkeeping. What turns need lives in
/// [`Shared`], which the layers below see; they never see this.
pub(crate) struct Inner {
    shared: Arc<Shared>,
    /// One entry per conversation with a pending slot or a worker: the cap's count and the
    /// queue live together, so an intake hashes its key and takes a lock once, and the map
    /// (presized to the cap, see [`crate::journal::presized`]) is one table, not two.
    conversations: Mutex<HashMap<ConversationKey, Slot>>,
    /// Conversations with a worker draining their queue.
    active: AtomicUsize,
    tracker: TaskTracker,
    connections: Connections,
    /// Built once: adapters ask for it for every sink they make.
    call_budget: Option<Arc<dyn CallBudget>>,
    /// Queued or running turns in all, for the cap.
    pending_total: AtomicUsize,
    journal_started: AtomicBool,
    /// A graceful stop began: queued turns stay in the journal for the next process.
    stopping: AtomicBool,
    /// Stops the journal's background tasks once the engine has stopped.
    journal_stop: CancellationToken,
    /// When this engine was made: turns leased before it are a predecessor's.
    started: std::time::SystemTime,
    /// Each adapter's way back to a journaled route: takeovers, and an edit's answer, which
    /// is written where the question was answered.
    openers: Mutex<HashMap<Platform, Arc<dyn SinkOpener>>>,
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
        let slots = crate::journal::presized(config.journal.max_pending_total);
        Self {
            inner: Arc::new(Inner {
                call_budget: config
                    .lease
                    .as_ref()
                    .map(|_| Arc::new(StoreCallBudget::new(store.clone())) as Arc<dyn CallBudget>),
                shared: Arc::new(Shared::new(config, store, provider, sandbox)),
                conversations: Mutex::new(HashMap::with_capacity(slots)),
                active: AtomicUsize::new(0),
                tracker: TaskTracker::new(),
                connections: Connections::default(),
                pending_total: AtomicUsize::new(0),
                journal_started: AtomicBool::new(false),
                stopping: AtomicBool::new(false),
                journal_stop: CancellationToken::new(),
                started: std::time::SystemTime::now(),
                openers: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Offers the model the tools of `tools` (MCP servers) beside `run_code`.
    ///
    /// # Panics
    /// When called after the engine was cloned or started work: tools are set once, while
    /// wiring, so every turn sees the same set.
    pub fn with_tools(mut self, tools: Arc<dyn ToolProvider>) -> Self {
        let inner = Arc::get_mut(&mut self.inner)
            .expect("with_tools is called before the engine is cloned");
        Arc::get_mut(&mut inner.shared)
            .expect("with_tools is called before the engine started work")
            .tools = Some(tools);
        self
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.shared.config
    }

    /// The adapters' connection states, for readiness.
    pub fn connections(&self) -> &Connections {
        &self.inner.connections
    }

    /// The platform call budget shared with other replicas, when the engine runs as one of
    /// several (leases configured); `None` for a single process, whose adapters' own pacing
    /// already sees every call.
    pub fn call_budget(&self) -> Option<Arc<dyn CallBudget>> {
        self.inner.call_budget.clone()
    }

    /// Lets the engine reopen `platform`'s journaled routes with `opener` outside takeovers:
    /// the answer to an edited question is written where the question was answered.
    /// [`Engine::resume_turns`] does it too.
    pub fn set_sink_opener(&self, platform: Platform, opener: Arc<dyn SinkOpener>) {
        self.inner
            .openers
            .lock()
            .expect("openers poisoned")
            .insert(platform, opener);
    }

    /// Whether robit already has a conversation for `key` (one of its turns was started
    /// there, on any replica): one indexed read, never a create. Adapters use it to tell
    /// whether a message not addressed to the bot continues one of its threads without
    /// asking the platform on their acknowledgement path.
    pub async fn has_conversation(&self, key: &ConversationKey) -> Result<bool, EngineError> {
        Ok(self
            .inner
            .shared
            .store
            .find_conversation(key)
            .await?
            .is_some())
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
            "accept",
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
        let shared = &self.inner.shared;
        // The second guard against bot loops: adapters filter bots, but the engine never
        // answers one whatever an adapter does.
        if inbound.author.is_bot {
            return Ok(Submission::Ignored);
        }
        let platform = inbound.key.platform.as_str();
        metrics::counter!(m::EVENTS_RECEIVED, "platform" => platform).increment(1);
        // A click on an answer's button is handled here and now: a Stop queued behind the
        // turn it stops would come too late. Nothing of it enters history.
        if let InboundKind::Action { action, turn } = &inbound.kind {
            let (action, turn) = (*action, *turn);
            return match crate::actions::act(shared, &inbound, &sink, action, turn).await {
                crate::actions::Acted::Done(outcome) => Ok(Submission::Queued(done_now(outcome))),
                crate::actions::Acted::Regenerate(question) => {
                    match self.answer_sink(&question, &sink).await {
                        Some(answer) => {
                            self.regenerate(inbound, sink, answer, turn, question, false)
                                .await
                        }
                        None => {
                            let outcome = crate::actions::decline(
                                &sink,
                                &inbound.author.id,
                                "⚠️ This answer can no longer be changed.",
                                "answer unreachable",
                            )
                            .await;
                            Ok(Submission::Queued(done_now(outcome)))
                        }
                    }
                }
            };
        }
        // An edit is decided here and now too: it answers a question stored earlier, which a
        // turn queued behind others would find changed.
        if let InboundKind::Edit { message, text } = &inbound.kind {
            let (message, text) = (message.clone(), text.clone());
            return self.edit(inbound, sink, &message, &text).await;
        }
        let work = match &inbound.kind {
            InboundKind::Command(c) => Work::Command(c.clone()),
            InboundKind::Action { .. } | InboundKind::Edit { .. } => {
                unreachable!("handled above")
            }
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
        let denied = crate::access::check(
            &shared.access,
            shared.store.as_ref(),
            &shared.config.access,
            &inbound,
        )
        .instrument(m::stage!("access"))
        .await;
        let message = match &work {
            Work::Chat { text } if denied.is_none() => Some(NewMessage {
                platform_ref: inbound.platform_ref().map(str::to_string),
                ..NewMessage::user(inbound.author.id.clone(), text.clone())
            }),
            _ => None,
        };
        // Only a turn whose sink another process could rebuild is worth journaling (the
        // console and tests have no route: their turns live and die with the process).
        let route = sink.route();
        let journaled = match (&denied, &work) {
            _ if route.is_none() => None,
            (None, Work::Chat { text }) => Some(StoredWork::Chat { text: text.clone() }),
            (None, Work::Command(Command::Reset)) => None,
            (None, Work::Command(c)) => Some(StoredWork::Command(c.clone())),
            _ => None,
        };
        // The pending slot is reserved here, atomically with the cap check, so concurrent
        // submits cannot all slip under the cap; it is given back if the event is not queued.
        let reserved = match &journaled {
            Some(_) => match self.reserve(&inbound.key) {
                Ok(()) => Some(inbound.key.clone()),
                Err(refusal) => return Ok(self.refuse_now(inbound, sink, refusal)),
            },
            None => None,
        };
        let unreserve = |engine: &Engine| {
            if let Some(key) = &reserved {
                engine.inner.turn_left(key);
            }
        };
        let journal = &self.inner.shared.config.journal;
        let turn = journaled.map(|work| NewTurn {
            job: serde_json::to_string(&StoredJob {
                inbound: inbound.clone(),
                work,
                traceparent: robit_types::trace::current_traceparent(),
            })
            .expect("a job serializes"),
            route,
            holder: journal.holder.clone(),
            lease: journal.lease,
            answers: None,
        });
        self.start_journal();
        let accepted = match self
            .inner
            .shared
            .store
            .accept(NewEvent {
                platform: inbound.key.platform,
                event_id: inbound.event_id.clone(),
                key: inbound.key.clone(),
                message,
                turn,
                edit: None,
            })
            .instrument(m::stage!("accept"))
            .await
        {
            Ok(a) => a,
            Err(e) => {
                unreserve(self);
                // Not acknowledged: the adapter tells the platform (or the user) so the event
                // is delivered again or sent again once the database is back.
                metrics::counter!(m::EVENTS_UNSAVED, "platform" => platform).increment(1);
                tracing::error!(error = %e, "saving an event failed; not acknowledging it");
                return Err(e.into());
            }
        };
        let (conversation, turn, turn_id) = match accepted {
            Accepted::Duplicate => {
                unreserve(self);
                metrics::counter!(m::EVENTS_DEDUPLICATED, "platform" => platform).increment(1);
                tracing::debug!(event_id = %inbound.event_id, "duplicate event");
                return Ok(Submission::Duplicate);
            }
            Accepted::New {
                conversation,
                message_id,
                turn_id,
            } => (conversation, message_id, turn_id),
        };
        let ticket = turn_id.map(|id| Ticket {
            id,
            lost: self.inner.shared.held.hold(id),
            posted: Vec::new(),
            resumed: false,
            taken_over: false,
            regenerated: false,
        });
        tracing::Span::current().record("conversation", conversation.id.0);
        tracing::debug!(queued = true, "event accepted");
        // Limits are taken only for a new event, so a redelivery is not counted twice.
        let work = match (denied, work) {
            (Some(refusal), _) => Work::Refused(refusal),
            (None, w @ (Work::Chat { .. } | Work::Command(Command::Run { .. }))) => {
                match crate::limits::check(shared.store.as_ref(), &shared.config.limits, &inbound)
                    .instrument(m::stage!("limits"))
                    .await
                {
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
                let ok = match self.inner.shared.store.reset(conversation.id).await {
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
        if shared.config.cancel_on_new_message
            && matches!(work, Work::Chat { .. } | Work::ResetDone { .. })
            && shared.stop_running(&inbound.key)
        {
            tracing::info!("a newer message stops the running turn");
        }
        let (done, rx) = oneshot::channel();
        self.enqueue(
            Job {
                inbound,
                work,
                conversation,
                turn,
                sink,
                done,
                ticket,
                trace: tracing::Span::current(),
            },
            reserved.is_some(),
        );
        Ok(Submission::Queued(TurnHandle(rx)))
    }

    /// Queues a journaled turn that answers question `turn` again over its earlier answer's
    /// messages (Regenerate, or an edit of the question): stored like a new event (the click
    /// or the edit is its event id, so a redelivered one does not regenerate twice), in one
    /// transaction with marking the earlier answer superseded and handing its messages to
    /// the new turn. `edited`: `question.text` is the question's new text, stored in the same
    /// transaction.
    async fn regenerate(
        &self,
        mut inbound: Inbound,
        sink: Arc<dyn ReplySink>,
        answer: Arc<dyn ReplySink>,
        turn: i64,
        question: Question,
        edited: bool,
    ) -> Result<Submission, EngineError> {
        let shared = &self.inner.shared;
        let user = inbound.author.id.clone();
        let Some(route) = answer.route() else {
            crate::reply::whisper(
                &sink,
                &user,
                "⚠️ Answers here cannot be regenerated.",
                "an action's reply",
            )
            .await;
            return Ok(Submission::Queued(done_now(TurnOutcome::Failed(
                "no route".into(),
            ))));
        };
        // The turn runs in the question's conversation, whatever the click's payload says.
        inbound.key = question.key.clone();
        if let Err(refusal) = self.reserve(&inbound.key) {
            return Ok(self.refuse_now(inbound, sink, refusal));
        }
        // Limits before storing: a refused regeneration must leave the current answer as it is.
        if let Some(refusal) =
            crate::limits::check(shared.store.as_ref(), &shared.config.limits, &inbound).await
        {
            self.inner.turn_left(&inbound.key);
            return Ok(self.refuse_now(inbound, sink, refusal));
        }
        let journal = &shared.config.journal;
        let new_turn = NewTurn {
            job: serde_json::to_string(&StoredJob {
                inbound: inbound.clone(),
                work: StoredWork::Chat {
                    text: question.text.clone(),
                },
                traceparent: robit_types::trace::current_traceparent(),
            })
            .expect("a job serializes"),
            route: Some(route),
            holder: journal.holder.clone(),
            lease: journal.lease,
            answers: Some(turn),
        };
        self.start_journal();
        let accepted = shared
            .store
            .accept(NewEvent {
                platform: inbound.key.platform,
                event_id: inbound.event_id.clone(),
                key: inbound.key.clone(),
                message: None,
                turn: Some(new_turn),
                edit: edited.then(|| QuestionEdit {
                    question: turn,
                    text: question.text.clone(),
                }),
            })
            .await;
        let (conversation, turn_id) = match accepted {
            Ok(Accepted::New {
                conversation,
                turn_id: Some(turn_id),
                ..
            }) => (conversation, turn_id),
            Ok(_) => {
                self.inner.turn_left(&inbound.key);
                return Ok(Submission::Duplicate);
            }
            Err(e) => {
                self.inner.turn_left(&inbound.key);
                tracing::error!(error = %e, "saving a regeneration failed");
                return Err(e.into());
            }
        };
        let posted = match shared.store.posts(turn_id).await {
            Ok(refs) => refs.into_iter().map(robit_types::MessageRef).collect(),
            Err(e) => {
                // The answer is written in new messages instead of over the old ones.
                tracing::warn!(error = %e, "reading the replaced answer's messages failed");
                Vec::new()
            }
        };
        let action = if edited { "edit" } else { "regenerate" };
        metrics::counter!(m::ANSWER_ACTIONS, "platform" => inbound.key.platform.as_str(), "action" => action)
            .increment(1);
        let ticket = Ticket {
            id: turn_id,
            lost: shared.held.hold(turn_id),
            posted,
            resumed: false,
            taken_over: false,
            regenerated: true,
        };
        let (done, rx) = oneshot::channel();
        self.enqueue(
            Job {
                inbound,
                work: Work::Chat {
                    text: question.text,
                },
                conversation,
                turn: Some(turn),
                sink: answer,
                done,
                ticket: Some(ticket),
                trace: tracing::Span::current(),
            },
            true,
        );
        Ok(Submission::Queued(TurnHandle(rx)))
    }

    /// Where a Regenerate click writes the answer again: where it was written (the route of
    /// the question's latest turn, reopened by the adapter), else the click's own sink when
    /// the answer has no journaled route. `None`: it has one the adapter can no longer open.
    async fn answer_sink(
        &self,
        question: &Question,
        click: &Arc<dyn ReplySink>,
    ) -> Option<Arc<dyn ReplySink>> {
        let opener = self
            .inner
            .openers
            .lock()
            .expect("openers poisoned")
            .get(&question.key.platform)
            .cloned();
        match (opener, question.answer.as_ref()) {
            (Some(opener), Some(answer)) if answer.route.is_some() => {
                crate::journal::reopen_answer(
                    self.inner.shared.store.as_ref(),
                    opener.as_ref(),
                    answer,
                )
                .await
            }
            _ => Some(click.clone()),
        }
    }

    /// An edit of a question (see `edits.rs`): answered again, its text only replaced, or
    /// nothing.
    async fn edit(
        &self,
        mut inbound: Inbound,
        sink: Arc<dyn ReplySink>,
        message: &str,
        text: &str,
    ) -> Result<Submission, EngineError> {
        let shared = &self.inner.shared;
        let opener = self
            .inner
            .openers
            .lock()
            .expect("openers poisoned")
            .get(&inbound.key.platform)
            .cloned();
        self.start_journal();
        match crate::edits::decide(shared, &inbound, &sink, message, text, opener).await? {
            crate::edits::Edited::Ignored => Ok(Submission::Ignored),
            crate::edits::Edited::Done(outcome) => Ok(Submission::Queued(done_now(outcome))),
            crate::edits::Edited::Regenerate { asked, sink } => {
                self.regenerate(inbound, sink.clone(), sink, asked.id, asked.question, true)
                    .await
            }
            crate::edits::Edited::Rewrite(asked) => {
                inbound.key = asked.question.key.clone();
                let accepted = shared
                    .store
                    .accept(NewEvent {
                        platform: inbound.key.platform,
                        event_id: inbound.event_id.clone(),
                        key: inbound.key.clone(),
                        message: None,
                        turn: None,
                        edit: Some(QuestionEdit {
                            question: asked.id,
                            text: asked.question.text,
                        }),
                    })
                    .await?;
                Ok(match accepted {
                    Accepted::Duplicate => Submission::Duplicate,
                    Accepted::New { .. } => Submission::Queued(done_now(TurnOutcome::Command)),
                })
            }
        }
    }

    /// Takes one pending slot of `key`'s conversation and of this replica; the refusal when
    /// either already has as many pending turns as it may.
    fn reserve(&self, key: &ConversationKey) -> Result<(), crate::access::Refusal> {
        let journal = &self.inner.shared.config.journal;
        let mut conversations = self
            .inner
            .conversations
            .lock()
            .expect("conversations poisoned");
        let here = conversations.get(key).map_or(0, |slot| slot.pending);
        if here >= journal.max_pending_per_conversation {
            return Err(crate::access::Refusal {
                reason: "busy",
                text: format!(
                    "⏳ This conversation already has {here} messages waiting for an answer; \
                     this one was not taken. Send it again once they are answered."
                ),
            });
        }
        if self.inner.pending_total.load(Ordering::Relaxed) >= journal.max_pending_total {
            return Err(crate::access::Refusal {
                reason: "busy",
                text: "⏳ robit is answering as many messages as it can right now; this one \
                       was not taken. Please send it again in a minute."
                    .to_string(),
            });
        }
        conversations.entry(key.clone()).or_default().pending += 1;
        self.inner.pending_total.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Tells the user at once, without storing the event (it was not taken), and counts and
    /// audits the refusal.
    fn refuse_now(
        &self,
        inbound: Inbound,
        sink: Arc<dyn ReplySink>,
        refusal: crate::access::Refusal,
    ) -> Submission {
        let (done, rx) = oneshot::channel();
        let inner = self.inner.clone();
        self.inner.tracker.spawn(
            async move {
                let outcome =
                    crate::access::refuse(inner.shared.store.as_ref(), &inbound, &sink, refusal)
                        .await;
                let _ = done.send(outcome);
            }
            .instrument(tracing::Span::current()),
        );
        Submission::Queued(TurnHandle(rx))
    }

    /// Starts renewing this replica's turn leases (once).
    fn start_journal(&self) {
        if self.inner.journal_started.swap(true, Ordering::SeqCst) {
            return;
        }
        let shared = self.inner.shared.clone();
        tokio::spawn(crate::journal::heartbeat(
            self.inner.shared.store.clone(),
            self.inner.shared.held.clone(),
            self.inner.shared.config.journal.clone(),
            self.inner.journal_stop.clone(),
            Arc::new(move |question: i64, by: &str| shared.stop_turn(question, by)),
        ));
    }

    /// Turns queued or running on this replica.
    pub fn pending_turns(&self) -> usize {
        self.inner.pending_total.load(Ordering::Relaxed)
    }

    /// Queues a job on its conversation; `reserved`: its pending slot was taken already.
    fn enqueue(&self, job: Job, reserved: bool) {
        let job = Box::new(job);
        metrics::gauge!(m::QUEUE_DEPTH).increment(1.0);
        let mut conversations = self
            .inner
            .conversations
            .lock()
            .expect("conversations poisoned");
        let slot = conversations.entry(job.inbound.key.clone()).or_default();
        if !reserved {
            slot.pending += 1;
            self.inner.pending_total.fetch_add(1, Ordering::Relaxed);
        }
        let job = match &slot.queue {
            Some(tx) => match tx.send(job) {
                Ok(()) => return,
                Err(mpsc::error::SendError(job)) => job,
            },
            None => job,
        };
        // A sender whose worker is gone without saying so (its task was dropped) is replaced;
        // the conversation still counts once.
        let replaced = slot.queue.is_some();
        // Only a new worker needs a key of its own; a job joining a running one does not.
        let key = job.inbound.key.clone();
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(job);
        slot.queue = Some(tx);
        drop(conversations);
        let active = if replaced {
            self.inner.active.load(Ordering::Relaxed)
        } else {
            self.inner.active.fetch_add(1, Ordering::Relaxed) + 1
        };
        metrics::gauge!(m::ACTIVE_CONVERSATIONS).set(active as f64);
        let inner = self.inner.clone();
        self.inner.tracker.spawn(worker(inner, key, rx));
    }

    /// Conversations with queued or running turns.
    pub fn active_conversations(&self) -> usize {
        self.inner.active.load(Ordering::Relaxed)
    }

    /// Stops taking events and waits up to `grace` for running turns; turns still running
    /// then are cancelled (they tell their thread they will continue) and awaited. Queued
    /// turns that had not started stay in the journal, and every open turn's lease is ended,
    /// so the next process (or another replica) takes them over at once. Last, the sandbox
    /// is shut down ([`CodeRunner::shutdown`]): no code runs after this returns.
    pub async fn shutdown(&self, grace: std::time::Duration) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        self.inner.tracker.close();
        if tokio::time::timeout(grace, self.inner.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("grace period over, cutting off running turns");
            self.inner.shared.shutdown.cancel();
            self.inner.tracker.wait().await;
        }
        self.inner.shared.shutdown.cancel();
        self.inner.journal_stop.cancel();
        match self
            .inner
            .shared
            .store
            .release_turns(&self.inner.shared.config.journal.holder)
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(turns = n, "left open turns for the next start"),
            Err(e) => tracing::warn!(error = %e, "releasing turn leases failed; they will expire"),
        }
        // No turn runs code any more; the sandbox removes what it keeps on the host.
        if let Some(sandbox) = &self.inner.shared.sandbox {
            sandbox.shutdown().await;
        }
    }
}

/// A handle whose outcome is already known (an action handled at intake).
fn done_now(outcome: TurnOutcome) -> TurnHandle {
    let (done, rx) = oneshot::channel();
    let _ = done.send(outcome);
    TurnHandle(rx)
}

/// A conversation's entry in [`Inner::conversations`].
#[derive(Default)]
struct Slot {
    /// Its queued or running turns, for the per-conversation cap.
    pending: usize,
    /// Its worker's queue, while a worker runs. Boxed jobs: a channel allocates its first
    /// block of 32 slots when it is made, and a conversation's channel usually carries one
    /// job, so inline jobs (568 bytes) cost 18 kB for every conversation with a queued turn,
    /// a boxed one 256 bytes.
    queue: Option<mpsc::UnboundedSender<Box<Job>>>,
}

impl Inner {
    /// A queued or running turn of `key` ended (or was left for the next process).
    fn turn_left(&self, key: &ConversationKey) {
        let mut conversations = self.conversations.lock().expect("conversations poisoned");
        if let Some(slot) = conversations.get_mut(key) {
            slot.pending = slot.pending.saturating_sub(1);
            // A worker still running keeps the entry; it removes it when it stops.
            if slot.pending == 0 && slot.queue.is_none() {
                conversations.remove(key);
            }
        }
        self.pending_total.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn worker(
    inner: Arc<Inner>,
    key: ConversationKey,
    mut rx: mpsc::UnboundedReceiver<Box<Job>>,
) {
    loop {
        let job = match rx.try_recv() {
            Ok(job) => job,
            Err(_) => {
                // Senders only send while holding the map lock, so checking again under the
                // lock cannot miss a job: either we see it, or the sender finds no queue and
                // starts a new worker.
                let mut conversations = inner.conversations.lock().expect("conversations poisoned");
                match rx.try_recv() {
                    Ok(job) => job,
                    Err(_) => {
                        if let Some(slot) = conversations.get_mut(&key) {
                            slot.queue = None;
                            if slot.pending == 0 {
                                conversations.remove(&key);
                            }
                        }
                        drop(conversations);
                        let active = inner.active.fetch_sub(1, Ordering::Relaxed) - 1;
                        metrics::gauge!(m::ACTIVE_CONVERSATIONS).set(active as f64);
                        return;
                    }
                }
            }
        };
        metrics::gauge!(m::QUEUE_DEPTH).decrement(1.0);
        // A graceful stop leaves queued journaled turns in the journal instead of starting
        // them; the others run within the grace period as before.
        match &job.ticket {
            Some(ticket) if inner.stopping.load(Ordering::SeqCst) => {
                inner.shared.held.release(ticket.id);
                let _ = job.done.send(TurnOutcome::Cancelled);
            }
            _ => run_job(&inner.shared, *job).await,
        }
        inner.turn_left(&key);
    }
}

/// Runs one job: takes the conversation's lease and a permit, marks a journaled turn
/// running, dispatches the work, and closes the turn in the journal.
async fn run_job(shared: &Arc<Shared>, job: Job) {
    let Job {
        inbound,
        work,
        conversation,
        turn,
        sink,
        done,
        ticket,
        trace,
    } = job;
    let span = tracing::info_span!(
        parent: &trace,
        "turn",
        platform = %inbound.key.platform,
        workspace = %inbound.key.workspace,
        channel = %inbound.key.channel,
        conversation = conversation.id.0,
        event_id = %inbound.event_id,
        replica = %shared.config.journal.holder,
        turn = ticket.as_ref().map(|t| t.id),
        resumed = ticket.as_ref().is_some_and(|t| t.taken_over),
    );
    let started = std::time::Instant::now();
    let kind = match &work {
        Work::Chat { .. } => "chat",
        _ => "command",
    };
    // The conversation's lease first, then a global permit: a turn waiting for another
    // replica to finish in its conversation must not keep a permit from turns elsewhere.
    let lease = match &shared.config.lease {
        Some(config) => {
            match crate::lease::acquire(&shared.store, config, &shared.shutdown, conversation.id)
                .instrument(m::stage!("lease"))
                .await
            {
                Some(guard) => Some(guard),
                None => {
                    let _ = done.send(TurnOutcome::Cancelled);
                    return;
                }
            }
        }
        None => None,
    };
    let Ok(permit) = shared
        .permits
        .acquire()
        .instrument(m::stage!("permit"))
        .await
    else {
        let _ = done.send(TurnOutcome::Cancelled);
        return;
    };
    // What a running turn holds (its stream, renderer, tool rounds) is boxed, so it is
    // allocated only now, when the turn has its permit: inline, every queued turn's task was
    // that size from the moment it was queued (this future: 5,000 bytes inline, 1,576 boxed).
    Box::pin(async move {
        // Held until the turn ends.
        let _permit = permit;
        let holder = shared.config.journal.holder.clone();
        if let Some(ticket) = &ticket {
            match shared
                .store
                .set_turn_status(ticket.id, &holder, TurnStatus::Running)
                .instrument(m::stage!("mark_running"))
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    // Taken over (or finished) elsewhere while it waited here.
                    shared.held.release(ticket.id);
                    if let Some(lease) = lease {
                        lease.release().await;
                    }
                    let _ = done.send(TurnOutcome::Cancelled);
                    return;
                }
                // The database is away: run the turn anyway; its state is kept for a takeover.
                Err(e) => tracing::warn!(error = %e, "marking a turn running failed"),
            }
        }
        // Under the journal's sink, so each span is one call to the platform.
        let sink: Arc<dyn ReplySink> = Arc::new(crate::traced_sink::TracedSink::new(sink));
        let journal_sink = ticket
            .as_ref()
            .map(|t| Arc::new(JournalSink::new(sink.clone(), shared.store.clone(), t)));
        let sink: Arc<dyn ReplySink> = match &journal_sink {
            Some(j) => j.clone(),
            None => sink,
        };
        let lost = ticket.as_ref().map(|t| t.lost.clone()).unwrap_or_default();
        let journaled = ticket.is_some();
        // An answer written over earlier messages (a resumed or a regenerated one) retires those
        // it did not reach.
        let rewritten = ticket.as_ref().is_some_and(|t| t.resumed || t.regenerated);
        let taken_over = ticket.as_ref().is_some_and(|t| t.taken_over);
        let mut kept_tool_rounds = false;
        let work = async {
            match work {
                Work::Chat { .. } => {
                    let turn = turn.expect("a chat job carries its stored message");
                    let running = shared.begin_turn(&inbound.key, turn);
                    let outcome = turn::chat(
                        shared,
                        &inbound,
                        &conversation,
                        turn,
                        &sink,
                        &running,
                        journaled,
                        taken_over,
                        &mut kept_tool_rounds,
                    )
                    .await;
                    shared.end_turn(&inbound.key);
                    outcome
                }
                Work::Command(cmd) => {
                    crate::commands::run(shared, &inbound, &conversation, &sink, cmd).await
                }
                Work::BadCommand(msg) => {
                    say(&sink, &format!("⚠️ {msg}")).await;
                    TurnOutcome::Command
                }
                Work::ResetDone { ok: true } => {
                    say(&sink, "🧹 Done: I've forgotten this conversation.").await;
                    TurnOutcome::Command
                }
                Work::Refused(refusal) => {
                    crate::access::refuse(shared.store.as_ref(), &inbound, &sink, refusal).await
                }
                Work::ResetDone { ok: false } => {
                    say(
                        &sink,
                        "⚠️ I couldn't reset this conversation; please try again.",
                    )
                    .await;
                    TurnOutcome::Failed("reset failed".into())
                }
            }
        }
        .instrument(span);
        // A replica that lost its lease stops the turn at once: the new holder answers.
        let (outcome, was_lost) = tokio::select! {
            outcome = work => (outcome, false),
            _ = lost.cancelled() => (TurnOutcome::Cancelled, true),
        };
        if let (Some(ticket), false) = (&ticket, was_lost) {
            if rewritten && outcome == TurnOutcome::Replied && !kept_tool_rounds {
                if let Some(j) = &journal_sink {
                    j.retire_leftovers().await;
                }
            }
            turn::close_turn(shared, ticket.id, &holder, &outcome)
                .instrument(m::stage!("close_turn"))
                .await;
        }
        if let Some(ticket) = &ticket {
            shared.held.release(ticket.id);
        }
        if let Some(lease) = lease {
            lease.release().await;
        }
        metrics::counter!(m::TURNS, "outcome" => outcome.label()).increment(1);
        metrics::histogram!(m::TURN_SECONDS, "kind" => kind)
            .record(started.elapsed().as_secs_f64());
        let _ = done.send(outcome);
    })
    .await;
}

impl Engine {
    /// Stops the chat turn running in `key`'s conversation on behalf of `by`, if one is: as
    /// the Stop button does, the answer ends with "Stopped by `by`", what was shown is kept
    /// and stored as stopped. Whether one ran. Queued turns behind it still run. The
    /// console's Ctrl-C.
    pub fn stop_turn(&self, key: &ConversationKey, by: &str) -> bool {
        self.inner.shared.stop_running_for(key, by)
    }

    /// The stored conversations of one workspace of a platform, most recently active first,
    /// at most `limit` (the console's list of conversations to switch between).
    pub async fn conversations(
        &self,
        platform: robit_types::Platform,
        workspace: &robit_types::WorkspaceId,
        limit: u32,
    ) -> Result<Vec<robit_store::ConversationSummary>, EngineError> {
        Ok(self
            .inner
            .shared
            .store
            .conversations(platform, workspace, limit)
            .await?)
    }

    /// What was said in `key`'s conversation since its last `/reset`, oldest first, at most
    /// the newest `limit` messages: the person's messages and the model's answers, without
    /// tool calls and their results. Empty when there is no such conversation.
    pub async fn transcript(
        &self,
        key: &ConversationKey,
        limit: u32,
    ) -> Result<Vec<(robit_store::MessageRole, String)>, EngineError> {
        let store = &self.inner.shared.store;
        let Some(conversation) = store.find_conversation(key).await? else {
            return Ok(Vec::new());
        };
        Ok(store
            .history(conversation.id, limit)
            .await?
            .into_iter()
            .filter(|m| m.role != robit_store::MessageRole::Tool && !m.content.is_empty())
            .map(|m| (m.role, m.content))
            .collect())
    }

    /// The settings a conversation under `key` runs with, and where each comes from.
    pub async fn effective_settings(&self, key: &ConversationKey) -> crate::settings::Effective {
        crate::settings::effective(
            self.inner.shared.store.as_ref(),
            &self.inner.shared.config,
            key,
        )
        .await
    }

    /// Validates and stores a setting (`value: None` removes it), and writes the change to
    /// the audit log as `actor`'s. Nothing is stored when the value is invalid.
    pub async fn change_setting(
        &self,
        place: &SettingPlace,
        key: SettingKey,
        value: Option<&str>,
        actor: &str,
    ) -> Result<(), crate::admin::SettingError> {
        let shared = &self.inner.shared;
        crate::admin::change_setting(
            shared.store.as_ref(),
            &shared.config,
            place,
            key,
            value,
            actor,
        )
        .await
    }
}
