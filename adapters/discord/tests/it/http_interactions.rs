//! The second intake: slash commands and button clicks as signed HTTP POSTs (an Interactions
//! Endpoint URL) instead of gateway events, behind a small HTTP server as the binary would
//! mount it.

use crate::support::{config, engine, Bot, WAIT};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use robit_discord::{DiscordConfig, HttpInteractions};
use robit_emulators::discord::DiscordEmulator;
use robit_testkit::llm::Reply;
use std::sync::Arc;

async fn interactions(
    State(endpoint): State<Arc<HttpInteractions>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let h = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let reply = endpoint
        .handle(
            &h("x-signature-ed25519"),
            &h("x-signature-timestamp"),
            &body,
        )
        .await;
    let status = StatusCode::from_u16(reply.status).unwrap();
    match reply.body {
        Some(b) => (status, [(header::CONTENT_TYPE, "application/json")], b).into_response(),
        None => status.into_response(),
    }
}

/// Serves `endpoint` on a loopback port; returns its URL.
async fn serve(endpoint: HttpInteractions) -> String {
    let app = axum::Router::new()
        .route("/interactions", post(interactions))
        .with_state(Arc::new(endpoint));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/interactions", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stop_click_over_http_is_acknowledged_with_a_deferred_update_and_stops_the_answer() {
    let emu = DiscordEmulator::start().await;
    let bot = Bot::start(&emu, config(&emu)).await;
    bot.llm.push(Reply::stall_after("Thinking it over"));
    // Messages come over the gateway; with an endpoint saved, interactions come over HTTP.
    let endpoint = HttpInteractions::new(
        bot.engine.clone(),
        &DiscordConfig {
            public_key: Some(emu.public_key()),
            ..config(&emu)
        },
    )
    .unwrap();
    emu.set_interactions_endpoint(&serve(endpoint).await)
        .await
        .unwrap();
    let dm = emu.dm_channel(emu.user_id());
    emu.user_says(dm, "a long question");
    let (message, stop) = emu
        .wait_for("a Stop button", WAIT, |e| {
            let m = e.bot_messages(dm).into_iter().last()?;
            let ids = serde_json::to_string(&m.components).ok()?;
            let at = ids.find("robit:stop:")?;
            let id: String = ids[at..].chars().take_while(|c| *c != '"').collect();
            Some((m.id, id))
        })
        .await;
    let click = emu.click(message, &stop).unwrap();
    emu.wait_for("the answer stopped", WAIT, |e| {
        e.message(message)
            .filter(|m| m.content.contains("Stopped by"))
            .map(|_| ())
    })
    .await;
    assert_eq!(
        emu.interaction(click.id).unwrap().response_type,
        Some(6),
        "a deferred update"
    );
    let delivery = emu
        .deliveries()
        .into_iter()
        .find(|d| d.interaction_id == Some(click.id))
        .unwrap();
    assert_eq!(delivery.status, 202, "acknowledged through the callback");
    let shown = emu.message(message).unwrap();
    assert!(shown.content.starts_with("Thinking it over"), "{shown:?}");
    let buttons = serde_json::to_string(&shown.components).unwrap();
    assert!(
        !buttons.contains("robit:stop:") && buttons.contains("robit:up:"),
        "{buttons}"
    );
    bot.stop().await;
}

#[tokio::test]
async fn http_interactions_are_verified_then_deferred_and_answered() {
    let emu = DiscordEmulator::start().await;
    let (engine, llm, _dir) = engine(None).await;
    let endpoint = HttpInteractions::new(
        engine,
        &DiscordConfig {
            public_key: Some(emu.public_key()),
            ..config(&emu)
        },
    )
    .unwrap();
    let app = axum::Router::new()
        .route("/interactions", post(interactions))
        .with_state(Arc::new(endpoint));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/interactions", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    // Saving the URL makes Discord check PING → PONG and bad signature → 401.
    emu.set_interactions_endpoint(&url).await.unwrap();
    let checks: Vec<u16> = emu.deliveries().iter().map(|d| d.status).collect();
    assert_eq!(checks, [200, 401]);

    let cmd = emu.slash_command(emu.channel_id(), "ask", &[("prompt", "over http")]);
    emu.wait_for("the answer", WAIT, |e| {
        e.interaction_messages(cmd.id)
            .first()
            .filter(|m| m.content == "echo: over http")
            .map(|_| ())
    })
    .await;
    assert_eq!(emu.interaction(cmd.id).unwrap().response_type, Some(5));
    let delivery = emu
        .deliveries()
        .into_iter()
        .find(|d| d.interaction_id == Some(cmd.id))
        .unwrap();
    assert_eq!(
        delivery.status, 202,
        "answered through the callback, no body"
    );
    assert!(emu.sessions().is_empty(), "no gateway involved");
    assert_eq!(llm.chat_requests().len(), 1);
}

#[tokio::test]
async fn a_malformed_public_key_is_a_configuration_error() {
    let emu = DiscordEmulator::start().await;
    let (engine, _llm, _dir) = engine(None).await;
    let err = HttpInteractions::new(
        engine,
        &DiscordConfig {
            public_key: Some("not hex".into()),
            ..config(&emu)
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("public_key"), "{err}");
}

#[tokio::test]
async fn forged_stale_and_oversized_interactions_are_refused() {
    use ed25519_dalek::{Signer, SigningKey};
    let emu = DiscordEmulator::start().await;
    let (engine, llm, _dir) = engine(None).await;
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let endpoint = HttpInteractions::new(
        engine,
        &DiscordConfig {
            public_key: Some(hex::encode(key.verifying_key().to_bytes())),
            ..config(&emu)
        },
    )
    .unwrap();
    let sign = |key: &SigningKey, ts: &str, body: &[u8]| {
        hex::encode(key.sign(&[ts.as_bytes(), body].concat()).to_bytes())
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let ping = br#"{"id":"1","application_id":"333","type":1,"token":"t","version":1}"#;

    // Fresh and correctly signed: answered.
    let ts = now.to_string();
    let ok = endpoint.handle(&sign(&key, &ts, ping), &ts, ping).await;
    assert_eq!(ok.status, 200, "{ok:?}");

    // Signed by another key: forged.
    let other = SigningKey::from_bytes(&[8u8; 32]);
    let forged = endpoint.handle(&sign(&other, &ts, ping), &ts, ping).await;
    assert_eq!(forged.status, 401);

    // Correctly signed, but the timestamp is out of the window either way: a replay.
    for skew in [
        -(robit_discord::MAX_AGE_SECS + 1),
        robit_discord::MAX_AGE_SECS + 1,
    ] {
        let ts = (now + skew).to_string();
        let stale = endpoint.handle(&sign(&key, &ts, ping), &ts, ping).await;
        assert_eq!(stale.status, 401, "skew {skew}: {stale:?}");
        assert!(stale.body.unwrap().contains("stale"));
    }
    let garbled = endpoint
        .handle(&sign(&key, "soon", ping), "soon", ping)
        .await;
    assert_eq!(garbled.status, 401);

    // Over the webhook body cap: refused even though correctly signed.
    let mut big = ping.to_vec();
    big.resize(robit_core::MAX_WEBHOOK_BODY_BYTES + 1, b' ');
    let oversized = endpoint.handle(&sign(&key, &ts, &big), &ts, &big).await;
    assert_eq!(oversized.status, 413);

    assert!(llm.chat_requests().is_empty());
}
