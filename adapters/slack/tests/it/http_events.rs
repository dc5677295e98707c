//! The HTTP Events API intake: signed deliveries, URL verification, refusals.

use super::support::{config, expect_reply, serve_events, Setup};
use robit_emulators::slack::{SlackEmulator, BOT_USER, GENERAL, SIGNING_SECRET, TEAM_ID};
use robit_slack::signature::sign;
use robit_testkit::Reply;
use serde_json::json;
use std::time::Duration;

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn mention_body(event_id: &str) -> String {
    json!({
        "token": "x", "team_id": TEAM_ID, "api_app_id": "A1", "type": "event_callback",
        "event_id": event_id, "event_time": 1_700_000_001,
        "authorizations": [{"team_id": TEAM_ID, "user_id": BOT_USER, "is_bot": true}],
        "event": {"type": "app_mention", "user": "U2", "text": format!("<@{BOT_USER}> hi"),
                  "ts": "1700000001.000001", "channel": GENERAL, "event_ts": "1700000001.000001"}
    })
    .to_string()
}

async fn post(url: &str, body: &str, secret: &str, ts: i64) -> reqwest::Response {
    let ts = ts.to_string();
    reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("x-slack-request-timestamp", &ts)
        .header(
            "x-slack-signature",
            sign(secret.as_bytes(), &ts, body.as_bytes()),
        )
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn mention_over_http_gets_a_threaded_reply_and_follow_ups_continue() {
    let s = Setup::http().await;
    s.llm
        .push(Reply::text("first **answer**").delay(Duration::from_millis(20)));
    let d = s.emulator.user_mentions(GENERAL, "hello over http");
    let thread = d.thread();
    expect_reply(&s.emulator, &thread, "first *answer*").await;
    s.emulator.user_replies(&thread, "and more");
    expect_reply(&s.emulator, &thread, "first *answer*\necho: and more").await;
    assert!(s.emulator.acked(&d.event_id));
}

#[tokio::test]
async fn url_verification_is_answered_with_the_challenge() {
    let s = Setup::new(Default::default(), None).await;
    let url = serve_events(s.engine.clone(), config(&s.emulator)).await;
    let body = json!({"token": "x", "challenge": "c-123", "type": "url_verification"}).to_string();
    let r = post(&url, &body, SIGNING_SECRET, unix_now()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "c-123");
}

#[tokio::test]
async fn bad_signature_and_stale_timestamp_are_refused_and_nothing_is_processed() {
    let s = Setup::new(Default::default(), None).await;
    let emulator: &SlackEmulator = &s.emulator;
    let url = serve_events(s.engine.clone(), config(emulator)).await;
    let body = mention_body("EvForged");

    let wrong_secret = post(&url, &body, "not-the-secret", unix_now()).await;
    assert_eq!(wrong_secret.status(), 401);
    let stale = post(&url, &body, SIGNING_SECRET, unix_now() - 6 * 60).await;
    assert_eq!(stale.status(), 401);
    let future = post(&url, &body, SIGNING_SECRET, unix_now() + 6 * 60).await;
    assert_eq!(future.status(), 401);
    let unsigned = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);
    // A signature over a different body does not carry over.
    let ts = unix_now().to_string();
    let tampered = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .header("x-slack-request-timestamp", &ts)
        .header(
            "x-slack-signature",
            sign(SIGNING_SECRET.as_bytes(), &ts, b"{}"),
        )
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(tampered.status(), 401);

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(s.llm.chat_requests().is_empty());
    // Only the start-up auth.test (the bot's identity, learnt off the ack path) reached Slack.
    let calls: Vec<_> = emulator
        .calls()
        .into_iter()
        .filter(|c| c.method != "auth.test")
        .collect();
    assert!(calls.is_empty(), "{calls:?}");

    // The same event, properly signed, is accepted once: the refusals stored nothing.
    let ok = post(&url, &body, SIGNING_SECRET, unix_now()).await;
    assert_eq!(ok.status(), 200);
}
