//! `robit serve`: the service itself. The HTTP servers, every adapter whose credentials are
//! configured (the console when there are none) and the pruning of old dedup records, until
//! Ctrl-C or SIGTERM; then a graceful stop.

use crate::app::{build_engine, run_console, shutdown_signal};
use crate::config::Loaded;
use anyhow::Context;
use axum::Router;
use robit_store::Store;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Runs the service until Ctrl-C or SIGTERM. Adapters stop first, running turns get
/// `engine.shutdown_grace_ms`, then the HTTP servers close.
pub async fn run(loaded: Loaded) -> anyhow::Result<ExitCode> {
    let config = &loaded.config;
    let metrics = crate::http::install_metrics()?;
    let (engine, store) = build_engine(config, true).await?;
    let shutdown = CancellationToken::new();
    // Adapters stop taking events first; running turns then get the grace period.
    let adapters_stop = CancellationToken::new();
    let mut adapters = tokio::task::JoinSet::new();
    let body_timeout = Duration::from_millis(config.http.body_read_timeout_ms);
    let probe_bodies = crate::http::BodyLimits {
        max_bytes: crate::http::MAX_PROBE_BODY_BYTES,
        read_timeout: body_timeout,
    };
    // The operators' routes; `public` gets the platform webhooks below.
    let mut ops = crate::http::with_body_limits(
        crate::http::router(crate::http::HttpState {
            store: store.clone(),
            metrics,
            connections: engine.connections().clone(),
            stopping: adapters_stop.clone(),
        }),
        probe_bodies,
    );
    let mut public = Router::new();
    if config.admin_api.enabled {
        ops = ops.merge(crate::http::with_body_limits(
            crate::admin_api::router(engine.clone(), store.clone()),
            crate::http::BodyLimits {
                max_bytes: crate::admin_api::MAX_BODY_BYTES,
                read_timeout: body_timeout,
            },
        ));
        tracing::info!(addr = %config.http.admin_addr, "admin API on /admin/v1");
    }
    let pruning = spawn_event_pruning(
        store.clone(),
        config.database.event_retention_hours,
        shutdown.clone(),
    );

    if config.discord.token.is_some() {
        let (engine, cfg, stop) = (
            engine.clone(),
            config.discord.clone(),
            adapters_stop.clone(),
        );
        adapters.spawn(async move {
            if let Err(e) = robit_discord::run(engine, cfg, stop).await {
                tracing::error!(error = %e, "the Discord adapter stopped");
            }
        });
        tracing::info!("Discord adapter started");
    }
    if config.slack.bot_token.is_some() {
        if config.slack.socket_mode() {
            let (engine, cfg, stop) = (engine.clone(), config.slack.clone(), adapters_stop.clone());
            adapters.spawn(async move {
                if let Err(e) = robit_slack::run(engine, cfg, stop).await {
                    tracing::error!(error = %e, "the Slack Socket Mode adapter stopped");
                }
            });
            tracing::info!("Slack adapter started (Socket Mode)");
        }
        if config.slack.signing_secret.is_some() {
            anyhow::ensure!(
                config.http.enabled,
                "slack.signing_secret is set (HTTP Events API) but http.enabled is false"
            );
            let events = robit_slack::events_router(engine.clone(), config.slack.clone())
                .context("setting up the Slack Events API intake")?;
            public = public.merge(crate::http::with_body_limits(
                events,
                crate::http::BodyLimits {
                    max_bytes: robit_core::MAX_WEBHOOK_BODY_BYTES,
                    read_timeout: body_timeout,
                },
            ));
            tracing::info!(path = %config.slack.events_path, "Slack Events API intake mounted");
        }
    }
    let mut http_tasks = Vec::new();
    if config.http.enabled {
        let limits = crate::http::ConnLimits {
            header_read_timeout: Duration::from_millis(config.http.header_read_timeout_ms),
            max_connections: config.http.max_connections.max(1),
        };
        let (addr, admin_addr) = (&config.http.addr, &config.http.admin_addr);
        if addr == admin_addr {
            let (local, task) = crate::http::serve(
                "http.addr",
                addr,
                ops.merge(public),
                limits,
                shutdown.clone(),
            )
            .await?;
            tracing::info!(%local, "HTTP server listening (webhooks, /healthz, /readyz, /metrics)");
            http_tasks.push(task);
        } else {
            let public = crate::http::with_body_limits(crate::http::health_router(), probe_bodies)
                .merge(public);
            let (local, task) =
                crate::http::serve("http.addr", addr, public, limits, shutdown.clone()).await?;
            tracing::info!(%local, "public HTTP server listening (webhooks, /healthz)");
            http_tasks.push(task);
            let (local, task) =
                crate::http::serve("http.admin_addr", admin_addr, ops, limits, shutdown.clone())
                    .await?;
            tracing::info!(%local, "operator HTTP server listening (/readyz, /metrics, /healthz, admin API)");
            http_tasks.push(task);
        }
    }
    let console = if adapters.is_empty() && config.slack.bot_token.is_none() {
        tracing::info!("no Discord or Slack credentials configured: running the console adapter");
        eprintln!("robit: no Discord or Slack credentials configured, so this is the console adapter. Type a message.");
        let engine = engine.clone();
        let config = config.clone();
        Some(tokio::spawn(async move {
            run_console(&engine, &config, false).await
        }))
    } else {
        None
    };
    shutdown_signal().await;
    tracing::info!("stopping: no new events; waiting for running turns");
    adapters_stop.cancel();
    if let Some(c) = console {
        c.abort();
    }
    let grace = Duration::from_millis(config.engine.shutdown_grace_ms);
    engine.shutdown(grace).await;
    // Adapters close their connections once told to stop; don't wait forever on a stuck one.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while adapters.join_next().await.is_some() {}
    })
    .await;
    shutdown.cancel();
    for t in http_tasks {
        let _ = t.await;
    }
    if let Some(t) = pruning {
        let _ = t.await;
    }
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Prunes dedup records older than `retention_hours`, at start and hourly, until `stop`.
/// Every replica may run it: the deletes are idempotent and batched.
fn spawn_event_pruning(
    store: Arc<dyn Store>,
    retention_hours: u64,
    stop: CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    if retention_hours == 0 {
        return None;
    }
    let retention_ms = i64::try_from(retention_hours.saturating_mul(3_600_000)).unwrap_or(i64::MAX);
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            match store
                .prune_processed_events(now.saturating_sub(retention_ms))
                .await
            {
                Ok(0) => {}
                Ok(n) => tracing::info!(pruned = n, "old processed event ids pruned"),
                Err(e) => tracing::warn!(error = %e, "pruning processed event ids failed"),
            }
        }
    }))
}
