//! The fake Anthropic server's bytes: `event:`/`data:` framing, the event sequence and its
//! fields, tool-use fragments, in-stream and HTTP errors, and the checks before a request.

use super::llm::{exchange, Raw};
use robit_testkit::{FakeAnthropic, Reply};
use serde_json::{json, Value};

async fn post_messages(fake: &FakeAnthropic, body: &Value, headers: &str) -> Raw {
    let body = body.to_string();
    let request = format!(
        "POST /v1/messages HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    exchange(fake.addr(), &request).await
}

const VERSION: &str = "anthropic-version: 2023-06-01\r\n";

fn body() -> Value {
    json!({
        "model": "claude-wire",
        "max_tokens": 100,
        "stream": true,
        "system": "be brief",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "say hello world"}]}],
    })
}

/// `(event name, data)` of each SSE event, checking the framing on the way: every event has
/// exactly one `event:` line and one `data:` line, and the name repeats the data's `type`.
fn events(raw: &Raw) -> Vec<(String, Value)> {
    assert!(raw.body.ends_with("\n\n"), "{:?}", raw.body);
    raw.body
        .split_terminator("\n\n")
        .map(|event| {
            let (name, data) = event
                .split_once('\n')
                .unwrap_or_else(|| panic!("event without two lines: {event:?}"));
            let name = name.strip_prefix("event: ").expect("an event: line");
            let data = data.strip_prefix("data: ").expect("a data: line");
            assert!(!data.contains('\n'), "{event:?}");
            let data: Value = serde_json::from_str(data).unwrap();
            assert_eq!(data["type"], name, "{event:?}");
            (name.to_string(), data)
        })
        .collect()
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(n, _)| n.as_str()).collect()
}

#[tokio::test]
async fn text_answer_has_the_anthropic_event_sequence() {
    let fake = FakeAnthropic::start().await;
    fake.push(Reply::text("hello big world"));
    let raw = post_messages(&fake, &body(), VERSION).await;
    assert_eq!(raw.status, 200);
    assert!(raw
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    let events = events(&raw);
    assert_eq!(
        names(&events),
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    let message = &events[0].1["message"];
    assert_eq!(message["id"], "msg_fake1");
    assert_eq!(message["model"], "claude-wire");
    assert_eq!(message["role"], "assistant");
    // "be brief" + "say hello world": five words.
    assert_eq!(message["usage"]["input_tokens"], 5);
    assert_eq!(
        events[2].1,
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
    );
    let text: String = events[3..6]
        .iter()
        .map(|(_, d)| {
            assert_eq!(d["index"], 0);
            assert_eq!(d["delta"]["type"], "text_delta");
            d["delta"]["text"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(text, "hello big world");
    assert_eq!(events[6].1["index"], 0);
    assert_eq!(events[7].1["delta"]["stop_reason"], "end_turn");
    assert_eq!(events[7].1["usage"]["output_tokens"], 3);
}

#[tokio::test]
async fn tool_use_arrives_as_input_json_fragments() {
    let fake = FakeAnthropic::start().await;
    let arguments = r#"{"language":"python","code":"print(1)"}"#;
    fake.push(Reply::tool_call("run_code", arguments).with_text("running"));
    let events = events(&post_messages(&fake, &body(), VERSION).await);
    let start = events
        .iter()
        .find(|(n, d)| n == "content_block_start" && d["content_block"]["type"] == "tool_use")
        .unwrap();
    assert_eq!(start.1["index"], 1);
    assert_eq!(
        start.1["content_block"],
        json!({"type": "tool_use", "id": "toolu_fake1_0", "name": "run_code", "input": {}})
    );
    let fragments: Vec<&str> = events
        .iter()
        .filter(|(_, d)| d["delta"]["type"] == "input_json_delta")
        .map(|(_, d)| {
            assert_eq!(d["index"], 1);
            d["delta"]["partial_json"].as_str().unwrap()
        })
        .collect();
    assert!(fragments.len() > 3, "{fragments:?}");
    assert_eq!(fragments.concat(), arguments);
    let delta = events.iter().find(|(n, _)| n == "message_delta").unwrap();
    assert_eq!(delta.1["delta"]["stop_reason"], "tool_use");
}

#[tokio::test]
async fn error_mid_stream_is_an_error_event() {
    let fake = FakeAnthropic::start().await;
    fake.push(Reply::error_after("partial", "Overloaded"));
    let events = events(&post_messages(&fake, &body(), VERSION).await);
    let (name, data) = events.last().unwrap();
    assert_eq!(name, "error");
    assert_eq!(
        *data,
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    );
    assert!(!names(&events).contains(&"message_stop"));
}

#[tokio::test]
async fn status_replies_have_the_anthropic_error_shape() {
    let fake = FakeAnthropic::start().await;
    fake.push_all([Reply::status(429).retry_after(3), Reply::status(529)]);
    let raw = post_messages(&fake, &body(), VERSION).await;
    assert_eq!(raw.status, 429);
    assert_eq!(raw.header("retry-after"), Some("3"));
    let error: Value = serde_json::from_str(&raw.body).unwrap();
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["type"], "rate_limit_error");
    let raw = post_messages(&fake, &body(), VERSION).await;
    assert_eq!(raw.status, 529);
    let error: Value = serde_json::from_str(&raw.body).unwrap();
    assert_eq!(
        error,
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    );
}

#[tokio::test]
async fn key_version_and_max_tokens_are_checked_before_the_script() {
    let fake = FakeAnthropic::with_api_key("sk-ant-wire").await;
    fake.push(Reply::text("kept"));
    let raw = post_messages(&fake, &body(), VERSION).await;
    assert_eq!(raw.status, 401);
    assert!(raw.body.contains("authentication_error"), "{}", raw.body);
    let key = "x-api-key: sk-ant-wire\r\n";
    let raw = post_messages(&fake, &body(), key).await;
    assert_eq!(raw.status, 400);
    assert!(raw.body.contains("anthropic-version"), "{}", raw.body);
    let mut no_limit = body();
    no_limit.as_object_mut().unwrap().remove("max_tokens");
    let raw = post_messages(&fake, &no_limit, &format!("{key}{VERSION}")).await;
    assert_eq!(raw.status, 400);
    assert!(raw.body.contains("max_tokens"), "{}", raw.body);
    assert_eq!(fake.pending(), 1);
    assert_eq!(fake.message_requests().len(), 3);
    let raw = post_messages(&fake, &body(), &format!("{key}{VERSION}")).await;
    assert_eq!(raw.status, 200);
    assert_eq!(fake.pending(), 0);
}
