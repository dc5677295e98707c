//! The second intake: slash commands as signed HTTP POSTs (an Interactions Endpoint URL)
//! instead of gateway events, behind a small HTTP server as the binary would mount it.

use crate::support::{config, engine, WAIT};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use robit_discord::{DiscordConfig, HttpInteractions};
use robit_emulators::discord::DiscordEmulator;
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
