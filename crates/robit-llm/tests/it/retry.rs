//! `Retrying`: transient failures before the answer starts are retried, within the policy's
//! attempts and waits; nothing is retried once the answer has started.

use super::*;
use robit_llm::{Anthropic, AnthropicConfig, RetryPolicy, Retrying};
use robit_testkit::{FakeAnthropic, Reply};
use std::sync::Arc;
use std::time::Instant;

/// Short waits so the suite stays fast; `max_retry_after` is what keeps a 1 s (or longer)
/// `Retry-After` from slowing it down.
fn fast() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
        max_retry_after: Duration::from_millis(50),
    }
}

fn retrying(fake: &FakeLlm, policy: RetryPolicy) -> Retrying<OpenAiCompatible> {
    Retrying::new(client(fake), policy)
}

#[tokio::test]
async fn rate_limited_then_success_gives_one_answer_after_two_requests() {
    let fake = FakeLlm::start().await;
    fake.push_all([Reply::status(429).retry_after(1), Reply::text("finally")]);
    let started = Instant::now();
    let stream = retrying(&fake, fast())
        .stream(ask("hi"), CancellationToken::new())
        .await
        .unwrap();
    let (events, error) = collect(stream).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(text_of(&events), "finally");
    assert_eq!(fake.chat_requests().len(), 2);
    // The 1 s Retry-After was capped at 50 ms.
    assert!(started.elapsed() < Duration::from_millis(900));
}

#[tokio::test]
async fn server_errors_are_retried_until_success() {
    let fake = FakeLlm::start().await;
    fake.push_all([
        Reply::status(500),
        Reply::status(500),
        Reply::text("third time lucky"),
    ]);
    let stream = retrying(&fake, fast())
        .stream(ask("hi"), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(text_of(&collect(stream).await.0), "third time lucky");
    assert_eq!(fake.chat_requests().len(), 3);
}

#[tokio::test]
async fn gives_up_after_max_attempts_with_the_last_error() {
    let fake = FakeLlm::start().await;
    fake.push_all([
        Reply::status(500).message("first"),
        Reply::status(502).message("second"),
        Reply::status(503).message("third"),
        Reply::text("never reached"),
    ]);
    let error = retrying(&fake, fast())
        .stream(ask("hi"), CancellationToken::new())
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&error, LlmError::Status { status: 503, message } if message == "third"),
        "{error:?}"
    );
    assert_eq!(fake.chat_requests().len(), 3);
    assert_eq!(fake.pending(), 1);
}

#[tokio::test]
async fn never_retries_once_the_answer_has_started() {
    let fake = FakeLlm::start().await;
    fake.push_all([
        Reply::error_after("half an answer", "the model crashed"),
        Reply::text("a second answer"),
    ]);
    let stream = retrying(&fake, fast())
        .stream(ask("hi"), CancellationToken::new())
        .await
        .unwrap();
    let (events, error) = collect(stream).await;
    assert_eq!(text_of(&events), "half an answer");
    assert!(matches!(error, Some(LlmError::Stream(_))), "{error:?}");
    assert_eq!(fake.chat_requests().len(), 1);
}

#[tokio::test]
async fn auth_and_client_errors_are_not_retried() {
    let fake = FakeLlm::start().await;
    fake.push_all([Reply::status(401), Reply::status(400), Reply::text("x")]);
    let provider = retrying(&fake, fast());
    let first = provider.stream(ask("hi"), CancellationToken::new()).await;
    assert!(matches!(first, Err(LlmError::Auth { status: 401, .. })));
    let second = provider.stream(ask("hi"), CancellationToken::new()).await;
    assert!(matches!(second, Err(LlmError::Status { status: 400, .. })));
    assert_eq!(fake.chat_requests().len(), 2);
}

#[tokio::test]
async fn anthropic_overloaded_529_is_retried() {
    let fake = FakeAnthropic::start().await;
    fake.push_all([Reply::status(529), Reply::text("served")]);
    let client = Anthropic::new(AnthropicConfig {
        base_url: fake.base_url(),
        ..AnthropicConfig::default()
    })
    .unwrap();
    // A shared provider can be wrapped as well as a concrete one.
    let shared: Arc<dyn Provider> = Arc::new(client);
    let provider = Retrying::new(shared, fast());
    assert_eq!(provider.name(), "anthropic");
    let stream = provider
        .stream(ask("hi"), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(text_of(&collect(stream).await.0), "served");
    assert_eq!(fake.message_requests().len(), 2);
}

#[tokio::test]
async fn cancellation_during_a_backoff_wait_returns_cancelled() {
    let fake = FakeLlm::start().await;
    fake.push_all([Reply::status(429).retry_after(10), Reply::text("too late")]);
    let policy = RetryPolicy {
        max_retry_after: Duration::from_secs(30),
        ..fast()
    };
    let cancel = CancellationToken::new();
    let canceller = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            cancel.cancel();
        })
    };
    let started = Instant::now();
    let result = retrying(&fake, policy).stream(ask("hi"), cancel).await;
    assert!(matches!(result, Err(LlmError::Cancelled)));
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(fake.chat_requests().len(), 1);
    canceller.await.unwrap();
}

#[tokio::test]
async fn unreachable_provider_is_retried_then_reported_as_connect() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = config(&FakeLlm::start().await, None);
    config.base_url = format!("http://127.0.0.1:{port}/v1");
    let provider = Retrying::new(OpenAiCompatible::new(config).unwrap(), fast());
    let started = Instant::now();
    let error = provider
        .stream(ask("hi"), CancellationToken::new())
        .await
        .err()
        .unwrap();
    assert!(matches!(error, LlmError::Connect(_)), "{error:?}");
    // Two waits of at most `max_backoff` each.
    assert!(started.elapsed() >= Duration::from_millis(20));
}
