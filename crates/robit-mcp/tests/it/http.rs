//! Connecting, listing, calling, and every way a call can go wrong, over streamable HTTP.

use robit_mcp::{McpTools, ServerConfig, ToolError, ToolProvider, Transport};
use robit_testkit::mcp::FakeMcp;
use std::time::Duration;

fn http(name: &str, url: String, allow: &[&str]) -> ServerConfig {
    ServerConfig {
        name: name.into(),
        transport: Transport::Http {
            url,
            bearer_token: None,
        },
        allow_tools: allow.iter().map(|s| s.to_string()).collect(),
        timeout: Duration::from_secs(5),
    }
}

#[tokio::test]
async fn tools_are_listed_namespaced_with_their_schema_and_approval() {
    let fake = FakeMcp::start(None).await;
    let tools = McpTools::connect(vec![http("calc", fake.url(), &["add"])]).await;
    assert!(tools.status()[0].result.is_ok(), "{:?}", tools.status());
    let defs = tools.tools();
    let names: Vec<_> = defs.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "calc__add",
            "calc__lookup",
            "calc__explode",
            "calc__sleep",
            "calc__delete_everything"
        ]
    );
    let add = &defs[0];
    assert_eq!(add.server, "calc");
    assert_eq!(add.tool, "add");
    assert_eq!(add.description, "Adds two numbers.");
    assert_eq!(add.parameters["required"], serde_json::json!(["a", "b"]));
    assert!(add.allowed);
    assert!(!defs[4].allowed);
    assert_eq!(
        fake.methods()[..2],
        ["initialize", "notifications/initialized"]
    );
}

#[tokio::test]
async fn an_allowed_tool_runs_and_returns_its_text() {
    let fake = FakeMcp::start(None).await;
    let tools = McpTools::connect(vec![http("calc", fake.url(), &["*"])]).await;
    let out = tools.call("calc__add", r#"{"a":2,"b":3}"#).await.unwrap();
    assert_eq!(out.text, "5");
    assert!(!out.is_error);
    assert_eq!(fake.calls()[0].name, "add");
    assert_eq!(fake.calls()[0].arguments, serde_json::json!({"a":2,"b":3}));
}

#[tokio::test]
async fn a_tool_not_on_the_allow_list_never_reaches_the_server() {
    let fake = FakeMcp::start(None).await;
    let tools = McpTools::connect(vec![http("calc", fake.url(), &["add"])]).await;
    let err = tools
        .call("calc__delete_everything", "{}")
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ToolError::NeedsApproval {
            server: "calc".into(),
            tool: "delete_everything".into()
        }
    );
    assert!(
        err.to_string().contains("needs an admin's approval"),
        "{err}"
    );
    assert!(fake.calls().is_empty());
}

#[tokio::test]
async fn tool_failures_and_protocol_errors_come_back_as_values() {
    let fake = FakeMcp::start(None).await;
    let tools = McpTools::connect(vec![http("calc", fake.url(), &["*"])]).await;
    let out = tools
        .call("calc__lookup", r#"{"key":"nope"}"#)
        .await
        .unwrap();
    assert!(out.is_error);
    assert_eq!(out.text, "no entry for `nope`");

    let err = tools.call("calc__explode", "{}").await.unwrap_err();
    assert!(
        matches!(&err, ToolError::Server { server, message } if server == "calc" && message.contains("exploded")),
        "{err:?}"
    );
    assert!(matches!(
        tools.call("calc__add", "not json").await,
        Err(ToolError::BadArguments(_))
    ));
    assert!(matches!(
        tools.call("calc__nothing", "{}").await,
        Err(ToolError::Unknown(_))
    ));
    // The connection survives all of that.
    assert_eq!(
        tools
            .call("calc__add", r#"{"a":1,"b":1}"#)
            .await
            .unwrap()
            .text,
        "2"
    );
}

#[tokio::test]
async fn a_slow_tool_times_out_and_the_server_stays_usable() {
    let fake = FakeMcp::start(None).await;
    let mut config = http("slow", fake.url(), &["*"]);
    config.timeout = Duration::from_millis(300);
    let tools = McpTools::connect(vec![config]).await;
    let started = std::time::Instant::now();
    let err = tools
        .call("slow__sleep", r#"{"ms":5000}"#)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ToolError::Timeout { server, .. } if server == "slow"),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(
        tools
            .call("slow__add", r#"{"a":1,"b":2}"#)
            .await
            .unwrap()
            .text,
        "3"
    );
    // The server was told the timed-out call is cancelled.
    assert!(
        fake.methods()
            .contains(&"notifications/cancelled".to_string()),
        "{:?}",
        fake.methods()
    );
}

#[tokio::test]
async fn a_server_that_does_not_answer_is_reported_and_the_others_still_work() {
    let fake = FakeMcp::start(None).await;
    // A port that was just free: nothing listens there.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut missing = http("gone", format!("http://{closed}/mcp"), &["*"]);
    missing.timeout = Duration::from_secs(2);
    let tools = McpTools::connect(vec![missing, http("calc", fake.url(), &["*"])]).await;
    let status = tools.status();
    assert_eq!(status[0].name, "gone");
    assert!(status[0].result.is_err());
    assert_eq!(status[1].result.as_ref().ok(), Some(&5));
    assert!(tools.tools().iter().all(|t| t.server == "calc"));
}

#[tokio::test]
async fn the_bearer_token_is_sent() {
    let fake = FakeMcp::start(Some("s3cret")).await;
    let mut config = http("auth", fake.url(), &["*"]);
    config.timeout = Duration::from_secs(2);
    let without = McpTools::connect(vec![config.clone()]).await;
    assert!(without.status()[0].result.is_err());
    config.transport = Transport::Http {
        url: fake.url(),
        bearer_token: Some("s3cret".to_string().into()),
    };
    let with = McpTools::connect(vec![config]).await;
    assert!(with.status()[0].result.is_ok(), "{:?}", with.status());
    assert_eq!(
        with.call("auth__add", r#"{"a":4,"b":4}"#)
            .await
            .unwrap()
            .text,
        "8"
    );
}

tokio::task_local! {
    /// The `traceparent` the test's propagator reports for the current span.
    static TRACEPARENT: String;
}

/// A propagator standing in for the binary's: the current span's context is whatever the
/// test set for its task.
struct TaskPropagator;

impl robit_types::trace::Propagator for TaskPropagator {
    fn inject(&self, _span: &tracing::Span) -> Vec<(String, String)> {
        TRACEPARENT
            .try_with(|t| vec![("traceparent".to_string(), t.clone())])
            .unwrap_or_default()
    }

    fn adopt(&self, _span: &tracing::Span, _headers: &[(String, String)]) {}
}

#[tokio::test]
async fn a_tool_call_carries_the_callers_trace_context_in_its_headers_and_meta() {
    robit_types::trace::install(Box::new(TaskPropagator));
    let fake = FakeMcp::start(None).await;
    let tools = McpTools::connect(vec![http("calc", fake.url(), &["*"])]).await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let out = TRACEPARENT
        .scope(
            traceparent.to_string(),
            tools.call("calc__add", r#"{"a":2,"b":3}"#),
        )
        .await
        .unwrap();
    assert_eq!(out.text, "5");
    let posts = fake.requests();
    let call = posts
        .iter()
        .find(|p| p.body["method"] == "tools/call")
        .expect("the call was posted");
    assert_eq!(call.header("traceparent"), Some(traceparent));
    assert_eq!(call.body["params"]["_meta"]["traceparent"], traceparent);
    // Only the call that was made in the trace carries it: the handshake did not.
    let initialize = posts
        .iter()
        .find(|p| p.body["method"] == "initialize")
        .expect("the handshake was posted");
    assert_eq!(initialize.header("traceparent"), None);
}
