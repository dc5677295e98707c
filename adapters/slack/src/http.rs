//! The HTTP intake: one axum route that takes Events API callbacks (JSON) and slash commands
//! (form-encoded), both signed by Slack.
//!
//! Every request is verified first (`v0` signature, constant-time, five-minute window);
//! anything unsigned, wrongly signed or stale gets 401 and is not looked at further. The
//! answer goes out as soon as the event is durable (`Engine::submit` returned); the turn runs
//! in the background, so the 3-second ack rule holds whatever the model does. An event that
//! could not be stored gets 500, so Slack retries it; duplicates (Slack's retries, carrying
//! `X-Slack-Retry-Num`) are acknowledged and dropped by the engine's dedup.

use crate::intake::{CommandAck, Intake};
use crate::signature::{self, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use secrecy::{ExposeSecret, SecretString};
use slack_morphism::prelude::*;
use std::sync::Arc;

pub(crate) struct HttpState {
    pub intake: Arc<Intake>,
    pub signing_secret: SecretString,
}

pub(crate) fn router(state: Arc<HttpState>, path: &str) -> Router {
    Router::new()
        .route(path, post(handle))
        // Explicit rather than axum's 2 MB default; the same cap as Discord's interactions.
        .layer(axum::extract::DefaultBodyLimit::max(
            robit_core::MAX_WEBHOOK_BODY_BYTES,
        ))
        .with_state(state)
}

async fn handle(State(st): State<Arc<HttpState>>, headers: HeaderMap, body: Bytes) -> Response {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Err(e) = signature::verify(
        st.signing_secret.expose_secret().as_bytes(),
        get(SIGNATURE_HEADER),
        get(TIMESTAMP_HEADER),
        &body,
        signature::unix_now(),
    ) {
        tracing::warn!(error = %e, "slack request refused");
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if let Some(retry) = get("x-slack-retry-num") {
        tracing::debug!(retry, reason = get("x-slack-retry-reason"), "slack retry");
    }
    let is_form = get(header::CONTENT_TYPE.as_str())
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    if is_form {
        command(&st, &body).await
    } else {
        event(&st, &body).await
    }
}

async fn event(st: &HttpState, body: &[u8]) -> Response {
    let ev: SlackPushEvent = match serde_json::from_slice(body) {
        Ok(ev) => ev,
        Err(e) => {
            tracing::warn!(error = %e, "unreadable slack event");
            return StatusCode::BAD_REQUEST.into_response();
        }
    };
    match ev {
        SlackPushEvent::UrlVerification(v) => {
            ([(header::CONTENT_TYPE, "text/plain")], v.challenge).into_response()
        }
        SlackPushEvent::EventCallback(cb) => match st.intake.push_event(cb).await {
            Ok(()) => StatusCode::OK.into_response(),
            Err(e) => {
                tracing::error!(error = %e, "slack event not accepted; slack will retry");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        },
        SlackPushEvent::AppRateLimited(r) => {
            tracing::warn!(
                team = r.team_id,
                "slack is dropping our events: app rate limited"
            );
            StatusCode::OK.into_response()
        }
    }
}

async fn command(st: &HttpState, body: &[u8]) -> Response {
    // Interactive payloads (buttons, modals) come form-encoded as `payload=<json>`; robit's
    // are the clicks on an answer's buttons (`block_actions`); others are acknowledged and
    // dropped.
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(body).unwrap_or_default();
    if let Some((_, payload)) = form.iter().find(|(k, _)| k == "payload") {
        return match serde_json::from_str::<SlackInteractionEvent>(payload) {
            Ok(SlackInteractionEvent::BlockActions(ev)) => {
                match st.intake.block_actions(ev).await {
                    Ok(()) => StatusCode::OK.into_response(),
                    Err(e) => {
                        tracing::error!(error = %e, "slack button click not handled");
                        StatusCode::INTERNAL_SERVER_ERROR.into_response()
                    }
                }
            }
            Ok(_) => StatusCode::OK.into_response(),
            Err(e) => {
                tracing::warn!(error = %e, "unreadable slack interactive payload");
                StatusCode::BAD_REQUEST.into_response()
            }
        };
    }
    let cmd: SlackCommandEvent = match serde_urlencoded::from_bytes(body) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "unreadable slash command");
            return StatusCode::BAD_REQUEST.into_response();
        }
    };
    match st.intake.command(cmd).await {
        Ok(CommandAck::Empty) => StatusCode::OK.into_response(),
        Ok(CommandAck::Ephemeral(text)) => Json(serde_json::json!({
            "response_type": "ephemeral",
            "text": text,
        }))
        .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "slash command not accepted");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
