//! Edits of a question: the latest question edited within the window is answered again from
//! the edited text, over the old answer; an earlier question, or one edited too late, gets
//! one notice however often it is edited; edits that change nothing, or are someone else's,
//! do nothing; an answer still streaming is stopped and written again; a question whose turn
//! still waits only has its text replaced; and a regeneration cut by a restart is finished
//! once by the next process.

use crate::support::{key, Harness, RecordingSink};
use async_trait::async_trait;
use robit_core::{EngineConfig, Submission, TurnOutcome};
use robit_store::TurnStatus;
use robit_testkit::llm::{FakeLlm, Reply};
use robit_types::{
    Author, Capabilities, ConversationKey, EventId, Inbound, InboundKind, MessageRef, Platform,
    ReplySink, SinkError, SinkOpener,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// A recording sink with a route, so its turns are journaled and can be regenerated.
struct Routed(Arc<RecordingSink>, &'static str);

#[async_trait]
impl ReplySink for Routed {
    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }
    fn route(&self) -> Option<String> {
        Some(self.1.to_string())
    }
    async fn post(&self, text: &str) -> Result<MessageRef, SinkError> {
        self.0.post(text).await
    }
    async fn edit(&self, message: &MessageRef, text: &str) -> Result<(), SinkError> {
        self.0.edit(message, text).await
    }
}

/// Reopens the question's thread by its route, as an adapter's opener does.
struct Opener(Arc<RecordingSink>);

impl SinkOpener for Opener {
    fn open(&self, route: &str, _posted: &[MessageRef]) -> Option<Arc<dyn ReplySink>> {
        (route == "test:question")
            .then(|| Arc::new(Routed(self.0.clone(), "test:question")) as Arc<dyn ReplySink>)
    }
}

fn thread(sink: &Arc<RecordingSink>) -> Arc<dyn ReplySink> {
    Arc::new(Routed(sink.clone(), "test:question"))
}

static EVENTS: AtomicU64 = AtomicU64::new(0);

fn alice() -> Author {
    Author::user("alice", "alice")
}

/// alice's message `id` (its platform id) saying `text`.
fn asks(k: &ConversationKey, id: &str, text: &str) -> Inbound {
    let mut inbound = Inbound::message(
        EventId(format!("ask-{}", EVENTS.fetch_add(1, Ordering::Relaxed))),
        k.clone(),
        alice(),
        text.to_string(),
    );
    if let InboundKind::Message { platform_ref, .. } = &mut inbound.kind {
        *platform_ref = Some(id.to_string());
    }
    inbound
}

/// `author` edits message `id` to `text`. The edit's key is the channel only: adapters do not
/// always know the thread.
fn edits(k: &ConversationKey, author: Author, id: &str, text: &str) -> Inbound {
    Inbound::edit(
        EventId(format!("edit-{}", EVENTS.fetch_add(1, Ordering::Relaxed))),
        ConversationKey::new(k.platform, k.workspace.as_str(), k.channel.as_str(), None),
        author,
        id.to_string(),
        text.to_string(),
    )
}

async fn submit(h: &Harness, inbound: Inbound, sink: Arc<dyn ReplySink>) -> Submission {
    h.engine.submit(inbound, sink).await.unwrap()
}

async fn until(mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

async fn texts(h: &Harness, k: &ConversationKey) -> Vec<String> {
    let conv = h.store.conversation(k).await.unwrap();
    h.store
        .history(conv.id, 20)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.content)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_edit_of_the_latest_question_is_answered_again_from_the_new_text_in_place() {
    let h = Harness::start().await;
    h.llm.push(Reply::text("Paris."));
    h.llm.push(Reply::text("Rome."));
    let sink = RecordingSink::fast();
    let k = ConversationKey::new(Platform::Console, "ws", "edit", Some("t1".into()));
    let first = submit(&h, asks(&k, "m1", "capital of France?"), thread(&sink))
        .await
        .wait()
        .await;
    assert_eq!(first, TurnOutcome::Replied);
    // No opener: the answer goes through the sink the edit came with.
    let again = submit(
        &h,
        edits(&k, alice(), "m1", "capital of Italy?"),
        thread(&sink),
    )
    .await
    .wait()
    .await;
    assert_eq!(again, TurnOutcome::Replied);
    assert_eq!(sink.messages(), ["Rome."], "written over the old answer");
    assert_eq!(texts(&h, &k).await, ["capital of Italy?", "Rome."]);
    let asked = h.llm.chat_requests();
    assert_eq!(asked.len(), 2);
    let second = asked[1].body["messages"].to_string();
    assert!(
        second.contains("capital of Italy?")
            && !second.contains("France")
            && !second.contains("Paris"),
        "{second}"
    );
    let conv = h.store.conversation(&k).await.unwrap();
    let turns = h.store.turns(conv.id).await.unwrap();
    assert_eq!(turns.len(), 2);
    assert!(
        turns.iter().all(|t| t.status == TurnStatus::Done),
        "{turns:?}"
    );
    // The platform delivering the same edit again changes nothing.
    let redelivered = submit(
        &h,
        edits(&k, alice(), "m1", "capital of Italy?"),
        thread(&sink),
    )
    .await;
    assert!(
        matches!(redelivered, Submission::Ignored),
        "{redelivered:?}"
    );
    assert_eq!(h.llm.chat_requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_earlier_question_or_a_late_edit_gets_one_notice_where_the_question_was_answered() {
    let dir = tempfile::tempdir().unwrap();
    let config = EngineConfig {
        edit_window: Duration::from_secs(1),
        ..EngineConfig::default()
    };
    let h = Harness::open(&dir.path().join("r.db"), FakeLlm::start().await, config).await;
    h.llm.push(Reply::text("One."));
    h.llm.push(Reply::text("Two."));
    let sink = RecordingSink::fast();
    h.engine
        .set_sink_opener(Platform::Console, Arc::new(Opener(sink.clone())));
    let k = key("notice");
    for (id, text) in [("m1", "first?"), ("m2", "second?")] {
        let done = submit(&h, asks(&k, id, text), thread(&sink))
            .await
            .wait()
            .await;
        assert_eq!(done, TurnOutcome::Replied);
    }
    // The edit arrives with a sink of its own (the adapter's guess); the notice goes to the
    // question's thread.
    let elsewhere = RecordingSink::fast();
    let noted = submit(
        &h,
        edits(&k, alice(), "m1", "first, really?"),
        Arc::new(Routed(elsewhere.clone(), "test:elsewhere")),
    )
    .await
    .wait()
    .await;
    assert!(matches!(noted, TurnOutcome::Failed(_)), "{noted:?}");
    let shown = sink.messages();
    assert_eq!(shown.len(), 3, "{shown:?}");
    assert!(
        shown[2].contains("only the latest question can be answered again within 1 second;"),
        "{shown:?}"
    );
    assert!(elsewhere.messages().is_empty());
    // Once per question: a second edit of it is silent.
    submit(
        &h,
        edits(&k, alice(), "m1", "first, once more?"),
        thread(&sink),
    )
    .await
    .wait()
    .await;
    assert_eq!(sink.messages().len(), 3);
    // The latest question, edited after the window: the same notice, once.
    let conv = h.store.conversation(&k).await.unwrap();
    let asked_at = h.store.history(conv.id, 10).await.unwrap()[2].created_at;
    while SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        <= asked_at as u128 + 1000
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    submit(&h, edits(&k, alice(), "m2", "second, late?"), thread(&sink))
        .await
        .wait()
        .await;
    let shown = sink.messages();
    assert_eq!(shown.len(), 4, "{shown:?}");
    assert!(shown[3].contains("within"), "{shown:?}");
    assert_eq!(
        h.llm.chat_requests().len(),
        2,
        "no answer was written again"
    );
    assert_eq!(texts(&h, &k).await, ["first?", "One.", "second?", "Two."]);
}

#[tokio::test(flavor = "multi_thread")]
async fn edits_that_change_nothing_or_are_not_the_askers_do_nothing() {
    let h = Harness::start().await;
    h.llm.push(Reply::text("An answer."));
    let sink = RecordingSink::fast();
    let k = key("nothing");
    submit(&h, asks(&k, "m1", "the question"), thread(&sink))
        .await
        .wait()
        .await;
    for edit in [
        // Slack sends message_changed when a link unfurls: the text is the same.
        edits(&k, alice(), "m1", "the question"),
        edits(&k, Author::user("bob", "bob"), "m1", "bob's question"),
        edits(&k, alice(), "m404", "a message robit never stored"),
        edits(&k, alice(), "m1", "/reset"),
        edits(&k, alice(), "m1", "   "),
    ] {
        let what = format!("{:?}", edit.kind);
        let submitted = submit(&h, edit, thread(&sink)).await;
        assert!(
            matches!(submitted, Submission::Ignored),
            "{what}: {submitted:?}"
        );
    }
    assert_eq!(sink.messages(), ["An answer."]);
    assert_eq!(texts(&h, &k).await, ["the question", "An answer."]);

    // With the window at zero edits are off.
    let dir = tempfile::tempdir().unwrap();
    let off = EngineConfig {
        edit_window: Duration::ZERO,
        ..EngineConfig::default()
    };
    let h = Harness::open(&dir.path().join("off.db"), FakeLlm::start().await, off).await;
    h.llm.push(Reply::text("An answer."));
    submit(&h, asks(&k, "m1", "the question"), thread(&sink))
        .await
        .wait()
        .await;
    let submitted = submit(&h, edits(&k, alice(), "m1", "another"), thread(&sink)).await;
    assert!(matches!(submitted, Submission::Ignored), "{submitted:?}");
    assert_eq!(h.llm.chat_requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_edit_while_the_answer_streams_stops_it_and_answers_the_new_text() {
    let h = Harness::start().await;
    h.llm.push(Reply::stall_after("The old answer begins"));
    h.llm.push(Reply::text("The new answer."));
    let sink = RecordingSink::fast();
    let k = key("streaming");
    let running = submit(&h, asks(&k, "m1", "old question"), thread(&sink)).await;
    assert!(until(|| sink.transcript().contains("begins")).await);
    let again = submit(&h, edits(&k, alice(), "m1", "new question"), thread(&sink))
        .await
        .wait()
        .await;
    assert_eq!(again, TurnOutcome::Replied);
    assert_eq!(running.wait().await, TurnOutcome::Stopped);
    assert_eq!(sink.messages(), ["The new answer."]);
    assert_eq!(texts(&h, &k).await, ["new question", "The new answer."]);
    let conv = h.store.conversation(&k).await.unwrap();
    let statuses: Vec<TurnStatus> = h
        .store
        .turns(conv.id)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.status)
        .collect();
    assert_eq!(statuses, [TurnStatus::Cancelled, TurnStatus::Done]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_edit_of_a_question_whose_turn_waits_only_rewrites_it() {
    let h = Harness::start().await;
    h.llm.push(Reply::stall_after("Busy with the first"));
    h.llm.push(Reply::text("The second, edited, answered."));
    let sink = RecordingSink::fast();
    let k = key("queued");
    let first = submit(&h, asks(&k, "m1", "first"), thread(&sink)).await;
    let second = submit(&h, asks(&k, "m2", "second"), thread(&sink)).await;
    assert!(until(|| sink.transcript().contains("Busy")).await);
    let rewritten = submit(
        &h,
        edits(&k, alice(), "m2", "second, edited"),
        thread(&sink),
    )
    .await
    .wait()
    .await;
    assert_eq!(rewritten, TurnOutcome::Command);
    assert!(h.engine.stop_turn(&k, "alice"));
    assert_eq!(first.wait().await, TurnOutcome::Stopped);
    assert_eq!(second.wait().await, TurnOutcome::Replied);
    let asked = h.llm.chat_requests();
    assert_eq!(asked.len(), 2, "answered once, from the edited text");
    let body = asked[1].body["messages"].to_string();
    assert!(body.contains("second, edited"), "{body}");
    let conv = h.store.conversation(&k).await.unwrap();
    assert_eq!(
        h.store.turns(conv.id).await.unwrap().len(),
        2,
        "no extra turn"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_regeneration_by_edit_cut_by_a_restart_is_finished_once_by_the_next_process() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("robit.db");
    let sink = RecordingSink::fast();
    let opener: Arc<dyn SinkOpener> = Arc::new(Opener(sink.clone()));
    let first = Harness::open(&db, FakeLlm::start().await, EngineConfig::default()).await;
    first
        .engine
        .set_sink_opener(Platform::Console, opener.clone());
    first.llm.push(Reply::text("The first answer."));
    first.llm.push(Reply::stall_after("The new answer beg"));
    let k = key("restart");
    let answered = submit(&first, asks(&k, "m1", "old question"), thread(&sink))
        .await
        .wait()
        .await;
    assert_eq!(answered, TurnOutcome::Replied);
    let regenerating = submit(
        &first,
        edits(&k, alice(), "m1", "new question"),
        thread(&sink),
    )
    .await;
    assert!(until(|| sink.transcript().contains("The new answer beg")).await);
    // The process goes away mid-stream without closing the turn (a graceful stop leaves it
    // open, as a crash would).
    first.engine.shutdown(Duration::from_millis(50)).await;
    assert_eq!(regenerating.wait().await, TurnOutcome::Cancelled);
    let conv = first.store.conversation(&k).await.unwrap();
    let turns = first.store.turns(conv.id).await.unwrap();
    assert_eq!(turns.len(), 2);
    assert_eq!(turns[0].status, TurnStatus::Done);
    assert!(turns[1].status.is_open(), "{turns:?}");
    // The edited text was stored with the regeneration, before its answer.
    assert_eq!(texts(&first, &k).await, ["new question"]);

    let llm = FakeLlm::start().await;
    llm.push(Reply::text("The new answer, whole."));
    let next = Harness::open(&db, llm, EngineConfig::default()).await;
    let taken = next
        .engine
        .recover(
            Platform::Console,
            &opener,
            Some(SystemTime::now() + Duration::from_millis(1)),
        )
        .await
        .unwrap();
    assert_eq!(taken, 1);
    let mut closed = false;
    for _ in 0..500 {
        let turns = next.store.turns(conv.id).await.unwrap();
        if turns.iter().all(|t| !t.status.is_open()) {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(closed, "the taken-over regeneration did not finish");
    let messages = sink.messages();
    assert_eq!(messages.len(), 1, "written in place: {messages:?}");
    assert!(
        messages[0].ends_with("The new answer, whole.") && !messages[0].contains("first"),
        "{messages:?}"
    );
    assert_eq!(
        texts(&next, &k).await,
        ["new question", "The new answer, whole."]
    );
    let asked = next.llm.chat_requests();
    assert_eq!(asked.len(), 1);
    assert!(asked[0].body["messages"]
        .to_string()
        .contains("new question"));
    // The edit delivered again after the restart is not a second regeneration.
    let again = submit(
        &next,
        edits(&k, alice(), "m1", "new question"),
        thread(&sink),
    )
    .await;
    assert!(matches!(again, Submission::Ignored), "{again:?}");
    let turns = next.store.turns(conv.id).await.unwrap();
    assert_eq!(turns.len(), 2);
    assert_eq!(turns[1].status, TurnStatus::Done);
}
