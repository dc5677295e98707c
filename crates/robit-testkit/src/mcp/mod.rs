//! A fake MCP (Model Context Protocol) server, over streamable HTTP ([`FakeMcp`]) or stdio
//! ([`serve_stdio`]), with a fixed set of tools that succeed, fail, error or stall on purpose.
//!
//! It answers JSON-RPC as the MCP specification describes (`initialize`, `tools/list`,
//! `tools/call`, notifications) closely enough for the official SDK's client, and records the
//! tool calls it ran. Like every emulator here it binds `127.0.0.1:0` and never reaches the
//! network; it must not depend on any MCP crate, so it checks the client against the wire
//! format rather than against itself.

mod protocol;

pub use protocol::{ToolCallRecord, TOOL_NAMES};

use crate::llm::RecordedRequest;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use protocol::Shared;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

/// The session id the HTTP server hands out at `initialize`.
pub const FAKE_SESSION: &str = "fake-mcp-session";

/// A fake MCP server on loopback, streamable HTTP at [`FakeMcp::url`]. Dropping it stops it.
pub struct FakeMcp {
    addr: SocketAddr,
    shared: Arc<Shared>,
    posts: Posts,
    shutdown: watch::Sender<bool>,
}

/// Every POST the HTTP server received, for assertions on headers.
type Posts = Arc<std::sync::Mutex<Vec<RecordedRequest>>>;

impl std::fmt::Debug for FakeMcp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeMcp")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl FakeMcp {
    /// Binds `127.0.0.1:0` and serves until dropped. With `bearer` set, requests without
    /// `Authorization: Bearer <bearer>` get 401.
    pub async fn start(bearer: Option<&str>) -> FakeMcp {
        let shared = Arc::new(Shared::new(bearer.map(str::to_string)));
        let posts = Posts::default();
        let app = Router::new()
            .route("/mcp", post(on_post).get(on_get).delete(on_delete))
            .with_state(shared.clone())
            .layer(axum::middleware::from_fn_with_state(posts.clone(), record));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding loopback");
        let addr = listener.local_addr().expect("local addr");
        let (shutdown, mut rx) = watch::channel(false);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.wait_for(|stop| *stop).await;
                })
                .await;
        });
        FakeMcp {
            addr,
            shared,
            posts,
            shutdown,
        }
    }

    /// The MCP endpoint, `http://127.0.0.1:<port>/mcp`.
    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    /// The tool calls that reached a tool, in order.
    pub fn calls(&self) -> Vec<ToolCallRecord> {
        self.shared.calls()
    }

    /// Every POST received (headers and JSON body), in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.posts.lock().expect("poisoned").clone()
    }

    /// Every JSON-RPC method received (requests and notifications), in order.
    pub fn methods(&self) -> Vec<String> {
        self.shared.methods()
    }
}

impl Drop for FakeMcp {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// Records a POST's headers and body, then hands it on.
async fn record(
    State(posts): State<Posts>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if request.method() != axum::http::Method::POST {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let headers = parts
        .headers
        .iter()
        .map(|(n, v)| (n.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    posts.lock().expect("poisoned").push(RecordedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        headers,
        body: serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    });
    next.run(axum::extract::Request::from_parts(
        parts,
        axum::body::Body::from(bytes),
    ))
    .await
}

async fn on_post(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(expected) = &shared.bearer {
        let got = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if got != Some(format!("Bearer {expected}").as_str()) {
            return (StatusCode::UNAUTHORIZED, "missing or wrong bearer token").into_response();
        }
    }
    let Ok(message) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "not JSON").into_response();
    };
    let is_initialize = message["method"] == "initialize";
    if message.get("id").is_none() || message.get("method").is_none() {
        // Notifications and responses: record, nothing to answer.
        shared.handle(message).await;
        return StatusCode::ACCEPTED.into_response();
    }
    // Requests are answered on an SSE stream, as the reference servers do by default: the
    // headers go out at once and the answer follows when the tool is done, so a slow tool
    // does not hold up the client's other requests.
    let body = futures::stream::once(async move {
        let answer = shared.handle(message).await.unwrap_or_default();
        Ok::<_, std::convert::Infallible>(Bytes::from(format!(
            "event: message\ndata: {answer}\n\n"
        )))
    });
    let mut response = (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        axum::body::Body::from_stream(body),
    )
        .into_response();
    if is_initialize {
        response.headers_mut().insert(
            "mcp-session-id",
            FAKE_SESSION.parse().expect("a valid header value"),
        );
    }
    response
}

/// The server offers no stream of its own messages, which the specification allows.
async fn on_get() -> StatusCode {
    StatusCode::METHOD_NOT_ALLOWED
}

async fn on_delete() -> StatusCode {
    StatusCode::OK
}

/// Serves MCP over newline-delimited JSON on `input`/`output` (a stdio server's stdin and
/// stdout) until `input` ends. Requests run concurrently, as a real server's may.
pub async fn serve_stdio<R, W>(input: R, output: W)
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let shared = Arc::new(Shared::new(None));
    let output = Arc::new(tokio::sync::Mutex::new(output));
    let mut lines = input.lines();
    let mut running = tokio::task::JoinSet::new();
    while let Ok(Some(line)) = lines.next_line().await {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        let (shared, output) = (shared.clone(), output.clone());
        running.spawn(async move {
            if let Some(answer) = shared.handle(message).await {
                let mut out = output.lock().await;
                let _ = out.write_all(format!("{answer}\n").as_bytes()).await;
                let _ = out.flush().await;
            }
        });
    }
    running.abort_all();
}
