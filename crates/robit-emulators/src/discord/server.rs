//! [`DiscordEmulator`]: the server (REST + gateway + control API on one loopback port) and the
//! scenario API tests drive it with: users speak, slash commands are invoked, faults are
//! injected, and what the bot did is read back from the model.
//!
//! It binds `127.0.0.1` only and must never reach the network.

use super::state::{
    Channel, Delivery, EmulatorConfig, Fault, GatewayRecord, Interaction, Message, Outbound,
    RecordedRequest, State, GUILD_TEXT, PUBLIC_THREAD,
};
use super::{control, delivery, gateway, rest, routes};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

pub(crate) struct Shared {
    state: Mutex<State>,
    /// Live gateway connections and their writers.
    pub connections: Mutex<Vec<(u64, mpsc::UnboundedSender<Outbound>)>>,
    heartbeat_acks: AtomicBool,
    /// The default guild, channel and human user, for the control API.
    pub defaults: (u64, u64, u64),
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn ack_heartbeats(&self) -> bool {
        self.heartbeat_acks.load(Ordering::Relaxed)
    }
}

/// A gateway session as tests see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionView {
    pub id: String,
    pub shard: (u32, u32),
    pub intents: u64,
    pub seq: u64,
    pub connected: bool,
    pub replaced: bool,
}

/// A slash command the emulator sent: its interaction id and token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InteractionRef {
    pub id: u64,
    pub token: String,
}

/// A loopback Discord. Dropping it closes every gateway connection and stops the server.
pub struct DiscordEmulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
}

impl std::fmt::Debug for DiscordEmulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscordEmulator")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl DiscordEmulator {
    /// Starts on `127.0.0.1:0` with the default configuration.
    pub async fn start() -> DiscordEmulator {
        Self::start_with(EmulatorConfig::default()).await
    }

    pub async fn start_with(config: EmulatorConfig) -> DiscordEmulator {
        Self::bind(([127, 0, 0, 1], 0).into(), config)
            .await
            .expect("bind the discord emulator to 127.0.0.1:0")
    }

    /// Starts on `addr` (the standalone binary picks the port).
    pub async fn bind(addr: SocketAddr, config: EmulatorConfig) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let mut state = State::new(config, format!("http://{addr}"));
        let user = state.add_user("alice", false);
        let (guild, channel) = state.add_guild("robit test guild", user);
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            connections: Mutex::new(Vec::new()),
            heartbeat_acks: AtomicBool::new(true),
            defaults: (guild, channel, user),
        });
        let app = Router::new()
            .route("/gateway-ws", get(gateway::upgrade))
            .route("/attachments/{channel}/{id}/{name}", get(rest::attachment))
            .nest("/_emulator", control::router())
            .fallback(rest::api)
            .with_state(shared.clone());
        let (shutdown, mut stop) = watch::channel(false);
        tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            });
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "discord emulator stopped");
            }
        });
        Ok(DiscordEmulator {
            addr,
            shared,
            shutdown,
        })
    }

    /// `http://127.0.0.1:P`: serenity's `HttpBuilder::proxy` value (paths are `/api/v10/…`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bot token the emulator accepts (without `Bot `).
    pub fn token(&self) -> String {
        self.shared.lock().config.token.clone()
    }

    pub fn application_id(&self) -> u64 {
        self.shared.lock().application_id
    }

    pub fn bot_id(&self) -> u64 {
        self.shared.lock().bot_id
    }

    /// The default guild, created at start.
    pub fn guild_id(&self) -> u64 {
        self.shared.defaults.0
    }

    /// The default guild's `#general`.
    pub fn channel_id(&self) -> u64 {
        self.shared.defaults.1
    }

    /// The default human user, `alice`.
    pub fn user_id(&self) -> u64 {
        self.shared.defaults.2
    }

    pub fn add_user(&self, name: &str, bot: bool) -> u64 {
        self.shared.lock().add_user(name, bot)
    }

    /// A new guild with a `#general` channel; returns `(guild, channel)`. Connected shards that
    /// own it get GUILD_CREATE, as when a bot is added to a server.
    pub fn add_guild(&self, name: &str) -> (u64, u64) {
        let mut st = self.shared.lock();
        let owner = self.shared.defaults.2;
        let ids = st.add_guild(name, owner);
        announce_guild(&mut st, ids.0);
        ids
    }

    /// Like [`add_guild`](Self::add_guild), with an id that routes to `shard` of `total`.
    pub fn add_guild_on_shard(&self, name: &str, shard: u32, total: u32) -> (u64, u64) {
        let mut st = self.shared.lock();
        let owner = self.shared.defaults.2;
        let ids = st.add_guild_on_shard(name, owner, shard, total);
        announce_guild(&mut st, ids.0);
        ids
    }

    pub fn add_text_channel(&self, guild: u64, name: &str) -> u64 {
        self.shared
            .lock()
            .add_channel(GUILD_TEXT, name, Some(guild), None, None)
    }

    /// The DM channel between the bot and `user`.
    pub fn dm_channel(&self, user: u64) -> u64 {
        self.shared.lock().dm_channel(user)
    }

    /// `alice` posts `text` in `channel` (mentions parsed from `<@id>`); returns the message id.
    pub fn user_says(&self, channel: u64, text: &str) -> u64 {
        self.says(self.user_id(), channel, text)
    }

    /// The author of user message `message` edits it to `text`: its content, mentions and
    /// `edited_timestamp` change and MESSAGE_UPDATE is dispatched with the whole message, as
    /// Discord does for an edit. Bots' messages are not a user's to edit.
    pub fn user_edits(&self, message: u64, text: &str) -> Result<(), String> {
        edit_user_message(&self.shared, message, text)
    }

    /// `author` posts `text` in `channel`; dispatches MESSAGE_CREATE.
    pub fn says(&self, author: u64, channel: u64, text: &str) -> u64 {
        let mut st = self.shared.lock();
        assert!(
            st.channels.contains_key(&channel),
            "unknown channel {channel}"
        );
        let id = st.create_message(channel, author, text, true);
        gateway::dispatch_message(&mut st, id, "MESSAGE_CREATE");
        id
    }

    /// `owner` starts a public thread named `name` from `message` in `channel` (a thread
    /// robit did not start); dispatches THREAD_CREATE. Returns the thread id (= the message id).
    pub fn start_thread(&self, owner: u64, channel: u64, message: u64, name: &str) -> u64 {
        let mut st = self.shared.lock();
        let guild = st.channels.get(&channel).and_then(|c| c.guild_id);
        st.insert_channel(
            message,
            PUBLIC_THREAD,
            name,
            guild,
            Some(channel),
            Some(owner),
        );
        if let Some(m) = st.messages.get_mut(&message) {
            m.thread_id = Some(message);
        }
        let thread = st.channels[&message].clone();
        let mut d = super::payloads::channel(&st, &thread);
        d["newly_created"] = json!(true);
        gateway::dispatch(
            &mut st,
            guild,
            "THREAD_CREATE",
            gateway::INTENT_GUILDS,
            |_| d.clone(),
        );
        message
    }

    /// `alice` invokes `/name` in `channel` with string options; dispatches INTERACTION_CREATE
    /// (in the channel's guild, or as a DM interaction in a DM channel).
    pub fn slash_command(
        &self,
        channel: u64,
        name: &str,
        options: &[(&str, &str)],
    ) -> InteractionRef {
        self.slash_command_as(self.user_id(), channel, name, options)
    }

    pub fn slash_command_as(
        &self,
        user: u64,
        channel: u64,
        name: &str,
        options: &[(&str, &str)],
    ) -> InteractionRef {
        let mut st = self.shared.lock();
        let guild = st.channels.get(&channel).and_then(|c| c.guild_id);
        let options: Vec<(String, String)> = options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (id, token, payload) =
            routes::new_interaction(&mut st, guild, channel, user, name, &options);
        if let Some(url) = st.interactions_url.clone() {
            drop(st);
            tokio::spawn(delivery::deliver(
                self.shared.clone(),
                url,
                Some(id),
                payload.to_string(),
                true,
            ));
        }
        InteractionRef { id, token }
    }

    /// `alice` presses the button `custom_id` on bot message `message`; dispatches a
    /// MESSAGE_COMPONENT INTERACTION_CREATE (or POSTs it to the Interactions Endpoint URL).
    pub fn click(&self, message: u64, custom_id: &str) -> Result<InteractionRef, String> {
        self.component_as(self.user_id(), message, custom_id, None)
    }

    /// `alice` picks `values` in the select menu `custom_id` on bot message `message`.
    pub fn select(
        &self,
        message: u64,
        custom_id: &str,
        values: &[&str],
    ) -> Result<InteractionRef, String> {
        let values = values.iter().map(|v| v.to_string()).collect();
        self.component_as(self.user_id(), message, custom_id, Some(values))
    }

    /// A component interaction by `user`: a button press (`values: None`) or a select.
    pub fn component_as(
        &self,
        user: u64,
        message: u64,
        custom_id: &str,
        values: Option<Vec<String>>,
    ) -> Result<InteractionRef, String> {
        component_interaction(&self.shared, user, message, custom_id, values)
    }

    /// `author` replies to `message` (a `message_reference` reply); dispatches MESSAGE_CREATE
    /// with `referenced_message`. Returns the reply's id.
    pub fn replies(&self, author: u64, message: u64, text: &str) -> u64 {
        let mut st = self.shared.lock();
        let channel = st.messages.get(&message).map(|m| m.channel_id);
        let channel = channel.unwrap_or_else(|| panic!("unknown message {message}"));
        let id = st.create_message(channel, author, text, true);
        if let Some(m) = st.messages.get_mut(&id) {
            m.reference = Some(message);
        }
        gateway::dispatch_message(&mut st, id, "MESSAGE_CREATE");
        id
    }

    /// `user` reacts to `message` with `emoji` (`👍`, or `name:id` for a custom emoji);
    /// dispatches MESSAGE_REACTION_ADD.
    pub fn react(&self, user: u64, message: u64, emoji: &str) {
        let mut st = self.shared.lock();
        let channel = st.messages.get(&message).map(|m| m.channel_id);
        let channel = channel.unwrap_or_else(|| panic!("unknown message {message}"));
        super::channels::react(&mut st, channel, message, user, emoji, true);
    }

    /// How many times the bot triggered the typing indicator in `channel`.
    pub fn typing_count(&self, channel: u64) -> u32 {
        self.shared
            .lock()
            .typing
            .get(&channel)
            .copied()
            .unwrap_or(0)
    }

    /// Pinned message ids of `channel`, oldest pin first.
    pub fn pins(&self, channel: u64) -> Vec<u64> {
        self.shared
            .lock()
            .pins
            .get(&channel)
            .map(|p| p.iter().map(|(m, _)| *m).collect())
            .unwrap_or_default()
    }

    /// The application's public key (hex), for the bot to verify HTTP interactions with.
    pub fn public_key(&self) -> String {
        let st = self.shared.lock();
        hex::encode(st.signing_key.verifying_key().to_bytes())
    }

    /// Sets the Interactions Endpoint URL the way the developer portal does: Discord first
    /// checks that the endpoint answers a signed PING with PONG and rejects a badly signed one
    /// with 401, and refuses the URL otherwise. From then on, slash commands are POSTed there
    /// instead of sent over the gateway.
    pub async fn set_interactions_endpoint(&self, url: &str) -> Result<(), String> {
        let ping = delivery::ping(&mut self.shared.lock());
        let good = delivery::deliver(
            self.shared.clone(),
            url.to_string(),
            None,
            ping.clone(),
            true,
        )
        .await;
        let pong = serde_json::from_str::<Value>(&good.body).ok();
        if good.status != 200 || pong.as_ref().map(|p| &p["type"]) != Some(&json!(1)) {
            return Err(format!("the PING got {} {:?}", good.status, good.body));
        }
        let bad = delivery::deliver(self.shared.clone(), url.to_string(), None, ping, false).await;
        if bad.status != 401 {
            return Err(format!("a bad signature got {}, not 401", bad.status));
        }
        self.shared.lock().interactions_url = Some(url.to_string());
        Ok(())
    }

    /// Every HTTP interaction POSTed to the bot so far.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared.lock().deliveries.clone()
    }

    /// Messages visible in `channel`, oldest first.
    pub fn messages(&self, channel: u64) -> Vec<Message> {
        let st = self.shared.lock();
        st.channels
            .get(&channel)
            .map(|c| {
                c.messages
                    .iter()
                    .filter_map(|m| st.messages.get(m).cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The bot's messages in `channel`, oldest first.
    pub fn bot_messages(&self, channel: u64) -> Vec<Message> {
        let bot = self.bot_id();
        self.messages(channel)
            .into_iter()
            .filter(|m| m.author_id == bot)
            .collect()
    }

    pub fn message(&self, id: u64) -> Option<Message> {
        self.shared.lock().messages.get(&id).cloned()
    }

    pub fn channel(&self, id: u64) -> Option<Channel> {
        self.shared.lock().channels.get(&id).cloned()
    }

    /// Threads in `parent`, oldest first.
    pub fn threads(&self, parent: u64) -> Vec<Channel> {
        let st = self.shared.lock();
        let mut t: Vec<Channel> = st
            .channels
            .values()
            .filter(|c| c.is_thread() && c.parent_id == Some(parent))
            .cloned()
            .collect();
        t.sort_by_key(|c| c.id);
        t
    }

    pub fn interaction(&self, id: u64) -> Option<Interaction> {
        self.shared.lock().interactions.get(&id).cloned()
    }

    /// The original response and follow-ups of an interaction, in order.
    pub fn interaction_messages(&self, id: u64) -> Vec<Message> {
        let st = self.shared.lock();
        let Some(i) = st.interactions.get(&id) else {
            return Vec::new();
        };
        i.original
            .iter()
            .chain(i.followups.iter())
            .filter_map(|m| st.messages.get(m).cloned())
            .collect()
    }

    /// Every REST request so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Requests whose method matches and whose path starts with `prefix`.
    pub fn requests_to(&self, method: &str, prefix: &str) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == method && r.path.starts_with(prefix))
            .collect()
    }

    /// Every dispatch frame sent (or queued) so far, raw, across sessions: for checking the
    /// shapes against a client library's types.
    pub fn dispatch_frames(&self) -> Vec<String> {
        self.shared
            .lock()
            .sessions
            .iter()
            .flat_map(|s| s.log.iter().map(|(_, f)| f.clone()))
            .collect()
    }

    pub fn gateway_log(&self) -> Vec<GatewayRecord> {
        self.shared.lock().gateway_log.clone()
    }

    pub fn sessions(&self) -> Vec<SessionView> {
        self.shared
            .lock()
            .sessions
            .iter()
            .map(|s| SessionView {
                id: s.id.clone(),
                shard: s.shard,
                intents: s.intents,
                seq: s.seq,
                connected: s.connection.is_some(),
                replaced: s.replaced,
            })
            .collect()
    }

    pub fn global_commands(&self) -> Vec<Value> {
        self.shared.lock().global_commands.clone()
    }

    pub fn guild_commands(&self, guild: u64) -> Vec<Value> {
        self.shared
            .lock()
            .guild_commands
            .get(&guild)
            .cloned()
            .unwrap_or_default()
    }

    /// Adds a fault rule (see [`Fault`]).
    pub fn inject(&self, fault: Fault) {
        self.shared.lock().faults.push(fault);
    }

    /// Cuts every gateway connection without a close frame, like a network failure; sessions
    /// stay resumable.
    pub fn drop_gateway(&self) {
        gateway::broadcast(&self.shared, || Outbound::Drop);
    }

    /// Closes every gateway connection with `code` (e.g. 4000 to resume, 4009 to re-identify).
    pub fn close_gateway(&self, code: u16) {
        gateway::broadcast(&self.shared, || Outbound::Close(code));
    }

    /// Sends op 7 RECONNECT: clients should resume on a new connection.
    pub fn request_reconnect(&self) {
        gateway::send_all(&self.shared, json!({"op": 7, "d": null}));
    }

    /// Sends op 9 INVALID_SESSION with `d = resumable`.
    pub fn invalidate_sessions(&self, resumable: bool) {
        if !resumable {
            for s in self.shared.lock().sessions.iter_mut() {
                s.replaced = true;
            }
        }
        gateway::send_all(&self.shared, json!({"op": 9, "d": resumable}));
    }

    /// Stops (or restarts) acknowledging heartbeats: a zombied connection.
    pub fn set_heartbeat_acks(&self, on: bool) {
        self.shared.heartbeat_acks.store(on, Ordering::Relaxed);
    }

    /// Polls `f` every 20 ms until it returns `Some`, or panics naming `what` after `timeout`.
    pub async fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut(&Self) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = f(self) {
                return v;
            }
            if Instant::now() > deadline {
                panic!("timed out after {timeout:?} waiting for {what}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until `n` live sessions are connected and past READY.
    pub async fn wait_ready(&self, n: usize, timeout: Duration) {
        self.wait_for("gateway sessions", timeout, |e| {
            let live = e
                .sessions()
                .iter()
                .filter(|s| s.connected && !s.replaced && s.seq >= 1)
                .count();
            (live >= n).then_some(())
        })
        .await;
    }
}

/// Creates a component interaction and delivers it (gateway, or the Interactions Endpoint
/// URL when one is set); shared by the scenario API and the control API.
pub(crate) fn component_interaction(
    shared: &Arc<Shared>,
    user: u64,
    message: u64,
    custom_id: &str,
    values: Option<Vec<String>>,
) -> Result<InteractionRef, String> {
    let mut st = shared.lock();
    let (id, token, payload) =
        routes::new_component_interaction(&mut st, user, message, custom_id, values)?;
    if let Some(url) = st.interactions_url.clone() {
        drop(st);
        tokio::spawn(delivery::deliver(
            shared.clone(),
            url,
            Some(id),
            payload.to_string(),
            true,
        ));
    }
    Ok(InteractionRef { id, token })
}

/// [`DiscordEmulator::user_edits`], shared with the control API.
pub(crate) fn edit_user_message(shared: &Shared, message: u64, text: &str) -> Result<(), String> {
    let mut st = shared.lock();
    let bot = st.bot_id;
    let Some(m) = st.messages.get_mut(&message) else {
        return Err(format!("unknown message {message}"));
    };
    if m.author_id == bot || m.webhook_id.is_some() {
        return Err(format!("message {message} is not a user's"));
    }
    m.content = text.to_string();
    m.mentions = super::state::parse_mentions(text);
    m.edited = Some(std::time::SystemTime::now());
    m.edits += 1;
    gateway::dispatch_message(&mut st, message, "MESSAGE_UPDATE");
    Ok(())
}

/// GUILD_CREATE for a guild added while shards are connected.
fn announce_guild(st: &mut State, guild: u64) {
    let Some(g) = st.guilds.get(&guild).cloned() else {
        return;
    };
    let d = super::payloads::guild(st, &g);
    gateway::dispatch(
        st,
        Some(guild),
        "GUILD_CREATE",
        gateway::INTENT_GUILDS,
        |_| d.clone(),
    );
}

impl Drop for DiscordEmulator {
    fn drop(&mut self) {
        gateway::broadcast(&self.shared, || Outbound::Drop);
        let _ = self.shutdown.send(true);
    }
}
