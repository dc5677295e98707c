//! The turn journal seen from the engine: a graceful stop leaves unfinished turns to the next
//! process, which finishes them in the messages already shown.

use crate::support::{key, message, Harness, RecordingSink};
use async_trait::async_trait;
use robit_core::{EngineConfig, TurnOutcome};
use robit_store::{MessageRole, TurnStatus};
use robit_testkit::llm::{FakeLlm, Reply};
use robit_types::{Capabilities, MessageRef, Platform, ReplySink, SinkError, SinkOpener};
use std::sync::Arc;
use std::time::Duration;

/// A recording sink another "process" can reopen by its route.
struct Routed(Arc<RecordingSink>);

#[async_trait]
impl ReplySink for Routed {
    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }
    fn route(&self) -> Option<String> {
        Some("test:thread".into())
    }
    async fn post(&self, text: &str) -> Result<MessageRef, SinkError> {
        self.0.post(text).await
    }
    async fn edit(&self, message: &MessageRef, text: &str) -> Result<(), SinkError> {
        self.0.edit(message, text).await
    }
}

struct Opener(Arc<RecordingSink>);

impl SinkOpener for Opener {
    fn open(&self, route: &str, _posted: &[MessageRef]) -> Option<Arc<dyn ReplySink>> {
        (route == "test:thread").then(|| Arc::new(Routed(self.0.clone())) as Arc<dyn ReplySink>)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_graceful_stop_pauses_the_answer_and_the_next_process_finishes_it_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("robit.db");
    let first = Harness::open(&db, FakeLlm::start().await, EngineConfig::default()).await;
    first.llm.push(Reply::stall_after("The answer begins"));
    // A second question queued behind the first one.
    let sink = RecordingSink::fast();
    let k = key("journal");
    let running = first
        .engine
        .submit(message(&k, "first"), Arc::new(Routed(sink.clone())))
        .await
        .unwrap();
    let queued = first
        .engine
        .submit(message(&k, "second"), Arc::new(Routed(sink.clone())))
        .await
        .unwrap();
    for _ in 0..500 {
        if sink.transcript().contains("begins") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.engine.shutdown(Duration::from_millis(50)).await;
    assert_eq!(running.wait().await, TurnOutcome::Cancelled);
    assert_eq!(queued.wait().await, TurnOutcome::Cancelled);
    assert!(
        sink.transcript().contains("will continue"),
        "{}",
        sink.transcript()
    );
    let conv = first.store.conversation(&k).await.unwrap();
    let turns = first.store.turns(conv.id).await.unwrap();
    assert_eq!(turns.len(), 2);
    assert!(turns.iter().all(|t| t.status.is_open()), "{turns:?}");
    // Nothing of the paused answer is stored: it will be finished, not kept half.
    let history = first.store.history(conv.id, 10).await.unwrap();
    assert!(history.iter().all(|m| m.role == MessageRole::User));

    let llm = FakeLlm::start().await;
    llm.push(Reply::text("The answer begins and ends."));
    llm.push(Reply::text("The second answer."));
    let second = Harness::open(&db, llm, EngineConfig::default()).await;
    let opener: Arc<dyn SinkOpener> = Arc::new(Opener(sink.clone()));
    let taken = second
        .engine
        .recover(
            Platform::Console,
            &opener,
            Some(std::time::SystemTime::now() + std::time::Duration::from_millis(1)),
        )
        .await
        .unwrap();
    assert_eq!(taken, 2);
    for _ in 0..500 {
        let t = second.store.turns(conv.id).await.unwrap();
        if t.iter().all(|t| t.status == TurnStatus::Done) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let messages = sink.messages();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(
        messages[0].contains("resumed") && messages[0].ends_with("The answer begins and ends."),
        "the first message was finished in place: {messages:?}"
    );
    assert_eq!(
        messages[1], "The second answer.",
        "a queued turn is not marked resumed"
    );
    let history = second.store.history(conv.id, 10).await.unwrap();
    let texts: Vec<&str> = history.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(
        texts,
        vec![
            "first",
            "The answer begins and ends.",
            "second",
            "The second answer."
        ]
    );
}
