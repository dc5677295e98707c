//! `/run` and the `run_code` tool with the real sandbox and real guests.

use crate::support::{key, message, Harness, RecordingSink};
use async_trait::async_trait;
use robit_core::{EngineConfig, TurnOutcome};
use robit_store::MessageRole;
use robit_testkit::llm::{FakeLlm, Reply};
use robit_types::{Capabilities, MessageRef, ReplySink, SinkError};
use std::sync::{Arc, Mutex};

#[tokio::test]
async fn run_posts_the_output_exit_status_and_duration() {
    let (h, _dir) = Harness::with_sandbox(EngineConfig::default()).await;
    let sink = RecordingSink::fast();
    let out = h
        .say(
            &sink,
            message(&key("run"), "/run python print('héllo', 6*7)"),
        )
        .await;
    assert_eq!(out, TurnOutcome::Command);
    let shown = sink.transcript();
    assert!(shown.contains("```\nhéllo 42\n```"), "{shown}");
    assert!(shown.contains("exit 0"), "{shown}");
    assert!(shown.contains(" ms`"), "{shown}");

    sink.messages.lock().unwrap().clear();
    h.say(
        &sink,
        message(
            &key("run"),
            "/run\n```js\nconsole.log([1,2].map(x => x * 2).join(','))\n```",
        ),
    )
    .await;
    assert!(sink.transcript().contains("2,4"), "{}", sink.transcript());
}

/// Issue 15: guest output with four backticks, then a role mention, @everyone and a masked
/// link. The old escape left three backticks in a row, which end a block on Discord and Slack.
#[tokio::test]
async fn guest_output_cannot_close_its_code_block() {
    let (h, _dir) = Harness::with_sandbox(EngineConfig::default()).await;
    let sink = RecordingSink::fast();
    let code = "print('`' * 4 + '<@&123> @everyone [verify](https://evil.example)')";
    h.say(
        &sink,
        message(&key("fence"), &format!("/run python {code}")),
    )
    .await;
    let shown = sink
        .messages()
        .into_iter()
        .find(|m| m.contains("evil.example"))
        .unwrap();
    // Where the platforms end a block: the first three backticks after the opening line.
    let body = shown.find("```\n").unwrap() + 4;
    let close = body + shown[body..].find("```").unwrap();
    assert!(
        shown[..close].contains("@everyone [verify](https://evil.example)"),
        "the attack left the block: {shown:?}"
    );
    assert!(shown[close..].starts_with("```\n`exit 0"), "{shown:?}");
}

#[tokio::test]
async fn a_failing_program_shows_stderr_and_its_exit_code() {
    let (h, _dir) = Harness::with_sandbox(EngineConfig::default()).await;
    let sink = RecordingSink::fast();
    h.say(
        &sink,
        message(&key("fail"), "/run python raise SystemExit('bad input')"),
    )
    .await;
    let shown = sink.transcript();
    assert!(
        shown.contains("bad input") && shown.contains("exit 1"),
        "{shown}"
    );
}

/// A sink that takes uploads, like Discord and Slack.
struct UploadSink {
    inner: Arc<RecordingSink>,
    files: Mutex<Vec<(String, Vec<u8>)>>,
}

#[async_trait]
impl ReplySink for UploadSink {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_upload_bytes: Some(1 << 20),
            ..self.inner.capabilities()
        }
    }
    async fn post(&self, t: &str) -> Result<MessageRef, SinkError> {
        self.inner.post(t).await
    }
    async fn edit(&self, m: &MessageRef, t: &str) -> Result<(), SinkError> {
        self.inner.edit(m, t).await
    }
    async fn upload(
        &self,
        name: &str,
        bytes: &[u8],
        comment: &str,
    ) -> Result<MessageRef, SinkError> {
        self.files
            .lock()
            .unwrap()
            .push((name.to_string(), bytes.to_vec()));
        self.inner.post(comment).await
    }
}

#[tokio::test]
async fn long_output_is_uploaded_where_the_platform_allows_and_cut_with_a_note_elsewhere() {
    let (h, _dir) = Harness::with_sandbox(EngineConfig::default()).await;
    let code = "/run python for i in range(500): print('line', i)";
    let rec = RecordingSink::fast();
    let up = Arc::new(UploadSink {
        inner: rec.clone(),
        files: Mutex::new(Vec::new()),
    });
    h.engine
        .submit(message(&key("up"), code), up.clone())
        .await
        .unwrap()
        .wait()
        .await;
    let files = up.files.lock().unwrap().clone();
    assert_eq!(files.len(), 1);
    let body = String::from_utf8(files[0].1.clone()).unwrap();
    assert!(body.starts_with("line 0\n") && body.contains("line 499\n"));
    assert!(rec.transcript().contains("exit 0"));

    let plain = RecordingSink::fast();
    h.say(&plain, message(&key("noup"), code)).await;
    let shown = plain.transcript();
    assert!(
        shown.contains("line 0") && shown.contains("more characters not shown"),
        "{shown}"
    );
    assert!(shown.chars().count() <= 2000);
}

#[tokio::test]
async fn the_model_runs_code_and_answers_with_its_output() {
    let (h, _dir) = Harness::with_sandbox(EngineConfig::default()).await;
    h.llm.push(
        Reply::tool_call(
            "run_code",
            r#"{"language":"python","code":"print(sum(range(10)))"}"#,
        )
        .with_text("Let me compute that."),
    );
    h.llm.push(Reply::text("The sum is 45."));
    let sink = RecordingSink::fast();
    let k = key("tool");
    assert_eq!(
        h.say(&sink, message(&k, "sum 0..9?")).await,
        TurnOutcome::Replied
    );

    let msgs = sink.messages();
    let pos = |needle: &str| {
        msgs.iter()
            .position(|m| m.contains(needle))
            .unwrap_or_else(|| panic!("{needle} not in {msgs:?}"))
    };
    assert!(pos("Let me compute") < pos("print(sum(range(10)))"));
    assert!(pos("print(sum(range(10)))") < pos("```\n45\n```"));
    assert!(pos("```\n45\n```") < pos("The sum is 45."));

    // The model got the tool result, tied to its call.
    let reqs = h.llm.chat_requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].body["tools"][0]["function"]["name"], "run_code");
    let second = reqs[1].body["messages"].as_array().unwrap().clone();
    let call = &second[second.len() - 2];
    let result = &second[second.len() - 1];
    assert_eq!(call["role"], "assistant");
    let call_id = call["tool_calls"][0]["id"].as_str().unwrap();
    assert_eq!(result["role"], "tool");
    assert_eq!(result["tool_call_id"], call_id);
    assert!(result["content"].as_str().unwrap().contains("45"));

    // Persisted: user, assistant (tool call), tool result, final answer.
    let conv = h.store.conversation(&k).await.unwrap();
    let roles: Vec<_> = h
        .store
        .history(conv.id, 50)
        .await
        .unwrap()
        .iter()
        .map(|m| m.role)
        .collect();
    assert_eq!(
        roles,
        [
            MessageRole::User,
            MessageRole::Assistant,
            MessageRole::Tool,
            MessageRole::Assistant
        ]
    );

    // A restarted engine continues a conversation that holds tool calls.
    let h2 = Harness::open(&h.db, FakeLlm::start().await, EngineConfig::default()).await;
    h2.say(&sink, message(&k, "and doubled?")).await;
    let req = h2.llm.chat_requests()[0].body["messages"].clone();
    assert_eq!(req[2]["tool_calls"][0]["id"], call_id);
    assert_eq!(req[3]["tool_call_id"], call_id);
    assert_eq!(req[4]["content"], "The sum is 45.");
    assert_eq!(req[5]["content"], "and doubled?");
}

#[tokio::test]
async fn the_tool_round_limit_ends_the_turn_with_a_clear_message() {
    let (h, _dir) = Harness::with_sandbox(EngineConfig {
        max_tool_rounds: 2,
        ..EngineConfig::default()
    })
    .await;
    for _ in 0..3 {
        h.llm.push(Reply::tool_call(
            "run_code",
            r#"{"language":"python","code":"print(1)"}"#,
        ));
    }
    let sink = RecordingSink::fast();
    let out = h.say(&sink, message(&key("limit"), "loop forever")).await;
    assert!(matches!(out, TurnOutcome::Failed(_)));
    assert!(
        sink.transcript().contains("stopped after 2 tool rounds"),
        "{}",
        sink.transcript()
    );
    // The last request offered no tools.
    let reqs = h.llm.chat_requests();
    assert_eq!(reqs.len(), 3);
    assert!(reqs[2]
        .body
        .get("tools")
        .is_none_or(|t| t.as_array().unwrap().is_empty()));
}

#[tokio::test]
async fn the_model_runs_code_over_the_anthropic_protocol_too() {
    use robit_llm::{Anthropic, AnthropicConfig};
    use robit_testkit::llm::FakeAnthropic;
    let dir = tempfile::tempdir().unwrap();
    let store = robit_store::connect_sqlite(dir.path().join("a.db"))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let claude = FakeAnthropic::start().await;
    claude.push(
        Reply::tool_call("run_code", r#"{"language":"python","code":"print(2**10)"}"#)
            .with_text("Computing."),
    );
    claude.push(Reply::text("2**10 is 1024."));
    let provider = Arc::new(
        Anthropic::new(AnthropicConfig {
            base_url: claude.base_url(),
            api_key: Some("sk-ant-test".to_string().into()),
            ..AnthropicConfig::default()
        })
        .unwrap(),
    );
    let engine = robit_core::Engine::new(
        EngineConfig {
            default_model: "claude-x".into(),
            ..EngineConfig::default()
        },
        store.clone(),
        Some(provider),
        Some(crate::support::sandbox().await),
    );
    let sink = RecordingSink::fast();
    let k = key("anthropic-tool");
    let out = engine
        .submit(message(&k, "what is 2**10?"), sink.clone())
        .await
        .unwrap()
        .wait()
        .await;
    assert_eq!(out, TurnOutcome::Replied);
    let shown = sink.transcript();
    assert!(shown.contains("```\n1024\n```"), "{shown}");
    assert!(shown.ends_with("2**10 is 1024."), "{shown}");
    // The second request carried the tool result as a tool_result block tied to the call.
    let reqs = claude.message_requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].body["tools"][0]["name"], "run_code");
    let msgs = reqs[1].body["messages"].as_array().unwrap().clone();
    let call = msgs
        .iter()
        .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default())
        .find(|b| b["type"] == "tool_use")
        .unwrap();
    let result = msgs
        .iter()
        .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default())
        .find(|b| b["type"] == "tool_result")
        .unwrap();
    assert_eq!(result["tool_use_id"], call["id"]);
    assert!(result["content"].to_string().contains("1024"));
}
