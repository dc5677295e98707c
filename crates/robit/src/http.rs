//! The binary's HTTP servers: the public one (platform webhooks: the Slack Events API, and
//! `/healthz`) and the operator one (`/readyz`, `/metrics`, the admin API, `/healthz`), on
//! separate listeners unless configured to share one.
//!
//! Both are exposed to whoever can reach them, so each connection has limits a slow or
//! hostile client cannot stretch: a deadline for the request head (hyper's header read
//! timeout, which also closes idle keep-alive connections), a deadline and a size cap for
//! the body ([`read_body`], per route group), and a cap on open connections beyond which a
//! new connection is closed at once.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::StreamExt;
use metrics_exporter_prometheus::PrometheusHandle;
use robit_store::Store;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Body of a request to `/healthz`, `/readyz` or `/metrics` (GETs: nothing is expected).
pub const MAX_PROBE_BODY_BYTES: usize = 1024;

/// Limits of one listener's connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// From the first byte of a request head (or the start of an idle keep-alive wait) to
    /// the end of the head.
    pub header_read_timeout: Duration,
    /// Open connections; one more is closed as soon as it is accepted.
    pub max_connections: usize,
}

/// Limits of one group of routes' request bodies.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    pub max_bytes: usize,
    /// From the end of the head to the last byte of the body.
    pub read_timeout: Duration,
}

/// Applies `limits` to every route of `router`: the body is read in full before the
/// handler runs, within the deadline (else 408) and the size (else 413), so a handler
/// never waits on a client and never holds more than `max_bytes`.
pub fn with_body_limits(router: Router, limits: BodyLimits) -> Router {
    router.route_layer(axum::middleware::from_fn_with_state(limits, read_body))
}

async fn read_body(State(limits): State<BodyLimits>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_bytes as u64) {
        return too_large(limits.max_bytes);
    }
    let read = async {
        let mut stream = body.into_data_stream();
        let mut buf = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|_| StatusCode::BAD_REQUEST)?;
            if buf.len() + chunk.len() > limits.max_bytes {
                return Err(StatusCode::PAYLOAD_TOO_LARGE);
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(buf))
    };
    match tokio::time::timeout(limits.read_timeout, read).await {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Ok(Err(StatusCode::PAYLOAD_TOO_LARGE)) => too_large(limits.max_bytes),
        Ok(Err(status)) => (status, "unreadable request body\n").into_response(),
        Err(_) => (
            StatusCode::REQUEST_TIMEOUT,
            [(axum::http::header::CONNECTION, "close")],
            "request body not received in time\n",
        )
            .into_response(),
    }
}

fn too_large(max: usize) -> Response {
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        [(axum::http::header::CONNECTION, "close")],
        format!("request body over {max} bytes\n"),
    )
        .into_response()
}

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

/// `/healthz`, for the public listener (container and load-balancer liveness checks).
pub fn health_router() -> Router {
    Router::new().route("/healthz", get(|| async { "ok\n" }))
}

/// `/healthz`, `/readyz` and `/metrics`, for the operator listener: readiness echoes
/// database errors and metrics name workspaces, neither is for the internet.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .with_state(state)
        .merge(health_router())
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

/// Serves `app` on `addr` (the setting `key` names it, for errors) with `limits` until
/// `shutdown` fires; then stops accepting, lets requests in flight finish and returns.
pub async fn serve(
    key: &str,
    addr: &str,
    app: Router,
    limits: ConnLimits,
    shutdown: CancellationToken,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    use anyhow::Context;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the HTTP server to {addr} ({key})"))?;
    let local = listener.local_addr()?;
    let task = tokio::spawn(accept_loop(listener, app, limits, shutdown));
    Ok((local, task))
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: ConnLimits,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(error = %e, "accepting an HTTP connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            // At the cap: closing now tells the client (and a load balancer) at once,
            // where a queue would hold it unseen.
            tracing::debug!("HTTP connection refused: at http.max_connections");
            drop(stream);
            continue;
        };
        let (app, shutdown) = (app.clone(), shutdown.clone());
        connections.spawn(async move {
            let _permit = permit;
            let service = hyper_util::service::TowerToHyperService::new(app);
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "HTTP connection ended with an error");
                    }
                }
                _ = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    connections.close();
    connections.wait().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    async fn start(limits: ConnLimits, body_timeout: Duration) -> (SocketAddr, CancellationToken) {
        let echo = Router::new().route("/echo", axum::routing::post(|b: Bytes| async move { b }));
        let app = with_body_limits(
            echo,
            BodyLimits {
                max_bytes: 64,
                read_timeout: body_timeout,
            },
        )
        .merge(health_router());
        let stop = CancellationToken::new();
        let (addr, _task) = serve("test", "127.0.0.1:0", app, limits, stop.clone())
            .await
            .unwrap();
        (addr, stop)
    }

    /// Sends `bytes` one at a time, `gap` apart, while reading whatever the server answers;
    /// returns how many bytes went out before the server closed the connection, and what
    /// it said.
    async fn trickle(addr: SocketAddr, bytes: &[u8], gap: Duration) -> (usize, String) {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut rd, mut wr) = stream.into_split();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            let _ = rd.read_to_end(&mut got).await;
            String::from_utf8_lossy(&got).into_owned()
        });
        let mut sent = 0;
        for b in bytes {
            if reader.is_finished() || wr.write_all(&[*b]).await.is_err() {
                break;
            }
            sent += 1;
            tokio::time::sleep(gap).await;
        }
        let _ = wr.shutdown().await;
        (sent, reader.await.unwrap())
    }

    async fn get_healthz(addr: SocketAddr) -> std::io::Result<String> {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .await?;
        let mut got = Vec::new();
        s.read_to_end(&mut got).await?;
        Ok(String::from_utf8_lossy(&got).into_owned())
    }

    #[tokio::test]
    async fn a_client_sending_its_head_byte_by_byte_is_cut_off() {
        let limits = ConnLimits {
            header_read_timeout: Duration::from_millis(400),
            max_connections: 8,
        };
        let (addr, _stop) = start(limits, Duration::from_secs(5)).await;
        assert!(get_healthz(addr).await.unwrap().starts_with("HTTP/1.1 200"));
        let head = format!(
            "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Pad: {}\r\n\r\n",
            "a".repeat(100)
        );
        // 50 ms a byte: the whole head would take over 6 s.
        let (sent, answer) = trickle(addr, head.as_bytes(), Duration::from_millis(50)).await;
        assert!(
            sent < head.len(),
            "the server waited for the whole slow head"
        );
        assert!(!answer.contains("200 OK"), "{answer}");
    }

    #[tokio::test]
    async fn a_client_sending_its_body_slowly_gets_408() {
        let limits = ConnLimits {
            header_read_timeout: Duration::from_secs(5),
            max_connections: 8,
        };
        let (addr, _stop) = start(limits, Duration::from_millis(400)).await;
        let body = "b".repeat(60);
        let request = format!(
            "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let head_len = request.len() - body.len();
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut rd, mut wr) = stream.into_split();
        wr.write_all(&request.as_bytes()[..head_len]).await.unwrap();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            let _ = rd.read_to_end(&mut got).await;
            String::from_utf8_lossy(&got).into_owned()
        });
        let mut sent = 0;
        for b in body.as_bytes() {
            if reader.is_finished() || wr.write_all(&[*b]).await.is_err() {
                break;
            }
            sent += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let answer = reader.await.unwrap();
        assert!(
            sent < body.len(),
            "the server waited for the whole slow body"
        );
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    }

    #[tokio::test]
    async fn bodies_over_the_route_limit_get_413_and_fit_ones_pass() {
        let limits = ConnLimits {
            header_read_timeout: Duration::from_secs(5),
            max_connections: 8,
        };
        let (addr, _stop) = start(limits, Duration::from_secs(5)).await;
        let client = reqwest::Client::new();
        let url = format!("http://{addr}/echo");
        let ok = client.post(&url).body("x".repeat(64)).send().await.unwrap();
        assert_eq!(ok.status(), 200);
        assert_eq!(ok.text().await.unwrap().len(), 64);
        let big = client.post(&url).body("x".repeat(65)).send().await.unwrap();
        assert_eq!(big.status(), 413);
        // Chunked, so no Content-Length announces it.
        let stream = futures::stream::iter(
            (0..10).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b'y'; 10]))),
        );
        let chunked = client
            .post(&url)
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
            .unwrap();
        assert_eq!(chunked.status(), 413);
    }

    #[tokio::test]
    async fn connections_over_the_cap_are_closed_at_once() {
        let limits = ConnLimits {
            header_read_timeout: Duration::from_secs(30),
            max_connections: 2,
        };
        let (addr, _stop) = start(limits, Duration::from_secs(5)).await;
        // Two idle connections take both places...
        let first = TcpStream::connect(addr).await.unwrap();
        let _second = TcpStream::connect(addr).await.unwrap();
        // ...so a third is closed without an answer.
        let refused = get_healthz(addr).await.unwrap_or_default();
        assert!(refused.is_empty(), "{refused}");
        // Once one leaves, requests are served again.
        drop(first);
        let mut served = false;
        for _ in 0..100 {
            if get_healthz(addr)
                .await
                .is_ok_and(|a| a.starts_with("HTTP/1.1 200"))
            {
                served = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(served, "a freed place was never reused");
    }

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
