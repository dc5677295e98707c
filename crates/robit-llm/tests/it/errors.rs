//! Answers that fail, before or during the stream.

use super::*;
use robit_testkit::Reply;

#[tokio::test]
async fn status_429_is_rate_limited_with_retry_after() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::status(429).retry_after(7));
    let error = start(&client(&fake), ask("hi")).await.err().unwrap();
    assert!(
        matches!(error, LlmError::RateLimited { retry_after: Some(d) } if d == Duration::from_secs(7)),
        "{error:?}"
    );
}

#[tokio::test]
async fn status_500_is_a_status_error_with_the_body_message() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::status(500).message("the model is on fire"));
    let error = start(&client(&fake), ask("hi")).await.err().unwrap();
    match error {
        LlmError::Status { status, message } => {
            assert_eq!(status, 500);
            assert_eq!(message, "the model is on fire");
        }
        other => panic!("expected a status error, got {other:?}"),
    }
}

#[tokio::test]
async fn wrong_key_is_an_auth_error_and_keeps_the_script() {
    let fake = FakeLlm::with_api_key("sk-right").await;
    fake.push(Reply::text("secret answer"));
    let wrong = OpenAiCompatible::new(config(&fake, Some("sk-wrong"))).unwrap();
    let error = start(&wrong, ask("hi")).await.err().unwrap();
    assert!(
        matches!(&error, LlmError::Auth { status: 401, message } if message.contains("Incorrect API key")),
        "{error:?}"
    );
    let missing = client(&fake);
    assert!(matches!(
        start(&missing, ask("hi")).await.err().unwrap(),
        LlmError::Auth { status: 401, .. }
    ));
    // A rejected request must not use up the scripted reply.
    assert_eq!(fake.pending(), 1);
    let right = OpenAiCompatible::new(config(&fake, Some("sk-right"))).unwrap();
    let (events, _) = collect(start(&right, ask("hi")).await.unwrap()).await;
    assert_eq!(text_of(&events), "secret answer");
}

#[tokio::test]
async fn error_mid_stream_comes_after_the_first_deltas() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::error_after(
        "partial answer here",
        "the model crashed",
    ));
    let (events, error) = collect(start(&client(&fake), ask("hi")).await.unwrap()).await;
    assert_eq!(text_of(&events), "partial answer here");
    assert!(deltas(&events) >= 2);
    assert!(
        matches!(&error, Some(LlmError::Stream(m)) if m == "the model crashed"),
        "{error:?}"
    );
}

#[tokio::test]
async fn dropped_connection_mid_stream_is_a_stream_error() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::disconnect_after("some words then"));
    let (events, error) = collect(start(&client(&fake), ask("hi")).await.unwrap()).await;
    assert_eq!(text_of(&events), "some words then");
    assert!(matches!(error, Some(LlmError::Stream(_))), "{error:?}");
}

#[tokio::test]
async fn body_ending_without_done_or_finish_reason_is_a_stream_error() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::truncated_after("half an"));
    let (events, error) = collect(start(&client(&fake), ask("hi")).await.unwrap()).await;
    assert_eq!(text_of(&events), "half an");
    assert!(
        matches!(&error, Some(LlmError::Stream(m)) if m == "connection closed before the end of the answer"),
        "{error:?}"
    );
}

#[tokio::test]
async fn nothing_listening_is_a_connect_error() {
    // Bind and drop a listener to find a port that is (almost certainly) closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = config(&FakeLlm::start().await, None);
    config.base_url = format!("http://127.0.0.1:{port}/v1");
    let client = OpenAiCompatible::new(config).unwrap();
    let error = start(&client, ask("hi")).await.err().unwrap();
    assert!(matches!(error, LlmError::Connect(_)), "{error:?}");
}
