//! The Socket Mode intake on slack-morphism's listener.
//!
//! slack-morphism acknowledges an envelope only after our callback returns, so the callbacks
//! only hand the event to the engine (`submit` persists it and queues the turn) and return.
//! A callback error leaves the envelope unacknowledged so Slack redelivers it; the engine's
//! dedup makes redelivery safe. The callbacks are plain `fn`s (slack-morphism's API), so the
//! [`Intake`] travels in the listener's user state.

use crate::api::{Client, Connector};
use crate::intake::{CommandAck, Intake};
use crate::SlackError;
use axum::http::StatusCode;
use slack_morphism::prelude::*;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub(crate) async fn listen(
    intake: Arc<Intake>,
    app_token: SlackApiToken,
    connections: u32,
    reconnect_secs: u64,
    shutdown: CancellationToken,
) -> Result<(), SlackError> {
    let client: Arc<Client> = intake.api().client();
    // slack-morphism reports a socket's `hello` but not its loss (it reconnects on its own),
    // so readiness here means "connected at least once"; a lost socket still shows in the
    // logs and in `slack-morphism`'s reconnects.
    let connected = intake.engine().connections().register("slack:socket");
    let callbacks = SlackSocketModeListenerCallbacks::<Connector>::new()
        .with_hello_events(on_hello)
        .with_push_events(on_push)
        .with_command_events(on_command)
        .with_interaction_events(on_interaction);
    let env = Arc::new(
        SlackClientEventsListenerEnvironment::new(client)
            .with_error_handler(on_error)
            .with_user_state(intake),
    );
    let config = SlackClientSocketModeConfig::new()
        .with_max_connections_count(connections.max(1))
        .with_reconnect_timeout_in_seconds(reconnect_secs.max(1));
    let listener = SlackClientSocketModeListener::new(&config, env, callbacks);
    listener
        .listen_for(&app_token)
        .await
        .map_err(|source| SlackError::Api {
            method: "apps.connections.open",
            source: Box::new(robit_core::call_policy::CallError::Failed(source)),
        })?;
    listener.start().await;
    tracing::info!("slack socket mode started");
    shutdown.cancelled().await;
    listener.shutdown().await;
    connected.forget();
    tracing::info!("slack socket mode stopped");
    Ok(())
}

async fn intake_of(state: &SlackClientEventsUserState) -> Option<Arc<Intake>> {
    state.read().await.get_user_state::<Arc<Intake>>().cloned()
}

/// Generic over the event because slack-morphism 2.31 does not export the hello event's
/// type (its `models::socket_mode` is shadowed by the listener's `socket_mode`).
async fn on_hello<Hello: Send + 'static>(
    _event: Hello,
    _client: Arc<Client>,
    state: SlackClientEventsUserState,
) {
    if let Some(intake) = intake_of(&state).await {
        intake
            .engine()
            .connections()
            .register("slack:socket")
            .set(true);
    }
}

async fn on_push(
    event: SlackPushEventCallback,
    _client: Arc<Client>,
    state: SlackClientEventsUserState,
) -> UserCallbackResult<()> {
    let intake = intake_of(&state).await.ok_or("slack intake missing")?;
    intake.push_event(event).await.map_err(|e| Box::new(e) as _)
}

async fn on_command(
    event: SlackCommandEvent,
    _client: Arc<Client>,
    state: SlackClientEventsUserState,
) -> UserCallbackResult<SlackCommandEventResponse> {
    let intake = intake_of(&state).await.ok_or("slack intake missing")?;
    Ok(match intake.command(event).await? {
        CommandAck::Empty => SlackCommandEventResponse::new(SlackMessageContent::new()),
        CommandAck::Ephemeral(text) => {
            SlackCommandEventResponse::new(SlackMessageContent::new().with_text(text))
                .with_response_type(SlackMessageResponseType::Ephemeral)
        }
    })
}

async fn on_interaction(
    event: SlackInteractionEvent,
    _client: Arc<Client>,
    state: SlackClientEventsUserState,
) -> UserCallbackResult<()> {
    let intake = intake_of(&state).await.ok_or("slack intake missing")?;
    if let SlackInteractionEvent::BlockActions(ev) = event {
        intake.block_actions(ev).await?;
    }
    Ok(())
}

/// Decides whether a failed callback is acknowledged: not when the event was not stored
/// (Slack redelivers it), yes for everything else (redelivery would not help).
fn on_error(
    err: Box<dyn std::error::Error + Send + Sync>,
    _client: Arc<Client>,
    _state: SlackClientEventsUserState,
) -> StatusCode {
    if err.downcast_ref::<crate::error::IntakeError>().is_some() {
        tracing::error!(error = %err, "slack event not accepted; leaving it for redelivery");
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        tracing::warn!(error = %err, "slack socket mode error");
        StatusCode::OK
    }
}
