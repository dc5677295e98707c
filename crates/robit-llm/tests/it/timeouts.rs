//! Stalls and cancellation: the stream must end promptly, with the right error.

use super::*;
use robit_testkit::Reply;
use std::time::Instant;

#[tokio::test]
async fn stalled_stream_times_out_within_the_idle_timeout() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::stall_after("a few words"));
    let stream = start(&client(&fake), ask("hi")).await.unwrap();
    let started = Instant::now();
    let (events, error) = collect(stream).await;
    assert_eq!(text_of(&events), "a few words");
    assert!(matches!(error, Some(LlmError::Timeout(_))), "{error:?}");
    let elapsed = started.elapsed();
    assert!(elapsed >= IDLE, "{elapsed:?}");
    assert!(elapsed < IDLE * 5, "{elapsed:?}");
}

#[tokio::test]
async fn no_first_token_times_out_with_the_first_token_timeout() {
    let fake = FakeLlm::start().await;
    // Only the role chunk arrives, which is not a token.
    fake.push(Reply::stall_after(""));
    let started = Instant::now();
    let (events, error) = collect(start(&client(&fake), ask("hi")).await.unwrap()).await;
    assert!(events.is_empty(), "{events:?}");
    assert!(
        matches!(error, Some(LlmError::Timeout(what)) if what.contains("first")),
        "{error:?}"
    );
    assert!(started.elapsed() < FIRST_TOKEN * 5);
}

#[tokio::test]
async fn slow_but_steady_stream_does_not_time_out() {
    let fake = FakeLlm::start().await;
    // Each gap is well under the idle timeout, the whole answer well over it.
    fake.push(Reply::text("one two three four five six seven eight").delay(IDLE / 4));
    let (events, error) = collect(start(&client(&fake), ask("hi")).await.unwrap()).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(text_of(&events), "one two three four five six seven eight");
}

#[tokio::test]
async fn cancellation_stops_the_stream() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::text("word ".repeat(100)).delay(Duration::from_millis(20)));
    let cancel = CancellationToken::new();
    let mut stream = client(&fake)
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
}

#[tokio::test]
async fn cancelled_before_the_answer_starts() {
    let fake = FakeLlm::start().await;
    let cancel = CancellationToken::new();
    cancel.cancel();
    let result = client(&fake).stream(ask("hi"), cancel).await;
    assert!(matches!(result, Err(LlmError::Cancelled)));
}
