//! `/help`, `/reset`, `/model` and bad commands.

use crate::support::{key, message, Harness, RecordingSink};
use robit_core::{EngineConfig, TurnOutcome};

#[tokio::test]
async fn help_lists_the_commands() {
    let h = Harness::start().await;
    let sink = RecordingSink::fast();
    assert_eq!(
        h.say(&sink, message(&key("help"), "/help")).await,
        TurnOutcome::Command
    );
    let text = sink.transcript();
    for c in ["/ask", "/run", "/model", "/reset", "/help"] {
        assert!(text.contains(c), "{c} missing from {text}");
    }
    assert!(h.llm.chat_requests().is_empty());
}

#[tokio::test]
async fn reset_forgets_the_history() {
    let h = Harness::start().await;
    let sink = RecordingSink::fast();
    let k = key("reset");
    h.say(&sink, message(&k, "my secret is 7")).await;
    h.say(&sink, message(&k, "/reset")).await;
    h.say(&sink, message(&k, "what is my secret?")).await;
    let msgs = h.llm.chat_requests()[1].body["messages"].clone();
    assert_eq!(
        msgs.as_array().unwrap().len(),
        2,
        "system + new question only: {msgs}"
    );
    assert_eq!(msgs[1]["content"], "what is my secret?");
}

#[tokio::test]
async fn model_shows_and_switches_the_conversation_model() {
    let dir = tempfile::tempdir().unwrap();
    let config = EngineConfig {
        default_model: "small".into(),
        models: vec!["small".into(), "large".into()],
        ..EngineConfig::default()
    };
    let h = Harness::open(
        &dir.path().join("m.db"),
        robit_testkit::llm::FakeLlm::start().await,
        config,
    )
    .await;
    let sink = RecordingSink::fast();
    let k = key("model");
    h.say(&sink, message(&k, "/model")).await;
    assert!(sink.transcript().contains("`small`"));
    h.say(&sink, message(&k, "/model huge")).await;
    assert!(sink.transcript().contains("Unknown model `huge`"));
    h.say(&sink, message(&k, "/model large")).await;
    h.say(&sink, message(&k, "hi")).await;
    assert_eq!(h.llm.chat_requests()[0].body["model"], "large");
    // Another conversation keeps the default.
    h.say(&sink, message(&key("model-other"), "hi")).await;
    assert_eq!(h.llm.chat_requests()[1].body["model"], "small");
}

#[tokio::test]
async fn a_bad_command_gets_an_error_that_names_the_problem() {
    let h = Harness::start().await;
    let sink = RecordingSink::fast();
    h.say(&sink, message(&key("bad"), "/run cobol DISPLAY 1"))
        .await;
    h.say(&sink, message(&key("bad"), "/frobnicate")).await;
    let text = sink.transcript();
    assert!(text.contains("unknown language `cobol`"), "{text}");
    assert!(text.contains("unknown command `/frobnicate`"), "{text}");
}

#[tokio::test]
async fn run_without_a_sandbox_says_how_to_get_one() {
    let h = Harness::start().await;
    let sink = RecordingSink::fast();
    let out = h
        .say(&sink, message(&key("nosandbox"), "/run python print(1)"))
        .await;
    assert!(matches!(out, TurnOutcome::Failed(_)));
    assert!(
        sink.transcript().contains("scripts/fetch-guests"),
        "{}",
        sink.transcript()
    );
}
