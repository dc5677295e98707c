//! The [`FakeLlm`] HTTP server: routes, the reply script, auth and the request log.
//!
//! Handlers only record, check the key, pick the next [`Reply`] and hand it to `sse.rs`; the
//! server binds `127.0.0.1:0` and must never be reachable from outside the machine. The
//! listener, script and log ([`Core`]) are shared with the other protocols' fakes, such as
//! [`FakeAnthropic`](super::FakeAnthropic).

use super::reply::{Kind, Reply};
use super::sse;
use super::FAKE_MODEL;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// One request the fake received, for assertions.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    pub method: String,
    /// The path without the query, e.g. `/v1/chat/completions`.
    pub path: String,
    /// Every header, names in lower case, in arrival order (authorization included: the
    /// keys a test uses are fake).
    pub headers: Vec<(String, String)>,
    /// The JSON body; `Null` when there was none or it was not JSON.
    pub body: Value,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A fake OpenAI-compatible server on loopback. Dropping it shuts the server down.
pub struct FakeLlm {
    core: Core,
}

impl std::fmt::Debug for FakeLlm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeLlm")
            .field("addr", &self.core.addr)
            .finish_non_exhaustive()
    }
}

/// What every fake LLM server shares: the listener, the script, the request log and the
/// shutdown signal. Each protocol's server wraps one and adds its own routes.
pub(crate) struct Core {
    pub addr: SocketAddr,
    pub shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
}

/// The state handlers see.
pub(crate) struct Shared {
    script: Mutex<VecDeque<Reply>>,
    default: Mutex<Reply>,
    requests: Mutex<Vec<RecordedRequest>>,
    pub api_key: Option<String>,
    request_count: AtomicU64,
    pub shutdown: watch::Receiver<bool>,
}

impl Core {
    /// Binds `127.0.0.1:0` and serves `routes` (given the shared state) until dropped.
    pub async fn start(api_key: Option<String>, routes: Router<Arc<Shared>>) -> Core {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake llm to 127.0.0.1:0");
        let addr = listener
            .local_addr()
            .expect("local address of the fake llm");
        let (shutdown, shutdown_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            script: Mutex::new(VecDeque::new()),
            default: Mutex::new(Reply::echo()),
            requests: Mutex::new(Vec::new()),
            api_key,
            request_count: AtomicU64::new(0),
            shutdown: shutdown_rx.clone(),
        });
        let app = routes.with_state(shared.clone());
        let mut stop = shutdown_rx;
        tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stop.wait_for(|stop| *stop).await;
            });
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "fake llm server stopped");
            }
        });
        Core {
            addr,
            shared,
            shutdown,
        }
    }

    pub fn push(&self, reply: Reply) {
        self.shared.script.lock().unwrap().push_back(reply);
    }

    pub fn push_all(&self, replies: impl IntoIterator<Item = Reply>) {
        self.shared.script.lock().unwrap().extend(replies);
    }

    pub fn set_default(&self, reply: Reply) {
        *self.shared.default.lock().unwrap() = reply;
    }

    pub fn pending(&self) -> usize {
        self.shared.script.lock().unwrap().len()
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests.lock().unwrap().clone()
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        // Stops accepting and ends stalled answers, so their connections close too.
        let _ = self.shutdown.send(true);
    }
}

impl FakeLlm {
    /// Starts a server that accepts any (or no) key.
    pub async fn start() -> FakeLlm {
        Self::start_inner(None).await
    }

    /// Starts a server that answers 401 unless `Authorization: Bearer <key>` is sent.
    pub async fn with_api_key(key: impl Into<String>) -> FakeLlm {
        Self::start_inner(Some(key.into())).await
    }

    async fn start_inner(api_key: Option<String>) -> FakeLlm {
        let routes = Router::new()
            .route("/v1/chat/completions", post(chat_completions))
            .route("/v1/models", get(models))
            .fallback(not_found);
        FakeLlm {
            core: Core::start(api_key, routes).await,
        }
    }

    /// `http://127.0.0.1:<port>/v1`, to use as the client's base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.core.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.core.addr
    }

    /// Queues `reply` for a later chat request; replies are used once each, first in first
    /// out.
    pub fn push(&self, reply: Reply) -> &Self {
        self.core.push(reply);
        self
    }

    /// Queues several replies in order.
    pub fn push_all(&self, replies: impl IntoIterator<Item = Reply>) -> &Self {
        self.core.push_all(replies);
        self
    }

    /// The reply used when the script is empty (initially [`Reply::echo`]); a benchmark can
    /// make it slower with `Reply::echo().delay(…)`, or fixed with `Reply::text(…)`.
    pub fn set_default(&self, reply: Reply) {
        self.core.set_default(reply);
    }

    /// How many scripted replies have not been used yet.
    pub fn pending(&self) -> usize {
        self.core.pending()
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.core.requests()
    }

    /// Only the `POST /v1/chat/completions` requests.
    pub fn chat_requests(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == "/v1/chat/completions")
            .collect()
    }
}

impl Shared {
    pub(crate) fn record(&self, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) {
        let body = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(body).unwrap_or(Value::Null)
        };
        let headers = headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        self.requests.lock().unwrap().push(RecordedRequest {
            method: method.to_string(),
            path: uri.path().to_string(),
            headers,
            body,
        });
    }

    /// The next scripted reply (or the default) and the number of this request, from 1.
    pub(crate) fn next_reply(&self) -> (Reply, u64) {
        let reply = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| self.default.lock().unwrap().clone());
        let request_number = self.request_count.fetch_add(1, Ordering::Relaxed) + 1;
        (reply, request_number)
    }

    /// OpenAI's 401 answer, unless the request carries the configured key (or none is set).
    fn reject_unauthorized(&self, headers: &HeaderMap) -> Option<Response> {
        let key = self.api_key.as_ref()?;
        let sent = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if sent == Some(key.as_str()) {
            return None;
        }
        let message = match sent {
            None => "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).".to_string(),
            Some(_) => "Incorrect API key provided.".to_string(),
        };
        Some(error_response(
            StatusCode::UNAUTHORIZED,
            &message,
            "invalid_request_error",
            Some("invalid_api_key"),
        ))
    }
}

async fn chat_completions(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.record(&method, &uri, &headers, &body);
    if let Some(response) = shared.reject_unauthorized(&headers) {
        return response;
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "We could not parse the JSON body of your request.",
            "invalid_request_error",
            None,
        );
    };
    if request["stream"] != Value::Bool(true) {
        return error_response(
            StatusCode::BAD_REQUEST,
            "the fake llm only answers streamed requests (\"stream\": true)",
            "invalid_request_error",
            None,
        );
    }
    // Taken only now, so that a rejected request does not use up a scripted reply.
    let (reply, request_number) = shared.next_reply();

    if let Kind::Status(status) = reply.kind {
        return status_response(status, &reply);
    }

    let messages = request["messages"].as_array().cloned().unwrap_or_default();
    let text_of = |m: &Value| m["content"].as_str().unwrap_or_default().to_string();
    let cx = sse::Context {
        request_number,
        model: request["model"].as_str().unwrap_or(FAKE_MODEL).to_string(),
        include_usage: request["stream_options"]["include_usage"] == Value::Bool(true),
        prompt_tokens: messages.iter().map(|m| sse::word_count(&text_of(m))).sum(),
        last_user_text: messages
            .iter()
            .rev()
            .find(|m| m["role"] == "user")
            .map(text_of)
            .unwrap_or_default(),
    };
    let steps = sse::steps(&reply, &cx);
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        sse::body(steps, shared.shutdown.clone()),
    )
        .into_response()
}

async fn models(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    shared.record(&method, &uri, &headers, &[]);
    if let Some(response) = shared.reject_unauthorized(&headers) {
        return response;
    }
    Json(json!({
        "object": "list",
        "data": [{ "id": FAKE_MODEL, "object": "model", "created": 0, "owned_by": "robit-testkit" }],
    }))
    .into_response()
}

async fn not_found(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.record(&method, &uri, &headers, &body);
    error_response(
        StatusCode::NOT_FOUND,
        &format!("Invalid URL ({method} {})", uri.path()),
        "invalid_request_error",
        None,
    )
}

fn status_response(status: u16, reply: &Reply) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (default_message, kind, code) = match status.as_u16() {
        401 => (
            "Incorrect API key provided.",
            "invalid_request_error",
            Some("invalid_api_key"),
        ),
        403 => (
            "You are not allowed to use this model.",
            "invalid_request_error",
            None,
        ),
        404 => (
            "The model does not exist.",
            "invalid_request_error",
            Some("model_not_found"),
        ),
        429 => (
            "Rate limit reached for requests.",
            "requests",
            Some("rate_limit_exceeded"),
        ),
        400..=499 => ("Bad request.", "invalid_request_error", None),
        _ => (
            "The server had an error while processing your request.",
            "server_error",
            None,
        ),
    };
    let message = reply.message.as_deref().unwrap_or(default_message);
    let kind = reply.error_type.as_deref().unwrap_or(kind);
    let mut response = error_response(status, message, kind, code);
    if let Some(secs) = reply.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// An error in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.
fn error_response(status: StatusCode, message: &str, kind: &str, code: Option<&str>) -> Response {
    let body = json!({ "error": {
        "message": message,
        "type": kind,
        "param": null,
        "code": code,
    }});
    (status, Json(body)).into_response()
}
