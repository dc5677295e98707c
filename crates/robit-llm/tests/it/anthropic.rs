//! The Anthropic client against `FakeAnthropic`: streaming, tool use, usage, the request it
//! sends, errors, timeouts and cancellation.

use super::*;
use robit_llm::{Anthropic, AnthropicConfig, ToolCall, ToolSpec, Usage};
use robit_testkit::{FakeAnthropic, Reply};
use serde_json::json;
use std::time::Instant;

fn anthropic_config(fake: &FakeAnthropic, key: Option<&str>) -> AnthropicConfig {
    AnthropicConfig {
        name: "claude".into(),
        base_url: fake.base_url(),
        api_key: key.map(|k| SecretString::from(k.to_string())),
        connect_timeout: Duration::from_secs(2),
        first_token_timeout: FIRST_TOKEN,
        idle_timeout: IDLE,
        ..AnthropicConfig::default()
    }
}

fn anthropic(fake: &FakeAnthropic) -> Anthropic {
    Anthropic::new(anthropic_config(fake, Some("sk-ant-test"))).unwrap()
}

async fn run(client: &Anthropic, request: ChatRequest) -> (Vec<StreamEvent>, Option<LlmError>) {
    let stream = client
        .stream(request, CancellationToken::new())
        .await
        .unwrap();
    collect(stream).await
}

#[tokio::test]
async fn anthropic_streamed_text_joins_exactly() {
    let fake = FakeAnthropic::start().await;
    let answer = "  Hello,  world!\nSecond line\twith tabs ✓ ";
    fake.push(Reply::text(answer).chunk_chars(3));
    let (events, error) = run(&anthropic(&fake), ask("hi")).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(text_of(&events), answer);
    assert!(deltas(&events) > 5);
    assert_eq!(
        events.last(),
        Some(&StreamEvent::Done {
            reason: "stop".into()
        })
    );
}

#[tokio::test]
async fn anthropic_tool_use_split_across_json_deltas_is_assembled() {
    let fake = FakeAnthropic::start().await;
    let arguments = r#"{"language":"python","code":"print(sum(range(10)))"}"#;
    fake.push(Reply::tool_call("run_code", arguments).with_text("Let me run that."));
    let (events, error) = run(&anthropic(&fake), ask("sum?")).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(text_of(&events), "Let me run that.");
    let calls: Vec<&ToolCall> = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::ToolCall(c) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(
        calls,
        vec![&ToolCall {
            id: "toolu_fake1_0".into(),
            name: "run_code".into(),
            arguments: arguments.into(),
        }]
    );
    assert_eq!(
        events.last(),
        Some(&StreamEvent::Done {
            reason: "tool_calls".into()
        })
    );
}

#[tokio::test]
async fn anthropic_usage_reports_input_and_output_tokens() {
    let fake = FakeAnthropic::start().await;
    fake.push(Reply::text("four words right here").usage(42, 7));
    let (events, _) = run(&anthropic(&fake), ask("hi")).await;
    let n = events.len();
    assert_eq!(
        events[n - 2..],
        [
            StreamEvent::Usage(Usage {
                prompt_tokens: 42,
                completion_tokens: 7
            }),
            StreamEvent::Done {
                reason: "stop".into()
            }
        ]
    );
    // Without a scripted count the fake counts words: 3 input, 4 output.
    fake.push(Reply::text("four words right here"));
    let (events, _) = run(&anthropic(&fake), ask("one two three")).await;
    assert!(events.contains(&StreamEvent::Usage(Usage {
        prompt_tokens: 3,
        completion_tokens: 4
    })));
}

#[tokio::test]
async fn anthropic_max_tokens_stop_reason_is_length() {
    let fake = FakeAnthropic::start().await;
    fake.push(Reply::text("cut").finish_reason("length"));
    let (events, _) = run(&anthropic(&fake), ask("hi")).await;
    assert_eq!(
        events.last(),
        Some(&StreamEvent::Done {
            reason: "length".into()
        })
    );
}

#[tokio::test]
async fn anthropic_request_body_and_headers() {
    let fake = FakeAnthropic::with_api_key("sk-ant-test").await;
    fake.push(Reply::text("ok"));
    let mut assistant = ChatMessage::new(Role::Assistant, "running both");
    for (id, code) in [("toolu_a", "1+1"), ("toolu_b", "2+2")] {
        assistant.tool_calls.push(ToolCall {
            id: id.into(),
            name: "run_code".into(),
            arguments: json!({ "code": code }).to_string(),
        });
    }
    let result = |id: &str, text: &str| {
        let mut m = ChatMessage::new(Role::Tool, text);
        m.tool_call_id = Some(id.into());
        m
    };
    let request = ChatRequest {
        model: "claude-test".into(),
        messages: vec![
            ChatMessage::new(Role::System, "you are robit"),
            ChatMessage::new(Role::User, "run 1+1 and 2+2"),
            assistant,
            result("toolu_a", "2"),
            result("toolu_b", "4"),
            ChatMessage::new(Role::User, "and now?"),
        ],
        tools: vec![ToolSpec {
            name: "run_code".into(),
            description: "run code in a sandbox".into(),
            parameters: json!({"type": "object", "properties": {"code": {"type": "string"}}}),
        }],
        max_tokens: None,
    };
    let (events, error) = run(&anthropic(&fake), request).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(text_of(&events), "ok");

    let recorded = fake.message_requests();
    assert_eq!(recorded.len(), 1);
    let sent = &recorded[0];
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.header("x-api-key"), Some("sk-ant-test"));
    assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(sent.header("content-type"), Some("application/json"));
    assert_eq!(sent.header("authorization"), None);
    assert_eq!(
        sent.body,
        json!({
            "model": "claude-test",
            "max_tokens": 4096,
            "system": "you are robit",
            "stream": true,
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "run 1+1 and 2+2"}]},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "running both"},
                    {"type": "tool_use", "id": "toolu_a", "name": "run_code", "input": {"code": "1+1"}},
                    {"type": "tool_use", "id": "toolu_b", "name": "run_code", "input": {"code": "2+2"}},
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_a", "content": "2"},
                    {"type": "tool_result", "tool_use_id": "toolu_b", "content": "4"},
                    {"type": "text", "text": "and now?"},
                ]},
            ],
            "tools": [{
                "name": "run_code",
                "description": "run code in a sandbox",
                "input_schema": {"type": "object", "properties": {"code": {"type": "string"}}},
            }],
        })
    );
    // Roles alternate, starting with the user.
    let roles: Vec<&str> = sent.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant", "user"]);
}

#[tokio::test]
async fn anthropic_probe_lists_models_with_the_key() {
    let fake = FakeAnthropic::with_api_key("sk-ant-test").await;
    let models = anthropic(&fake).probe().await.unwrap();
    assert_eq!(
        models,
        vec![robit_testkit::llm::FAKE_ANTHROPIC_MODEL.to_string()]
    );
    let probe = &fake.requests()[0];
    assert_eq!(
        (probe.method.as_str(), probe.path.as_str()),
        ("GET", "/v1/models")
    );
    let wrong = Anthropic::new(anthropic_config(&fake, Some("nope"))).unwrap();
    assert!(matches!(
        wrong.probe().await,
        Err(LlmError::Auth { status: 401, .. })
    ));
}

#[tokio::test]
async fn anthropic_wrong_key_is_an_auth_error() {
    let fake = FakeAnthropic::with_api_key("sk-ant-right").await;
    fake.push(Reply::text("secret"));
    let wrong = Anthropic::new(anthropic_config(&fake, Some("sk-ant-wrong"))).unwrap();
    let error = wrong
        .stream(ask("hi"), CancellationToken::new())
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&error, LlmError::Auth { status: 401, message } if message == "invalid x-api-key"),
        "{error:?}"
    );
    assert_eq!(fake.pending(), 1);
}

#[tokio::test]
async fn anthropic_429_is_rate_limited_with_retry_after() {
    let fake = FakeAnthropic::start().await;
    fake.push(Reply::status(429).retry_after(12));
    let error = anthropic(&fake)
        .stream(ask("hi"), CancellationToken::new())
        .await
        .err()
        .unwrap();
    assert!(
        matches!(error, LlmError::RateLimited { retry_after: Some(d) } if d == Duration::from_secs(12)),
        "{error:?}"
    );
}

#[tokio::test]
async fn anthropic_529_overloaded_is_a_status_error() {
    let fake = FakeAnthropic::start().await;
    fake.push(Reply::status(529));
    let error = anthropic(&fake)
        .stream(ask("hi"), CancellationToken::new())
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&error, LlmError::Status { status: 529, message } if message == "Overloaded"),
        "{error:?}"
    );
    assert!(error.is_transient());
}

#[tokio::test]
async fn anthropic_error_event_mid_stream_comes_after_the_text() {
    let fake = FakeAnthropic::start().await;
    fake.push(Reply::error_after("partial answer here", "Overloaded"));
    let (events, error) = run(&anthropic(&fake), ask("hi")).await;
    assert_eq!(text_of(&events), "partial answer here");
    assert!(deltas(&events) >= 2);
    assert!(
        matches!(&error, Some(LlmError::Stream(m)) if m == "Overloaded"),
        "{error:?}"
    );
}

#[tokio::test]
async fn anthropic_dropped_connection_is_a_stream_error() {
    let fake = FakeAnthropic::start().await;
    fake.push(Reply::disconnect_after("some words then"));
    let (events, error) = run(&anthropic(&fake), ask("hi")).await;
    assert_eq!(text_of(&events), "some words then");
    assert!(matches!(error, Some(LlmError::Stream(_))), "{error:?}");
}

#[tokio::test]
async fn anthropic_stall_times_out_within_the_idle_timeout() {
    let fake = FakeAnthropic::start().await;
    fake.push(Reply::stall_after("a few words"));
    let stream = anthropic(&fake)
        .stream(ask("hi"), CancellationToken::new())
        .await
        .unwrap();
    let started = Instant::now();
    let (events, error) = collect(stream).await;
    assert_eq!(text_of(&events), "a few words");
    assert!(
        matches!(error, Some(LlmError::Timeout(what)) if what.contains("next")),
        "{error:?}"
    );
    let elapsed = started.elapsed();
    assert!(elapsed >= IDLE, "{elapsed:?}");
    assert!(elapsed < IDLE * 5, "{elapsed:?}");
}

#[tokio::test]
async fn anthropic_no_first_token_times_out() {
    let fake = FakeAnthropic::start().await;
    // message_start and ping arrive, which are not tokens.
    fake.push(Reply::stall_after(""));
    let started = Instant::now();
    let (events, error) = run(&anthropic(&fake), ask("hi")).await;
    assert!(events.is_empty(), "{events:?}");
    assert!(
        matches!(error, Some(LlmError::Timeout(what)) if what.contains("first")),
        "{error:?}"
    );
    assert!(started.elapsed() < FIRST_TOKEN * 5);
}

#[tokio::test]
async fn anthropic_cancellation_stops_the_stream() {
    let fake = FakeAnthropic::start().await;
    fake.push(Reply::text("word ".repeat(100)).delay(Duration::from_millis(20)));
    let cancel = CancellationToken::new();
    let mut stream = anthropic(&fake)
        .stream(ask("hi"), cancel.clone())
        .await
        .unwrap();
    assert!(matches!(
        stream.next().await,
        Some(Ok(StreamEvent::TextDelta(_)))
    ));
    cancel.cancel();
    let started = Instant::now();
    assert!(matches!(
        stream.next().await,
        Some(Err(LlmError::Cancelled))
    ));
    assert!(stream.next().await.is_none());
    assert!(started.elapsed() < Duration::from_millis(100));

    let cancelled = CancellationToken::new();
    cancelled.cancel();
    assert!(matches!(
        anthropic(&fake).stream(ask("hi"), cancelled).await,
        Err(LlmError::Cancelled)
    ));
}
