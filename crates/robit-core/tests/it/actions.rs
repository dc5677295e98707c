//! Clicks on an answer's buttons: Stop cuts the running turn and keeps what was shown, only
//! the asker (or an admin) may stop, votes are stored with the answer's model, and a stop
//! recorded for a turn that another process holds keeps the turn from being run again.

use crate::support::{key, message, Harness, RecordingSink};
use async_trait::async_trait;
use robit_core::{EngineConfig, Subject, TurnOutcome};
use robit_store::{MessageRole, MessageStatus, TurnStatus};
use robit_testkit::llm::{FakeLlm, Reply};
use robit_types::{
    AnswerAction, AnswerControls, Author, Capabilities, ConversationKey, EventId, Inbound,
    InboundKind, MessageRef, Platform, ReplySink, SinkError, SinkOpener, UserId,
};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// A sink that draws buttons: records the controls each message shows and what was
/// whispered to whom; journaled (it has a route).
struct ButtonSink {
    inner: Arc<RecordingSink>,
    controls: Mutex<Vec<AnswerControls>>,
    whispers: Mutex<Vec<(String, String)>>,
}

impl ButtonSink {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: RecordingSink::fast(),
            controls: Mutex::new(Vec::new()),
            whispers: Mutex::new(Vec::new()),
        })
    }

    fn controls(&self) -> Vec<AnswerControls> {
        self.controls.lock().unwrap().clone()
    }

    fn whispers(&self) -> Vec<(String, String)> {
        self.whispers.lock().unwrap().clone()
    }
}

#[async_trait]
impl ReplySink for ButtonSink {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            controls: true,
            ..self.inner.capabilities()
        }
    }
    fn route(&self) -> Option<String> {
        Some("test:buttons".into())
    }
    async fn post(&self, text: &str) -> Result<MessageRef, SinkError> {
        let m = self.inner.post(text).await?;
        self.controls.lock().unwrap().push(AnswerControls::None);
        Ok(m)
    }
    async fn edit(&self, message: &MessageRef, text: &str) -> Result<(), SinkError> {
        self.inner.edit(message, text).await
    }
    async fn edit_controls(
        &self,
        message: &MessageRef,
        text: &str,
        controls: &AnswerControls,
    ) -> Result<(), SinkError> {
        self.inner.edit(message, text).await?;
        let id: usize = message.0.parse().unwrap();
        self.controls.lock().unwrap()[id] = *controls;
        Ok(())
    }
    async fn set_controls(
        &self,
        message: &MessageRef,
        controls: &AnswerControls,
    ) -> Result<(), SinkError> {
        let id: usize = message.0.parse().unwrap();
        self.controls.lock().unwrap()[id] = *controls;
        Ok(())
    }
    async fn post_ephemeral(&self, user: &UserId, text: &str) -> Result<MessageRef, SinkError> {
        self.whispers
            .lock()
            .unwrap()
            .push((user.to_string(), text.to_string()));
        Ok(MessageRef(String::new()))
    }
}

/// Reopens the same [`ButtonSink`] for a turn another engine takes over.
struct Opener(Arc<ButtonSink>);

struct Reopened(Arc<ButtonSink>);

#[async_trait]
impl ReplySink for Reopened {
    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }
    fn route(&self) -> Option<String> {
        self.0.route()
    }
    async fn post(&self, text: &str) -> Result<MessageRef, SinkError> {
        self.0.post(text).await
    }
    async fn edit(&self, message: &MessageRef, text: &str) -> Result<(), SinkError> {
        self.0.edit(message, text).await
    }
    async fn edit_controls(
        &self,
        message: &MessageRef,
        text: &str,
        controls: &AnswerControls,
    ) -> Result<(), SinkError> {
        self.0.edit_controls(message, text, controls).await
    }
    async fn set_controls(
        &self,
        message: &MessageRef,
        controls: &AnswerControls,
    ) -> Result<(), SinkError> {
        self.0.set_controls(message, controls).await
    }
}

impl SinkOpener for Opener {
    fn open(&self, route: &str, _posted: &[MessageRef]) -> Option<Arc<dyn ReplySink>> {
        (route == "test:buttons").then(|| Arc::new(Reopened(self.0.clone())) as Arc<dyn ReplySink>)
    }
}

fn click(k: &ConversationKey, user: &str, action: AnswerAction, turn: i64) -> Inbound {
    Inbound {
        event_id: EventId(format!("click-{user}-{}-{turn}", action.as_str())),
        key: k.clone(),
        author: Author::user(user, user),
        kind: InboundKind::Action { action, turn },
        received_at: SystemTime::now(),
    }
}

async fn until(mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..500 {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

/// The id of the conversation's first stored question.
async fn question(h: &Harness, k: &ConversationKey) -> i64 {
    let conv = h.store.conversation(k).await.unwrap();
    let history = h.store.history(conv.id, 10).await.unwrap();
    history
        .iter()
        .find(|m| m.role == MessageRole::User)
        .unwrap()
        .id
}

#[tokio::test(flavor = "multi_thread")]
async fn the_asker_stops_a_streaming_answer_which_keeps_its_text_marked_stopped() {
    let h = Harness::start().await;
    h.llm.push(Reply::stall_after("The answer begins"));
    let sink = ButtonSink::new();
    let k = key("stop");
    let turn = h
        .engine
        .submit(message(&k, "question"), sink.clone())
        .await
        .unwrap();
    let q = question(&h, &k).await;
    // The Stop button comes with the first edit after the first post.
    assert!(
        until(|| sink.controls().first() == Some(&AnswerControls::Streaming { turn: q })).await,
        "no Stop button: {:?}",
        sink.controls()
    );
    let outcome = h
        .engine
        .submit(click(&k, "alice", AnswerAction::Stop, q), sink.clone())
        .await
        .unwrap()
        .wait()
        .await;
    assert_eq!(outcome, TurnOutcome::Command);
    assert_eq!(turn.wait().await, TurnOutcome::Stopped);
    let shown = sink.inner.messages();
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert!(
        shown[0].starts_with("The answer begins") && shown[0].contains("Stopped by alice"),
        "{shown:?}"
    );
    assert_eq!(sink.controls(), [AnswerControls::Done { turn: q }]);
    let conv = h.store.conversation(&k).await.unwrap();
    let history = h.store.history(conv.id, 10).await.unwrap();
    let answer = history.last().unwrap();
    assert_eq!(answer.role, MessageRole::Assistant);
    assert_eq!(answer.status, MessageStatus::Stopped);
    assert_eq!(answer.content, "The answer begins");
    let turns = h.store.turns(conv.id).await.unwrap();
    assert_eq!(turns[0].status, TurnStatus::Cancelled);
    assert!(sink.whispers().is_empty(), "{:?}", sink.whispers());
}

#[tokio::test(flavor = "multi_thread")]
async fn someone_else_cannot_stop_an_answer_but_an_admin_can() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EngineConfig::default();
    config
        .access
        .admins
        .push(Subject::parse("console:user:root").unwrap());
    let h = Harness::open(&dir.path().join("r.db"), FakeLlm::start().await, config).await;
    h.llm.push(Reply::stall_after("Still going"));
    let sink = ButtonSink::new();
    let k = key("refuse");
    let turn = h
        .engine
        .submit(message(&k, "question"), sink.clone())
        .await
        .unwrap();
    let q = question(&h, &k).await;
    assert!(until(|| sink.inner.transcript().contains("Still going")).await);
    let refused = h
        .engine
        .submit(click(&k, "mallory", AnswerAction::Stop, q), sink.clone())
        .await
        .unwrap()
        .wait()
        .await;
    assert_eq!(refused, TurnOutcome::Refused("not_asker".into()));
    let whispers = sink.whispers();
    assert_eq!(whispers.len(), 1, "{whispers:?}");
    assert_eq!(whispers[0].0, "mallory");
    assert!(whispers[0].1.contains("Only the person who asked"));
    // The answer goes on streaming; the admin's Stop ends it.
    assert!(!sink.inner.transcript().contains("Stopped"));
    let stopped = h
        .engine
        .submit(click(&k, "root", AnswerAction::Stop, q), sink.clone())
        .await
        .unwrap()
        .wait()
        .await;
    assert_eq!(stopped, TurnOutcome::Command);
    assert_eq!(turn.wait().await, TurnOutcome::Stopped);
    assert!(sink.inner.transcript().contains("Stopped by root"));
}

#[tokio::test(flavor = "multi_thread")]
async fn votes_are_stored_once_per_user_with_the_answers_model() {
    let h = Harness::start().await;
    h.llm.push(Reply::text("Forty-two."));
    let sink = ButtonSink::new();
    let k = key("votes");
    let outcome = h
        .engine
        .submit(message(&k, "question"), sink.clone())
        .await
        .unwrap()
        .wait()
        .await;
    assert_eq!(outcome, TurnOutcome::Replied);
    let q = question(&h, &k).await;
    assert_eq!(sink.controls(), [AnswerControls::Done { turn: q }]);
    for (user, action) in [
        ("alice", AnswerAction::Down),
        ("alice", AnswerAction::Up),
        ("bob", AnswerAction::Up),
        ("carol", AnswerAction::Down),
    ] {
        let done = h
            .engine
            .submit(click(&k, user, action, q), sink.clone())
            .await
            .unwrap()
            .wait()
            .await;
        assert_eq!(done, TurnOutcome::Command, "{user} {action:?}");
    }
    let rows = h.store.feedback_summary(0).await.unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].provider, "fake");
    assert_eq!(rows[0].model, EngineConfig::default().default_model);
    // alice changed her mind: one vote each.
    assert_eq!((rows[0].up, rows[0].down), (2, 1));
    assert!(sink.whispers().is_empty(), "{:?}", sink.whispers());
    // A question with no answer yet has nothing to vote on.
    let none = h
        .engine
        .submit(click(&k, "bob", AnswerAction::Up, q + 1000), sink.clone())
        .await
        .unwrap()
        .wait()
        .await;
    assert!(matches!(none, TurnOutcome::Failed(_)), "{none:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stop_recorded_for_a_turn_held_elsewhere_keeps_the_next_process_from_running_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("robit.db");
    let first = Harness::open(&db, FakeLlm::start().await, EngineConfig::default()).await;
    first.llm.push(Reply::stall_after("Half an answer"));
    let sink = ButtonSink::new();
    let k = key("journal-stop");
    let running = first
        .engine
        .submit(message(&k, "question"), sink.clone())
        .await
        .unwrap();
    assert!(until(|| sink.inner.transcript().contains("Half an answer")).await);
    let q = question(&first, &k).await;
    // The click lands on another process (a replica, or the next one after a restart):
    // nothing runs the turn there, so the stop is recorded in the journal.
    let other = Harness::open(&db, FakeLlm::start().await, EngineConfig::default()).await;
    let clicked = other
        .engine
        .submit(click(&k, "alice", AnswerAction::Stop, q), sink.clone())
        .await
        .unwrap()
        .wait()
        .await;
    assert_eq!(clicked, TurnOutcome::Command);
    // The holder goes away without closing the turn (a graceful stop leaves it open, as a
    // crash would).
    first.engine.shutdown(Duration::from_millis(50)).await;
    assert_eq!(running.wait().await, TurnOutcome::Cancelled);
    let conv = first.store.conversation(&k).await.unwrap();
    assert!(first.store.turns(conv.id).await.unwrap()[0]
        .status
        .is_open());
    // The next process takes the turn over and closes it instead of answering again.
    let next = Harness::open(&db, FakeLlm::start().await, EngineConfig::default()).await;
    next.llm
        .push(Reply::text("A second answer nobody asked for."));
    let opener: Arc<dyn SinkOpener> = Arc::new(Opener(sink.clone()));
    let taken = next
        .engine
        .recover(
            Platform::Console,
            &opener,
            Some(std::time::SystemTime::now() + std::time::Duration::from_millis(1)),
        )
        .await
        .unwrap();
    assert_eq!(taken, 1);
    let turns = next.store.turns(conv.id).await.unwrap();
    assert_eq!(turns[0].status, TurnStatus::Cancelled);
    assert!(
        next.llm.chat_requests().is_empty(),
        "the model was asked again"
    );
    assert!(!sink.inner.transcript().contains("nobody asked"));
    // Its last message gets the buttons of a finished answer (a crash mid-stream would have
    // left Stop on it), its text untouched.
    let shown = sink.inner.messages();
    assert_eq!(
        sink.controls().last(),
        Some(&AnswerControls::Done { turn: q }),
        "{shown:?}"
    );
    assert!(shown[0].contains("Half an answer"), "{shown:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stop_clicked_on_another_replica_stops_the_turn_at_the_holders_next_renewal() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("robit.db");
    let mut config = EngineConfig::default();
    config.journal.lease = Duration::from_millis(600);
    let holder = Harness::open(&db, FakeLlm::start().await, config).await;
    holder.llm.push(Reply::stall_after("Streaming on"));
    let sink = ButtonSink::new();
    let k = key("replica-stop");
    let running = holder
        .engine
        .submit(message(&k, "question"), sink.clone())
        .await
        .unwrap();
    assert!(until(|| sink.inner.transcript().contains("Streaming on")).await);
    let q = question(&holder, &k).await;
    let other = Harness::open(&db, FakeLlm::start().await, EngineConfig::default()).await;
    let clicked = other
        .engine
        .submit(click(&k, "alice", AnswerAction::Stop, q), sink.clone())
        .await
        .unwrap()
        .wait()
        .await;
    assert_eq!(clicked, TurnOutcome::Command);
    assert_eq!(running.wait().await, TurnOutcome::Stopped);
    assert!(sink.inner.transcript().contains("Stopped by alice"));
    let conv = holder.store.conversation(&k).await.unwrap();
    assert_eq!(
        holder.store.turns(conv.id).await.unwrap()[0].status,
        TurnStatus::Cancelled
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn regenerate_rewrites_the_answer_in_place_and_history_keeps_only_the_new_one() {
    let h = Harness::start().await;
    h.llm.push(Reply::text("First answer."));
    h.llm.push(Reply::text("Second answer."));
    let sink = ButtonSink::new();
    let k = key("regenerate");
    let first = h
        .engine
        .submit(message(&k, "question"), sink.clone())
        .await
        .unwrap()
        .wait()
        .await;
    assert_eq!(first, TurnOutcome::Replied);
    let q = question(&h, &k).await;
    // Someone else may not regenerate it.
    let refused = h
        .engine
        .submit(
            click(&k, "mallory", AnswerAction::Regenerate, q),
            sink.clone(),
        )
        .await
        .unwrap()
        .wait()
        .await;
    assert_eq!(refused, TurnOutcome::Refused("not_asker".into()));
    let again = h
        .engine
        .submit(
            click(&k, "alice", AnswerAction::Regenerate, q),
            sink.clone(),
        )
        .await
        .unwrap()
        .wait()
        .await;
    assert_eq!(again, TurnOutcome::Replied);
    assert_eq!(sink.inner.messages(), ["Second answer."]);
    assert_eq!(sink.controls(), [AnswerControls::Done { turn: q }]);
    let conv = h.store.conversation(&k).await.unwrap();
    let history = h.store.history(conv.id, 10).await.unwrap();
    let texts: Vec<&str> = history.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(texts, ["question", "Second answer."]);
    let turns = h.store.turns(conv.id).await.unwrap();
    assert_eq!(turns.len(), 2);
    assert!(
        turns.iter().all(|t| t.status == TurnStatus::Done),
        "{turns:?}"
    );
    // The model was asked the same question again, without the replaced answer.
    let asked = h.llm.chat_requests();
    assert_eq!(asked.len(), 2);
    let second = asked[1].body["messages"].to_string();
    assert!(
        second.contains("question") && !second.contains("First answer."),
        "{second}"
    );
    // A vote now counts for the new answer.
    let voted = h
        .engine
        .submit(click(&k, "alice", AnswerAction::Up, q), sink.clone())
        .await
        .unwrap()
        .wait()
        .await;
    assert_eq!(voted, TurnOutcome::Command);
}

/// Clicks Regenerate the moment the votes are drawn: the answer's last edit, before the turn
/// has stored the answer and ended.
struct EagerSink {
    inner: Arc<ButtonSink>,
    engine: Mutex<Option<robit_core::Engine>>,
    clicked: Mutex<Option<tokio::task::JoinHandle<TurnOutcome>>>,
    key: ConversationKey,
}

#[async_trait]
impl ReplySink for EagerSink {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    fn route(&self) -> Option<String> {
        self.inner.route()
    }
    async fn post(&self, text: &str) -> Result<MessageRef, SinkError> {
        self.inner.post(text).await
    }
    async fn edit(&self, message: &MessageRef, text: &str) -> Result<(), SinkError> {
        self.inner.edit(message, text).await
    }
    async fn edit_controls(
        &self,
        message: &MessageRef,
        text: &str,
        controls: &AnswerControls,
    ) -> Result<(), SinkError> {
        self.inner.edit_controls(message, text, controls).await?;
        if let AnswerControls::Done { turn } = *controls {
            if let Some(engine) = self.engine.lock().unwrap().take() {
                let (k, sink) = (self.key.clone(), self.inner.clone());
                *self.clicked.lock().unwrap() = Some(tokio::spawn(async move {
                    let click = click(&k, "alice", AnswerAction::Regenerate, turn);
                    engine.submit(click, sink).await.unwrap().wait().await
                }));
            }
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_regenerate_clicked_as_the_answer_ends_waits_for_it_to_be_stored() {
    let h = Harness::start().await;
    h.llm.push(Reply::text("First answer."));
    h.llm.push(Reply::text("Second answer."));
    let k = key("eager");
    let sink = Arc::new(EagerSink {
        inner: ButtonSink::new(),
        engine: Mutex::new(Some(h.engine.clone())),
        clicked: Mutex::new(None),
        key: k.clone(),
    });
    let first = h
        .engine
        .submit(message(&k, "question"), sink.clone())
        .await
        .unwrap()
        .wait()
        .await;
    assert_eq!(first, TurnOutcome::Replied);
    let clicked = sink.clicked.lock().unwrap().take().expect("clicked");
    assert_eq!(clicked.await.unwrap(), TurnOutcome::Replied);
    assert!(
        sink.inner.whispers().is_empty(),
        "{:?}",
        sink.inner.whispers()
    );
    let conv = h.store.conversation(&k).await.unwrap();
    let history = h.store.history(conv.id, 10).await.unwrap();
    let texts: Vec<&str> = history.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(texts, ["question", "Second answer."]);
}

/// Opens no route: an answer whose sink cannot be rebuilt any more (a Discord interaction
/// token past its 15 minutes).
struct Gone;

impl SinkOpener for Gone {
    fn open(&self, _route: &str, _posted: &[MessageRef]) -> Option<Arc<dyn ReplySink>> {
        None
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn regenerate_writes_where_the_answer_was_written_or_says_it_no_longer_can() {
    let h = Harness::start().await;
    h.llm.push(Reply::text("First answer."));
    h.llm.push(Reply::text("Second answer."));
    let sink = ButtonSink::new();
    let k = key("reopened");
    let first = h
        .engine
        .submit(message(&k, "question"), sink.clone())
        .await
        .unwrap()
        .wait()
        .await;
    assert_eq!(first, TurnOutcome::Replied);
    let q = question(&h, &k).await;
    // The click comes with a sink of its own; the answer is written through its route.
    h.engine
        .set_sink_opener(Platform::Console, Arc::new(Opener(sink.clone())));
    let elsewhere = ButtonSink::new();
    let again = h
        .engine
        .submit(
            click(&k, "alice", AnswerAction::Regenerate, q),
            elsewhere.clone(),
        )
        .await
        .unwrap()
        .wait()
        .await;
    assert_eq!(again, TurnOutcome::Replied);
    assert_eq!(sink.inner.messages(), ["Second answer."]);
    assert!(elsewhere.inner.messages().is_empty());
    // Once the route cannot be opened, the clicker is told and nothing is written.
    h.engine.set_sink_opener(Platform::Console, Arc::new(Gone));
    let mut late = click(&k, "alice", AnswerAction::Regenerate, q);
    late.event_id = EventId("click-late".into());
    let declined = h
        .engine
        .submit(late, elsewhere.clone())
        .await
        .unwrap()
        .wait()
        .await;
    assert_eq!(declined, TurnOutcome::Failed("answer unreachable".into()));
    assert!(
        elsewhere
            .whispers()
            .iter()
            .any(|(u, t)| u == "alice" && t.contains("no longer")),
        "{:?}",
        elsewhere.whispers()
    );
    assert_eq!(h.llm.chat_requests().len(), 2);
    assert_eq!(sink.inner.messages(), ["Second answer."]);
}
