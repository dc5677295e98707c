//! MCP tools in chat turns: the real engine, the real rmcp client in robit-mcp, the fake MCP
//! server over streamable HTTP on loopback and the fake LLM behind the real OpenAI client.

use crate::support::{key, message, provider, RecordingSink};
use robit_core::{Engine, EngineConfig, TurnOutcome};
use robit_mcp::{McpTools, ServerConfig, Transport};
use robit_store::{MessageRole, Store};
use robit_testkit::llm::{FakeLlm, Reply};
use robit_testkit::mcp::FakeMcp;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

struct McpHarness {
    engine: Engine,
    store: Arc<dyn Store>,
    llm: FakeLlm,
    mcp: FakeMcp,
    _dir: tempfile::TempDir,
}

/// An engine (no sandbox) whose model is offered the fake server's tools as `calc__*`.
async fn start(allow: &[&str], timeout: Duration) -> McpHarness {
    let dir = tempfile::tempdir().unwrap();
    let store = robit_store::connect_sqlite(dir.path().join("m.db"))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let llm = FakeLlm::start().await;
    let mcp = FakeMcp::start(None).await;
    let tools = McpTools::connect(vec![ServerConfig {
        name: "calc".into(),
        transport: Transport::Http {
            url: mcp.url(),
            bearer_token: None,
        },
        allow_tools: allow.iter().map(|s| s.to_string()).collect(),
        timeout,
    }])
    .await;
    assert!(tools.status()[0].result.is_ok(), "{:?}", tools.status());
    let engine = Engine::new(
        EngineConfig::default(),
        store.clone(),
        Some(provider(&llm)),
        None,
    )
    .with_tools(Arc::new(tools));
    McpHarness {
        engine,
        store,
        llm,
        mcp,
        _dir: dir,
    }
}

impl McpHarness {
    async fn say(&self, sink: &Arc<RecordingSink>, channel: &str, text: &str) -> TurnOutcome {
        self.engine
            .submit(message(&key(channel), text), sink.clone())
            .await
            .unwrap()
            .wait()
            .await
    }

    /// The tool results the model got in its `n`th request.
    fn tool_results(&self, n: usize) -> Vec<String> {
        let reqs = self.llm.chat_requests();
        reqs[n].body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["role"] == "tool")
            .map(|m| m["content"].as_str().unwrap().to_string())
            .collect()
    }
}

fn tool_names(body: &Value) -> Vec<String> {
    body["tools"]
        .as_array()
        .map(|tools| {
            tools
                .iter()
                .map(|t| t["function"]["name"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn the_model_calls_an_mcp_tool_and_answers_with_its_result() {
    let h = start(&["add", "lookup"], Duration::from_secs(5)).await;
    h.llm
        .push(Reply::tool_call("calc__add", r#"{"a":2,"b":3}"#).with_text("Let me add those."));
    h.llm.push(Reply::text("2 + 3 = 5."));
    let sink = RecordingSink::fast();
    assert_eq!(
        h.say(&sink, "mcp", "what is 2+3?").await,
        TurnOutcome::Replied
    );

    // Offered beside nothing else here (no sandbox), namespaced by server.
    let reqs = h.llm.chat_requests();
    assert_eq!(reqs.len(), 2);
    let offered = tool_names(&reqs[0].body);
    assert!(offered.contains(&"calc__add".to_string()), "{offered:?}");
    assert!(!offered.contains(&"run_code".to_string()));

    // The server ran it with the model's arguments, and the model got the result.
    assert_eq!(h.mcp.calls()[0].name, "add");
    assert_eq!(
        h.mcp.calls()[0].arguments,
        serde_json::json!({"a": 2, "b": 3})
    );
    assert_eq!(h.tool_results(1), ["5"]);

    // The thread shows one compact line for the call, between the words around it.
    let msgs = sink.messages();
    let pos = |needle: &str| {
        msgs.iter()
            .position(|m| m.contains(needle))
            .unwrap_or_else(|| panic!("{needle:?} not in {msgs:?}"))
    };
    let line = r#"🔧 `calc__add` `{"a":2,"b":3}` → `5`"#;
    assert!(pos("Let me add") < pos(line));
    assert!(pos(line) < pos("2 + 3 = 5."));

    // Stored like run_code: the call, its result, the answer.
    let conv = h.store.conversation(&key("mcp")).await.unwrap();
    let history = h.store.history(conv.id, 50).await.unwrap();
    let roles: Vec<_> = history.iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        [
            MessageRole::User,
            MessageRole::Assistant,
            MessageRole::Tool,
            MessageRole::Assistant
        ]
    );
    assert!(history[1]
        .tool_calls
        .as_deref()
        .unwrap()
        .contains("calc__add"));
    assert_eq!(history[2].content, "5");
}

#[tokio::test]
async fn a_tool_not_on_the_allow_list_is_refused_and_the_turn_goes_on() {
    let h = start(&["add"], Duration::from_secs(5)).await;
    h.llm
        .push(Reply::tool_call("calc__delete_everything", "{}"));
    h.llm.push(Reply::text("I can't do that without an admin."));
    let sink = RecordingSink::fast();
    assert_eq!(h.say(&sink, "deny", "wipe it").await, TurnOutcome::Replied);

    assert!(h.mcp.calls().is_empty(), "the server never saw the call");
    let result = &h.tool_results(1)[0];
    assert!(result.contains("needs an admin's approval"), "{result}");
    let shown = sink.transcript();
    assert!(
        shown.contains(
            "🔒 `calc__delete_everything` `{}` was not run: it needs an admin's approval"
        ),
        "{shown}"
    );
    assert!(shown.contains("I can't do that without an admin."));
    // The model was told up front, in the tool's description.
    let tools = h.llm.chat_requests()[0].body["tools"].clone();
    let described = tools
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["function"]["name"] == "calc__delete_everything")
        .unwrap()["function"]["description"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        described.contains("Needs an admin's approval"),
        "{described}"
    );
}

#[tokio::test]
async fn tool_errors_are_reported_to_the_model_and_the_thread_without_ending_the_turn() {
    let h = start(&["*"], Duration::from_secs(5)).await;
    h.llm.push(Reply::tool_calls(vec![
        ("calc__lookup", r#"{"key":"nope"}"#),
        ("calc__explode", "{}"),
        ("calc__add", "not json"),
    ]));
    h.llm.push(Reply::text("Those all failed."));
    let sink = RecordingSink::fast();
    assert_eq!(
        h.say(&sink, "errors", "try things").await,
        TurnOutcome::Replied
    );

    let results = h.tool_results(1);
    assert_eq!(results.len(), 3);
    assert!(results[0].contains("no entry for `nope`"), "{results:?}");
    assert!(results[0].starts_with("error"), "{results:?}");
    assert!(results[1].contains("the tool exploded"), "{results:?}");
    assert!(results[2].contains("invalid arguments"), "{results:?}");
    let shown = sink.transcript();
    assert!(shown.contains("⚠️ `calc__lookup`"), "{shown}");
    assert!(shown.contains("tool error"), "{shown}");
    assert!(shown.contains("⚠️ `calc__explode` `{}` failed"), "{shown}");
    assert!(shown.contains("Those all failed."), "{shown}");
}

#[tokio::test]
async fn a_tool_that_times_out_is_reported_and_the_turn_finishes() {
    let h = start(&["*"], Duration::from_millis(300)).await;
    h.llm
        .push(Reply::tool_call("calc__sleep", r#"{"ms":10000}"#));
    h.llm.push(Reply::text("The tool was too slow."));
    let sink = RecordingSink::fast();
    let started = std::time::Instant::now();
    assert_eq!(h.say(&sink, "slow", "be slow").await, TurnOutcome::Replied);
    assert!(started.elapsed() < Duration::from_secs(5));
    let result = &h.tool_results(1)[0];
    assert!(result.contains("did not answer within 0.3 s"), "{result}");
    let shown = sink.transcript();
    assert!(shown.contains("⏱️ `calc__sleep`"), "{shown}");
    assert!(shown.contains("timed out"), "{shown}");
}

#[tokio::test]
async fn the_channel_setting_chooses_which_mcp_servers_are_offered() {
    let h = start(&["add"], Duration::from_secs(5)).await;
    let sink = RecordingSink::fast();
    // The channel "quiet" has MCP turned off; "busy" keeps the default (every server).
    h.store
        .put_setting(
            &robit_store::SettingPlace {
                platform: robit_types::Platform::Console,
                workspace: robit_types::WorkspaceId::new("ws"),
                channel: Some(robit_types::ChannelId::new("quiet")),
            },
            "mcp_servers",
            Some("none"),
            "U-admin",
        )
        .await
        .unwrap();
    assert_eq!(h.say(&sink, "quiet", "hello").await, TurnOutcome::Replied);
    assert_eq!(h.say(&sink, "busy", "hello").await, TurnOutcome::Replied);
    let reqs = h.llm.chat_requests();
    assert!(
        !tool_names(&reqs[0].body)
            .iter()
            .any(|n| n.starts_with("calc__")),
        "{:?}",
        tool_names(&reqs[0].body)
    );
    assert!(
        tool_names(&reqs[1].body).iter().any(|n| n == "calc__add"),
        "{:?}",
        tool_names(&reqs[1].body)
    );
}
