//! A fake Anthropic Messages API server.
//!
//! [`FakeAnthropic`] answers `POST /v1/messages` with a streamed (SSE) message in the exact
//! shape of Anthropic's, following the same FIFO script of [`Reply`]s as
//! [`FakeLlm`](super::FakeLlm) (echoing the last user message when it is empty), checks what
//! the real API checks first (`x-api-key`, `anthropic-version`, a JSON body with `max_tokens`
//! and `messages`), and lists one model at `GET /v1/models`. It shares its listener, script
//! and request log with the OpenAI fake; handlers only record, check and hand the reply to
//! `sse.rs`. It never calls a real model and never leaves the loopback interface.

mod sse;

use super::reply::{Kind, Reply};
use super::server::{Core, RecordedRequest, Shared};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;

/// The model id `GET /v1/models` lists.
pub const FAKE_ANTHROPIC_MODEL: &str = "fake-claude";

/// A fake Anthropic server on loopback. Dropping it shuts the server down.
pub struct FakeAnthropic {
    core: Core,
}

impl std::fmt::Debug for FakeAnthropic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeAnthropic")
            .field("addr", &self.core.addr)
            .finish_non_exhaustive()
    }
}

impl FakeAnthropic {
    /// Starts a server that accepts any (or no) key.
    pub async fn start() -> FakeAnthropic {
        Self::start_inner(None).await
    }

    /// Starts a server that answers 401 unless `x-api-key: <key>` is sent.
    pub async fn with_api_key(key: impl Into<String>) -> FakeAnthropic {
        Self::start_inner(Some(key.into())).await
    }

    async fn start_inner(api_key: Option<String>) -> FakeAnthropic {
        let routes = Router::new()
            .route("/v1/messages", post(messages))
            .route("/v1/models", get(models))
            .fallback(not_found);
        FakeAnthropic {
            core: Core::start(api_key, routes).await,
        }
    }

    /// `http://127.0.0.1:<port>`, to use as the client's base URL (Anthropic's base has no
    /// `/v1`; the client adds it).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.core.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.core.addr
    }

    /// Queues `reply` for a later message request; replies are used once each, first in
    /// first out.
    pub fn push(&self, reply: Reply) -> &Self {
        self.core.push(reply);
        self
    }

    /// Queues several replies in order.
    pub fn push_all(&self, replies: impl IntoIterator<Item = Reply>) -> &Self {
        self.core.push_all(replies);
        self
    }

    /// The reply used when the script is empty (initially [`Reply::echo`]).
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

    /// Only the `POST /v1/messages` requests.
    pub fn message_requests(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == "/v1/messages")
            .collect()
    }
}

/// The checks the real API makes before it looks at the request: the key, then the version.
fn reject(shared: &Shared, headers: &HeaderMap) -> Option<Response> {
    if let Some(key) = &shared.api_key {
        let sent = headers.get("x-api-key").and_then(|v| v.to_str().ok());
        if sent != Some(key.as_str()) {
            return Some(error_response(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "invalid x-api-key",
            ));
        }
    }
    if headers.get("anthropic-version").is_none() {
        return Some(error_response(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "anthropic-version: header is required",
        ));
    }
    None
}

async fn messages(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.record(&method, &uri, &headers, &body);
    if let Some(response) = reject(&shared, &headers) {
        return response;
    }
    let invalid =
        |message: &str| error_response(StatusCode::BAD_REQUEST, "invalid_request_error", message);
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return invalid("There was an error parsing the body of your request.");
    };
    if !request["max_tokens"].is_u64() {
        return invalid("max_tokens: Field required");
    }
    let Some(messages) = request["messages"].as_array() else {
        return invalid("messages: Field required");
    };
    if request["stream"] != Value::Bool(true) {
        return invalid(
            "the fake anthropic server only answers streamed requests (\"stream\": true)",
        );
    }
    // Taken only now, so that a rejected request does not use up a scripted reply.
    let (reply, request_number) = shared.next_reply();

    if let Kind::Status(status) = reply.kind {
        return status_response(status, &reply);
    }

    let words = |text: String| text.split_whitespace().count() as u64;
    let cx = sse::Context {
        request_number,
        model: request["model"]
            .as_str()
            .unwrap_or(FAKE_ANTHROPIC_MODEL)
            .to_string(),
        input_tokens: words(text_of(&request["system"]))
            + messages
                .iter()
                .map(|m| words(text_of(&m["content"])))
                .sum::<u64>(),
        last_user_text: messages
            .iter()
            .rev()
            .filter(|m| m["role"] == "user")
            .map(|m| text_of(&m["content"]))
            .find(|text| !text.is_empty())
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
        [("request-id", format!("req_fake{request_number}"))],
        super::sse::body(steps, shared.shutdown.clone()),
    )
        .into_response()
}

/// The text of a `content` (or `system`): a string, or the text of its `text` and
/// `tool_result` blocks.
fn text_of(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .map(|block| match block["type"].as_str() {
                Some("text") => block["text"].as_str().unwrap_or_default().to_string(),
                Some("tool_result") => text_of(&block["content"]),
                _ => String::new(),
            })
            .filter(|text| !text.is_empty())
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

async fn models(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    shared.record(&method, &uri, &headers, &[]);
    if let Some(response) = reject(&shared, &headers) {
        return response;
    }
    Json(json!({
        "data": [{
            "type": "model",
            "id": FAKE_ANTHROPIC_MODEL,
            "display_name": "Fake Claude",
            "created_at": "2025-01-01T00:00:00Z",
        }],
        "has_more": false,
        "first_id": FAKE_ANTHROPIC_MODEL,
        "last_id": FAKE_ANTHROPIC_MODEL,
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
    error_response(StatusCode::NOT_FOUND, "not_found_error", "Not found")
}

fn status_response(status: u16, reply: &Reply) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (default_kind, default_message) = match status.as_u16() {
        401 => ("authentication_error", "invalid x-api-key"),
        403 => (
            "permission_error",
            "Your API key does not have permission to use the specified resource.",
        ),
        404 => ("not_found_error", "The requested resource was not found."),
        413 => (
            "request_too_large",
            "Request exceeds the maximum allowed size.",
        ),
        429 => (
            "rate_limit_error",
            "Number of request tokens has exceeded your per-minute rate limit.",
        ),
        529 => ("overloaded_error", "Overloaded"),
        400..=499 => ("invalid_request_error", "Bad request."),
        _ => ("api_error", "Internal server error"),
    };
    let mut response = error_response(
        status,
        reply.error_type.as_deref().unwrap_or(default_kind),
        reply.message.as_deref().unwrap_or(default_message),
    );
    if let Some(secs) = reply.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// An error in Anthropic's shape: `{"type": "error", "error": {"type", "message"}}`.
fn error_response(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = json!({ "type": "error", "error": { "type": kind, "message": message } });
    (status, Json(body)).into_response()
}
