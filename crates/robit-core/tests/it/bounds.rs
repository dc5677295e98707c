//! Bounds on what one model response can cost: `max_tokens` on every request, a cap on the
//! characters of a reply, and on the tool calls run from one response; each one, when hit,
//! leaves a visible note in the thread. Driven through the real engine and the fake LLM.

use crate::support::{key, message, Harness, RecordingSink};
use robit_core::{EngineConfig, TurnOutcome};
use robit_testkit::llm::{FakeLlm, Reply};

async fn harness(config: EngineConfig) -> (Harness, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::open(&dir.path().join("t.db"), FakeLlm::start().await, config).await;
    (h, dir)
}

#[tokio::test]
async fn every_request_carries_max_tokens() {
    let (h, _dir) = harness(EngineConfig {
        max_reply_tokens: 1234,
        ..EngineConfig::default()
    })
    .await;
    h.llm.push(Reply::text("hi"));
    let sink = RecordingSink::fast();
    h.say(&sink, message(&key("mt"), "hello")).await;
    let reqs = h.llm.chat_requests();
    assert_eq!(reqs[0].body["max_tokens"], 1234);
}

#[tokio::test]
async fn an_answer_stopped_at_max_tokens_says_so() {
    let (h, _dir) = harness(EngineConfig::default()).await;
    h.llm
        .push(Reply::text("```python\nwhile True:\n    print(1)").finish_reason("length"));
    let sink = RecordingSink::fast();
    let k = key("len");
    assert_eq!(
        h.say(&sink, message(&k, "loop")).await,
        TurnOutcome::Replied
    );
    let shown = sink.transcript();
    assert!(
        shown.contains("reached the limit of 4096 tokens"),
        "{shown}"
    );
    // The note is outside the code block the answer left open.
    let note_at = shown.find("✂️").unwrap();
    assert_eq!(shown[..note_at].matches("```").count() % 2, 0, "{shown}");
}

#[tokio::test]
async fn a_looping_model_is_cut_at_the_reply_cap_with_a_note() {
    let (h, _dir) = harness(EngineConfig {
        max_reply_chars: 2_000,
        ..EngineConfig::default()
    })
    .await;
    // 200,000 characters, streamed in small pieces: without the cap every flush would
    // re-render all of it and the thread would get dozens of messages.
    h.llm
        .push(Reply::text("spam ".repeat(40_000)).chunk_chars(500));
    let sink = RecordingSink::new(1_000, std::time::Duration::from_millis(1));
    let k = key("cap");
    assert_eq!(h.say(&sink, message(&k, "go")).await, TurnOutcome::Replied);
    let msgs = sink.messages();
    let total: usize = msgs.iter().map(|m| m.chars().count()).sum();
    assert!(total < 2_000 + 300, "{total} characters posted");
    assert!(msgs.len() <= 4, "{} messages", msgs.len());
    assert!(
        msgs.last().unwrap().contains("limited to 2000 characters"),
        "{msgs:?}"
    );
    // History keeps what was shown (without the note), marked as cut short.
    let conv = h.store.conversation(&k).await.unwrap();
    let history = h.store.history(conv.id, 10).await.unwrap();
    let answer = history.last().unwrap();
    // (Trailing whitespace of the cut is trimmed with the note.)
    let kept = answer.content.chars().count();
    assert!((1_990..=2_000).contains(&kept), "{kept}");
    assert_eq!(answer.status, robit_store::MessageStatus::Interrupted);
}

#[tokio::test]
async fn tool_calls_past_the_per_round_cap_are_not_run_and_the_user_is_told() {
    let (h, _dir) = harness(EngineConfig {
        max_tool_calls_per_round: 2,
        ..EngineConfig::default()
    })
    .await;
    // Five calls of a tool that does not exist: each run one answers "unknown tool", the
    // ones past the cap must answer "not run" instead.
    h.llm.push(Reply::tool_calls(
        (0..5).map(|i| ("nosuch__tool", format!(r#"{{"i":{i}}}"#))),
    ));
    h.llm.push(Reply::text("done"));
    let sink = RecordingSink::fast();
    let k = key("calls");
    assert_eq!(
        h.say(&sink, message(&k, "call many")).await,
        TurnOutcome::Replied
    );
    let shown = sink.transcript();
    assert!(
        shown.contains("asked for 5 tool calls at once; only the first 2 were run"),
        "{shown}"
    );
    let reqs = h.llm.chat_requests();
    let msgs = reqs[1].body["messages"].as_array().unwrap().clone();
    let results: Vec<&str> = msgs
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(results.len(), 5, "one result per call id");
    assert!(
        results[..2].iter().all(|r| !r.starts_with("not run")),
        "{results:?}"
    );
    assert!(
        results[2..]
            .iter()
            .all(|r| r.starts_with("not run: at most 2")),
        "{results:?}"
    );
}
