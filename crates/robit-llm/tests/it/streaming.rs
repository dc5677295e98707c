//! Answers that succeed: text, tool calls, usage, the end.

use super::*;
use robit_llm::{ToolCall, Usage};
use robit_testkit::Reply;

#[tokio::test]
async fn streamed_text_arrives_in_several_deltas_and_concatenates_exactly() {
    let fake = FakeLlm::start().await;
    let answer = "Hello there,  this is\na streamed answer ✓ ";
    fake.push(Reply::text(answer).chunk_chars(5));
    let (events, error) = collect(start(&client(&fake), ask("hi")).await.unwrap()).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(text_of(&events), answer);
    assert!(deltas(&events) > 3, "{events:?}");
    assert_eq!(
        events.last(),
        Some(&StreamEvent::Done {
            reason: "stop".into()
        })
    );
}

#[tokio::test]
async fn empty_script_echoes_the_last_user_message() {
    let fake = FakeLlm::start().await;
    let (events, error) = collect(start(&client(&fake), ask("ping pong")).await.unwrap()).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(text_of(&events), "echo: ping pong");
    assert_eq!(deltas(&events), 3);
}

#[tokio::test]
async fn usage_is_reported_before_done() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::text("a b c").usage(11, 3));
    let (events, _) = collect(start(&client(&fake), ask("hi")).await.unwrap()).await;
    let n = events.len();
    assert_eq!(
        events[n - 2],
        StreamEvent::Usage(Usage {
            prompt_tokens: 11,
            completion_tokens: 3
        })
    );
    assert!(matches!(events[n - 1], StreamEvent::Done { .. }));
}

#[tokio::test]
async fn tool_call_split_across_chunks_is_assembled() {
    let fake = FakeLlm::start().await;
    let arguments = r#"{"language":"python","code":"print(sum(range(10)))"}"#;
    fake.push(
        Reply::tool_call("run_code", arguments)
            .with_text("Let me run that.")
            .delay(Duration::from_millis(2)),
    );
    let (events, error) = collect(start(&client(&fake), ask("sum")).await.unwrap()).await;
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
            id: "call_1_0".into(),
            name: "run_code".into(),
            arguments: arguments.into(),
        }]
    );
    // The call comes before usage and the end.
    let position = |f: fn(&StreamEvent) -> bool| events.iter().position(f).unwrap();
    assert!(
        position(|e| matches!(e, StreamEvent::ToolCall(_)))
            < position(|e| matches!(e, StreamEvent::Usage(_)))
    );
    assert_eq!(
        events.last(),
        Some(&StreamEvent::Done {
            reason: "tool_calls".into()
        })
    );
}

#[tokio::test]
async fn several_tool_calls_keep_their_order() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::tool_calls([
        ("a", r#"{"n":1}"#),
        ("b", r#"{"n":2, "long":"argument text"}"#),
    ]));
    let (events, _) = collect(start(&client(&fake), ask("x")).await.unwrap()).await;
    let calls: Vec<(String, String)> = events
        .into_iter()
        .filter_map(|e| match e {
            StreamEvent::ToolCall(c) => Some((c.name, c.arguments)),
            _ => None,
        })
        .collect();
    assert_eq!(
        calls,
        vec![
            ("a".into(), r#"{"n":1}"#.into()),
            ("b".into(), r#"{"n":2, "long":"argument text"}"#.into())
        ]
    );
}

#[tokio::test]
async fn finish_reason_length_is_passed_through() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::text("cut").finish_reason("length"));
    let (events, _) = collect(start(&client(&fake), ask("x")).await.unwrap()).await;
    assert_eq!(
        events.last(),
        Some(&StreamEvent::Done {
            reason: "length".into()
        })
    );
}
