//! A loopback Discord: REST under `/api/v10`, the v10 gateway over WebSocket, and a scenario
//! API, faithful enough that the unmodified serenity client connects to it and runs robit's
//! flows (slash commands with deferred responses and follow-ups, mentions that start threads,
//! DMs, edits, uploads, rate limits and 429s, gateway drops and resumes, sharding).
//!
//! Point serenity at it with `HttpBuilder::new(token).proxy(emulator.base_url())
//! .ratelimiter_disabled(true)` (serenity only honours the proxy with its ratelimiter off; see
//! `shared/protocols.md` §0.1). The protocol follows Discord's documentation, not robit: a test
//! that passes here should pass against Discord. It must never reach the network.
//!
//! Interactions go over the gateway, or, once an Interactions Endpoint URL is set, as signed
//! HTTP POSTs to the bot (Ed25519, Discord's headers).
//!
//! It also runs discord.py 2.7 unmodified (`Route.BASE` and `DiscordWebSocket.DEFAULT_GATEWAY`
//! pointed here): application info, interaction callbacks with `?with_response`, components
//! (v1 and v2), replies, reactions, pins, history, threads, DMs and the `zlib-stream` gateway.
//!
//! Not emulated: the global 50 req/s limit (a global 429 can be injected), the
//! invalid-request limit, `zstd-stream` and ETF encoding, voice, presences, member chunking.
//! `docs/emulators.md` lists every route and the known differences.

mod channels;
mod content;
mod control;
mod delivery;
mod gateway;
mod payloads;
mod rest;
mod routes;
mod server;
mod state;

pub use content::MAX_CONTENT;
pub use gateway::{
    INTENT_DIRECT_MESSAGES, INTENT_DIRECT_MESSAGE_REACTIONS, INTENT_GUILDS, INTENT_GUILD_MESSAGES,
    INTENT_GUILD_MESSAGE_REACTIONS, INTENT_MESSAGE_CONTENT,
};
pub use server::{DiscordEmulator, InteractionRef, SessionView};
pub use state::{
    Channel, Delivery, EmulatorConfig, Fault, FaultKind, GatewayRecord, Interaction, Message,
    RateLimit, Reaction, RecordedRequest, StoredAttachment, DM, FLAG_EPHEMERAL,
    FLAG_IS_COMPONENTS_V2, FLAG_LOADING, FLAG_SUPPRESS_EMBEDS, FLAG_SUPPRESS_NOTIFICATIONS,
    GUILD_TEXT, PRIVATE_THREAD, PUBLIC_THREAD,
};
