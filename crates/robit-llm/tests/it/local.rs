//! `probe_local_in`: finding an OpenAI-compatible server on loopback.

use super::*;
use robit_llm::{probe_local_in, LocalServer};
use std::time::Instant;

fn closed_port() -> u16 {
    // Bind and drop a listener to find a port that is (almost certainly) closed.
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn probe_local_finds_a_fake_llm_and_skips_a_closed_port() {
    let fake = FakeLlm::start().await;
    let closed = format!("http://127.0.0.1:{}/v1", closed_port());
    let open = fake.base_url();
    let candidates = [("closed", closed.as_str()), ("fake", open.as_str())];
    let found = probe_local_in(&candidates, Duration::from_millis(500)).await;
    assert_eq!(
        found,
        Some(LocalServer {
            name: "fake".into(),
            base_url: fake.base_url(),
            models: vec![robit_testkit::llm::FAKE_MODEL.to_string()],
        })
    );
}

#[tokio::test]
async fn probe_local_prefers_the_first_candidate_that_answers() {
    let first = FakeLlm::start().await;
    let second = FakeLlm::start().await;
    let candidates = [
        ("first".to_string(), first.base_url()),
        ("second".to_string(), second.base_url()),
    ];
    let found = probe_local_in(&candidates, Duration::from_millis(500))
        .await
        .unwrap();
    assert_eq!(found.name, "first");
}

#[tokio::test]
async fn probe_local_is_none_when_nothing_answers_and_is_bounded() {
    let candidates = [
        ("a", format!("http://127.0.0.1:{}/v1", closed_port())),
        ("b", format!("http://127.0.0.1:{}/v1", closed_port())),
    ];
    let started = Instant::now();
    assert_eq!(
        probe_local_in(&candidates, Duration::from_millis(300)).await,
        None
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}
