//! The Slack emulator on the raw wire: Slack's `{ok}` shapes, token checks, 429s with
//! `Retry-After`, `msg_too_long`, the external upload flow, and signed HTTP event delivery.

use robit_emulators::slack::{
    SlackEmulator, APP_TOKEN, BOT_TOKEN, BOT_USER, GENERAL, SIGNING_SECRET, UPDATE_MAX_CHARS,
};
use serde_json::{json, Value};

async fn call(
    emu: &SlackEmulator,
    method: &str,
    token: Option<&str>,
    body: Value,
) -> (u16, Option<String>, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{}/{method}", emu.api_url()))
        .json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let retry_after = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    (status, retry_after, r.json().await.unwrap())
}

#[tokio::test]
async fn web_api_checks_tokens_and_answers_in_slacks_shapes() {
    let emu = SlackEmulator::start().await;
    let (_, _, none) = call(&emu, "auth.test", None, json!({})).await;
    assert_eq!(none, json!({"ok": false, "error": "not_authed"}));
    let (_, _, wrong) = call(&emu, "auth.test", Some("xoxb-wrong"), json!({})).await;
    assert_eq!(wrong["error"], "invalid_auth");
    // The app token opens sockets; the bot token does not, and vice versa.
    let (_, _, app_on_api) = call(&emu, "chat.postMessage", Some(APP_TOKEN), json!({})).await;
    assert_eq!(app_on_api["error"], "invalid_auth");
    let (_, _, open) = call(&emu, "apps.connections.open", Some(APP_TOKEN), json!({})).await;
    assert!(open["url"].as_str().unwrap().starts_with("ws://127.0.0.1:"));

    let (_, _, me) = call(&emu, "auth.test", Some(BOT_TOKEN), json!({})).await;
    assert_eq!(me["ok"], true);
    assert_eq!(me["user_id"], BOT_USER);

    let (_, _, posted) = call(
        &emu,
        "chat.postMessage",
        Some(BOT_TOKEN),
        json!({"channel": GENERAL, "text": "hi"}),
    )
    .await;
    assert_eq!(posted["ok"], true);
    let ts = posted["ts"].as_str().unwrap().to_string();
    assert_eq!(posted["message"]["ts"], ts.as_str());
    let (_, _, missing) = call(
        &emu,
        "chat.postMessage",
        Some(BOT_TOKEN),
        json!({"channel": "CNOPE", "text": "hi"}),
    )
    .await;
    assert_eq!(missing["error"], "channel_not_found");

    let long = "x".repeat(UPDATE_MAX_CHARS + 1);
    let (_, _, too_long) = call(
        &emu,
        "chat.update",
        Some(BOT_TOKEN),
        json!({"channel": GENERAL, "ts": ts, "text": long}),
    )
    .await;
    assert_eq!(too_long["error"], "msg_too_long");
    let (_, _, updated) = call(
        &emu,
        "chat.update",
        Some(BOT_TOKEN),
        json!({"channel": GENERAL, "ts": ts, "text": "edited"}),
    )
    .await;
    assert_eq!(updated["message"]["text"], "edited");
    assert_eq!(emu.channel_messages(GENERAL)[0].text, "edited");

    // A user's message cannot be edited by the bot.
    let user = emu.user_says(GENERAL, "mine");
    let (_, _, cant) = call(
        &emu,
        "chat.update",
        Some(BOT_TOKEN),
        json!({"channel": GENERAL, "ts": user.ts, "text": "no"}),
    )
    .await;
    assert_eq!(cant["error"], "cant_update_message");
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after_then_recover() {
    let emu = SlackEmulator::start().await;
    emu.rate_limit(Some("chat.postMessage"), 2, 7);
    for _ in 0..2 {
        let (status, after, body) = call(
            &emu,
            "chat.postMessage",
            Some(BOT_TOKEN),
            json!({"channel": GENERAL, "text": "hi"}),
        )
        .await;
        assert_eq!((status, after.as_deref()), (429, Some("7")));
        assert_eq!(body, json!({"ok": false, "error": "ratelimited"}));
    }
    let (status, _, body) = call(
        &emu,
        "chat.postMessage",
        Some(BOT_TOKEN),
        json!({"channel": GENERAL, "text": "hi"}),
    )
    .await;
    assert_eq!((status, body["ok"].clone()), (200, json!(true)));
    assert_eq!(emu.calls().iter().filter(|c| c.status == 429).count(), 2);
}

#[tokio::test]
async fn external_upload_flow_shares_the_file_in_the_thread() {
    let emu = SlackEmulator::start().await;
    let root = emu.user_mentions(GENERAL, "upload?");
    let url = format!(
        "{}/files.getUploadURLExternal?filename=out.txt&length=5",
        emu.api_url()
    );
    let got: Value = reqwest::Client::new()
        .get(url)
        .bearer_auth(BOT_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (upload_url, id) = (
        got["upload_url"].as_str().unwrap(),
        got["file_id"].as_str().unwrap(),
    );
    let r = reqwest::Client::new()
        .post(upload_url)
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, _, done) = call(
        &emu,
        "files.completeUploadExternal",
        Some(BOT_TOKEN),
        json!({
        "files": [{"id": id, "title": "out.txt"}], "channel_id": GENERAL, "thread_ts": root.ts,
        "initial_comment": "output"}),
    )
    .await;
    assert_eq!(done["files"][0]["id"], id);
    let shared = emu.bot_replies(&root.thread());
    assert_eq!(shared.len(), 1);
    assert_eq!(shared[0].files, [id.to_string()]);
    assert_eq!(emu.files()[0].bytes.as_deref(), Some(&b"hello"[..]));
}

#[tokio::test]
async fn http_events_are_signed_and_retried_until_acknowledged() {
    use axum::http::{HeaderMap, StatusCode};
    use std::sync::{Arc, Mutex};
    let seen: Arc<Mutex<Vec<(HeaderMap, String)>>> = Arc::default();
    let record = seen.clone();
    let app = axum::Router::new().route(
        "/events",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let record = record.clone();
            async move {
                let mut r = record.lock().unwrap();
                r.push((headers, body));
                // Fail the first attempt so the emulator retries.
                if r.len() == 1 {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let emu = SlackEmulator::start().await;
    emu.set_events_url(format!("http://{addr}/events"));
    let d = emu.user_dms("hello");
    assert!(
        emu.wait_for(std::time::Duration::from_secs(10), |e| e.acked(&d.event_id))
            .await
    );
    let seen = seen.lock().unwrap();
    let attempts: Vec<_> = seen
        .iter()
        .filter(|(_, b)| b.contains(&d.event_id))
        .collect();
    assert_eq!(attempts.len(), 2);
    let (h, body) = attempts[1];
    assert_eq!(h["x-slack-retry-num"], "1");
    assert_eq!(h["x-slack-retry-reason"], "http_error");
    let ts = h["x-slack-request-timestamp"].to_str().unwrap();
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SIGNING_SECRET.as_bytes()).unwrap();
    mac.update(format!("v0:{ts}:{body}").as_bytes());
    let expected = format!("v0={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(h["x-slack-signature"], expected.as_str());
    let v: Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["event"]["channel_type"], "im");
}

#[tokio::test]
async fn button_clicks_carry_a_trigger_for_one_modal() {
    let emu = SlackEmulator::start().await;
    let blocks = json!([{"type": "actions", "block_id": "b", "elements": [
        {"type": "button", "action_id": "go", "value": "1",
         "text": {"type": "plain_text", "text": "Go"}}]}]);
    let (_, _, posted) = call(
        &emu,
        "chat.postMessage",
        Some(BOT_TOKEN),
        json!({"channel": GENERAL, "text": "pick", "blocks": blocks}),
    )
    .await;
    let ts = posted["ts"].as_str().unwrap().to_string();
    assert!(emu.click_button(GENERAL, &ts, "nope").is_err());
    let click = emu.click_button(GENERAL, &ts, "go").unwrap();
    let trigger = click.event_id.strip_prefix("action:").unwrap().to_string();
    let view =
        json!({"type": "modal", "title": {"type": "plain_text", "text": "Hi"}, "blocks": []});
    let open = json!({"trigger_id": trigger, "view": view});
    let (_, _, opened) = call(&emu, "views.open", Some(BOT_TOKEN), open.clone()).await;
    assert_eq!(opened["ok"], true, "{opened}");
    assert_eq!(opened["view"]["type"], "modal");
    let (_, _, again) = call(&emu, "views.open", Some(BOT_TOKEN), open).await;
    assert_eq!(again["error"], "invalid_trigger_id");
    assert_eq!(emu.views().len(), 1);
    let (_, _, added) = call(
        &emu,
        "reactions.add",
        Some(BOT_TOKEN),
        json!({"channel": GENERAL, "timestamp": ts, "name": ":tada:"}),
    )
    .await;
    assert_eq!(added["ok"], true);
    assert_eq!(emu.message(GENERAL, &ts).unwrap().reactions[0].0, "tada");
}
