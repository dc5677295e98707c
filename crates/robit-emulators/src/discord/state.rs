//! The emulator's model of one Discord application: users, guilds, channels, threads,
//! messages, interactions, the request log, injected faults and rate-limit buckets.
//!
//! Everything lives in one [`State`] behind one mutex, so a REST handler, a gateway dispatch
//! and a test's assertion always see a consistent world. This file holds data and the small
//! rules that belong to the data (ids, buckets, faults); it must not do I/O: the REST and
//! gateway modules do that.

use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// Milliseconds from the Unix epoch to Discord's (2015-01-01), the origin of snowflakes.
pub const DISCORD_EPOCH_MS: u64 = 1_420_070_400_000;

/// Message flag `LOADING`: the "Bot is thinking…" placeholder of a deferred interaction.
pub const FLAG_LOADING: u64 = 1 << 7;

/// Message flag `SUPPRESS_EMBEDS`.
pub const FLAG_SUPPRESS_EMBEDS: u64 = 1 << 2;
/// Message flag `EPHEMERAL`: only the invoking user sees an interaction response.
pub const FLAG_EPHEMERAL: u64 = 1 << 6;
/// Message flag `SUPPRESS_NOTIFICATIONS`: a "silent" message (`@silent`).
pub const FLAG_SUPPRESS_NOTIFICATIONS: u64 = 1 << 12;
/// Message flag `IS_COMPONENTS_V2`: the message is laid out by `components` alone.
pub const FLAG_IS_COMPONENTS_V2: u64 = 1 << 15;

/// Channel types used here (Discord's numbers).
pub const GUILD_TEXT: u8 = 0;
pub const DM: u8 = 1;
pub const PUBLIC_THREAD: u8 = 11;
pub const PRIVATE_THREAD: u8 = 12;

/// A request budget: `limit` requests per `window`, Discord-style (the window starts with
/// the first request after the previous one expired).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub limit: u32,
    pub window: Duration,
}

/// How the emulator behaves; the defaults are Discord's documented (or, for the per-channel
/// message budget, widely reported) numbers.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// The bot token the application accepts, without the `Bot ` prefix.
    pub token: String,
    pub bot_name: String,
    /// Sent in HELLO; serenity heartbeats once per interval.
    pub heartbeat_interval: Duration,
    /// Shared by POST and PATCH of messages in one channel, and separately by the webhook
    /// routes of one interaction token. Default 5 per 5 s (reported, not documented).
    pub message_rate_limit: RateLimit,
    /// An interaction must be answered within this (Discord: 3 s) or its token dies.
    pub interaction_deadline: Duration,
    /// Interaction tokens take follow-ups for this long (Discord: 15 min).
    pub interaction_token_lifetime: Duration,
    /// Gateway connections asking `compress=zlib-stream` get compressed binary frames.
    /// Off, they get plain text frames (which clients must also accept).
    pub zlib_stream: bool,
    /// Whether the privileged MESSAGE_CONTENT intent is enabled for the application. When the
    /// bot does not ask for it (or it is not granted), guild messages arrive with empty
    /// content unless they mention the bot, as on Discord.
    pub message_content_granted: bool,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            token: "emulator-bot-token".to_string(),
            bot_name: "robit".to_string(),
            heartbeat_interval: Duration::from_millis(41_250),
            message_rate_limit: RateLimit {
                limit: 5,
                window: Duration::from_secs(5),
            },
            interaction_deadline: Duration::from_secs(3),
            interaction_token_lifetime: Duration::from_secs(15 * 60),
            message_content_granted: true,
            zlib_stream: true,
        }
    }
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: u64,
    pub name: String,
    pub bot: bool,
}

#[derive(Debug, Clone)]
pub struct Guild {
    pub id: u64,
    pub name: String,
    pub owner_id: u64,
    pub joined_at: SystemTime,
}

#[derive(Debug, Clone)]
pub struct Channel {
    pub id: u64,
    pub kind: u8,
    pub name: String,
    pub guild_id: Option<u64>,
    pub parent_id: Option<u64>,
    pub owner_id: Option<u64>,
    /// For DMs: the other user.
    pub recipient: Option<u64>,
    pub messages: Vec<u64>,
    pub created: SystemTime,
}

impl Channel {
    pub fn is_thread(&self) -> bool {
        matches!(self.kind, PUBLIC_THREAD | PRIVATE_THREAD)
    }
}

/// A file attached to a message, kept whole so tests can read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAttachment {
    pub id: u64,
    pub filename: String,
    pub content_type: Option<String>,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct Message {
    pub id: u64,
    pub channel_id: u64,
    pub author_id: u64,
    pub content: String,
    pub attachments: Vec<StoredAttachment>,
    pub flags: u64,
    pub created: SystemTime,
    pub edited: Option<SystemTime>,
    /// How many times it was edited after creation.
    pub edits: u32,
    pub mentions: Vec<u64>,
    pub mention_everyone: bool,
    /// Set for messages posted through an interaction's webhook.
    pub webhook_id: Option<u64>,
    pub interaction_id: Option<u64>,
    pub nonce: Option<String>,
    /// A thread started from this message.
    pub thread_id: Option<u64>,
    /// Embed objects, as sent.
    pub embeds: Vec<Value>,
    /// Component objects (action rows, or components v2 layout), as sent.
    pub components: Vec<Value>,
    /// The message this one replies to (`message_reference`).
    pub reference: Option<u64>,
    /// Reactions in the order they were first added.
    pub reactions: Vec<Reaction>,
    pub pinned: bool,
    /// Sticker ids, as sent.
    pub sticker_ids: Vec<String>,
}

/// One emoji's reactions on a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reaction {
    /// `name` for a unicode emoji, `name:id` for a custom one (the URL form).
    pub emoji: String,
    pub users: Vec<u64>,
}

#[derive(Debug, Clone)]
pub struct Interaction {
    pub id: u64,
    pub token: String,
    pub name: String,
    pub guild_id: Option<u64>,
    pub channel_id: u64,
    pub user_id: u64,
    pub created: Instant,
    /// The callback type the bot answered with (4, 5, …), once it did.
    pub response_type: Option<u8>,
    /// 2 for an application command, 3 for a message component, 5 for a modal submit.
    pub kind: u8,
    /// For a component interaction: the message the component is on.
    pub message_id: Option<u64>,
    /// A modal the bot answered with (callback type 9), as sent.
    pub modal: Option<Value>,
    /// The message the response created (the deferred placeholder or a type-4 reply).
    pub original: Option<u64>,
    pub followups: Vec<u64>,
}

/// One fault rule: the next `remaining` requests matching `method` and `path_prefix`
/// (the path after `/api/v10`) get `kind` instead of their normal answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// `None` matches every method.
    pub method: Option<String>,
    pub path_prefix: String,
    pub kind: FaultKind,
    pub remaining: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FaultKind {
    /// A real-looking 429 with this `retry_after`.
    RateLimited { retry_after: Duration },
    /// The global rate limit's 429 (`"global": true`, `X-RateLimit-Global`).
    GlobalRateLimited { retry_after: Duration },
    /// This status with a Discord error body (e.g. 500, 502, 503).
    Status(u16),
    /// Answer normally, but only after this long.
    Delay(Duration),
}

impl Fault {
    /// The next `count` requests matching `method path_prefix…` get 429s.
    pub fn rate_limit(method: &str, path_prefix: &str, count: u32, retry_after: Duration) -> Self {
        Self::new(
            method,
            path_prefix,
            count,
            FaultKind::RateLimited { retry_after },
        )
    }

    /// The next `count` requests matching `method path_prefix…` hit the global rate limit.
    pub fn global_rate_limit(
        method: &str,
        path_prefix: &str,
        count: u32,
        retry_after: Duration,
    ) -> Self {
        Self::new(
            method,
            path_prefix,
            count,
            FaultKind::GlobalRateLimited { retry_after },
        )
    }

    /// The next `count` matching requests fail with `status`.
    pub fn status(method: &str, path_prefix: &str, count: u32, status: u16) -> Self {
        Self::new(method, path_prefix, count, FaultKind::Status(status))
    }

    /// The next `count` matching requests are answered `delay` late.
    pub fn delay(method: &str, path_prefix: &str, count: u32, delay: Duration) -> Self {
        Self::new(method, path_prefix, count, FaultKind::Delay(delay))
    }

    fn new(method: &str, path_prefix: &str, count: u32, kind: FaultKind) -> Self {
        Self {
            method: (!method.is_empty() && method != "*").then(|| method.to_ascii_uppercase()),
            path_prefix: path_prefix.to_string(),
            kind,
            remaining: count,
        }
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.remaining > 0
            && self.method.as_deref().is_none_or(|m| m == method)
            && path.starts_with(&self.path_prefix)
    }
}

/// One request the emulator received, for assertions.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    pub method: String,
    /// The path after `/api/v10`, e.g. `/channels/123/messages`.
    pub path: String,
    pub query: Option<String>,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    /// The JSON body, or `payload_json` of a multipart body; `Null` if none.
    pub body: Value,
    /// `(field name, filename, size)` of each multipart file.
    pub files: Vec<(String, String, usize)>,
    /// The status the emulator answered with.
    pub status: u16,
    /// The response's headers (lower-case names), rate-limit headers included.
    pub response_headers: Vec<(String, String)>,
    pub at: Instant,
}

impl RecordedRequest {
    /// A request header.
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// A response header.
    pub fn response_header(&self, name: &str) -> Option<&str> {
        find_header(&self.response_headers, name)
    }
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A Discord-style fixed-window bucket.
#[derive(Debug, Clone)]
pub struct Bucket {
    pub remaining: u32,
    pub reset_at: Instant,
}

/// What a bucket says about one request.
#[derive(Debug, Clone, Copy)]
pub struct BucketState {
    pub limit: u32,
    pub remaining: u32,
    pub reset_after: Duration,
    /// `Some(retry_after)` when the request is over the limit.
    pub limited: Option<Duration>,
}

/// What the gateway writer task of one connection is told to do.
#[derive(Debug)]
pub enum Outbound {
    Frame(String),
    /// Close with a close frame and this code.
    Close(u16),
    /// Drop the TCP connection without a close frame (a network failure).
    Drop,
}

/// One gateway session (IDENTIFY … RESUME …), with every dispatch it was sent so a resume
/// can replay what the client missed.
#[derive(Debug)]
pub struct Session {
    pub id: String,
    pub shard: (u32, u32),
    pub intents: u64,
    pub seq: u64,
    pub log: Vec<(u64, String)>,
    /// The live connection, if any: its number and its writer.
    pub connection: Option<(u64, mpsc::UnboundedSender<Outbound>)>,
    /// A newer IDENTIFY for the same shard replaced this session.
    pub replaced: bool,
}

/// One gateway frame, for assertions (`op`, `t`, `s`, and which way it went).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayRecord {
    pub connection: u64,
    /// `true` for frames the client sent.
    pub from_client: bool,
    pub op: u8,
    pub t: Option<String>,
    pub s: Option<u64>,
    pub session: Option<String>,
}

#[derive(Debug)]
pub struct State {
    pub config: EmulatorConfig,
    pub application_id: u64,
    pub bot_id: u64,
    id_ms: u64,
    pub users: HashMap<u64, User>,
    pub guilds: BTreeMap<u64, Guild>,
    pub channels: HashMap<u64, Channel>,
    pub messages: HashMap<u64, Message>,
    pub interactions: HashMap<u64, Interaction>,
    pub requests: Vec<RecordedRequest>,
    pub faults: Vec<Fault>,
    pub buckets: HashMap<String, Bucket>,
    pub global_commands: Vec<Value>,
    pub guild_commands: HashMap<u64, Vec<Value>>,
    pub sessions: Vec<Session>,
    pub gateway_log: Vec<GatewayRecord>,
    pub next_connection: u64,
    /// Connections that asked for (and got) `compress=zlib-stream`.
    pub zlib_connections: u64,
    /// The base URL (`http://127.0.0.1:P`), for attachment URLs and the gateway URL.
    pub base_url: String,
    /// The application's "Interactions Endpoint URL": when set, interactions are POSTed
    /// there (signed) instead of sent over the gateway, as on Discord.
    pub interactions_url: Option<String>,
    /// The application's Ed25519 key pair; the public half is what the bot verifies with.
    pub signing_key: ed25519_dalek::SigningKey,
    pub deliveries: Vec<Delivery>,
    /// `POST /channels/{id}/typing` calls per channel.
    pub typing: HashMap<u64, u32>,
    /// Pinned messages per channel, newest pin last, with when they were pinned.
    pub pins: HashMap<u64, Vec<(u64, SystemTime)>>,
}

/// One HTTP interaction the emulator POSTed to the bot, and how the bot answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// `None` for a PING.
    pub interaction_id: Option<u64>,
    pub status: u16,
    pub body: String,
}

impl State {
    pub fn new(config: EmulatorConfig, base_url: String) -> Self {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(DISCORD_EPOCH_MS);
        let mut state = State {
            config,
            application_id: 0,
            bot_id: 0,
            id_ms: now_ms.saturating_sub(DISCORD_EPOCH_MS),
            users: HashMap::new(),
            guilds: BTreeMap::new(),
            channels: HashMap::new(),
            messages: HashMap::new(),
            interactions: HashMap::new(),
            requests: Vec::new(),
            faults: Vec::new(),
            buckets: HashMap::new(),
            global_commands: Vec::new(),
            guild_commands: HashMap::new(),
            sessions: Vec::new(),
            gateway_log: Vec::new(),
            next_connection: 0,
            zlib_connections: 0,
            base_url,
            interactions_url: None,
            signing_key: ed25519_dalek::SigningKey::from_bytes(&[0; 32]),
            deliveries: Vec::new(),
            typing: HashMap::new(),
            pins: HashMap::new(),
        };
        // On Discord the bot user's id is the application id for every app made since 2016.
        let bot_name = state.config.bot_name.clone();
        state.bot_id = state.add_user(&bot_name, true);
        state.application_id = state.bot_id;
        // A key pair of its own per emulator, derived from its (time-based) application id.
        let mut seed = [0u8; 32];
        for (i, b) in seed.iter_mut().enumerate() {
            *b = (state.application_id >> ((i % 8) * 8)) as u8 ^ i as u8;
        }
        state.signing_key = ed25519_dalek::SigningKey::from_bytes(&seed);
        state
    }

    /// A fresh snowflake. The timestamp part moves one millisecond per id, so consecutive
    /// guild ids land on consecutive shards (`(id >> 22) % shard_total`).
    pub fn next_id(&mut self) -> u64 {
        self.id_ms += 1;
        (self.id_ms << 22) | 1
    }

    pub fn add_user(&mut self, name: &str, bot: bool) -> u64 {
        let id = self.next_id();
        self.users.insert(
            id,
            User {
                id,
                name: name.to_string(),
                bot,
            },
        );
        id
    }

    /// A guild with one text channel, `general`; returns `(guild, channel)`.
    pub fn add_guild(&mut self, name: &str, owner_id: u64) -> (u64, u64) {
        let id = self.next_id();
        self.guilds.insert(
            id,
            Guild {
                id,
                name: name.to_string(),
                owner_id,
                joined_at: SystemTime::now(),
            },
        );
        let channel = self.add_channel(GUILD_TEXT, "general", Some(id), None, None);
        (id, channel)
    }

    /// A guild whose id routes to `shard` of `total`.
    pub fn add_guild_on_shard(
        &mut self,
        name: &str,
        owner_id: u64,
        shard: u32,
        total: u32,
    ) -> (u64, u64) {
        let total = u64::from(total.max(1));
        while ((self.id_ms + 1) % total) != u64::from(shard) % total {
            self.id_ms += 1;
        }
        self.add_guild(name, owner_id)
    }

    pub fn add_channel(
        &mut self,
        kind: u8,
        name: &str,
        guild_id: Option<u64>,
        parent_id: Option<u64>,
        owner_id: Option<u64>,
    ) -> u64 {
        let id = self.next_id();
        self.insert_channel(id, kind, name, guild_id, parent_id, owner_id);
        id
    }

    pub fn insert_channel(
        &mut self,
        id: u64,
        kind: u8,
        name: &str,
        guild_id: Option<u64>,
        parent_id: Option<u64>,
        owner_id: Option<u64>,
    ) {
        self.channels.insert(
            id,
            Channel {
                id,
                kind,
                name: name.to_string(),
                guild_id,
                parent_id,
                owner_id,
                recipient: None,
                messages: Vec::new(),
                created: SystemTime::now(),
            },
        );
    }

    /// The DM channel between the bot and `user`, created on first use.
    pub fn dm_channel(&mut self, user: u64) -> u64 {
        if let Some(c) = self
            .channels
            .values()
            .find(|c| c.kind == DM && c.recipient == Some(user))
        {
            return c.id;
        }
        let id = self.add_channel(DM, "", None, None, None);
        if let Some(c) = self.channels.get_mut(&id) {
            c.recipient = Some(user);
        }
        id
    }

    /// Stores a new message and returns its id. Mentions are parsed from `<@id>` / `<@!id>`;
    /// `@everyone`/`@here` count only when `everyone_allowed` (the sender's allowed_mentions).
    pub fn create_message(
        &mut self,
        channel_id: u64,
        author_id: u64,
        content: &str,
        everyone_allowed: bool,
    ) -> u64 {
        let id = self.next_id();
        let mentions = parse_mentions(content)
            .into_iter()
            .filter(|u| self.users.contains_key(u))
            .collect();
        let mention_everyone =
            everyone_allowed && (content.contains("@everyone") || content.contains("@here"));
        self.messages.insert(
            id,
            Message {
                id,
                channel_id,
                author_id,
                content: content.to_string(),
                attachments: Vec::new(),
                flags: 0,
                created: SystemTime::now(),
                edited: None,
                edits: 0,
                mentions,
                mention_everyone,
                webhook_id: None,
                interaction_id: None,
                nonce: None,
                thread_id: None,
                embeds: Vec::new(),
                components: Vec::new(),
                reference: None,
                reactions: Vec::new(),
                pinned: false,
                sticker_ids: Vec::new(),
            },
        );
        if let Some(c) = self.channels.get_mut(&channel_id) {
            c.messages.push(id);
        }
        id
    }

    /// Returns the fault to apply to this request, using one of its `remaining`.
    pub fn take_fault(&mut self, method: &str, path: &str) -> Option<FaultKind> {
        let fault = self.faults.iter_mut().find(|f| f.matches(method, path))?;
        fault.remaining -= 1;
        let kind = fault.kind.clone();
        self.faults.retain(|f| f.remaining > 0);
        Some(kind)
    }

    /// Counts one request against bucket `key`.
    pub fn hit_bucket(&mut self, key: &str) -> BucketState {
        let RateLimit { limit, window } = self.config.message_rate_limit;
        let now = Instant::now();
        let bucket = self.buckets.entry(key.to_string()).or_insert(Bucket {
            remaining: limit,
            reset_at: now + window,
        });
        if now >= bucket.reset_at {
            bucket.remaining = limit;
            bucket.reset_at = now + window;
        }
        let reset_after = bucket.reset_at.saturating_duration_since(now);
        if bucket.remaining == 0 {
            return BucketState {
                limit,
                remaining: 0,
                reset_after,
                limited: Some(reset_after),
            };
        }
        bucket.remaining -= 1;
        BucketState {
            limit,
            remaining: bucket.remaining,
            reset_after,
            limited: None,
        }
    }

    /// Routes a guild's events the way Discord does: `(guild_id >> 22) % shard_total`;
    /// DMs go to shard 0.
    pub fn shard_of(guild_id: Option<u64>, total: u32) -> u32 {
        match guild_id {
            Some(g) => ((g >> 22) % u64::from(total.max(1))) as u32,
            None => 0,
        }
    }
}

/// User ids mentioned as `<@id>` or `<@!id>`.
pub fn parse_mentions(content: &str) -> Vec<u64> {
    let mut out = Vec::new();
    let mut rest = content;
    while let Some(i) = rest.find("<@") {
        let tail = &rest[i + 2..];
        let tail = tail.strip_prefix('!').unwrap_or(tail);
        if let Some(end) = tail.find('>') {
            if let Ok(id) = tail[..end].parse::<u64>() {
                if !out.contains(&id) {
                    out.push(id);
                }
            }
        }
        rest = &rest[i + 2..];
    }
    out
}

/// RFC 3339 with microseconds, the way Discord writes timestamps.
pub fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t)
        .format("%Y-%m-%dT%H:%M:%S%.6f+00:00")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339() {
        let t = UNIX_EPOCH + Duration::from_millis(1_704_067_200_250);
        assert_eq!(rfc3339(t), "2024-01-01T00:00:00.250000+00:00");
    }

    #[test]
    fn parses_user_mentions() {
        assert_eq!(parse_mentions("<@1> hi <@!22> <@&3> <@1>"), vec![1, 22]);
    }

    #[test]
    fn consecutive_guilds_rotate_over_shards() {
        let mut s = State::new(EmulatorConfig::default(), String::new());
        let (a, _) = s.add_guild_on_shard("a", 1, 0, 2);
        let (b, _) = s.add_guild_on_shard("b", 1, 1, 2);
        assert_eq!(State::shard_of(Some(a), 2), 0);
        assert_eq!(State::shard_of(Some(b), 2), 1);
    }

    #[test]
    fn bucket_limits_within_window() {
        let mut s = State::new(EmulatorConfig::default(), String::new());
        for _ in 0..5 {
            assert!(s.hit_bucket("c").limited.is_none());
        }
        assert!(s.hit_bucket("c").limited.is_some());
        assert!(s.hit_bucket("other").limited.is_none());
    }
}
