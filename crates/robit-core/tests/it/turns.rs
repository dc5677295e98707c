//! Turn policy: context budget, per-channel system prompts, stopping a running turn.

use crate::support::{key, message, Harness, RecordingSink};
use robit_core::{EngineConfig, TurnOutcome};
use robit_testkit::llm::{FakeLlm, Reply};
use std::time::Duration;

async fn harness(config: EngineConfig) -> (Harness, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::open(&dir.path().join("t.db"), FakeLlm::start().await, config).await;
    (h, dir)
}

#[tokio::test]
async fn history_is_trimmed_oldest_first_to_fit_the_context() {
    let (h, _dir) = harness(EngineConfig {
        default_context_tokens: 4_096 + 400,
        reply_reserve_tokens: 4_096,
        ..EngineConfig::default()
    })
    .await;
    let sink = RecordingSink::fast();
    let k = key("budget");
    let filler = "w".repeat(400); // about 100 tokens per message
    for i in 0..4 {
        h.llm.push(Reply::text(format!("answer {i}")));
        h.say(&sink, message(&k, &format!("question {i} {filler}")))
            .await;
    }
    let last = h.llm.chat_requests().last().unwrap().body["messages"].clone();
    let contents: Vec<String> = last
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap().chars().take(10).collect())
        .collect();
    assert_eq!(
        contents.first().unwrap(),
        "You are ro",
        "system prompt kept"
    );
    assert!(
        contents.last().unwrap().starts_with("question 3"),
        "newest kept"
    );
    assert!(
        !contents.iter().any(|c| c.starts_with("question 0")),
        "oldest dropped: {contents:?}"
    );
    assert!(contents.len() < 8, "something was trimmed: {contents:?}");
}

#[tokio::test]
async fn a_message_too_large_for_the_model_gets_a_clear_error() {
    let (h, _dir) = harness(EngineConfig {
        default_context_tokens: 4_096 + 100,
        reply_reserve_tokens: 4_096,
        ..EngineConfig::default()
    })
    .await;
    let sink = RecordingSink::fast();
    let out = h
        .say(&sink, message(&key("huge"), &"z".repeat(4_000)))
        .await;
    assert!(matches!(out, TurnOutcome::Failed(_)));
    assert!(
        sink.transcript().contains("too long"),
        "{}",
        sink.transcript()
    );
    assert!(h.llm.chat_requests().is_empty(), "no request was sent");
}

#[tokio::test]
async fn a_channel_system_prompt_overrides_the_workspace_and_global_ones() {
    let mut config = EngineConfig::default();
    config
        .system_prompt_overrides
        .insert("console:ws".into(), "workspace prompt".into());
    config
        .system_prompt_overrides
        .insert("console:ws:special".into(), "channel prompt".into());
    let (h, _dir) = harness(config).await;
    let sink = RecordingSink::fast();
    h.say(&sink, message(&key("special"), "a")).await;
    h.say(&sink, message(&key("plain"), "b")).await;
    let reqs = h.llm.chat_requests();
    assert_eq!(reqs[0].body["messages"][0]["content"], "channel prompt");
    assert_eq!(reqs[1].body["messages"][0]["content"], "workspace prompt");
}

#[tokio::test]
async fn a_new_message_stops_the_running_turn_when_configured() {
    let (h, _dir) = harness(EngineConfig {
        cancel_on_new_message: true,
        ..EngineConfig::default()
    })
    .await;
    h.llm
        .push(Reply::text("a b c d e f g h i j k l m n o p").delay(Duration::from_millis(100)));
    h.llm.push(Reply::text("the new answer"));
    let sink = RecordingSink::fast();
    let k = key("cancel");
    let first = h
        .engine
        .submit(message(&k, "long question"), sink.clone())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(350)).await;
    let second = h
        .engine
        .submit(message(&k, "never mind"), sink.clone())
        .await
        .unwrap();
    assert_eq!(first.wait().await, TurnOutcome::Cancelled);
    assert_eq!(second.wait().await, TurnOutcome::Replied);
    let msgs = sink.messages();
    assert!(msgs[0].contains("Stopped"), "{msgs:?}");
    assert_eq!(msgs.last().unwrap(), "the new answer");
    // The cut answer is kept as interrupted, before the new question.
    let reqs = h.llm.chat_requests();
    let second_req = &reqs[1].body["messages"];
    assert_eq!(second_req[2]["role"], "assistant");
    assert!(second_req[2]["content"]
        .as_str()
        .unwrap()
        .starts_with("a b"));
    assert_eq!(second_req[3]["content"], "never mind");
}

#[tokio::test]
async fn a_graceful_stop_leaves_no_reply_half_written() {
    let (h, _dir) = harness(EngineConfig::default()).await;
    h.llm.push(
        Reply::text("one two three four five six seven eight nine ten")
            .delay(Duration::from_millis(150)),
    );
    let sink = RecordingSink::fast();
    let k = key("graceful");
    let turn = h
        .engine
        .submit(message(&k, "count slowly"), sink.clone())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    h.engine.shutdown(Duration::from_millis(100)).await;
    assert_eq!(turn.wait().await, TurnOutcome::Cancelled);
    // New events are refused once stopping.
    assert!(h
        .engine
        .submit(message(&k, "late"), sink.clone())
        .await
        .is_err());

    let shown = sink.transcript();
    assert!(
        shown.contains("restarting"),
        "the thread says it was cut off: {shown}"
    );
    let conv = h.store.conversation(&k).await.unwrap();
    let history = h.store.history(conv.id, 10).await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[1].status, robit_store::MessageStatus::Interrupted);
    // What is stored is exactly what the user saw before the note.
    assert!(
        shown.starts_with(&history[1].content),
        "{shown:?} vs {:?}",
        history[1].content
    );
    assert!(history[1].content.starts_with("one two"));
}

#[tokio::test]
async fn stop_turn_cuts_the_running_answer_and_keeps_what_was_shown() {
    let (h, _dir) = harness(EngineConfig::default()).await;
    let words: Vec<String> = (1..=100).map(|i| format!("w{i}")).collect();
    h.llm
        .push(Reply::text(words.join(" ")).delay(Duration::from_millis(50)));
    h.llm.push(Reply::text("next answer"));
    let sink = RecordingSink::fast();
    let k = key("stop");
    assert!(!h.engine.stop_turn(&k, "you"), "nothing runs yet");
    let turn = h
        .engine
        .submit(message(&k, "count"), sink.clone())
        .await
        .unwrap();
    // Stop once the answer has begun to show.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !sink.transcript().contains("w2") {
        assert!(std::time::Instant::now() < deadline, "no answer shown");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(h.engine.stop_turn(&k, "you"));
    assert_eq!(turn.wait().await, TurnOutcome::Stopped);
    let shown = sink.transcript();
    assert!(shown.contains("⏹️ Stopped by you."), "{shown}");
    assert!(!shown.contains("newer message"), "{shown}");
    assert!(!shown.contains("w100"), "{shown}");
    // The conversation goes on, with the cut answer in its history.
    h.say(&sink, message(&k, "again")).await;
    let reqs = h.llm.chat_requests();
    let second = &reqs[1].body["messages"];
    assert_eq!(second[2]["role"], "assistant");
    assert!(second[2]["content"].as_str().unwrap().starts_with("w1 w2"));
    assert_eq!(
        h.engine.transcript(&k, 10).await.unwrap().last().unwrap().1,
        "next answer"
    );
}
