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
//! Not emulated: the global 50 req/s limit, the invalid-request limit, zlib compression,
//! embeds/components validation beyond their presence, voice, presences, member chunking.

mod control;
mod delivery;
mod gateway;
mod payloads;
mod rest;
mod routes;
mod server;
mod state;

pub use gateway::{
    INTENT_DIRECT_MESSAGES, INTENT_GUILDS, INTENT_GUILD_MESSAGES, INTENT_MESSAGE_CONTENT,
};
pub use routes::MAX_CONTENT;
pub use server::{DiscordEmulator, InteractionRef, SessionView};
pub use state::{
    Channel, Delivery, EmulatorConfig, Fault, FaultKind, GatewayRecord, Interaction, Message,
    RateLimit, RecordedRequest, StoredAttachment, DM, FLAG_LOADING, GUILD_TEXT, PRIVATE_THREAD,
    PUBLIC_THREAD,
};
