//! The binary's HTTP server: `/healthz`, `/readyz` and `/metrics`, and the place platform
//! webhooks (Slack Events API) are mounted.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use robit_store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
pub struct HttpState {
    pub store: Arc<dyn Store>,
    pub metrics: PrometheusHandle,
    /// The adapters' platform connections (Discord shards, Slack sockets).
    pub connections: robit_core::Connections,
    /// Fires when the process starts stopping: from then on it is not ready.
    pub stopping: CancellationToken,
}

/// Installs the global Prometheus recorder; call once, before the engine records anything.
pub fn install_metrics() -> anyhow::Result<PrometheusHandle> {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(&[
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
        ])?
        .install_recorder()?;
    for (name, _, _, help) in robit_core::metrics::ALL {
        metrics::describe_counter!(*name, *help);
    }
    Ok(handle)
}

pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .with_state(state)
}

/// Ready when the database answers (quickly) and every platform connection the adapters
/// hold is up. The body names what is missing, for whoever reads the probe's failure.
async fn readyz(State(state): State<HttpState>) -> impl IntoResponse {
    let mut problems = Vec::new();
    if state.stopping.is_cancelled() {
        problems.push("stopping".to_string());
    }
    match tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => problems.push(format!("database: {e}")),
        Err(_) => problems.push("database: no answer within 2 s".to_string()),
    }
    for name in state.connections.down() {
        problems.push(format!("{name}: not connected"));
    }
    if problems.is_empty() {
        (StatusCode::OK, "ready\n".to_string())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{}\n", problems.join("\n")),
        )
    }
}

async fn render_metrics(State(state): State<HttpState>) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

/// Serves `app` on `addr` until `shutdown` fires.
pub async fn serve(
    addr: &str,
    app: Router,
    shutdown: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    use anyhow::Context;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the HTTP server to {addr} (http.addr)"))?;
    let local = listener.local_addr()?;
    tracing::info!(%local, "HTTP server listening (/healthz, /readyz, /metrics)");
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
        {
            tracing::error!(error = %e, "HTTP server failed");
        }
    }))
}

/// `robit healthcheck`: exits 0 when the local server's `/healthz` answers 200.
pub async fn healthcheck(addr: &str) -> anyhow::Result<std::process::ExitCode> {
    // A wildcard listen address is reached through loopback.
    let addr = addr
        .replace("0.0.0.0", "127.0.0.1")
        .replace("[::]", "[::1]");
    let url = format!("http://{addr}/healthz");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()?;
    match client.get(&url).send().await {
        Ok(r) if r.status().is_success() => Ok(std::process::ExitCode::SUCCESS),
        Ok(r) => {
            eprintln!("{url}: {}", r.status());
            Ok(std::process::ExitCode::FAILURE)
        }
        Err(e) => {
            eprintln!("{url}: {e}");
            Ok(std::process::ExitCode::FAILURE)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_operations_guide_lists_every_metric() {
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/operations.md"),
        )
        .unwrap();
        for (name, kind, _, _) in robit_core::metrics::ALL {
            let row = format!("| `{name}` | {kind} |");
            assert!(
                doc.contains(&row),
                "docs/operations.md lacks the row for {name}"
            );
        }
        let documented = doc.lines().filter(|l| l.starts_with("| `robit_")).count();
        assert_eq!(
            documented,
            robit_core::metrics::ALL.len(),
            "the guide lists metrics the code does not export"
        );
    }
}
