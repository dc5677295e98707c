//! The emulator's small HTTP control API under `/_emulator`, for driving the standalone binary
//! by hand or from another language: post a user message, send a slash command, inject a
//! fault, drop the gateway, and read back what the bot did.
//!
//! It is not part of Discord's API and lives outside `/api/v10`, so a client pointed at the
//! emulator can never hit it by accident. Ids are strings, as in Discord's JSON.

use super::payloads;
use super::routes;
use super::server::Shared;
use super::state::{Fault, Outbound};
use axum::extract::{Path, State as AxumState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/info", get(info))
        .route("/messages", post(user_message))
        .route("/commands", post(command))
        .route("/faults", post(fault))
        .route("/gateway/drop", post(drop_gateway))
        .route("/channels/{id}/messages", get(channel_messages))
        .route("/requests", get(requests))
}

fn id(v: &Option<String>) -> Option<u64> {
    v.as_deref().and_then(|s| s.parse().ok())
}

async fn info(AxumState(shared): AxumState<Arc<Shared>>) -> Json<Value> {
    let st = shared.lock();
    let (guild, channel, user) = shared.defaults;
    Json(json!({
        "base_url": st.base_url,
        "token": st.config.token,
        "application_id": st.application_id.to_string(),
        "bot_id": st.bot_id.to_string(),
        "guild_id": guild.to_string(),
        "channel_id": channel.to_string(),
        "user_id": user.to_string(),
    }))
}

#[derive(Deserialize)]
struct UserMessage {
    channel_id: Option<String>,
    author_id: Option<String>,
    content: String,
}

async fn user_message(
    AxumState(shared): AxumState<Arc<Shared>>,
    Json(body): Json<UserMessage>,
) -> Response {
    let (_, channel, user) = shared.defaults;
    let channel = id(&body.channel_id).unwrap_or(channel);
    let author = id(&body.author_id).unwrap_or(user);
    let mut st = shared.lock();
    if !st.channels.contains_key(&channel) || !st.users.contains_key(&author) {
        return (StatusCode::NOT_FOUND, "unknown channel or author").into_response();
    }
    let mid = st.create_message(channel, author, &body.content, true);
    super::gateway::dispatch_message(&mut st, mid, "MESSAGE_CREATE");
    Json(json!({"id": mid.to_string()})).into_response()
}

#[derive(Deserialize)]
struct SlashCommand {
    channel_id: Option<String>,
    user_id: Option<String>,
    name: String,
    #[serde(default)]
    options: serde_json::Map<String, Value>,
}

async fn command(
    AxumState(shared): AxumState<Arc<Shared>>,
    Json(body): Json<SlashCommand>,
) -> Response {
    let (_, channel, user) = shared.defaults;
    let channel = id(&body.channel_id).unwrap_or(channel);
    let user = id(&body.user_id).unwrap_or(user);
    let options: Vec<(String, String)> = body
        .options
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_str().map_or_else(|| v.to_string(), str::to_string),
            )
        })
        .collect();
    let mut st = shared.lock();
    let Some(guild) = st.channels.get(&channel).map(|c| c.guild_id) else {
        return (StatusCode::NOT_FOUND, "unknown channel").into_response();
    };
    let (iid, token, payload) =
        routes::new_interaction(&mut st, guild, channel, user, &body.name, &options);
    if let Some(url) = st.interactions_url.clone() {
        drop(st);
        tokio::spawn(super::delivery::deliver(
            shared.clone(),
            url,
            Some(iid),
            payload.to_string(),
            true,
        ));
    }
    Json(json!({"id": iid.to_string(), "token": token})).into_response()
}

#[derive(Deserialize)]
struct FaultBody {
    #[serde(default)]
    method: String,
    path_prefix: String,
    count: u32,
    /// `rate_limit`, `status` or `delay`.
    kind: String,
    retry_after_ms: Option<u64>,
    status: Option<u16>,
    delay_ms: Option<u64>,
}

async fn fault(AxumState(shared): AxumState<Arc<Shared>>, Json(b): Json<FaultBody>) -> Response {
    let ms = |v: Option<u64>| Duration::from_millis(v.unwrap_or(1000));
    let fault = match b.kind.as_str() {
        "rate_limit" => Fault::rate_limit(&b.method, &b.path_prefix, b.count, ms(b.retry_after_ms)),
        "status" => Fault::status(&b.method, &b.path_prefix, b.count, b.status.unwrap_or(500)),
        "delay" => Fault::delay(&b.method, &b.path_prefix, b.count, ms(b.delay_ms)),
        _ => return (StatusCode::BAD_REQUEST, "kind: rate_limit, status or delay").into_response(),
    };
    shared.lock().faults.push(fault);
    StatusCode::NO_CONTENT.into_response()
}

async fn drop_gateway(AxumState(shared): AxumState<Arc<Shared>>) -> StatusCode {
    super::gateway::broadcast(&shared, || Outbound::Drop);
    StatusCode::NO_CONTENT
}

async fn channel_messages(
    AxumState(shared): AxumState<Arc<Shared>>,
    Path(channel): Path<u64>,
) -> Response {
    let st = shared.lock();
    let Some(c) = st.channels.get(&channel) else {
        return (StatusCode::NOT_FOUND, "unknown channel").into_response();
    };
    let list: Vec<Value> = c
        .messages
        .iter()
        .filter_map(|m| st.messages.get(m))
        .map(|m| payloads::message(&st, m, false))
        .collect();
    Json(json!(list)).into_response()
}

async fn requests(AxumState(shared): AxumState<Arc<Shared>>) -> Json<Value> {
    let st = shared.lock();
    let list: Vec<Value> = st
        .requests
        .iter()
        .map(|r| json!({"method": r.method, "path": r.path, "status": r.status, "body": r.body}))
        .collect();
    Json(json!(list))
}
