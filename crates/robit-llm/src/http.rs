//! HTTP plumbing shared by the provider clients: building the reqwest client, sending a
//! request under the first-token deadline and cancellation, and mapping failed responses
//! (status, `Retry-After`, error bodies) to [`LlmError`].
//!
//! Every client's wire format lives in its own module; this one holds only what is the same
//! for all of them. It must not retry (that is [`Retrying`](crate::Retrying)'s job) and must
//! never log keys or header values.

use crate::error::LlmError;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::StatusCode;
use serde::Deserialize;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Labels for [`LlmError::Timeout`]; the engine shows them to users, so they stay short.
pub(crate) const FIRST_TOKEN_TIMEOUT: &str = "waiting for the first token";
pub(crate) const IDLE_TIMEOUT: &str = "waiting for the next token";

/// Checks that `base_url` is an http(s) URL and returns it without a trailing slash, so
/// paths can be appended.
pub(crate) fn base_url(base_url: &str) -> Result<String, LlmError> {
    let base_url = base_url.trim_end_matches('/').to_string();
    let url = reqwest::Url::parse(&base_url)
        .map_err(|e| LlmError::Connect(format!("invalid base url {base_url:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(LlmError::Connect(format!(
            "invalid base url {base_url:?}: the scheme must be http or https"
        )));
    }
    Ok(base_url)
}

/// A header whose value stays out of reqwest's and hyper's debug output: keys travel in
/// headers, and gateways put theirs in custom ones too.
pub(crate) fn sensitive_header(
    headers: &mut HeaderMap,
    name: &str,
    value: &str,
) -> Result<(), LlmError> {
    let header = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| LlmError::Connect(format!("invalid header name {name:?}")))?;
    let mut value = HeaderValue::from_str(value)
        .map_err(|_| LlmError::Connect(format!("invalid value for header {name:?}")))?;
    value.set_sensitive(true);
    headers.insert(header, value);
    Ok(())
}

/// The reqwest client every provider uses: default headers, a connect timeout and no overall
/// timeout, because answers stream for minutes; the stream enforces the first-token and idle
/// limits itself.
pub(crate) fn client(
    connect_timeout: Duration,
    headers: HeaderMap,
) -> Result<reqwest::Client, LlmError> {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .default_headers(headers)
        .user_agent(concat!("robit/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| LlmError::Connect(error_chain(&e)))
}

/// Sends `request` and waits for a 2xx answer's headers, giving up at `first_token` (the time
/// spent waiting for headers counts against the first token) or when `cancel` fires.
pub(crate) async fn send(
    request: reqwest::RequestBuilder,
    first_token: Instant,
    cancel: &CancellationToken,
) -> Result<reqwest::Response, LlmError> {
    // The provider (or the gateway in front of it) joins the turn's trace when it can.
    let mut request = request;
    for (name, value) in robit_types::trace::current_headers() {
        request = request.header(name, value);
    }
    let response = tokio::select! {
        biased;
        () = cancel.cancelled() => return Err(LlmError::Cancelled),
        response = tokio::time::timeout_at(first_token, request.send()) => match response {
            Ok(response) => response.map_err(request_error)?,
            Err(_elapsed) => return Err(LlmError::Timeout(FIRST_TOKEN_TIMEOUT)),
        },
    };
    check_status(response).await
}

/// `GET url` bounded by `timeout` as a whole, returning the ids of a `{"data": [{"id"}]}`
/// model list: the shape both OpenAI's and Anthropic's `/models` answer with.
pub(crate) async fn list_models(
    http: &reqwest::Client,
    url: String,
    timeout: Duration,
) -> Result<Vec<String>, LlmError> {
    let response = http
        .get(url)
        .timeout(timeout)
        .send()
        .await
        .map_err(request_error)?;
    let response = check_status(response).await?;
    let list: ModelList = response
        .json()
        .await
        .map_err(|e| LlmError::Protocol(format!("unreadable model list: {}", error_chain(&e))))?;
    Ok(list.data.into_iter().map(|m| m.id).collect())
}

/// Maps a failure to send the request or read its headers.
pub(crate) fn request_error(e: reqwest::Error) -> LlmError {
    if e.is_timeout() {
        LlmError::Timeout(if e.is_connect() {
            "connecting"
        } else {
            "waiting for an answer"
        })
    } else {
        LlmError::Connect(error_chain(&e))
    }
}

/// Passes a 2xx response through and turns anything else into the matching error. Anthropic's
/// 529 (overloaded) lands in [`LlmError::Status`] like any 5xx.
pub(crate) async fn check_status(
    response: reqwest::Response,
) -> Result<reqwest::Response, LlmError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let retry_after = retry_after(response.headers());
    // The error body is small; if reading it fails the status alone still says enough.
    let body = response.text().await.unwrap_or_default();
    let message = error_message(&body, status);
    Err(match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => LlmError::Auth {
            status: status.as_u16(),
            message,
        },
        StatusCode::TOO_MANY_REQUESTS => LlmError::RateLimited { retry_after },
        _ => LlmError::Status {
            status: status.as_u16(),
            message,
        },
    })
}

/// `Retry-After` in seconds (fractions allowed). OpenAI also sends `retry-after-ms`, which is
/// more precise when present. An HTTP-date form is ignored: no API we know sends one.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let number = |name: &str| -> Option<f64> {
        let value: f64 = headers.get(name)?.to_str().ok()?.trim().parse().ok()?;
        (value.is_finite() && value >= 0.0).then_some(value)
    };
    if let Some(ms) = number("retry-after-ms") {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    number(RETRY_AFTER.as_str()).map(Duration::from_secs_f64)
}

/// The human part of an error body: `error.message` when it is JSON, else the start of the
/// text, else the status' reason phrase.
pub(crate) fn error_message(body: &str, status: StatusCode) -> String {
    const MAX: usize = 500;
    if let Ok(parsed) = serde_json::from_str::<ErrorBody>(body) {
        if let Some(error) = parsed.error {
            return error.message();
        }
        if let Some(message) = parsed.message {
            return message;
        }
    }
    let body = body.trim();
    if body.is_empty() {
        return status
            .canonical_reason()
            .unwrap_or("no error message")
            .to_lowercase();
    }
    match body.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &body[..cut]),
        None => body.to_string(),
    }
}

/// The message of an error payload (a response body or an in-stream error event), or the
/// payload itself when it has no recognisable shape.
pub(crate) fn error_text(data: &str) -> String {
    match serde_json::from_str::<ErrorBody>(data) {
        Ok(body) => match (body.error, body.message) {
            (Some(error), _) => error.message(),
            (None, Some(message)) => message,
            (None, None) => data.to_string(),
        },
        Err(_) => data.to_string(),
    }
}

/// An error and all its sources on one line: reqwest's own message alone ("error sending
/// request") hides the cause (connection refused, dns, tls) that an operator needs.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // hyper and reqwest often repeat the inner message in the outer one.
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// An error object, in an error response body or as a stream event. Servers differ: OpenAI
/// sends `{"error": {"message": …}}`, Anthropic `{"type": "error", "error": {"type", "message"}}`,
/// some compatible servers `{"error": "text"}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum WireError {
    Object {
        #[serde(default)]
        message: Option<String>,
        #[serde(default, rename = "type")]
        kind: Option<String>,
        #[serde(default)]
        code: Option<serde_json::Value>,
    },
    Text(String),
}

impl WireError {
    /// The most useful human text the error carries.
    pub fn message(&self) -> String {
        match self {
            WireError::Text(text) => text.clone(),
            WireError::Object {
                message: Some(message),
                ..
            } if !message.is_empty() => message.clone(),
            WireError::Object { kind, code, .. } => {
                let code = code.as_ref().map(|c| match c {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                });
                kind.clone()
                    .or(code)
                    .unwrap_or_else(|| "unknown error".to_string())
            }
        }
    }
}

/// The body of an error response (`{"error": …}`), or of `{"message": …}` as some
/// compatible servers send.
#[derive(Debug, Deserialize)]
pub(crate) struct ErrorBody {
    #[serde(default)]
    pub error: Option<WireError>,
    #[serde(default)]
    pub message: Option<String>,
}

/// The body of `GET /models`.
#[derive(Debug, Deserialize)]
struct ModelList {
    #[serde(default)]
    data: Vec<ModelEntry>,
}

#[derive(Debug, Deserialize)]
struct ModelEntry {
    id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_trims_the_trailing_slash_and_rejects_other_schemes() {
        assert_eq!(
            base_url("http://127.0.0.1:9/v1/").unwrap(),
            "http://127.0.0.1:9/v1"
        );
        assert!(matches!(
            base_url("ftp://example.com"),
            Err(LlmError::Connect(_))
        ));
    }

    #[test]
    fn retry_after_reads_seconds_and_milliseconds() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert("retry-after-ms", HeaderValue::from_static("1500"));
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(1500)));
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn error_message_falls_back_to_text_and_reason() {
        assert_eq!(
            error_message(r#"{"error":{"message":"nope"}}"#, StatusCode::BAD_REQUEST),
            "nope"
        );
        assert_eq!(
            error_message(
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
                StatusCode::from_u16(529).unwrap()
            ),
            "Overloaded"
        );
        assert_eq!(
            error_message("plain failure", StatusCode::BAD_GATEWAY),
            "plain failure"
        );
        assert_eq!(error_message("", StatusCode::BAD_GATEWAY), "bad gateway");
    }

    #[test]
    fn error_object_prefers_the_message_field() {
        let e: ErrorBody =
            serde_json::from_str(r#"{"error":{"message":"bad key","type":"x"}}"#).unwrap();
        assert_eq!(e.error.unwrap().message(), "bad key");
        let e: ErrorBody = serde_json::from_str(r#"{"error":"model not found"}"#).unwrap();
        assert_eq!(e.error.unwrap().message(), "model not found");
        let e: ErrorBody = serde_json::from_str(r#"{"error":{"code":"overloaded"}}"#).unwrap();
        assert_eq!(e.error.unwrap().message(), "overloaded");
    }
}
