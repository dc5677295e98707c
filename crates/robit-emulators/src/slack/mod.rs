//! A Slack emulator on loopback: the Web API, Socket Mode, Events API delivery over HTTP, and
//! a scenario API for tests, faithful enough that the unmodified slack-morphism client runs
//! against it.
//!
//! One server on `127.0.0.1:0` serves `/api/{method}` (Web API), `/link/` (Socket Mode
//! WebSocket), `/upload/v1/{file}` (external uploads), `/commands/{trigger}` (slash command
//! `response_url`s) and `/_control/…` (the HTTP control API of the standalone binary). A test
//! plays the user (`user_mentions`, `user_replies`, `user_dms`, `slash`), injects faults
//! (429 storms, socket disconnects and drops, redelivery of an event) and reads what the bot
//! did (`thread_messages`, `calls`). It never leaves the loopback interface and knows nothing
//! about robit beyond Slack's wire format.

mod control;
mod delivery;
mod methods;
mod model;
mod socket;
mod web;

pub use delivery::{DeliveryAttempt, Via};
pub use model::{
    ApiCall, CommandResponse, Ephemeral, File, FileFetch, Message, Scheduled, SharedFile,
};
pub use web::{POST_MAX_CHARS, UPDATE_MAX_CHARS};

use axum::routing::{any, get, post};
use axum::Router;
use hmac::{Hmac, Mac};
use model::{Model, RateLimitFault};
use serde_json::{json, Value};
use sha2::Sha256;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};

pub const BOT_TOKEN: &str = "xoxb-emulator-bot-token";
pub const APP_TOKEN: &str = "xapp-emulator-app-token";
pub const SIGNING_SECRET: &str = "emulator-signing-secret";
pub const TEAM_ID: &str = "T0EMULATOR";
pub const APP_ID: &str = "A0EMULATOR";
pub const BOT_USER: &str = "U0ROBIT";
pub const BOT_ID: &str = "B0ROBIT";
/// The user the scenario API speaks as.
pub const USER: &str = "U0ALICE";
/// The user's DM channel with the bot.
pub const DM_CHANNEL: &str = "D0ALICE";
/// A channel that exists from the start.
pub const GENERAL: &str = "C0GENERAL";

/// Knobs for timing-related behaviour.
#[derive(Debug, Clone)]
pub struct SlackEmulatorOptions {
    /// How long an envelope or HTTP delivery may go unacknowledged (Slack: 3 s).
    pub ack_timeout: Duration,
    /// Waits before each HTTP retry (Slack: about 0 s, 1 min, 5 min; shorter for tests).
    pub http_retry_delays: Vec<Duration>,
    /// Send the app a `message` event (with `bot_id`) for each of its own posts, as Slack
    /// does when the app subscribes to message events: adapters must ignore them.
    pub echo_bot_messages: bool,
}

impl Default for SlackEmulatorOptions {
    fn default() -> Self {
        Self {
            ack_timeout: Duration::from_secs(3),
            http_retry_delays: vec![
                Duration::from_millis(100),
                Duration::from_secs(1),
                Duration::from_secs(2),
            ],
            echo_bot_messages: true,
        }
    }
}

pub(crate) struct Shared {
    pub addr: SocketAddr,
    pub options: SlackEmulatorOptions,
    pub model: Mutex<Model>,
    pub deliveries: Mutex<delivery::Deliveries>,
    /// Every event ever sent, for redelivery.
    pub events: Mutex<std::collections::HashMap<String, (delivery::Kind, Value)>>,
    /// Woken on every change; waiters re-check their condition.
    pub changed: Notify,
    pub socket_wake: Notify,
    pub shutdown: watch::Receiver<bool>,
    pub http: reqwest::Client,
}

impl Shared {
    pub fn record_command_response(&self, trigger: &str, via: &'static str, body: Value) {
        let replaced = via == "response_url" && self.apply_to_original(trigger, &body);
        let mut m = self.model.lock().unwrap();
        // An `in_channel` answer shows up in the channel, as the bot.
        if body["response_type"] == "in_channel" && !replaced {
            if let (Some(text), Some(channel)) =
                (body["text"].as_str(), self.command_channel(trigger))
            {
                let ts = m.next_ts();
                m.insert(Message {
                    channel,
                    ts,
                    thread_ts: None,
                    user: BOT_USER.into(),
                    bot_id: Some(BOT_ID.into()),
                    text: text.to_string(),
                    edits: 0,
                    files: Vec::new(),
                    streaming: false,
                    deleted: false,
                    blocks: None,
                    reactions: Vec::new(),
                });
            }
        }
        m.command_responses.push(CommandResponse {
            trigger_id: trigger.to_string(),
            via,
            body,
        });
        drop(m);
        self.changed.notify_waiters();
    }

    fn command_channel(&self, trigger: &str) -> Option<String> {
        let events = self.events.lock().unwrap();
        events
            .get(&format!("command:{trigger}"))
            .and_then(|(_, p)| p["channel_id"].as_str().map(str::to_string))
            .or_else(|| {
                events
                    .get(&format!("action:{trigger}"))
                    .and_then(|(_, p)| p["channel"]["id"].as_str().map(str::to_string))
            })
    }

    /// A `response_url` answer to a button click that replaces or deletes the message the
    /// button was on, as Slack does for `replace_original` / `delete_original`.
    fn apply_to_original(&self, trigger: &str, body: &Value) -> bool {
        let source = {
            let events = self.events.lock().unwrap();
            events.get(&format!("action:{trigger}")).map(|(_, p)| {
                (
                    p["container"]["channel_id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    p["container"]["message_ts"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            })
        };
        let Some((channel, ts)) = source else {
            return false;
        };
        let replace = body["replace_original"] == true || body["replace_original"] == "true";
        let delete = body["delete_original"] == true || body["delete_original"] == "true";
        if !replace && !delete {
            return false;
        }
        let mut m = self.model.lock().unwrap();
        let Some(msg) = m.get_mut(&channel, &ts) else {
            return false;
        };
        if delete {
            msg.deleted = true;
        } else {
            if let Some(t) = body["text"].as_str() {
                msg.text = t.to_string();
            }
            if body.get("blocks").is_some() {
                msg.blocks = Some(body["blocks"].clone());
            }
            msg.edits += 1;
        }
        true
    }
}

/// The user's message and the event that announced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The Events API `event_id` (or `command:<trigger_id>` for slash commands).
    pub event_id: String,
    pub channel: String,
    /// The user's message `ts` (empty for slash commands).
    pub ts: String,
    /// The thread the bot should answer in: the message's thread, or the message itself.
    pub thread_ts: String,
}

impl Delivered {
    pub fn thread(&self) -> ThreadRef {
        ThreadRef {
            channel: self.channel.clone(),
            ts: self.thread_ts.clone(),
        }
    }
}

/// A thread: its channel and its root message's `ts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadRef {
    pub channel: String,
    pub ts: String,
}

/// The emulator. Dropping it shuts the server down.
pub struct SlackEmulator {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
}

impl std::fmt::Debug for SlackEmulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackEmulator")
            .field("addr", &self.shared.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for SlackEmulator {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

pub(crate) fn sign(secret: &str, ts: &str, body: &[u8]) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    m.update(format!("v0:{ts}:").as_bytes());
    m.update(body);
    format!("v0={}", hex::encode(m.finalize().into_bytes()))
}

pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl SlackEmulator {
    pub async fn start() -> SlackEmulator {
        Self::with_options(SlackEmulatorOptions::default()).await
    }

    pub async fn with_options(options: SlackEmulatorOptions) -> SlackEmulator {
        Self::bind("127.0.0.1:0".parse().expect("loopback address"), options).await
    }

    /// Binds `addr` (the standalone binary passes a fixed port; tests use port 0).
    pub async fn bind(addr: SocketAddr, options: SlackEmulatorOptions) -> SlackEmulator {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("bind the slack emulator");
        let addr = listener.local_addr().expect("emulator address");
        let (stop, stop_rx) = watch::channel(false);
        let mut model = Model::default();
        for c in [GENERAL, DM_CHANNEL] {
            model.ensure_channel(c);
        }
        let shared = Arc::new(Shared {
            addr,
            options,
            model: Mutex::new(model),
            deliveries: Mutex::new(Default::default()),
            events: Mutex::new(Default::default()),
            changed: Notify::new(),
            socket_wake: Notify::new(),
            shutdown: stop_rx.clone(),
            http: reqwest::Client::new(),
        });
        let app = Router::new()
            .route("/api/{method}", any(web::api))
            .route("/link/", get(socket::link))
            .route("/link", get(socket::link))
            .route("/upload/v1/{id}", post(web::upload))
            .route("/files-pri/{team_file}/{name}", get(web::private_file))
            .route("/commands/{trigger}", post(web::response_url))
            .merge(control::routes())
            .with_state(shared.clone());
        let mut stop_serve = stop_rx;
        tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stop_serve.wait_for(|s| *s).await;
            });
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "slack emulator stopped");
            }
        });
        tokio::spawn(delivery::socket_dispatcher(shared.clone()));
        SlackEmulator { shared, stop }
    }

    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// The Web API base for `SlackConfig::api_url`: `http://127.0.0.1:P/api`.
    pub fn api_url(&self) -> String {
        format!("http://{}/api", self.shared.addr)
    }

    /// Switches event delivery to signed HTTP POSTs to `url` (the app's Events API endpoint).
    pub fn set_events_url(&self, url: impl Into<String>) {
        self.shared.deliveries.lock().unwrap().events_url = Some(url.into());
    }

    // ----- the user's side -----

    /// The user mentions the bot in a new top-level message of `channel`.
    pub fn user_mentions(&self, channel: &str, text: &str) -> Delivered {
        self.user_message(channel, None, &format!("<@{BOT_USER}> {text}"))
    }

    /// The user mentions the bot inside an existing thread.
    pub fn user_mentions_in_thread(&self, thread: &ThreadRef, text: &str) -> Delivered {
        self.user_message(
            &thread.channel,
            Some(&thread.ts),
            &format!("<@{BOT_USER}> {text}"),
        )
    }

    /// The user replies in a thread without mentioning the bot.
    pub fn user_replies(&self, thread: &ThreadRef, text: &str) -> Delivered {
        self.user_message(&thread.channel, Some(&thread.ts), text)
    }

    /// The user writes a top-level message in a channel (no mention; the bot should stay out).
    pub fn user_says(&self, channel: &str, text: &str) -> Delivered {
        self.user_message(channel, None, text)
    }

    /// The user writes to the bot in their DM.
    pub fn user_dms(&self, text: &str) -> Delivered {
        self.user_message(DM_CHANNEL, None, text)
    }

    /// Posts a user message and sends the events Slack would: `message` (channel type
    /// `channel` or `im`) and, when it mentions the bot outside a DM, `app_mention`. Returns
    /// the `app_mention` delivery when there is one.
    pub fn user_message(&self, channel: &str, thread_ts: Option<&str>, text: &str) -> Delivered {
        self.user_message_as(USER, channel, thread_ts, text)
    }

    /// [`SlackEmulator::user_message`] from another user of the workspace (`U…`), for tests
    /// of who may do what.
    pub fn user_message_as(
        &self,
        user: &str,
        channel: &str,
        thread_ts: Option<&str>,
        text: &str,
    ) -> Delivered {
        self.user_message_full(user, channel, thread_ts, text, Vec::new())
    }

    /// The user mentions the bot in a new top-level message of `channel`, sharing `files`.
    pub fn user_mentions_with_files(
        &self,
        channel: &str,
        text: &str,
        files: Vec<SharedFile>,
    ) -> Delivered {
        self.user_message_with_files(channel, None, &format!("<@{BOT_USER}> {text}"), files)
    }

    /// [`user_message`](Self::user_message) with files shared: the events carry Slack's
    /// `files` objects (the `message` event with subtype `file_share`), and each file's
    /// `url_private` is served by the emulator to the bot token (see [`file_fetches`]).
    ///
    /// [`file_fetches`]: Self::file_fetches
    pub fn user_message_with_files(
        &self,
        channel: &str,
        thread_ts: Option<&str>,
        text: &str,
        files: Vec<SharedFile>,
    ) -> Delivered {
        self.user_message_full(USER, channel, thread_ts, text, files)
    }

    /// A message from `user`, sharing `files`: what every `user_*` scenario method sends.
    pub fn user_message_full(
        &self,
        user: &str,
        channel: &str,
        thread_ts: Option<&str>,
        text: &str,
        files: Vec<SharedFile>,
    ) -> Delivered {
        let (ts, message_event_id, mention_event_id, file_objects) = {
            let mut m = self.shared.model.lock().unwrap();
            m.ensure_channel(channel);
            let mut file_objects = Vec::new();
            for f in files {
                let id = m.next_id("F");
                let url = format!(
                    "http://{}/files-pri/{TEAM_ID}-{id}/{}",
                    self.shared.addr, f.name
                );
                file_objects.push(json!({
                    "id": id, "name": f.name, "title": f.name, "mimetype": f.mimetype,
                    "filetype": f.name.rsplit('.').next().unwrap_or(""), "size": f.bytes.len(),
                    "user": USER, "url_private": url,
                    "url_private_download": format!("{url}?download=1"),
                }));
                m.shared_files.insert(id, f);
            }
            let ts = m.next_ts();
            m.insert(Message {
                channel: channel.to_string(),
                ts: ts.clone(),
                thread_ts: thread_ts.map(str::to_string),
                user: user.to_string(),
                bot_id: None,
                text: text.to_string(),
                edits: 0,
                files: Vec::new(),
                streaming: false,
                deleted: false,
                blocks: None,
                reactions: Vec::new(),
            });
            (ts, m.next_id("Ev"), m.next_id("Ev"), file_objects)
        };
        let is_dm = channel.starts_with('D');
        let mut event = json!({
            "type": "message", "channel": channel, "user": user, "text": text, "ts": ts,
            "event_ts": ts, "team": TEAM_ID, "client_msg_id": format!("cm-{ts}"),
            "channel_type": if is_dm { "im" } else { "channel" },
        });
        if let Some(t) = thread_ts {
            event["thread_ts"] = json!(t);
        }
        if !file_objects.is_empty() {
            event["subtype"] = json!("file_share");
            event["files"] = json!(file_objects);
        }
        let mentions = !is_dm && text.contains(&format!("<@{BOT_USER}>"));
        let delivered = Delivered {
            event_id: if mentions {
                mention_event_id.clone()
            } else {
                message_event_id.clone()
            },
            channel: channel.to_string(),
            ts: ts.clone(),
            thread_ts: thread_ts.unwrap_or(&ts).to_string(),
        };
        if mentions {
            let mut mention = json!({
                "type": "app_mention", "user": user, "text": text, "ts": ts,
                "channel": channel, "event_ts": ts, "team": TEAM_ID,
            });
            if let Some(t) = thread_ts {
                mention["thread_ts"] = json!(t);
            }
            if !file_objects.is_empty() {
                mention["files"] = json!(file_objects);
            }
            self.send_event(&mention_event_id, mention);
        }
        self.send_event(&message_event_id, event);
        delivered
    }

    /// The author of user message `ts` in `channel` edits it to `text`: the stored text
    /// changes and the app gets a `message` event with subtype `message_changed`, carrying
    /// the new `message` and the `previous_message` (Slack sends no `app_mention` for an
    /// edit). The returned `event_id` is the edit's.
    pub fn user_edits(&self, channel: &str, ts: &str, text: &str) -> Result<Delivered, String> {
        let (event_id, edit_ts, previous, thread_ts, user) = {
            let mut m = self.shared.model.lock().unwrap();
            let edit_ts = m.next_ts();
            let event_id = m.next_id("Ev");
            let msg = m
                .get_mut(channel, ts)
                .filter(|m| !m.deleted && m.bot_id.is_none())
                .ok_or_else(|| format!("no user message {ts} in {channel}"))?;
            let previous = std::mem::replace(&mut msg.text, text.to_string());
            msg.edits += 1;
            (
                event_id,
                edit_ts,
                previous,
                msg.thread_ts.clone(),
                msg.user.clone(),
            )
        };
        let is_dm = channel.starts_with('D');
        let mut message = json!({
            "type": "message", "user": user, "text": text, "ts": ts, "team": TEAM_ID,
            "edited": {"user": user, "ts": edit_ts}, "client_msg_id": format!("cm-{ts}"),
        });
        let mut previous_message = json!({
            "type": "message", "user": user, "text": previous, "ts": ts, "team": TEAM_ID,
            "client_msg_id": format!("cm-{ts}"),
        });
        if let Some(t) = &thread_ts {
            message["thread_ts"] = json!(t);
            previous_message["thread_ts"] = json!(t);
        }
        let event = json!({
            "type": "message", "subtype": "message_changed", "hidden": true,
            "channel": channel, "ts": edit_ts, "event_ts": edit_ts,
            "channel_type": if is_dm { "im" } else { "channel" },
            "message": message, "previous_message": previous_message,
        });
        self.send_event(&event_id, event);
        Ok(Delivered {
            event_id,
            channel: channel.to_string(),
            ts: ts.to_string(),
            thread_ts: thread_ts.unwrap_or_else(|| ts.to_string()),
        })
    }

    /// The user runs a slash command in `GENERAL`.
    pub fn slash(&self, command: &str, text: &str) -> Delivered {
        self.slash_in(GENERAL, command, text)
    }

    /// The user runs a slash command in `channel`.
    pub fn slash_in(&self, channel: &str, command: &str, text: &str) -> Delivered {
        self.slash_as(USER, channel, command, text)
    }

    /// A slash command typed by another user of the workspace.
    pub fn slash_as(&self, user: &str, channel: &str, command: &str, text: &str) -> Delivered {
        let trigger = {
            let mut m = self.shared.model.lock().unwrap();
            m.ensure_channel(channel);
            methods::issue_trigger(&mut m)
        };
        let payload = json!({
            "token": "emulator-verification-token", "team_id": TEAM_ID, "team_domain": "emulator",
            "channel_id": channel, "channel_name": channel.to_lowercase(), "user_id": user,
            "user_name": "alice", "command": command, "text": text, "api_app_id": APP_ID,
            "is_enterprise_install": "false",
            "response_url": format!("http://{}/commands/{trigger}", self.shared.addr),
            "trigger_id": trigger,
        });
        let id = format!("command:{trigger}");
        self.shared
            .events
            .lock()
            .unwrap()
            .insert(id.clone(), (delivery::Kind::Command, payload.clone()));
        delivery::deliver(&self.shared, delivery::Kind::Command, id.clone(), payload);
        Delivered {
            event_id: id,
            channel: channel.to_string(),
            ts: String::new(),
            thread_ts: String::new(),
        }
    }

    fn send_event(&self, event_id: &str, event: Value) {
        let callback = json!({
            "token": "emulator-verification-token", "team_id": TEAM_ID, "api_app_id": APP_ID,
            "type": "event_callback", "event_id": event_id, "event_time": unix_now(),
            "authorizations": [{"enterprise_id": null, "team_id": TEAM_ID, "user_id": BOT_USER,
                                "is_bot": true, "is_enterprise_install": false}],
            "event_context": "4-emulator", "event": event,
        });
        self.shared.events.lock().unwrap().insert(
            event_id.to_string(),
            (delivery::Kind::Event, callback.clone()),
        );
        delivery::deliver(
            &self.shared,
            delivery::Kind::Event,
            event_id.to_string(),
            callback,
        );
    }

    /// Delivers an event (or slash command) again, as a new delivery of the same id: what a
    /// Slack retry looks like to the app.
    pub fn redeliver(&self, event_id: &str) {
        let Some((kind, payload)) = self.shared.events.lock().unwrap().get(event_id).cloned()
        else {
            panic!("no event {event_id} was sent");
        };
        delivery::deliver(&self.shared, kind, event_id.to_string(), payload);
    }

    /// The user clicks the button (or other element) `action_id` in the blocks of message
    /// `ts` in `channel`: sends the app a `block_actions` interactive payload, with a fresh
    /// `trigger_id` (good for `views.open` for 3 s) and a `response_url`. The returned
    /// `event_id` is `action:<trigger_id>`.
    pub fn click_button(
        &self,
        channel: &str,
        ts: &str,
        action_id: &str,
    ) -> Result<Delivered, String> {
        self.click_button_as(USER, channel, ts, action_id)
    }

    /// [`click_button`](Self::click_button) by another user.
    pub fn click_button_as(
        &self,
        user: &str,
        channel: &str,
        ts: &str,
        action_id: &str,
    ) -> Result<Delivered, String> {
        let (payload, trigger) = {
            let mut m = self.shared.model.lock().unwrap();
            let msg = m
                .get(channel, ts)
                .filter(|m| !m.deleted)
                .cloned()
                .ok_or_else(|| format!("no message {ts} in {channel}"))?;
            let (element, block_id) = msg
                .blocks
                .as_ref()
                .and_then(|b| methods::find_action(b, action_id))
                .ok_or_else(|| format!("message {ts} has no element {action_id:?}"))?;
            let trigger = methods::issue_trigger(&mut m);
            let action_ts = m.next_ts();
            let mut action = json!({
                "action_id": action_id, "block_id": block_id,
                "type": element["type"], "action_ts": action_ts,
            });
            for key in ["text", "value", "style", "url"] {
                if let Some(v) = element.get(key) {
                    action[key] = v.clone();
                }
            }
            let mut message = msg.to_json();
            message["channel"] = json!(channel);
            let mut container = json!({"type": "message", "message_ts": ts,
                                       "channel_id": channel, "is_ephemeral": false});
            if let Some(t) = &msg.thread_ts {
                container["thread_ts"] = json!(t);
            }
            let payload = json!({
                "type": "block_actions",
                "user": {"id": user, "username": "alice", "name": "alice", "team_id": TEAM_ID},
                "api_app_id": APP_ID,
                "token": "emulator-verification-token",
                "container": container,
                "trigger_id": trigger,
                "team": {"id": TEAM_ID, "domain": "emulator"},
                "enterprise": null,
                "is_enterprise_install": false,
                "channel": {"id": channel, "name": channel.to_lowercase()},
                "message": message,
                "state": {"values": {}},
                "response_url": format!("http://{}/commands/{trigger}", self.shared.addr),
                "actions": [action],
            });
            (payload, trigger)
        };
        let id = format!("action:{trigger}");
        self.shared
            .events
            .lock()
            .unwrap()
            .insert(id.clone(), (delivery::Kind::Interactive, payload.clone()));
        delivery::deliver(
            &self.shared,
            delivery::Kind::Interactive,
            id.clone(),
            payload,
        );
        Ok(Delivered {
            event_id: id,
            channel: channel.to_string(),
            ts: ts.to_string(),
            thread_ts: String::new(),
        })
    }

    // ----- faults -----

    /// The next `count` calls to `method` (any method when `None`) get 429 with
    /// `Retry-After: retry_after_secs`.
    pub fn rate_limit(&self, method: Option<&str>, count: usize, retry_after_secs: u64) {
        if count == 0 {
            return;
        }
        self.shared
            .model
            .lock()
            .unwrap()
            .faults
            .push_back(RateLimitFault {
                method: method.map(str::to_string),
                remaining: count,
                retry_after_secs,
            });
    }

    /// Sends `disconnect` (reason e.g. `refresh_requested`) on every Socket Mode connection,
    /// then closes them; unacked envelopes go out again on the next connection.
    pub fn disconnect_sockets(&self, reason: &str) {
        socket::disconnect_all(&self.shared, reason);
    }

    /// Drops every Socket Mode connection without a close frame.
    pub fn drop_sockets(&self) {
        socket::drop_all(&self.shared);
    }

    // ----- what happened -----

    /// Open Socket Mode connections.
    pub fn socket_connections(&self) -> usize {
        self.shared.deliveries.lock().unwrap().conns.len()
    }

    /// Socket Mode connections opened since the start.
    pub fn connections_opened(&self) -> u64 {
        self.shared.deliveries.lock().unwrap().connections_opened
    }

    /// Whether the app acknowledged `id` (an event id or `command:<trigger>`).
    pub fn acked(&self, id: &str) -> bool {
        self.shared.deliveries.lock().unwrap().acked.contains(id)
    }

    /// Every delivery attempt so far.
    pub fn delivery_attempts(&self) -> Vec<DeliveryAttempt> {
        self.shared.deliveries.lock().unwrap().attempts.clone()
    }

    /// Every Web API call so far.
    pub fn calls(&self) -> Vec<ApiCall> {
        self.shared.model.lock().unwrap().calls.clone()
    }

    /// Calls to one method.
    pub fn calls_to(&self, method: &str) -> Vec<ApiCall> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == method)
            .collect()
    }

    /// The replies in a thread (not its root), oldest first, deleted ones left out.
    pub fn thread_messages(&self, thread: &ThreadRef) -> Vec<Message> {
        self.shared
            .model
            .lock()
            .unwrap()
            .thread(&thread.channel, &thread.ts)
            .into_iter()
            .filter(|m| m.ts != thread.ts)
            .collect()
    }

    /// The bot's replies in a thread.
    pub fn bot_replies(&self, thread: &ThreadRef) -> Vec<Message> {
        self.thread_messages(thread)
            .into_iter()
            .filter(|m| m.bot_id.is_some())
            .collect()
    }

    /// Top-level messages of a channel, oldest first, deleted ones left out.
    pub fn channel_messages(&self, channel: &str) -> Vec<Message> {
        let m = self.shared.model.lock().unwrap();
        m.channels
            .get(channel)
            .map(|c| {
                c.values()
                    .filter(|m| m.thread_ts.is_none() && !m.deleted)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every request for a shared file's `url_private`, in order.
    pub fn file_fetches(&self) -> Vec<FileFetch> {
        self.shared.model.lock().unwrap().file_fetches.clone()
    }

    /// Files the bot uploaded (external upload flow).
    pub fn files(&self) -> Vec<File> {
        self.shared
            .model
            .lock()
            .unwrap()
            .files
            .values()
            .cloned()
            .collect()
    }

    /// `(channel, thread_ts, status)` for each `assistant.threads.setStatus`.
    pub fn statuses(&self) -> Vec<(String, String, String)> {
        self.shared.model.lock().unwrap().statuses.clone()
    }

    /// Modals the app opened (`views.open` / `views.push`, as last updated), oldest first.
    pub fn views(&self) -> Vec<Value> {
        self.shared.model.lock().unwrap().views.clone()
    }

    /// The Home tab published for `user`, if any.
    pub fn home_tab(&self, user: &str) -> Option<Value> {
        self.shared
            .model
            .lock()
            .unwrap()
            .home_tabs
            .get(user)
            .cloned()
    }

    /// Messages scheduled with `chat.scheduleMessage` (posted or not).
    pub fn scheduled(&self) -> Vec<Scheduled> {
        self.shared.model.lock().unwrap().scheduled.clone()
    }

    /// A message by channel and `ts` (deleted ones too).
    pub fn message(&self, channel: &str, ts: &str) -> Option<Message> {
        self.shared.model.lock().unwrap().get(channel, ts).cloned()
    }

    /// Messages the bot posted with `chat.postEphemeral` (only their user sees them).
    pub fn ephemerals(&self) -> Vec<Ephemeral> {
        self.shared.model.lock().unwrap().ephemerals.clone()
    }

    pub fn command_responses(&self) -> Vec<CommandResponse> {
        self.shared.model.lock().unwrap().command_responses.clone()
    }

    /// Waits until `cond` holds (checked after every change), up to `timeout`.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        mut cond: impl FnMut(&SlackEmulator) -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.shared.changed.notified();
            if cond(self) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            // Also re-check on a short tick: some changes (time passing) notify nobody.
            let _ = tokio::time::timeout(left.min(Duration::from_millis(50)), notified).await;
        }
    }

    /// Waits until the bot's replies in `thread`, joined with newlines, satisfy `cond`.
    pub async fn wait_for_reply(
        &self,
        thread: &ThreadRef,
        timeout: Duration,
        cond: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let ok = self
            .wait_for(timeout, |e| {
                let t = e.reply_text(thread);
                !t.is_empty() && cond(&t)
            })
            .await;
        ok.then(|| self.reply_text(thread))
    }

    /// The bot's replies in `thread`, joined with newlines.
    pub fn reply_text(&self, thread: &ThreadRef) -> String {
        self.bot_replies(thread)
            .iter()
            .map(|m| m.text.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Bot messages (top level or in threads) anywhere in `channel`, oldest first.
    pub fn bot_messages_in(&self, channel: &str) -> Vec<Message> {
        let m = self.shared.model.lock().unwrap();
        m.channels
            .get(channel)
            .map(|c| {
                c.values()
                    .filter(|m| m.bot_id.is_some() && !m.deleted)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Sends the app the `message` event Slack sends for the bot's own post (loop guard).
    pub(crate) fn echo(shared: &Arc<Shared>, message: &Value) {
        if !shared.options.echo_bot_messages {
            return;
        }
        let event_id = shared.model.lock().unwrap().next_id("Ev");
        let mut event = message.clone();
        event["channel_type"] = json!(
            if message["channel"].as_str().unwrap_or("").starts_with('D') {
                "im"
            } else {
                "channel"
            }
        );
        event["event_ts"] = message["ts"].clone();
        let callback = json!({
            "token": "emulator-verification-token", "team_id": TEAM_ID, "api_app_id": APP_ID,
            "type": "event_callback", "event_id": event_id, "event_time": unix_now(),
            "authorizations": [{"enterprise_id": null, "team_id": TEAM_ID, "user_id": BOT_USER,
                                "is_bot": true, "is_enterprise_install": false}],
            "event": event,
        });
        delivery::deliver(shared, delivery::Kind::Event, event_id, callback);
    }
}
