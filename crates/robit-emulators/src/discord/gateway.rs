//! The emulated gateway (v10, JSON; text frames, or binary ones with `compress=zlib-stream`):
//! HELLO, IDENTIFY → READY + GUILD_CREATE,
//! heartbeats, per-shard routing, RESUME with replay of missed dispatches, RECONNECT and
//! INVALID_SESSION.
//!
//! Each connection has a writer fed by an unbounded channel, so a dispatch can be queued while
//! the state lock is held and is always logged on its session first: a dispatch sent to a
//! connection that is dying is still in the session's log and a RESUME replays it, as on
//! Discord. Frames follow Discord's docs and what serenity 0.12.5 reads (see
//! `shared/protocols.md`); nothing here knows about robit.

use super::payloads;
use super::server::Shared;
use super::state::{GatewayRecord, Outbound, Session, State};
use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State as AxumState};
use axum::response::Response;
use flate2::{Compress, Compression, FlushCompress};
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::sync::mpsc;

pub const INTENT_GUILDS: u64 = 1 << 0;
pub const INTENT_GUILD_MESSAGES: u64 = 1 << 9;
pub const INTENT_GUILD_MESSAGE_REACTIONS: u64 = 1 << 10;
pub const INTENT_DIRECT_MESSAGES: u64 = 1 << 12;
pub const INTENT_DIRECT_MESSAGE_REACTIONS: u64 = 1 << 13;
pub const INTENT_MESSAGE_CONTENT: u64 = 1 << 15;

/// The gateway URL handed out by `GET /gateway`; serenity appends `?v=10` itself, so it must
/// carry no query string.
pub fn ws_url(base_url: &str) -> String {
    format!(
        "{}/gateway-ws",
        base_url
            .replacen("http://", "ws://", 1)
            .trim_end_matches('/')
    )
}

/// The gateway's connection parameters (`?v=10&encoding=json&compress=zlib-stream`).
#[derive(Debug, Deserialize)]
pub struct ConnectParams {
    encoding: Option<String>,
    compress: Option<String>,
}

pub async fn upgrade(
    ws: WebSocketUpgrade,
    Query(params): Query<ConnectParams>,
    AxumState(shared): AxumState<Arc<Shared>>,
) -> Response {
    // Only JSON is spoken; Discord would also offer ETF.
    if params.encoding.as_deref().is_some_and(|e| e != "json") {
        return ws.on_upgrade(|mut socket| async move {
            let frame = CloseFrame {
                code: 4002,
                reason: "only encoding=json is emulated".into(),
            };
            let _ = socket.send(WsMessage::Close(Some(frame))).await;
        });
    }
    let zlib =
        params.compress.as_deref() == Some("zlib-stream") && shared.lock().config.zlib_stream;
    ws.on_upgrade(move |socket| connection(shared, socket, zlib))
}

/// One zlib stream over a whole connection, as Discord's `zlib-stream` transport: every
/// message is compressed with the shared context and ends with a sync flush
/// (`00 00 ff ff`), which is how clients know a message is complete.
struct ZlibStream(Compress);

impl ZlibStream {
    fn new() -> Self {
        Self(Compress::new(Compression::default(), true))
    }

    fn frame(&mut self, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(input.len() / 2 + 64);
        let start = self.0.total_in();
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(64));
            }
            let done = (self.0.total_in() - start) as usize;
            if self
                .0
                .compress_vec(&input[done..], &mut out, FlushCompress::Sync)
                .is_err()
            {
                break;
            }
            let done = (self.0.total_in() - start) as usize;
            // With Z_SYNC_FLUSH, spare output space left over means the flush is complete.
            if done == input.len() && out.len() < out.capacity() {
                break;
            }
        }
        out
    }
}

async fn connection(shared: Arc<Shared>, socket: WebSocket, zlib: bool) {
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Outbound>();
    let conn = {
        let mut st = shared.lock();
        st.next_connection += 1;
        if zlib {
            st.zlib_connections += 1;
        }
        let conn = st.next_connection;
        let hello = json!({"op": 10, "s": null, "t": null, "d": {
            "heartbeat_interval": st.config.heartbeat_interval.as_millis() as u64,
        }});
        send(&mut st, conn, &tx, None, hello.to_string());
        conn
    };
    shared.connections.lock().unwrap().push((conn, tx.clone()));
    let writer = async {
        let mut deflate = zlib.then(ZlibStream::new);
        while let Some(out) = rx.recv().await {
            match out {
                Outbound::Frame(text) => {
                    let msg = match deflate.as_mut() {
                        Some(z) => WsMessage::Binary(z.frame(text.as_bytes()).into()),
                        None => WsMessage::Text(text.into()),
                    };
                    if sink.send(msg).await.is_err() {
                        break;
                    }
                }
                Outbound::Close(code) => {
                    let frame = CloseFrame {
                        code,
                        reason: "".into(),
                    };
                    let _ = sink.send(WsMessage::Close(Some(frame))).await;
                    break;
                }
                // Dropping the socket without a close frame looks like a network failure.
                Outbound::Drop => break,
            }
        }
    };
    let reader = async {
        while let Some(Ok(msg)) = stream.next().await {
            match msg {
                WsMessage::Text(text) => client_frame(&shared, conn, &tx, text.as_str()),
                WsMessage::Close(_) => break,
                _ => {}
            }
        }
    };
    tokio::select! {
        _ = writer => {}
        _ = reader => {}
    }
    shared
        .connections
        .lock()
        .unwrap()
        .retain(|(c, _)| *c != conn);
    let mut st = shared.lock();
    for s in st.sessions.iter_mut() {
        if s.connection.as_ref().is_some_and(|(c, _)| *c == conn) {
            s.connection = None;
        }
    }
}

/// Queues one frame on a connection and logs it.
fn send(
    st: &mut State,
    conn: u64,
    tx: &mpsc::UnboundedSender<Outbound>,
    session: Option<&str>,
    text: String,
) {
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    st.gateway_log.push(GatewayRecord {
        connection: conn,
        from_client: false,
        op: v["op"].as_u64().unwrap_or(0) as u8,
        t: v["t"].as_str().map(str::to_string),
        s: v["s"].as_u64(),
        session: session.map(str::to_string),
    });
    let _ = tx.send(Outbound::Frame(text));
}

fn client_frame(shared: &Shared, conn: u64, tx: &mpsc::UnboundedSender<Outbound>, text: &str) {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        // Discord closes with 4002 (decode error) on a frame it cannot parse.
        let _ = tx.send(Outbound::Close(4002));
        return;
    };
    let op = v["op"].as_u64().unwrap_or(u64::MAX);
    let mut st = shared.lock();
    st.gateway_log.push(GatewayRecord {
        connection: conn,
        from_client: true,
        op: op as u8,
        t: None,
        s: v["d"].as_u64().or_else(|| v["d"]["seq"].as_u64()),
        session: v["d"]["session_id"].as_str().map(str::to_string),
    });
    match op {
        1 => {
            if shared.ack_heartbeats() {
                send(&mut st, conn, tx, None, json!({"op": 11}).to_string());
            }
        }
        2 => identify(&mut st, conn, tx, &v["d"]),
        6 => resume(&mut st, conn, tx, &v["d"]),
        // Presence, voice state and member requests are accepted and ignored.
        3 | 4 | 8 | 31 => {}
        _ => {
            let _ = tx.send(Outbound::Close(4001));
        }
    }
}

fn token_ok(st: &State, d: &Value) -> bool {
    let token = d["token"].as_str().unwrap_or_default();
    token.strip_prefix("Bot ").unwrap_or(token) == st.config.token
}

fn identify(st: &mut State, conn: u64, tx: &mpsc::UnboundedSender<Outbound>, d: &Value) {
    if !token_ok(st, d) {
        let _ = tx.send(Outbound::Close(4004));
        return;
    }
    let shard = match d["shard"].as_array() {
        Some(a) if a.len() == 2 => (
            a[0].as_u64().unwrap_or(0) as u32,
            a[1].as_u64().unwrap_or(1) as u32,
        ),
        _ => (0, 1),
    };
    if shard.1 == 0 || shard.0 >= shard.1 {
        let _ = tx.send(Outbound::Close(4010));
        return;
    }
    let intents = d["intents"].as_u64().unwrap_or(0);
    // A fresh IDENTIFY for a shard replaces the shard's older session: Discord would keep
    // both, but a replaced session's client is gone and would only pile up dispatches.
    for s in st.sessions.iter_mut().filter(|s| s.shard == shard) {
        s.replaced = true;
    }
    let id = format!("emu-session-{}", st.next_id());
    st.sessions.push(Session {
        id: id.clone(),
        shard,
        intents,
        seq: 0,
        log: Vec::new(),
        connection: Some((conn, tx.clone())),
        replaced: false,
    });
    let idx = st.sessions.len() - 1;
    let guilds: Vec<u64> = st
        .guilds
        .keys()
        .copied()
        .filter(|g| State::shard_of(Some(*g), shard.1) == shard.0)
        .collect();
    let ready = payloads::ready(st, &id, shard, &guilds);
    dispatch_to(st, idx, "READY", ready);
    if intents & INTENT_GUILDS != 0 {
        for g in guilds {
            let guild = st.guilds.get(&g).cloned();
            if let Some(guild) = guild {
                let d = payloads::guild(st, &guild);
                dispatch_to(st, idx, "GUILD_CREATE", d);
            }
        }
    }
}

fn resume(st: &mut State, conn: u64, tx: &mpsc::UnboundedSender<Outbound>, d: &Value) {
    if !token_ok(st, d) {
        let _ = tx.send(Outbound::Close(4004));
        return;
    }
    let session_id = d["session_id"].as_str().unwrap_or_default();
    let seq = d["seq"].as_u64().unwrap_or(0);
    let Some(idx) = st
        .sessions
        .iter()
        .position(|s| s.id == session_id && !s.replaced)
    else {
        // Not resumable: the client must IDENTIFY again.
        send(st, conn, tx, None, json!({"op": 9, "d": false}).to_string());
        return;
    };
    if st.sessions[idx].seq < seq {
        // The client claims dispatches it was never sent.
        let _ = tx.send(Outbound::Close(4007));
        return;
    }
    st.sessions[idx].connection = Some((conn, tx.clone()));
    let missed: Vec<String> = st.sessions[idx]
        .log
        .iter()
        .filter(|(s, _)| *s > seq)
        .map(|(_, f)| f.clone())
        .collect();
    let id = st.sessions[idx].id.clone();
    for frame in missed {
        send(st, conn, tx, Some(&id), frame);
    }
    dispatch_to(st, idx, "RESUMED", json!({}));
}

/// Sends a dispatch to one session: next sequence number, logged for replay, written if the
/// session is connected.
fn dispatch_to(st: &mut State, idx: usize, t: &str, d: Value) {
    let session = &mut st.sessions[idx];
    session.seq += 1;
    let frame = json!({"op": 0, "s": session.seq, "t": t, "d": d}).to_string();
    session.log.push((session.seq, frame.clone()));
    let id = session.id.clone();
    if let Some((conn, tx)) = session.connection.clone() {
        send(st, conn, &tx, Some(&id), frame);
    }
}

/// Dispatches an event to every live session whose shard owns `guild_id` (DMs: shard 0) and
/// that asked for `intent` (0: always sent). `build` makes `d` for a session's intents.
pub fn dispatch(
    st: &mut State,
    guild_id: Option<u64>,
    t: &str,
    intent: u64,
    build: impl Fn(u64) -> Value,
) {
    let targets: Vec<usize> = st
        .sessions
        .iter()
        .enumerate()
        .filter(|(_, s)| {
            !s.replaced
                && State::shard_of(guild_id, s.shard.1) == s.shard.0
                && (intent == 0 || s.intents & intent != 0)
        })
        .map(|(i, _)| i)
        .collect();
    for idx in targets {
        let d = build(st.sessions[idx].intents);
        dispatch_to(st, idx, t, d);
    }
}

/// MESSAGE_CREATE / MESSAGE_UPDATE for a stored message, with Discord's message-content rule:
/// without the MESSAGE_CONTENT intent, guild messages arrive with empty content unless they
/// mention the bot or are the bot's own.
pub fn dispatch_message(st: &mut State, message_id: u64, t: &str) {
    let Some(m) = st.messages.get(&message_id).cloned() else {
        return;
    };
    let guild_id = st.channels.get(&m.channel_id).and_then(|c| c.guild_id);
    let intent = if guild_id.is_some() {
        INTENT_GUILD_MESSAGES
    } else {
        INTENT_DIRECT_MESSAGES
    };
    let full = payloads::message(st, &m, true);
    let exempt = guild_id.is_none() || m.author_id == st.bot_id || m.mentions.contains(&st.bot_id);
    let granted = st.config.message_content_granted;
    dispatch(st, guild_id, t, intent, |intents| {
        if exempt || (granted && intents & INTENT_MESSAGE_CONTENT != 0) {
            full.clone()
        } else {
            let mut d = full.clone();
            d["content"] = json!("");
            d["attachments"] = json!([]);
            d["embeds"] = json!([]);
            d["components"] = json!([]);
            d
        }
    });
}

/// Sends an outbound instruction to every live connection.
pub fn broadcast(shared: &Shared, out: impl Fn() -> Outbound) {
    for (_, tx) in shared.connections.lock().unwrap().iter() {
        let _ = tx.send(out());
    }
}

/// Sends a raw frame (op 7 RECONNECT, op 9 INVALID_SESSION, op 1 HEARTBEAT) to every live
/// connection.
pub fn send_all(shared: &Shared, frame: Value) {
    let text = frame.to_string();
    let conns = shared.connections.lock().unwrap().clone();
    let mut st = shared.lock();
    for (conn, tx) in conns {
        send(&mut st, conn, &tx, None, text.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::ZlibStream;
    use flate2::{Decompress, FlushDecompress};

    #[test]
    fn zlib_stream_frames_decode_with_one_shared_context() {
        let mut z = ZlibStream::new();
        let mut d = Decompress::new(true);
        for msg in [r#"{"op":10}"#, r#"{"op":11}"#, &"x".repeat(100_000)] {
            let frame = z.frame(msg.as_bytes());
            assert!(frame.ends_with(&[0, 0, 0xff, 0xff]));
            let mut out = Vec::with_capacity(msg.len() + 64);
            d.decompress_vec(&frame, &mut out, FlushDecompress::Sync)
                .unwrap();
            assert_eq!(out, msg.as_bytes());
        }
    }
}
