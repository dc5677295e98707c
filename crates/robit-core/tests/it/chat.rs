//! Chat turns: streaming, persistence, ordering, concurrency, failures, splitting, mentions.

use crate::support::{key, message, Call, Harness, RecordingSink};
use robit_core::{EngineConfig, Submission, TurnOutcome};
use robit_store::{MessageRole, MessageStatus};
use robit_testkit::llm::{FakeLlm, Reply};
use std::time::Duration;

#[tokio::test]
async fn a_message_gets_a_streamed_persisted_reply() {
    let h = Harness::start().await;
    let answer = "Rust is a systems language with a borrow checker that keeps memory safe.";
    h.llm.push(
        Reply::text(answer)
            .chunk_words(1)
            .delay(Duration::from_millis(15)),
    );
    let sink = RecordingSink::new(2000, Duration::from_millis(40));
    let k = key("streamed");
    let outcome = h.say(&sink, message(&k, "what is rust?")).await;
    assert_eq!(outcome, TurnOutcome::Replied);

    // The whole answer ended up in one message, reached through a post and several edits.
    assert_eq!(sink.messages(), vec![answer.to_string()]);
    assert!(
        sink.edit_count() >= 2,
        "expected a streamed reply, got {:?}",
        sink.calls()
    );
    // Edits respect the minimum interval.
    let times: Vec<_> = sink.calls().iter().map(|(t, _)| *t).collect();
    for w in times.windows(2) {
        assert!(
            w[1] - w[0] >= Duration::from_millis(35),
            "edits too close: {:?}",
            w[1] - w[0]
        );
    }

    let conv = h.store.conversation(&k).await.unwrap();
    let history = h.store.history(conv.id, 50).await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(
        (history[0].role, history[0].content.as_str()),
        (MessageRole::User, "what is rust?")
    );
    assert_eq!(
        (history[1].role, history[1].content.as_str()),
        (MessageRole::Assistant, answer)
    );
    assert_eq!(history[1].status, MessageStatus::Complete);

    // The request carried the system prompt, then the user's message.
    let req = &h.llm.chat_requests()[0].body;
    assert_eq!(req["stream"], true);
    assert_eq!(req["messages"][0]["role"], "system");
    assert_eq!(req["messages"][1]["content"], "what is rust?");
}

#[tokio::test]
async fn a_duplicate_event_is_answered_once() {
    let h = Harness::start().await;
    let sink = RecordingSink::fast();
    let k = key("dup");
    let inbound = message(&k, "hello once");
    let first = h
        .engine
        .submit(inbound.clone(), sink.clone())
        .await
        .unwrap();
    let second = h
        .engine
        .submit(inbound.clone(), sink.clone())
        .await
        .unwrap();
    assert!(matches!(second, Submission::Duplicate));
    assert_eq!(first.wait().await, TurnOutcome::Replied);
    let third = h.engine.submit(inbound, sink.clone()).await.unwrap();
    assert!(matches!(third, Submission::Duplicate));

    assert_eq!(h.llm.chat_requests().len(), 1);
    assert_eq!(sink.messages(), vec!["echo: hello once".to_string()]);
    let conv = h.store.conversation(&k).await.unwrap();
    assert_eq!(h.store.history(conv.id, 50).await.unwrap().len(), 2);
}

#[tokio::test]
async fn messages_in_one_conversation_are_answered_in_order() {
    let h = Harness::start().await;
    h.llm.push(
        Reply::text("first answer")
            .chunk_words(1)
            .delay(Duration::from_millis(40)),
    );
    h.llm.push(
        Reply::text("second answer")
            .chunk_words(1)
            .delay(Duration::from_millis(5)),
    );
    let sink = RecordingSink::fast();
    let k = key("ordered");
    let a = h
        .engine
        .submit(message(&k, "one"), sink.clone())
        .await
        .unwrap();
    let b = h
        .engine
        .submit(message(&k, "two"), sink.clone())
        .await
        .unwrap();
    assert_eq!(a.wait().await, TurnOutcome::Replied);
    assert_eq!(b.wait().await, TurnOutcome::Replied);

    assert_eq!(
        sink.messages(),
        vec!["first answer".to_string(), "second answer".to_string()]
    );
    // The second turn started after the first ended: its request already holds the first answer.
    let reqs = h.llm.chat_requests();
    let second: Vec<String> = reqs[1].body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(&second[1..], &["one", "first answer", "two"]);
}

#[tokio::test]
async fn two_conversations_are_answered_concurrently() {
    let h = Harness::start().await;
    let slow = || {
        Reply::text("a b c d e f g h")
            .chunk_words(1)
            .delay(Duration::from_millis(60))
    };
    h.llm.push(slow());
    h.llm.push(slow());
    let (sa, sb) = (RecordingSink::fast(), RecordingSink::fast());
    let a = h
        .engine
        .submit(message(&key("conc-a"), "x"), sa.clone())
        .await
        .unwrap();
    let b = h
        .engine
        .submit(message(&key("conc-b"), "y"), sb.clone())
        .await
        .unwrap();
    let (ra, rb) = tokio::join!(a.wait(), b.wait());
    assert_eq!((ra, rb), (TurnOutcome::Replied, TurnOutcome::Replied));
    // Each reply started before the other finished: the turns overlapped.
    let first = |s: &RecordingSink| s.calls().first().unwrap().0;
    let last = |s: &RecordingSink| s.calls().last().unwrap().0;
    assert!(first(&sb) < last(&sa) && first(&sa) < last(&sb));
    assert_eq!(sa.messages(), vec!["a b c d e f g h".to_string()]);
    assert_eq!(sb.messages(), vec!["a b c d e f g h".to_string()]);
}

#[tokio::test]
async fn a_provider_error_mid_stream_is_shown_and_history_stays_consistent() {
    let h = Harness::start().await;
    h.llm.push(
        Reply::error_after("The answer begins well", "upstream exploded")
            .chunk_words(1)
            .delay(Duration::from_millis(10)),
    );
    let sink = RecordingSink::fast();
    let k = key("midstream");
    let outcome = h.say(&sink, message(&k, "tell me")).await;
    assert!(matches!(outcome, TurnOutcome::Failed(_)), "{outcome:?}");
    let shown = sink.transcript();
    assert!(shown.starts_with("The answer begins well"), "{shown}");
    assert!(shown.contains("cut off"), "the user is told: {shown}");

    let conv = h.store.conversation(&k).await.unwrap();
    let history = h.store.history(conv.id, 50).await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[1].content, "The answer begins well");
    assert_eq!(history[1].status, MessageStatus::Interrupted);

    // The next turn works and the model sees what the user saw.
    let outcome = h.say(&sink, message(&k, "again")).await;
    assert_eq!(outcome, TurnOutcome::Replied);
    let msgs = h.llm.chat_requests()[1].body["messages"].clone();
    assert_eq!(msgs[2]["role"], "assistant");
    assert_eq!(msgs[2]["content"], "The answer begins well");
    assert_eq!(msgs[3]["content"], "again");
}

#[tokio::test]
async fn a_provider_failure_before_any_text_is_shown() {
    let h = Harness::start().await;
    h.llm.push(Reply::status(500).message("boom"));
    let sink = RecordingSink::fast();
    let k = key("http500");
    let outcome = h.say(&sink, message(&k, "hi")).await;
    assert!(matches!(outcome, TurnOutcome::Failed(_)));
    let shown = sink.transcript();
    assert!(shown.contains("HTTP 500"), "{shown}");
    let conv = h.store.conversation(&k).await.unwrap();
    let history = h.store.history(conv.id, 50).await.unwrap();
    assert_eq!(history.len(), 1, "only the user's message is stored");
}

#[tokio::test]
async fn an_over_long_reply_is_split_without_breaking_a_code_fence() {
    let h = Harness::start().await;
    let code: String = (0..150)
        .map(|i| format!("print('line {i:03}')\n"))
        .collect();
    let answer = format!("Here is the program:\n\n```python\n{code}```\n\nRun it and enjoy.");
    assert!(answer.chars().count() > 2500);
    h.llm.push(Reply::text(answer.clone()).chunk_chars(200));
    let sink = RecordingSink::new(1000, Duration::from_millis(10));
    let outcome = h.say(&sink, message(&key("long"), "write code")).await;
    assert_eq!(outcome, TurnOutcome::Replied);
    let parts = sink.messages();
    assert!(parts.len() >= 3, "{} parts", parts.len());
    for p in &parts {
        assert!(p.chars().count() <= 1000);
        let fences = p
            .lines()
            .filter(|l| l.trim_start().starts_with("```"))
            .count();
        assert_eq!(fences % 2, 0, "broken fence in {p:?}");
    }
    assert!(parts[1].starts_with("```python\n"), "{:?}", parts[1]);
    // Nothing lost: removing the added fences gives back the answer.
    let mut rebuilt = String::new();
    for (i, p) in parts.iter().enumerate() {
        let mut p = p.as_str();
        if i > 0 {
            p = p.strip_prefix("```python\n").unwrap_or(p);
        }
        if i + 1 < parts.len() {
            p = p.strip_suffix("```").unwrap_or(p);
        }
        rebuilt.push_str(p);
    }
    assert_eq!(rebuilt, answer);
}

#[tokio::test]
async fn mentions_in_model_output_are_inert() {
    let h = Harness::start().await;
    h.llm.push(Reply::text(
        "Hey @everyone and @here, ping <@123456> and <@&42>!",
    ));
    let sink = RecordingSink::fast();
    h.say(&sink, message(&key("mentions"), "ping them")).await;
    let shown = sink.transcript();
    for raw in ["@everyone", "@here", "<@123456>", "<@&42>"] {
        assert!(!shown.contains(raw), "{raw} is live in {shown:?}");
    }
    assert_eq!(
        shown.replace('\u{200B}', ""),
        "Hey @everyone and @here, ping <@123456> and <@&42>!"
    );
}

#[tokio::test]
async fn without_a_provider_the_user_gets_a_setup_hint_and_the_message_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = robit_store::connect_sqlite(dir.path().join("r.db"))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let engine = robit_core::Engine::new(EngineConfig::default(), store.clone(), None, None);
    let sink = RecordingSink::fast();
    let k = key("noprovider");
    let outcome = engine
        .submit(message(&k, "anyone there?"), sink.clone())
        .await
        .unwrap()
        .wait()
        .await;
    assert_eq!(outcome, TurnOutcome::NoProvider);
    assert!(
        sink.transcript().contains("llm.base_url"),
        "{}",
        sink.transcript()
    );
    let conv = store.conversation(&k).await.unwrap();
    let history = store.history(conv.id, 10).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].content, "anyone there?");
}

#[tokio::test]
async fn a_restarted_engine_continues_the_conversation() {
    let h = Harness::start().await;
    let sink = RecordingSink::fast();
    let k = key("restart");
    h.say(&sink, message(&k, "remember 42")).await;
    let db = h.db.clone();
    let llm = FakeLlm::start().await;
    let h2 = Harness::open(&db, llm, EngineConfig::default()).await;
    h2.say(&sink, message(&k, "what number?")).await;
    let msgs = h2.llm.chat_requests()[0].body["messages"].clone();
    assert_eq!(msgs[1]["content"], "remember 42");
    assert_eq!(msgs[2]["content"], "echo: remember 42");
    assert_eq!(msgs[3]["content"], "what number?");
    drop(h);
}

#[tokio::test]
async fn bot_authors_are_ignored() {
    let h = Harness::start().await;
    let sink = RecordingSink::fast();
    let mut inbound = message(&key("bots"), "I am a bot");
    inbound.author.is_bot = true;
    let sub = h.engine.submit(inbound, sink.clone()).await.unwrap();
    assert!(matches!(sub, Submission::Ignored));
    assert!(sink.calls().is_empty());
    assert!(h.llm.chat_requests().is_empty());
}

#[tokio::test]
async fn rate_limited_sink_calls_are_retried() {
    // Covered at the renderer level: a sink that answers RateLimited once still ends up
    // showing the whole reply.
    use async_trait::async_trait;
    use robit_types::{Capabilities, MessageRef, ReplySink, SinkError};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    struct Flaky {
        inner: Arc<RecordingSink>,
        limited: AtomicBool,
    }
    #[async_trait]
    impl ReplySink for Flaky {
        fn capabilities(&self) -> Capabilities {
            self.inner.capabilities()
        }
        async fn post(&self, t: &str) -> Result<MessageRef, SinkError> {
            if !self.limited.swap(true, Ordering::SeqCst) {
                return Err(SinkError::RateLimited(Duration::from_millis(30)));
            }
            self.inner.post(t).await
        }
        async fn edit(&self, m: &MessageRef, t: &str) -> Result<(), SinkError> {
            self.inner.edit(m, t).await
        }
    }
    let h = Harness::start().await;
    let rec = RecordingSink::fast();
    let flaky = Arc::new(Flaky {
        inner: rec.clone(),
        limited: AtomicBool::new(false),
    });
    let out = h
        .engine
        .submit(message(&key("flaky"), "hi"), flaky)
        .await
        .unwrap()
        .wait()
        .await;
    assert_eq!(out, TurnOutcome::Replied);
    assert_eq!(rec.messages(), vec!["echo: hi".to_string()]);
    assert!(matches!(rec.calls()[0].1, Call::Post { .. }));

    // Command replies wait out a rate limit too.
    let rec = RecordingSink::fast();
    let flaky = Arc::new(Flaky {
        inner: rec.clone(),
        limited: AtomicBool::new(false),
    });
    h.engine
        .submit(message(&key("flaky-help"), "/help"), flaky)
        .await
        .unwrap()
        .wait()
        .await;
    assert!(rec.transcript().contains("/reset"), "{}", rec.transcript());
}
