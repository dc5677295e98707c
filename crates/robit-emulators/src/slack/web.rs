//! The emulated Web API: `POST|GET /api/{method}` with Slack's `{"ok": …}` answers.
//!
//! Every call is checked for its token (`not_authed`, `invalid_auth`), may be answered with an
//! injected 429, and is recorded. Shapes follow what slack-morphism decodes: `chat.postMessage`
//! and `chat.update` answers carry a `message` object, errors are HTTP 200 with `error` set.
//! Stricter than Slack on purpose where a bug would otherwise hide: a `thread_ts` must name a
//! message, and only the bot's own messages can be edited.

use super::model::{ApiCall, Ephemeral, File, Message};
use super::{Shared, APP_ID, APP_TOKEN, BOT_ID, BOT_TOKEN, BOT_USER, TEAM_ID};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

/// `chat.update` refuses longer text with `msg_too_long` (observed in practice).
pub const UPDATE_MAX_CHARS: usize = 4000;
/// `chat.postMessage` truncates longer text (documented).
pub const POST_MAX_CHARS: usize = 40_000;

type Answer = Result<Value, &'static str>;

pub(crate) async fn api(
    State(shared): State<Arc<Shared>>,
    Path(method): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = params(&query, &headers, &body);
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let (status, answer) = {
        let mut model = shared.model.lock().unwrap();
        let expected = if method == "apps.connections.open" {
            APP_TOKEN
        } else {
            BOT_TOKEN
        };
        let outcome = match token.as_deref() {
            None => Err("not_authed"),
            Some(t) if t != expected => Err("invalid_auth"),
            Some(_) => match model.take_rate_limit(&method) {
                Some(after) => {
                    model.calls.push(ApiCall {
                        method: method.clone(),
                        params: params.clone(),
                        status: 429,
                        error: Some("ratelimited".into()),
                        at: Instant::now(),
                    });
                    drop(model);
                    shared.changed.notify_waiters();
                    let mut r = (
                        StatusCode::TOO_MANY_REQUESTS,
                        axum::Json(json!({"ok": false, "error": "ratelimited"})),
                    )
                        .into_response();
                    r.headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from(after));
                    return r;
                }
                None => dispatch(&shared, &mut model, &method, &params),
            },
        };
        let error = outcome.as_ref().err().map(|e| e.to_string());
        model.calls.push(ApiCall {
            method: method.clone(),
            params,
            status: 200,
            error,
            at: Instant::now(),
        });
        (StatusCode::OK, outcome)
    };
    shared.changed.notify_waiters();
    if let (true, Ok(v)) = (method == "chat.scheduleMessage", &answer) {
        if let Some(id) = v["scheduled_message_id"].as_str() {
            tokio::spawn(super::methods::post_when_due(
                shared.clone(),
                id.to_string(),
            ));
        }
    }
    if let (true, Ok(v)) = (method == "chat.postMessage", &answer) {
        let mut message = v["message"].clone();
        message["channel"] = v["channel"].clone();
        super::SlackEmulator::echo(&shared, &message);
    }
    let body = match answer {
        Ok(mut v) => {
            v["ok"] = json!(true);
            v
        }
        Err(e) => json!({"ok": false, "error": e}),
    };
    (status, axum::Json(body)).into_response()
}

/// Query parameters and the JSON or form body, merged.
fn params(query: &HashMap<String, String>, headers: &HeaderMap, body: &[u8]) -> Value {
    let mut m: Map<String, Value> = query.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    if is_form {
        for (k, v) in url_form(body) {
            m.insert(k, json!(v));
        }
    } else if let Ok(Value::Object(b)) = serde_json::from_slice::<Value>(body) {
        m.extend(b);
    }
    Value::Object(m)
}

fn url_form(body: &[u8]) -> Vec<(String, String)> {
    let s = String::from_utf8_lossy(body);
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

pub(crate) fn str_param<'a>(p: &'a Value, k: &str) -> Option<&'a str> {
    p.get(k).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn dispatch(shared: &Shared, model: &mut super::model::Model, method: &str, p: &Value) -> Answer {
    match method {
        "auth.test" => Ok(json!({
            "url": "https://emulator.slack.com/", "team": "Emulator", "user": "robit",
            "team_id": TEAM_ID, "user_id": BOT_USER, "bot_id": BOT_ID, "is_enterprise_install": false,
        })),
        "apps.connections.open" => {
            let ticket = model.next_id("ticket");
            model.tickets.push(ticket.clone());
            Ok(
                json!({"url": format!("ws://{}/link/?ticket={ticket}&app_id={APP_ID}", shared.addr)}),
            )
        }
        "chat.postMessage" => post_message(model, p),
        "chat.update" => update(model, p),
        "chat.postEphemeral" => {
            let channel = str_param(p, "channel").ok_or("channel_not_found")?;
            let user = str_param(p, "user").ok_or("user_not_in_channel")?;
            if !model.channels.contains_key(channel) {
                return Err("channel_not_found");
            }
            let text = str_param(p, "text").ok_or("no_text")?.to_string();
            let thread_ts = str_param(p, "thread_ts").map(str::to_string);
            if let Some(t) = &thread_ts {
                if model.get(channel, t).is_none() {
                    return Err("thread_not_found");
                }
            }
            model.ephemerals.push(Ephemeral {
                channel: channel.to_string(),
                user: user.to_string(),
                thread_ts,
                text,
            });
            let ts = model.next_ts();
            Ok(json!({"message_ts": ts}))
        }
        "chat.delete" => {
            let (channel, ts) = (str_param(p, "channel"), str_param(p, "ts"));
            let m = own_message(model, channel, ts)?;
            m.deleted = true;
            Ok(json!({"channel": m.channel, "ts": m.ts}))
        }
        "conversations.replies" => {
            let channel = str_param(p, "channel").ok_or("channel_not_found")?;
            let ts = str_param(p, "ts").ok_or("thread_not_found")?;
            if !model.channels.contains_key(channel) {
                return Err("channel_not_found");
            }
            if model.get(channel, ts).is_none() {
                return Err("thread_not_found");
            }
            let limit = p
                .get("limit")
                .and_then(|l| l.as_str().and_then(|s| s.parse().ok()).or(l.as_u64()))
                .unwrap_or(1000) as usize;
            let msgs = model.thread(channel, ts);
            let has_more = msgs.len() > limit;
            let page: Vec<Value> = msgs.iter().take(limit).map(Message::to_json).collect();
            Ok(json!({"messages": page, "has_more": has_more}))
        }
        "files.getUploadURLExternal" => {
            let name = str_param(p, "filename")
                .ok_or("invalid_arguments")?
                .to_string();
            let length = p
                .get("length")
                .and_then(|l| l.as_str().and_then(|s| s.parse().ok()).or(l.as_u64()))
                .ok_or("invalid_arguments")? as usize;
            let id = model.next_id("F");
            model.files.insert(
                id.clone(),
                File {
                    id: id.clone(),
                    name,
                    declared_length: length,
                    bytes: None,
                    title: None,
                    completed: false,
                },
            );
            Ok(
                json!({"upload_url": format!("http://{}/upload/v1/{id}", shared.addr), "file_id": id}),
            )
        }
        "files.completeUploadExternal" => complete_upload(model, p),
        "chat.startStream" => {
            let channel = str_param(p, "channel")
                .ok_or("channel_not_found")?
                .to_string();
            let thread = str_param(p, "thread_ts")
                .ok_or("invalid_arguments")?
                .to_string();
            if model.get(&channel, &thread).is_none() {
                return Err("thread_not_found");
            }
            if !channel.starts_with('D')
                && (str_param(p, "recipient_user_id").is_none()
                    || str_param(p, "recipient_team_id").is_none())
            {
                return Err("missing_recipient_user_id");
            }
            let ts = model.next_ts();
            model.insert(bot_message(
                &channel,
                &ts,
                Some(thread),
                str_param(p, "markdown_text").unwrap_or(""),
            ));
            model
                .get_mut(&channel, &ts)
                .expect("just inserted")
                .streaming = true;
            Ok(json!({"channel": channel, "ts": ts}))
        }
        "chat.appendStream" => {
            let m = own_message(model, str_param(p, "channel"), str_param(p, "ts"))?;
            if !m.streaming {
                return Err("message_not_in_streaming_state");
            }
            m.text.push_str(str_param(p, "markdown_text").unwrap_or(""));
            m.edits += 1;
            Ok(json!({"channel": m.channel, "ts": m.ts}))
        }
        "chat.stopStream" => {
            // Blocks given here are shown below the streamed text of the finished message.
            let blocks = super::methods::blocks_param(p)?;
            let m = own_message(model, str_param(p, "channel"), str_param(p, "ts"))?;
            if !m.streaming {
                return Err("message_not_in_streaming_state");
            }
            m.streaming = false;
            if let Some(t) = str_param(p, "markdown_text") {
                m.text.push_str(t);
            }
            if blocks.is_some() {
                m.blocks = blocks;
            }
            let message = m.to_json();
            Ok(json!({"channel": m.channel, "ts": m.ts, "message": message}))
        }
        "assistant.threads.setStatus" => {
            let channel = str_param(p, "channel_id").ok_or("channel_not_found")?;
            let thread = str_param(p, "thread_ts").ok_or("invalid_arguments")?;
            let status = p.get("status").and_then(Value::as_str).unwrap_or("");
            model
                .statuses
                .push((channel.to_string(), thread.to_string(), status.to_string()));
            Ok(json!({}))
        }
        other => super::methods::dispatch(shared, model, other, p),
    }
}

pub(crate) fn bot_message(
    channel: &str,
    ts: &str,
    thread_ts: Option<String>,
    text: &str,
) -> Message {
    Message {
        channel: channel.to_string(),
        ts: ts.to_string(),
        thread_ts,
        user: BOT_USER.to_string(),
        bot_id: Some(BOT_ID.to_string()),
        text: text.to_string(),
        edits: 0,
        files: Vec::new(),
        streaming: false,
        deleted: false,
        blocks: None,
        reactions: Vec::new(),
    }
}

fn own_message<'m>(
    model: &'m mut super::model::Model,
    channel: Option<&str>,
    ts: Option<&str>,
) -> Result<&'m mut Message, &'static str> {
    let channel = channel.ok_or("channel_not_found")?;
    if !model.channels.contains_key(channel) {
        return Err("channel_not_found");
    }
    let m = model
        .get_mut(channel, ts.ok_or("message_not_found")?)
        .filter(|m| !m.deleted)
        .ok_or("message_not_found")?;
    if m.bot_id.as_deref() != Some(BOT_ID) {
        return Err("cant_update_message");
    }
    Ok(m)
}

fn thread_root(
    model: &super::model::Model,
    channel: &str,
    thread_ts: Option<&str>,
) -> Result<Option<String>, &'static str> {
    match thread_ts {
        None => Ok(None),
        Some(t) => {
            let root = model.get(channel, t).ok_or("thread_not_found")?;
            // A reply to a reply goes to the same thread, as in Slack.
            Ok(Some(
                root.thread_ts.clone().unwrap_or_else(|| t.to_string()),
            ))
        }
    }
}

fn post_message(model: &mut super::model::Model, p: &Value) -> Answer {
    let channel = str_param(p, "channel")
        .ok_or("channel_not_found")?
        .to_string();
    if !model.channels.contains_key(&channel) {
        return Err("channel_not_found");
    }
    let text = p.get("text").and_then(Value::as_str).unwrap_or("");
    if text.trim().is_empty() && p.get("blocks").is_none() {
        return Err("no_text");
    }
    let thread = thread_root(model, &channel, str_param(p, "thread_ts"))?;
    let mut warning = None;
    let text = if text.chars().count() > POST_MAX_CHARS {
        warning = Some("message_truncated");
        text.chars().take(POST_MAX_CHARS).collect()
    } else {
        text.to_string()
    };
    let blocks = super::methods::blocks_param(p)?;
    let ts = model.next_ts();
    let mut m = bot_message(&channel, &ts, thread, &text);
    m.blocks = blocks;
    let message = m.to_json();
    model.insert(m);
    let mut r = json!({"channel": channel, "ts": ts, "message": message});
    if let Some(w) = warning {
        r["warning"] = json!(w);
    }
    Ok(r)
}

fn update(model: &mut super::model::Model, p: &Value) -> Answer {
    let text = p
        .get("text")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if text.chars().count() > UPDATE_MAX_CHARS {
        return Err("msg_too_long");
    }
    let m = own_message(model, str_param(p, "channel"), str_param(p, "ts"))?;
    if text.trim().is_empty() && p.get("blocks").is_none() {
        return Err("no_text");
    }
    let blocks = super::methods::blocks_param(p)?;
    m.text = text.clone();
    m.edits += 1;
    if blocks.is_some() {
        m.blocks = blocks;
    }
    let mut message = json!({"text": text, "user": BOT_USER, "bot_id": BOT_ID});
    if let Some(b) = &m.blocks {
        message["blocks"] = b.clone();
    }
    Ok(json!({
        "channel": m.channel, "ts": m.ts, "text": text,
        "message": message,
    }))
}

fn complete_upload(model: &mut super::model::Model, p: &Value) -> Answer {
    let files = p
        .get("files")
        .and_then(|f| match f {
            // Form-encoded callers send the array as a JSON string.
            Value::String(s) => serde_json::from_str::<Value>(s).ok(),
            other => Some(other.clone()),
        })
        .and_then(|v| v.as_array().cloned())
        .ok_or("invalid_arguments")?;
    let mut ids = Vec::new();
    for f in &files {
        let id = f
            .get("id")
            .and_then(Value::as_str)
            .ok_or("invalid_arguments")?;
        let file = model.files.get_mut(id).ok_or("file_not_found")?;
        let Some(bytes) = &file.bytes else {
            return Err("file_upload_not_found");
        };
        if bytes.len() != file.declared_length {
            return Err("file_uploaded_size_mismatch");
        }
        file.completed = true;
        file.title = f.get("title").and_then(Value::as_str).map(str::to_string);
        ids.push(id.to_string());
    }
    if let Some(channel) = str_param(p, "channel_id").map(str::to_string) {
        if !model.channels.contains_key(&channel) {
            return Err("channel_not_found");
        }
        let thread = thread_root(model, &channel, str_param(p, "thread_ts"))?;
        let ts = model.next_ts();
        let mut m = bot_message(
            &channel,
            &ts,
            thread,
            p.get("initial_comment")
                .and_then(Value::as_str)
                .unwrap_or(""),
        );
        m.files = ids.clone();
        model.insert(m);
    }
    let out: Vec<Value> = ids
        .iter()
        .map(|id| {
            let f = &model.files[id];
            json!({"id": id, "name": f.name, "title": f.title.clone().unwrap_or_else(|| f.name.clone())})
        })
        .collect();
    Ok(json!({"files": out}))
}

/// `POST /upload/v1/{file_id}`: the bytes of an external upload.
pub(crate) async fn upload(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let ok = {
        let mut model = shared.model.lock().unwrap();
        match model.files.get_mut(&id) {
            Some(f) => {
                f.bytes = Some(body.to_vec());
                true
            }
            None => false,
        }
    };
    shared.changed.notify_waiters();
    if ok {
        (StatusCode::OK, format!("OK - {}", body.len())).into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

/// `GET /files-pri/{team-file}/{name}`: a shared file's `url_private`. Served only with the bot
/// token; without it Slack answers with a redirect to its sign-in page, and so does this.
pub(crate) async fn private_file(
    State(shared): State<Arc<Shared>>,
    Path((team_file, _name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let file_id = team_file
        .split_once('-')
        .map(|(_, f)| f.to_string())
        .unwrap_or(team_file);
    let authorized = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some(format!("Bearer {BOT_TOKEN}").as_str());
    let response = {
        let mut model = shared.model.lock().unwrap();
        let response = match model.shared_files.get(&file_id) {
            _ if !authorized => (
                StatusCode::FOUND,
                [(header::LOCATION, "/signin".to_string())],
            )
                .into_response(),
            Some(f) => (
                StatusCode::OK,
                [(header::CONTENT_TYPE, f.mimetype.clone())],
                f.bytes.clone(),
            )
                .into_response(),
            None => StatusCode::NOT_FOUND.into_response(),
        };
        model.file_fetches.push(super::model::FileFetch {
            file_id,
            authorized,
            status: response.status().as_u16(),
        });
        response
    };
    shared.changed.notify_waiters();
    response
}

/// `POST /commands/{trigger}`: a slash command's `response_url`.
pub(crate) async fn response_url(
    State(shared): State<Arc<Shared>>,
    Path(trigger): Path<String>,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    shared.record_command_response(&trigger, "response_url", body);
    axum::Json(json!({"ok": true})).into_response()
}
