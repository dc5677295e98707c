//! The Socket Mode WebSocket endpoint (`/link/?ticket=…`): `hello` on connect, envelopes out,
//! acks in, `disconnect` on request, and abrupt drops for fault tests.
//!
//! A ticket from `apps.connections.open` is good for one connection. Frames carry exactly the
//! fields slack-morphism requires (`num_connections`, `debug_info`, …).

use super::delivery::{on_ack, Conn, Outgoing};
use super::{Shared, APP_ID};
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

pub(crate) async fn link(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    let ticket = q.get("ticket").cloned().unwrap_or_default();
    let valid = {
        let mut m = shared.model.lock().unwrap();
        match m.tickets.iter().position(|t| *t == ticket) {
            Some(i) => {
                m.tickets.remove(i);
                true
            }
            None => false,
        }
    };
    if !valid {
        return (StatusCode::UNAUTHORIZED, "invalid ticket").into_response();
    }
    ws.on_upgrade(move |socket| connection(shared, socket))
}

async fn connection(shared: Arc<Shared>, mut socket: WebSocket) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (id, count) = {
        let mut d = shared.deliveries.lock().unwrap();
        d.next_conn += 1;
        d.connections_opened += 1;
        let id = d.next_conn;
        d.conns.insert(
            id,
            Conn {
                tx,
                draining: false,
            },
        );
        (id, d.conns.len())
    };
    let hello = json!({
        "type": "hello",
        "num_connections": count,
        "connection_info": {"app_id": APP_ID},
        "debug_info": {"host": "emulator-applink-1", "approximate_connection_time": 18060},
    });
    let mut stop = shared.shutdown.clone();
    if socket
        .send(WsMessage::Text(hello.to_string().into()))
        .await
        .is_ok()
    {
        shared.socket_wake.notify_one();
        shared.changed.notify_waiters();
        loop {
            tokio::select! {
                incoming = socket.recv() => match incoming {
                    Some(Ok(WsMessage::Text(t))) => on_ack(&shared, t.as_str()),
                    Some(Ok(WsMessage::Ping(p))) => {
                        let _ = socket.send(WsMessage::Pong(p)).await;
                    }
                    Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                },
                out = rx.recv() => match out {
                    Some(Outgoing::Text(t)) => {
                        if socket.send(WsMessage::Text(t.into())).await.is_err() {
                            break;
                        }
                    }
                    Some(Outgoing::Close) => {
                        let _ = socket.send(WsMessage::Close(None)).await;
                        // Give the client a moment to answer the close, then go.
                        let _ = tokio::time::timeout(Duration::from_secs(1), async {
                            while let Some(Ok(m)) = socket.recv().await {
                                if matches!(m, WsMessage::Close(_)) { break; }
                            }
                        }).await;
                        break;
                    }
                    Some(Outgoing::Abort) | None => {
                        // Dropping the socket without a close frame is what a network failure
                        // looks like to the client.
                        drop(socket);
                        remove(&shared, id);
                        return;
                    }
                },
                _ = async { let _ = stop.wait_for(|s| *s).await; } => break,
            }
        }
    }
    remove(&shared, id);
}

fn remove(shared: &Shared, id: u64) {
    shared.deliveries.lock().unwrap().conns.remove(&id);
    shared.socket_wake.notify_one();
    shared.changed.notify_waiters();
}

/// Sends `disconnect` on every open connection and closes them shortly after, as Slack does
/// before a server restart.
pub(crate) fn disconnect_all(shared: &Arc<Shared>, reason: &str) {
    let frame = json!({
        "type": "disconnect",
        "reason": reason,
        "debug_info": {"host": "emulator-applink-1"},
    })
    .to_string();
    let mut d = shared.deliveries.lock().unwrap();
    for conn in d.conns.values_mut() {
        conn.draining = true;
        let _ = conn.tx.send(Outgoing::Text(frame.clone()));
        let tx = conn.tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let _ = tx.send(Outgoing::Close);
        });
    }
    drop(d);
    shared.socket_wake.notify_one();
}

/// Drops every connection without a close frame.
pub(crate) fn drop_all(shared: &Arc<Shared>) {
    let mut d = shared.deliveries.lock().unwrap();
    for conn in d.conns.values_mut() {
        conn.draining = true;
        let _ = conn.tx.send(Outgoing::Abort);
    }
}
