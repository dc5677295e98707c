//! What the client sends: the request body and headers, and the model probe.

use super::*;
use robit_llm::{ToolCall, ToolSpec};
use robit_testkit::Reply;
use serde_json::json;

#[tokio::test]
async fn request_body_carries_model_messages_tools_and_stream() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::text("ok"));
    let mut assistant = ChatMessage::new(Role::Assistant, "");
    assistant.tool_calls.push(ToolCall {
        id: "call_9".into(),
        name: "run_code".into(),
        arguments: r#"{"code":"1"}"#.into(),
    });
    let mut tool = ChatMessage::new(Role::Tool, "1");
    tool.tool_call_id = Some("call_9".into());
    let request = ChatRequest {
        model: "gpt-test".into(),
        messages: vec![
            ChatMessage::new(Role::System, "you are robit"),
            ChatMessage::new(Role::User, "run 1"),
            assistant,
            tool,
        ],
        tools: vec![ToolSpec {
            name: "run_code".into(),
            description: "run code in a sandbox".into(),
            parameters: json!({"type": "object", "properties": {"code": {"type": "string"}}}),
        }],
        max_tokens: Some(256),
    };
    let (_, error) = collect(start(&client(&fake), request).await.unwrap()).await;
    assert!(error.is_none());

    let recorded = fake.chat_requests();
    assert_eq!(recorded.len(), 1);
    let r = &recorded[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("authorization"), None);
    assert_eq!(
        r.body,
        json!({
            "model": "gpt-test",
            "stream": true,
            "stream_options": {"include_usage": true},
            "max_tokens": 256,
            "messages": [
                {"role": "system", "content": "you are robit"},
                {"role": "user", "content": "run 1"},
                {"role": "assistant", "content": null, "tool_calls": [{
                    "id": "call_9", "type": "function",
                    "function": {"name": "run_code", "arguments": "{\"code\":\"1\"}"}}]},
                {"role": "tool", "content": "1", "tool_call_id": "call_9"},
            ],
            "tools": [{"type": "function", "function": {
                "name": "run_code",
                "description": "run code in a sandbox",
                "parameters": {"type": "object", "properties": {"code": {"type": "string"}}},
            }}],
        })
    );
}

#[tokio::test]
async fn key_and_extra_headers_are_sent() {
    let fake = FakeLlm::with_api_key("sk-test").await;
    let mut config = config(&fake, Some("sk-test"));
    config.extra_headers = vec![("OpenAI-Organization".into(), "org-robit".into())];
    let client = OpenAiCompatible::new(config).unwrap();
    let (_, error) = collect(start(&client, ask("hi")).await.unwrap()).await;
    assert!(error.is_none(), "{error:?}");
    let r = &fake.requests()[0];
    assert_eq!(r.header("authorization"), Some("Bearer sk-test"));
    assert_eq!(r.header("openai-organization"), Some("org-robit"));
}

#[tokio::test]
async fn probe_lists_models() {
    let fake = FakeLlm::with_api_key("sk-test").await;
    let client = OpenAiCompatible::new(config(&fake, Some("sk-test"))).unwrap();
    assert_eq!(
        client.probe().await.unwrap(),
        vec!["fake-model".to_string()]
    );
    let r = &fake.requests()[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("GET", "/v1/models"));
}

#[tokio::test]
async fn probe_with_a_wrong_key_is_an_auth_error() {
    let fake = FakeLlm::with_api_key("sk-test").await;
    let client = OpenAiCompatible::new(config(&fake, Some("sk-nope"))).unwrap();
    assert!(matches!(
        client.probe().await,
        Err(LlmError::Auth { status: 401, .. })
    ));
}
