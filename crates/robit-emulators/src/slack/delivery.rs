//! Getting events to the app the way Slack does: Socket Mode envelopes (acked by
//! `envelope_id`, redelivered when not acked in time or when their connection goes away) or
//! signed Events API / slash command POSTs to an HTTP endpoint (retried with
//! `X-Slack-Retry-Num` and `X-Slack-Retry-Reason` when not answered 2xx in time).
//!
//! Which one is used: HTTP once [`super::SlackEmulator::set_events_url`] is called, Socket Mode
//! otherwise (envelopes wait until a connection is open).

use super::{sign, Shared, SIGNING_SECRET};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// What a Socket Mode connection task is told to do.
#[derive(Debug)]
pub(crate) enum Outgoing {
    Text(String),
    /// Send a close frame.
    Close,
    /// Drop the TCP connection without a close frame (a network failure).
    Abort,
}

pub(crate) struct Conn {
    pub tx: mpsc::UnboundedSender<Outgoing>,
    /// Sent `disconnect`: no new envelopes go here.
    pub draining: bool,
}

/// Whether the event was a Socket Mode envelope or an HTTP request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Via {
    Socket,
    Http,
}

/// One attempt to deliver an event or command.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryAttempt {
    /// The event id, or `command:<trigger_id>` for slash commands.
    pub id: String,
    pub attempt: u32,
    pub via: Via,
    /// HTTP status of the app's answer; `None` for Socket Mode or when none came in time.
    pub status: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Event,
    Command,
    /// `block_actions` and other interactivity payloads.
    Interactive,
}

pub(crate) struct Envelope {
    pub envelope_id: String,
    pub kind: Kind,
    /// `event_callback` object, or the slash command's fields.
    pub payload: Value,
    pub id: String,
    pub attempts: u32,
    pub sent: Option<(u64, Instant)>,
}

#[derive(Default)]
pub(crate) struct Deliveries {
    pub events_url: Option<String>,
    pub conns: BTreeMap<u64, Conn>,
    pub next_conn: u64,
    round_robin: usize,
    pub pending: Vec<Envelope>,
    /// Ids (event or command) acknowledged at least once.
    pub acked: std::collections::HashSet<String>,
    pub attempts: Vec<DeliveryAttempt>,
    pub connections_opened: u64,
}

impl Deliveries {
    fn pick_conn(&mut self) -> Option<u64> {
        let live: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| !c.draining)
            .map(|(id, _)| *id)
            .collect();
        if live.is_empty() {
            return None;
        }
        self.round_robin = self.round_robin.wrapping_add(1);
        Some(live[self.round_robin % live.len()])
    }
}

fn envelope_json(env: &Envelope) -> String {
    match env.kind {
        Kind::Event => json!({
            "envelope_id": env.envelope_id,
            "type": "events_api",
            "accepts_response_payload": false,
            "retry_attempt": env.attempts,
            "retry_reason": if env.attempts > 0 { "timeout" } else { "" },
            "payload": env.payload,
        }),
        Kind::Command => json!({
            "envelope_id": env.envelope_id,
            "type": "slash_commands",
            "accepts_response_payload": true,
            "payload": env.payload,
        }),
        Kind::Interactive => json!({
            "envelope_id": env.envelope_id,
            "type": "interactive",
            "accepts_response_payload": false,
            "payload": env.payload,
        }),
    }
    .to_string()
}

/// Hands an event or command to the app by whichever route is configured.
pub(crate) fn deliver(shared: &Arc<Shared>, kind: Kind, id: String, payload: Value) {
    let url = shared.deliveries.lock().unwrap().events_url.clone();
    match url {
        Some(url) => {
            let shared = shared.clone();
            tokio::spawn(async move { deliver_http(shared, url, kind, id, payload).await });
        }
        None => {
            let envelope_id = shared.model.lock().unwrap().next_id("env-");
            shared.deliveries.lock().unwrap().pending.push(Envelope {
                envelope_id,
                kind,
                payload,
                id,
                attempts: 0,
                sent: None,
            });
            shared.socket_wake.notify_one();
        }
    }
}

/// Sends pending envelopes and resends those not acked in time or whose connection closed.
pub(crate) async fn socket_dispatcher(shared: Arc<Shared>) {
    let mut stop = shared.shutdown.clone();
    loop {
        {
            let mut d = shared.deliveries.lock().unwrap();
            let ack_timeout = shared.options.ack_timeout;
            let mut i = 0;
            while i < d.pending.len() {
                let due = match d.pending[i].sent {
                    None => true,
                    Some((conn, at)) => {
                        at.elapsed() >= ack_timeout || d.conns.get(&conn).is_none_or(|c| c.draining)
                    }
                };
                if due {
                    let Some(conn) = d.pick_conn() else { break };
                    let frame = envelope_json(&d.pending[i]);
                    let env_id = d.pending[i].id.clone();
                    let attempt = d.pending[i].attempts;
                    let sent = d.conns[&conn].tx.send(Outgoing::Text(frame)).is_ok();
                    if sent {
                        let env = &mut d.pending[i];
                        env.sent = Some((conn, Instant::now()));
                        env.attempts += 1;
                        d.attempts.push(DeliveryAttempt {
                            id: env_id,
                            attempt,
                            via: Via::Socket,
                            status: None,
                        });
                    }
                }
                i += 1;
            }
        }
        shared.changed.notify_waiters();
        tokio::select! {
            _ = shared.socket_wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(25)) => {}
            _ = async { let _ = stop.wait_for(|s| *s).await; } => return,
        }
    }
}

/// An ack frame from the app: `{"envelope_id": …, "payload"?: …}`.
pub(crate) fn on_ack(shared: &Shared, frame: &str) {
    let Ok(v) = serde_json::from_str::<Value>(frame) else {
        tracing::warn!(frame, "emulator: unreadable socket mode frame");
        return;
    };
    let Some(envelope_id) = v.get("envelope_id").and_then(Value::as_str) else {
        return;
    };
    let acked = {
        let mut d = shared.deliveries.lock().unwrap();
        match d.pending.iter().position(|e| e.envelope_id == envelope_id) {
            Some(i) => {
                let env = d.pending.remove(i);
                d.acked.insert(env.id.clone());
                Some(env)
            }
            None => None,
        }
    };
    if let Some(env) = acked {
        if env.kind == Kind::Command {
            if let Some(p) = v
                .get("payload")
                .filter(|p| p.as_object().is_some_and(|o| !o.is_empty()))
            {
                let trigger = env.payload["trigger_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                shared.record_command_response(&trigger, "ack", p.clone());
            }
        }
    }
    shared.changed.notify_waiters();
}

async fn deliver_http(shared: Arc<Shared>, url: String, kind: Kind, id: String, payload: Value) {
    let (body, content_type) = match kind {
        Kind::Event => (payload.to_string(), "application/json"),
        Kind::Command => (form_encode(&payload), "application/x-www-form-urlencoded"),
        // Interactivity comes as one form field, `payload`, holding the JSON.
        Kind::Interactive => (
            form_encode(&json!({"payload": payload.to_string()})),
            "application/x-www-form-urlencoded",
        ),
    };
    let mut reason: Option<&'static str> = None;
    let retries = shared.options.http_retry_delays.len() as u32;
    for attempt in 0..=retries {
        if attempt > 0 {
            let delay = shared.options.http_retry_delays[attempt as usize - 1];
            tokio::time::sleep(delay).await;
        }
        let ts = super::unix_now().to_string();
        let mut req = shared
            .http
            .post(&url)
            .timeout(shared.options.ack_timeout)
            .header("content-type", content_type)
            .header("x-slack-request-timestamp", &ts)
            .header(
                "x-slack-signature",
                sign(SIGNING_SECRET, &ts, body.as_bytes()),
            )
            .body(body.clone());
        if let Some(r) = reason {
            req = req
                .header("x-slack-retry-num", attempt.to_string())
                .header("x-slack-retry-reason", r);
        }
        let result = req.send().await;
        let (status, answer) = match result {
            Ok(resp) => {
                let status = resp.status();
                let no_retry = resp.headers().get("x-slack-no-retry").is_some();
                let text = resp.text().await.unwrap_or_default();
                (Some((status.as_u16(), no_retry)), text)
            }
            Err(e) => {
                reason = Some(if e.is_timeout() {
                    "http_timeout"
                } else if e.is_connect() {
                    "connection_failed"
                } else {
                    "unknown_error"
                });
                (None, String::new())
            }
        };
        shared
            .deliveries
            .lock()
            .unwrap()
            .attempts
            .push(DeliveryAttempt {
                id: id.clone(),
                attempt,
                via: Via::Http,
                status: status.map(|(s, _)| s),
            });
        shared.changed.notify_waiters();
        match status {
            Some((s, _)) if (200..300).contains(&s) => {
                shared.deliveries.lock().unwrap().acked.insert(id.clone());
                if kind == Kind::Command && !answer.trim().is_empty() {
                    let trigger = payload["trigger_id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    // A plain-text answer is the message text, as Slack reads it.
                    let body =
                        serde_json::from_str(&answer).unwrap_or_else(|_| json!({"text": answer}));
                    shared.record_command_response(&trigger, "ack", body);
                }
                shared.changed.notify_waiters();
                return;
            }
            Some((_, true)) => return,
            Some(_) => reason = Some("http_error"),
            None => {}
        }
    }
}

fn form_encode(v: &Value) -> String {
    let Some(o) = v.as_object() else {
        return String::new();
    };
    o.iter()
        .map(|(k, v)| {
            let v = v
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string());
            format!("{}={}", encode(k), encode(&v))
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding_round_trips_through_the_decoder() {
        let v = json!({"text": "run python print(1+1) & more/ü", "command": "/robit"});
        let enc = form_encode(&v);
        for pair in enc.split('&') {
            let (k, val) = pair.split_once('=').unwrap();
            let k = super::super::web::percent_decode(k);
            assert_eq!(
                super::super::web::percent_decode(val),
                v[k.as_str()].as_str().unwrap()
            );
        }
    }
}
