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
        .route("/gateway/reconnect", post(reconnect_gateway))
        .route("/gateway/invalidate", post(invalidate_gateway))
        .route("/gateway", get(gateway_info))
        .route("/components", post(component))
        .route("/reactions", post(reaction))
        .route("/channels/{id}/messages", get(channel_messages))
        .route("/channels/{id}/typing", get(typing))
        .route("/channels/{id}/pins", get(pins))
        .route("/channels/{id}/threads", get(threads))
        .route("/messages/{id}", get(message))
        .route("/messages/{id}/edit", post(edit_message))
        .route("/interactions/{id}", get(interaction))
        .route("/requests", get(requests))
}

fn id(v: &Option<String>) -> Option<u64> {
    v.as_deref().and_then(|s| s.parse().ok())
}

async fn info(AxumState(shared): AxumState<Arc<Shared>>) -> Json<Value> {
    let mut st = shared.lock();
    let (guild, channel, user) = shared.defaults;
    let dm = st.dm_channel(user);
    Json(json!({
        "base_url": st.base_url,
        "token": st.config.token,
        "application_id": st.application_id.to_string(),
        "bot_id": st.bot_id.to_string(),
        "guild_id": guild.to_string(),
        "channel_id": channel.to_string(),
        "user_id": user.to_string(),
        "dm_channel_id": dm.to_string(),
    }))
}

#[derive(Deserialize)]
struct UserMessage {
    channel_id: Option<String>,
    author_id: Option<String>,
    content: String,
    /// Reply to this message (`message_reference`).
    reply_to: Option<String>,
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
    let reply_to = id(&body.reply_to);
    if reply_to.is_some_and(|r| st.messages.get(&r).is_none_or(|m| m.channel_id != channel)) {
        return (StatusCode::NOT_FOUND, "unknown message to reply to").into_response();
    }
    let mid = st.create_message(channel, author, &body.content, true);
    if let Some(m) = st.messages.get_mut(&mid) {
        m.reference = reply_to;
    }
    super::gateway::dispatch_message(&mut st, mid, "MESSAGE_CREATE");
    Json(json!({"id": mid.to_string()})).into_response()
}

#[derive(Deserialize)]
struct EditBody {
    content: String,
}

/// The user edits their message: MESSAGE_UPDATE with the new content.
async fn edit_message(
    AxumState(shared): AxumState<Arc<Shared>>,
    Path(mid): Path<u64>,
    Json(body): Json<EditBody>,
) -> Response {
    match super::server::edit_user_message(&shared, mid, &body.content) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => (StatusCode::NOT_FOUND, e).into_response(),
    }
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
        "global_rate_limit" => {
            Fault::global_rate_limit(&b.method, &b.path_prefix, b.count, ms(b.retry_after_ms))
        }
        "status" => Fault::status(&b.method, &b.path_prefix, b.count, b.status.unwrap_or(500)),
        "delay" => Fault::delay(&b.method, &b.path_prefix, b.count, ms(b.delay_ms)),
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                "kind: rate_limit, global_rate_limit, status or delay",
            )
                .into_response()
        }
    };
    shared.lock().faults.push(fault);
    StatusCode::NO_CONTENT.into_response()
}

async fn drop_gateway(AxumState(shared): AxumState<Arc<Shared>>) -> StatusCode {
    super::gateway::broadcast(&shared, || Outbound::Drop);
    StatusCode::NO_CONTENT
}

/// Op 7 RECONNECT on every connection: clients resume on a new one.
async fn reconnect_gateway(AxumState(shared): AxumState<Arc<Shared>>) -> StatusCode {
    super::gateway::send_all(&shared, json!({"op": 7, "d": null}));
    StatusCode::NO_CONTENT
}

/// Op 9 INVALID_SESSION, not resumable: clients identify again.
async fn invalidate_gateway(AxumState(shared): AxumState<Arc<Shared>>) -> StatusCode {
    for s in shared.lock().sessions.iter_mut() {
        s.replaced = true;
    }
    super::gateway::send_all(&shared, json!({"op": 9, "d": false}));
    StatusCode::NO_CONTENT
}

/// Sessions, connections (and how many asked for `zlib-stream`) and the frame log.
async fn gateway_info(AxumState(shared): AxumState<Arc<Shared>>) -> Json<Value> {
    let st = shared.lock();
    let sessions: Vec<Value> = st
        .sessions
        .iter()
        .map(|s| {
            json!({"id": s.id, "shard": [s.shard.0, s.shard.1], "intents": s.intents,
                   "seq": s.seq, "connected": s.connection.is_some(), "replaced": s.replaced})
        })
        .collect();
    let frames: Vec<Value> = st
        .gateway_log
        .iter()
        .map(|r| {
            json!({"connection": r.connection, "from_client": r.from_client, "op": r.op,
                   "t": r.t, "s": r.s, "session": r.session})
        })
        .collect();
    Json(json!({
        "connections": st.next_connection,
        "zlib_connections": st.zlib_connections,
        "sessions": sessions,
        "frames": frames,
    }))
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

#[derive(Deserialize)]
struct ComponentBody {
    message_id: String,
    custom_id: String,
    user_id: Option<String>,
    /// For a select menu: the chosen values.
    values: Option<Vec<String>>,
}

async fn component(
    AxumState(shared): AxumState<Arc<Shared>>,
    Json(b): Json<ComponentBody>,
) -> Response {
    let user = id(&b.user_id).unwrap_or(shared.defaults.2);
    let Ok(message) = b.message_id.parse::<u64>() else {
        return (StatusCode::BAD_REQUEST, "message_id is not a snowflake").into_response();
    };
    match super::server::component_interaction(&shared, user, message, &b.custom_id, b.values) {
        Ok(i) => Json(json!({"id": i.id.to_string(), "token": i.token})).into_response(),
        Err(e) => (StatusCode::NOT_FOUND, e).into_response(),
    }
}

#[derive(Deserialize)]
struct ReactionBody {
    message_id: String,
    emoji: String,
    user_id: Option<String>,
}

async fn reaction(
    AxumState(shared): AxumState<Arc<Shared>>,
    Json(b): Json<ReactionBody>,
) -> Response {
    let user = id(&b.user_id).unwrap_or(shared.defaults.2);
    let mut st = shared.lock();
    let Some(channel) = b
        .message_id
        .parse::<u64>()
        .ok()
        .and_then(|m| st.messages.get(&m))
        .map(|m| m.channel_id)
    else {
        return (StatusCode::NOT_FOUND, "unknown message").into_response();
    };
    let message = b.message_id.parse::<u64>().unwrap_or(0);
    super::channels::react(&mut st, channel, message, user, &b.emoji, true);
    StatusCode::NO_CONTENT.into_response()
}

async fn typing(
    AxumState(shared): AxumState<Arc<Shared>>,
    Path(channel): Path<u64>,
) -> Json<Value> {
    let count = shared.lock().typing.get(&channel).copied().unwrap_or(0);
    Json(json!({"count": count}))
}

async fn pins(AxumState(shared): AxumState<Arc<Shared>>, Path(channel): Path<u64>) -> Json<Value> {
    let st = shared.lock();
    let ids: Vec<String> = st
        .pins
        .get(&channel)
        .map(|p| p.iter().map(|(m, _)| m.to_string()).collect())
        .unwrap_or_default();
    Json(json!(ids))
}

async fn threads(
    AxumState(shared): AxumState<Arc<Shared>>,
    Path(parent): Path<u64>,
) -> Json<Value> {
    let st = shared.lock();
    let mut list: Vec<&super::state::Channel> = st
        .channels
        .values()
        .filter(|c| c.is_thread() && c.parent_id == Some(parent))
        .collect();
    list.sort_by_key(|c| c.id);
    Json(json!(list
        .into_iter()
        .map(|c| payloads::channel(&st, c))
        .collect::<Vec<_>>()))
}

async fn message(AxumState(shared): AxumState<Arc<Shared>>, Path(mid): Path<u64>) -> Response {
    let st = shared.lock();
    match st.messages.get(&mid) {
        Some(m) => Json(payloads::message(&st, m, false)).into_response(),
        None => (StatusCode::NOT_FOUND, "unknown message").into_response(),
    }
}

/// An interaction and what the bot did with it: the callback type, the modal it opened, the
/// original response and follow-ups (ephemeral ones included).
async fn interaction(AxumState(shared): AxumState<Arc<Shared>>, Path(iid): Path<u64>) -> Response {
    let st = shared.lock();
    let Some(i) = st.interactions.get(&iid) else {
        return (StatusCode::NOT_FOUND, "unknown interaction").into_response();
    };
    let msg = |m: &u64| st.messages.get(m).map(|m| payloads::message(&st, m, false));
    Json(json!({
        "id": i.id.to_string(),
        "type": i.kind,
        "response_type": i.response_type,
        "modal": i.modal,
        "original": i.original.as_ref().and_then(msg),
        "followups": i.followups.iter().filter_map(msg).collect::<Vec<_>>(),
    }))
    .into_response()
}
