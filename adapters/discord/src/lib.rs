//! The Discord adapter: a serenity gateway client that turns Discord events into robit's
//! [`Inbound`](robit_types::Inbound)s and answers through [`ReplySink`](robit_types::ReplySink)s
//! made of Discord messages, edits, threads, interaction responses and uploads.
//!
//! - Slash commands (`/ask`, `/run`, `/reset`, `/model`, `/help`, registered at start) are
//!   deferred at once, then answered by editing the original response and posting follow-ups.
//! - Mentioning the bot in a channel starts a thread from that message; the conversation lives
//!   in the thread and continues there without mentions. DMs are conversations too. Messages
//!   from bots, this one included, are ignored.
//! - Editing a question (MESSAGE_UPDATE) within the engine's edit window has its answer written
//!   again from the edited text; the engine decides (see `robit-core`'s `edits.rs`).
//! - Streaming is the engine's renderer editing a message no faster than `edit_interval_ms`;
//!   the sinks pace creates and edits per channel themselves (see `pacer.rs` for why), so a
//!   steady stream never meets a 429, and `allowed_mentions` is empty on everything sent.
//! - Optionally, slash commands can come as signed HTTP requests instead
//!   ([`HttpInteractions`], for the binary's HTTP server to mount); they take the same path.
//! - Sharding: each process runs the shard range it is given (`shard_ids` of `shard_total`),
//!   so replicas split the guilds. Nothing a replica keeps in memory is needed to continue a
//!   conversation: whether a thread is the bot's is read from the thread itself.
//!
//! Known limits: serenity runs each event handler as its own task, so two messages posted in
//! one conversation within milliseconds may reach the engine out of order; an interaction
//! token lives 15 minutes, so a slash-command turn longer than that cannot post its end. With
//! several replicas the per-channel budget is shared through the engine's call budget (token
//! buckets in the store); serenity's global 50 requests/s is not, as one bot rarely nears it.
//!
//! This is the only crate that names a serenity type. It must not touch the store or the
//! provider (only the engine), and it never reads the environment: the binary passes a
//! [`DiscordConfig`].

mod commands;
mod config;
mod convert;
mod download;
mod error;
mod handler;
mod http;
mod intake;
mod pacer;
mod sink;

pub use config::DiscordConfig;
pub use error::DiscordError;
pub use http::{HttpInteractions, HttpReply, MAX_AGE_SECS};

use robit_core::{ConnectionState, Engine};
use robit_types::Capabilities;
use secrecy::ExposeSecret;
use serenity::all::{
    ApplicationId, ClientBuilder, ConnectionStage, GatewayIntents, Http, HttpBuilder, ShardId,
    ShardManager,
};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Longest message Discord accepts, in Unicode scalar values.
pub const MAX_MESSAGE_LEN: usize = 2000;

/// The gateway intents robit needs. MESSAGE_CONTENT is privileged: enable it for the bot in
/// the developer portal, or guild messages arrive without text unless they mention the bot.
pub fn intents() -> GatewayIntents {
    GatewayIntents::GUILDS
        | GatewayIntents::GUILD_MESSAGES
        | GatewayIntents::MESSAGE_CONTENT
        | GatewayIntents::DIRECT_MESSAGES
}

/// Connects to Discord and serves `engine` until `shutdown` is cancelled, then closes the
/// gateway connections. Returns an error if the client cannot start or the gateway refuses
/// it (bad token, invalid shard, disallowed intents).
pub async fn run(
    engine: Engine,
    config: DiscordConfig,
    shutdown: CancellationToken,
) -> Result<(), DiscordError> {
    let (first, last) = config.shard_range().map_err(DiscordError::Config)?;
    let (http, caps, pacer) = build_http(&config)?;
    let downloads = download::downloader(config.api_base.as_deref());
    let intake = Arc::new(intake::Intake::new(engine, pacer.clone(), caps, downloads));
    // Turns a crashed or stopped process left in the journal are finished through sinks on a
    // REST client of their own (the gateway client owns the first one).
    let (rest, _, _) = build_http(&config)?;
    let rest = Arc::new(rest);
    let opener = sink::DiscordOpener {
        cx: intake.sinks(&rest),
    };
    intake
        .engine
        .resume_turns(robit_types::Platform::Discord, Arc::new(opener));
    let shards: Vec<(u32, ConnectionState)> = (first..=last)
        .map(|id| {
            let state = intake
                .engine
                .connections()
                .register(format!("discord:shard:{id}"));
            (id, state)
        })
        .collect();
    let handler = handler::Handler::new(intake, config.dev_guild_id, rest);
    let mut client = ClientBuilder::new_with_http(http, intents())
        .event_handler(handler)
        .await
        .map_err(|e| DiscordError::Client(Box::new(e)))?;
    if let Some(url) = &config.gateway_url {
        *client.ws_url.lock().await = url.clone();
    }
    let manager = client.shard_manager.clone();
    let prune = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tokio::select! {
                    _ = tick.tick() => pacer.prune(),
                    _ = shutdown.cancelled() => return,
                }
            }
        })
    };
    let watch = tokio::spawn(watch_shards(manager.clone(), shards.clone()));
    tracing::info!(
        first,
        last,
        total = config.shard_total,
        "starting discord shards"
    );
    // Serenity starts `end - start + 1` shards for `start..end`: the range is inclusive.
    let result = tokio::select! {
        r = client.start_shard_range(first..last, config.shard_total) => {
            r.map_err(|e| DiscordError::Client(Box::new(e)))
        }
        _ = shutdown.cancelled() => {
            manager.shutdown_all().await;
            Ok(())
        }
    };
    prune.abort();
    watch.abort();
    for (_, state) in &shards {
        state.forget();
    }
    result
}

/// Mirrors each shard's connection stage into the engine's readiness registry. Polled from
/// the shard manager rather than taken from `shard_stage_update` events, because a runner
/// that dies on a lost connection is replaced without reporting its last stage.
async fn watch_shards(manager: Arc<ShardManager>, shards: Vec<(u32, ConnectionState)>) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        let runners = manager.runners.lock().await;
        for (id, state) in &shards {
            let up = runners
                .get(&ShardId(*id))
                .is_some_and(|r| r.stage == ConnectionStage::Connected);
            state.set(up);
        }
    }
}

/// The REST client, the sinks' capabilities and the pacer, from the configuration; shared by
/// the gateway and the HTTP intake.
fn build_http(
    config: &DiscordConfig,
) -> Result<(Http, Capabilities, Arc<pacer::Pacer>), DiscordError> {
    let token = config.token.clone().ok_or(DiscordError::MissingToken)?;
    let mut http = HttpBuilder::new(token.expose_secret());
    if let Some(app) = config.application_id {
        http = http.application_id(ApplicationId::new(app));
    }
    if let Some(base) = &config.api_base {
        // Serenity honours the proxy only with its own ratelimiter off (protocols §0.1); the
        // sinks' pacer does the rate limiting then.
        http = http
            .proxy(base.trim_end_matches('/'))
            .ratelimiter_disabled(true);
    }
    let caps = Capabilities {
        max_message_len: MAX_MESSAGE_LEN,
        min_edit_interval: config.edit_interval(),
        native_streaming: false,
        max_upload_bytes: Some(config.max_upload_bytes),
        // Both sinks take a slot from the pacer before every create and edit.
        paced: true,
        // Sinks that draw buttons say so themselves (channels, slash commands' webhooks).
        controls: false,
    };
    let pacer = Arc::new(pacer::Pacer::new(
        config.channel_requests,
        Duration::from_millis(config.channel_window_ms),
    ));
    Ok((http.build(), caps, pacer))
}
