//! The HTTP control API (`/_control/…`) for the standalone emulator: play the user, inject
//! faults, and read what the bot did, with curl or from another language's tests.
//!
//! Every route answers JSON. It drives the same scenario API the Rust tests use.

use super::{Shared, SlackEmulator, ThreadRef, GENERAL};
use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_control/mention", post(mention))
        .route("/_control/reply", post(reply))
        .route("/_control/dm", post(dm))
        .route("/_control/slash", post(slash))
        .route("/_control/fault", post(fault))
        .route("/_control/events_url", post(events_url))
        .route("/_control/messages", get(messages))
        .route("/_control/calls", get(calls))
        .route("/_control/button", post(button))
        .route("/_control/edit", post(edit_message))
        .route("/_control/views", get(views))
        .route("/_control/message", get(message))
}

/// A handle on the running emulator whose drop does not stop the server: its stop signal
/// is a channel of its own that nothing listens to.
fn handle(shared: &Arc<Shared>) -> SlackEmulator {
    let (stop, _) = tokio::sync::watch::channel(false);
    SlackEmulator {
        shared: shared.clone(),
        stop,
    }
}

fn delivered(d: super::Delivered) -> Json<Value> {
    Json(
        json!({"event_id": d.event_id, "channel": d.channel, "ts": d.ts, "thread_ts": d.thread_ts}),
    )
}

#[derive(Deserialize)]
struct Say {
    channel: Option<String>,
    thread_ts: Option<String>,
    text: String,
}

async fn mention(State(s): State<Arc<Shared>>, Json(b): Json<Say>) -> Json<Value> {
    let e = handle(&s);
    let channel = b.channel.as_deref().unwrap_or(GENERAL);
    delivered(match b.thread_ts {
        Some(ts) => e.user_mentions_in_thread(
            &ThreadRef {
                channel: channel.into(),
                ts,
            },
            &b.text,
        ),
        None => e.user_mentions(channel, &b.text),
    })
}

async fn reply(State(s): State<Arc<Shared>>, Json(b): Json<Say>) -> Json<Value> {
    let e = handle(&s);
    let thread = ThreadRef {
        channel: b.channel.unwrap_or_else(|| GENERAL.into()),
        ts: b.thread_ts.unwrap_or_default(),
    };
    delivered(e.user_replies(&thread, &b.text))
}

async fn dm(State(s): State<Arc<Shared>>, Json(b): Json<Say>) -> Json<Value> {
    delivered(handle(&s).user_dms(&b.text))
}

#[derive(Deserialize)]
struct Slash {
    channel: Option<String>,
    command: String,
    #[serde(default)]
    text: String,
}

async fn slash(State(s): State<Arc<Shared>>, Json(b): Json<Slash>) -> Json<Value> {
    let channel = b.channel.as_deref().unwrap_or(GENERAL);
    delivered(handle(&s).slash_in(channel, &b.command, &b.text))
}

/// `{"rate_limit": {"method": "chat.update", "count": 5, "retry_after": 1}}`,
/// `{"disconnect": "refresh_requested"}`, `{"drop_sockets": true}` or `{"redeliver": "Ev…"}`.
async fn fault(State(s): State<Arc<Shared>>, Json(b): Json<Value>) -> Json<Value> {
    let e = handle(&s);
    if let Some(r) = b.get("rate_limit") {
        e.rate_limit(
            r["method"].as_str(),
            r["count"].as_u64().unwrap_or(1) as usize,
            r["retry_after"].as_u64().unwrap_or(1),
        );
    }
    if let Some(reason) = b.get("disconnect").and_then(Value::as_str) {
        e.disconnect_sockets(reason);
    }
    if b.get("drop_sockets").and_then(Value::as_bool) == Some(true) {
        e.drop_sockets();
    }
    if let Some(id) = b.get("redeliver").and_then(Value::as_str) {
        if !s.events.lock().unwrap().contains_key(id) {
            return Json(json!({"ok": false, "error": "unknown event"}));
        }
        e.redeliver(id);
    }
    Json(json!({"ok": true}))
}

async fn events_url(State(s): State<Arc<Shared>>, Json(b): Json<Value>) -> Json<Value> {
    match b["url"].as_str() {
        Some(url) => {
            handle(&s).set_events_url(url);
            Json(json!({"ok": true}))
        }
        None => Json(json!({"ok": false, "error": "url missing"})),
    }
}

/// `?channel=C…` (top level) or `?channel=C…&thread_ts=…` (a thread's replies).
async fn messages(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Json<Value> {
    let e = handle(&s);
    let channel = q.get("channel").map(String::as_str).unwrap_or(GENERAL);
    let list = match q.get("thread_ts") {
        Some(ts) => e.thread_messages(&ThreadRef {
            channel: channel.into(),
            ts: ts.clone(),
        }),
        None => e.channel_messages(channel),
    };
    Json(json!({"messages": list}))
}

async fn calls(State(s): State<Arc<Shared>>) -> Json<Value> {
    let e = handle(&s);
    Json(json!({
        "calls": e.calls(),
        "deliveries": e.delivery_attempts(),
        "command_responses": e.command_responses(),
        "socket_connections": e.socket_connections(),
        "acked": s.deliveries.lock().unwrap().acked.iter().cloned().collect::<Vec<_>>(),
    }))
}

#[derive(Deserialize)]
struct Button {
    channel: Option<String>,
    ts: String,
    action_id: String,
    user: Option<String>,
}

/// The user clicks a button in a bot message: a `block_actions` payload goes to the app.
async fn button(State(s): State<Arc<Shared>>, Json(b): Json<Button>) -> Json<Value> {
    let channel = b.channel.as_deref().unwrap_or(GENERAL);
    let user = b.user.as_deref().unwrap_or(super::USER);
    match handle(&s).click_button_as(user, channel, &b.ts, &b.action_id) {
        Ok(d) => delivered(d),
        Err(e) => Json(json!({"ok": false, "error": e})),
    }
}

#[derive(Deserialize)]
struct Edit {
    channel: Option<String>,
    ts: String,
    text: String,
}

/// The user edits their message: a `message_changed` event goes to the app.
async fn edit_message(State(s): State<Arc<Shared>>, Json(b): Json<Edit>) -> Json<Value> {
    let channel = b.channel.as_deref().unwrap_or(GENERAL);
    match handle(&s).user_edits(channel, &b.ts, &b.text) {
        Ok(d) => delivered(d),
        Err(e) => Json(json!({"ok": false, "error": e})),
    }
}

/// Modals opened, Home tabs published and scheduled messages.
async fn views(State(s): State<Arc<Shared>>) -> Json<Value> {
    let e = handle(&s);
    let homes: HashMap<String, Value> = s.model.lock().unwrap().home_tabs.clone();
    Json(json!({"views": e.views(), "home_tabs": homes, "scheduled": e.scheduled()}))
}

/// `?channel=…&ts=…`: one message as stored (blocks, reactions, edits, deleted).
async fn message(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Json<Value> {
    let channel = q.get("channel").map(String::as_str).unwrap_or(GENERAL);
    let ts = q.get("ts").map(String::as_str).unwrap_or_default();
    match handle(&s).message(channel, ts) {
        Some(m) => Json(json!({"ok": true, "message": m})),
        None => Json(json!({"ok": false, "error": "message_not_found"})),
    }
}
