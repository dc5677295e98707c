//! The Slack adapter: Slack events in, [`robit_types::Inbound`] to the engine, replies out
//! through a [`robit_types::ReplySink`] on the Web API.
//!
//! Two intakes, either or both: Socket Mode ([`run`], with an app-level token) and the HTTP
//! Events API ([`events_router`], an axum `Router` the binary mounts; it also takes slash
//! commands). Both acknowledge Slack as soon as `Engine::submit` has made the event durable
//! and let the turn run in the background. Replies are Markdown from the engine converted to
//! Slack mrkdwn ([`mrkdwn`]).
//!
//! This is the only crate that names a slack-morphism type. It must not touch the store or
//! the provider (the engine does), keep conversation state in memory, read the environment,
//! or log a token or signing secret.

mod api;
mod bench;
mod config;
mod download;
mod error;
mod http;
mod intake;
pub mod mrkdwn;
pub mod signature;
mod sink;
mod socket;

pub use api::BotIdentity;
pub use bench::{bench_ingest, BenchOptions, BenchReport};
pub use config::SlackConfig;
pub use error::SlackError;
pub use intake::{classify, parse_slash, strip_mention, Accepted, Classified};
pub use sink::{HARD_LIMIT, MAX_MESSAGE_LEN};

use intake::{Intake, Replies};
use robit_core::{Engine, LocalCallBudget};
use secrecy::ExposeSecret;
use sink::SinkOptions;
use slack_morphism::prelude::{SlackApiToken, SlackApiTokenValue};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

fn sink_options(config: &SlackConfig) -> SinkOptions {
    SinkOptions {
        edit_interval: config.edit_interval(),
        max_upload_bytes: config.max_upload_bytes,
        streaming: config.use_streaming_api,
        assistant_status: config.assistant_status,
    }
}

fn intake(
    engine: Engine,
    config: &SlackConfig,
    replies: Replies,
) -> Result<Arc<Intake>, SlackError> {
    // Alone (no budget shared with replicas), the process keeps the same buckets in memory,
    // so every reply's calls are paced and its last edit needs no fixed interval.
    let budget = engine
        .call_budget()
        .unwrap_or_else(|| Arc::new(LocalCallBudget::default()));
    let api = Arc::new(api::SlackApi::new(config, Some(budget))?);
    if let Replies::Slack(options) = &replies {
        // Turns a crashed or stopped process left in the journal are finished from here.
        let opener = sink::SlackOpener {
            api: api.clone(),
            options: options.clone(),
        };
        engine.resume_turns(robit_types::Platform::Slack, Arc::new(opener));
    }
    Ok(Arc::new(Intake::new(engine, api, replies)))
}

/// Runs the Socket Mode intake until `shutdown` is cancelled.
///
/// Checks the bot token with `auth.test` first, so a wrong token fails here and not on the
/// first event. Needs `bot_token` and `app_token`.
pub async fn run(
    engine: Engine,
    config: SlackConfig,
    shutdown: CancellationToken,
) -> Result<(), SlackError> {
    let app_token = config
        .app_token
        .as_ref()
        .ok_or(SlackError::Missing("app_token"))?;
    let app_token = SlackApiToken::new(SlackApiTokenValue(app_token.expose_secret().to_string()));
    let intake = intake(engine, &config, Replies::Slack(sink_options(&config)))?;
    let bot = intake.identity().await?;
    tracing::info!(bot_user = %bot.user_id, "slack bot identified");
    socket::listen(
        intake,
        app_token,
        config.socket_connections,
        config.socket_reconnect_secs,
        shutdown,
    )
    .await
}

/// The shortest signing secret [`events_router`] accepts (Slack's have 32 characters).
pub const MIN_SIGNING_SECRET_LEN: usize = 16;

/// The HTTP intake: a `Router` with one POST route at `config.events_path` for Events API
/// callbacks and slash commands. Needs `bot_token` and `signing_secret`.
pub fn events_router(engine: Engine, config: SlackConfig) -> Result<axum::Router, SlackError> {
    let signing_secret = config
        .signing_secret
        .clone()
        .ok_or(SlackError::Missing("signing_secret"))?;
    // With an empty key, a request "signed" with an empty key verifies: refuse to start.
    if signing_secret.expose_secret().trim().len() < MIN_SIGNING_SECRET_LEN {
        return Err(SlackError::Config(format!(
            "signing_secret is empty or shorter than {MIN_SIGNING_SECRET_LEN} characters"
        )));
    }
    if !config.events_path.starts_with('/') {
        return Err(SlackError::Config(format!(
            "events_path must start with '/', got {:?}",
            config.events_path
        )));
    }
    let intake = intake(engine, &config, Replies::Slack(sink_options(&config)))?;
    // Learn who the bot is now (auth.test), not on the first event's ack path; events carry
    // it too (`authorizations`), so a failure here is only logged.
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        let warm = intake.clone();
        rt.spawn(async move {
            if let Err(e) = warm.identity().await {
                tracing::warn!(error = %e, "auth.test failed; the bot's identity will come from events");
            }
        });
    }
    Ok(http::router(
        Arc::new(http::HttpState {
            intake,
            signing_secret,
        }),
        &config.events_path,
    ))
}
