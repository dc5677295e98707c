//! The OpenAI-compatible chat-completions client (OpenAI, Ollama, vLLM, llama.cpp, LiteLLM, …).
//!
//! It sends a [`ChatRequest`] as a streamed `POST {base_url}/chat/completions` and turns the
//! answer into [`StreamEvent`](crate::StreamEvent)s. It must not retry, rate-limit or log
//! message contents or keys: retries and limits are decorators around the [`Provider`], and
//! what the user said is not ours to log.

mod stream;
mod wire;

use crate::error::LlmError;
use crate::types::{ChatRequest, ChatStream, Provider};
use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, RETRY_AFTER};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use std::fmt;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How to reach one OpenAI-compatible endpoint.
#[derive(Clone)]
pub struct OpenAiConfig {
    /// The provider's name in logs and usage records.
    pub name: String,
    /// The API root, e.g. `https://api.openai.com/v1` or `http://127.0.0.1:11434/v1`.
    pub base_url: String,
    /// Sent as `Authorization: Bearer …` when set; local servers usually need none.
    pub api_key: Option<SecretString>,
    /// Limit on establishing the TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Limit from sending the request to the first token of the answer.
    pub first_token_timeout: Duration,
    /// Limit on the gap between two chunks once the answer is flowing.
    pub idle_timeout: Duration,
    /// Added to every request (e.g. `OpenAI-Organization`, or a gateway's own key header).
    pub extra_headers: Vec<(String, String)>,
}

impl fmt::Debug for OpenAiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Neither the key nor header values are printed: gateways put keys in headers too.
        let header_names: Vec<&str> = self.extra_headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("OpenAiConfig")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field(
                "api_key",
                &if self.api_key.is_some() {
                    "<set>"
                } else {
                    "<unset>"
                },
            )
            .field("connect_timeout", &self.connect_timeout)
            .field("first_token_timeout", &self.first_token_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("extra_headers", &header_names)
            .finish()
    }
}

/// A [`Provider`] speaking the OpenAI chat-completions protocol.
pub struct OpenAiCompatible {
    name: String,
    /// `base_url` without a trailing slash, so paths can be appended.
    base_url: String,
    first_token_timeout: Duration,
    idle_timeout: Duration,
    http: reqwest::Client,
}

impl fmt::Debug for OpenAiCompatible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiCompatible")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl OpenAiCompatible {
    /// Builds the client. Fails (as [`LlmError::Connect`], since the provider could not be
    /// reached with it) when the base URL or a header is invalid.
    pub fn new(config: OpenAiConfig) -> Result<Self, LlmError> {
        let base_url = config.base_url.trim_end_matches('/').to_string();
        let url = reqwest::Url::parse(&base_url)
            .map_err(|e| LlmError::Connect(format!("invalid base url {base_url:?}: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(LlmError::Connect(format!(
                "invalid base url {base_url:?}: the scheme must be http or https"
            )));
        }

        let mut headers = HeaderMap::new();
        if let Some(key) = &config.api_key {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", key.expose_secret()))
                .map_err(|_| LlmError::Connect("the api key is not a valid header value".into()))?;
            // Keeps the key out of reqwest's and hyper's debug output.
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        for (name, value) in &config.extra_headers {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| LlmError::Connect(format!("invalid header name {name:?}")))?;
            let mut value = HeaderValue::from_str(value)
                .map_err(|_| LlmError::Connect(format!("invalid value for header {name:?}")))?;
            value.set_sensitive(true);
            headers.insert(header, value);
        }

        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .default_headers(headers)
            .user_agent(concat!("robit/", env!("CARGO_PKG_VERSION")))
            // No overall timeout: answers stream for minutes. The stream enforces the
            // first-token and idle limits itself.
            .build()
            .map_err(|e| LlmError::Connect(error_chain(&e)))?;

        Ok(OpenAiCompatible {
            name: config.name,
            base_url,
            first_token_timeout: config.first_token_timeout,
            idle_timeout: config.idle_timeout,
            http,
        })
    }

    /// Lists the model ids the endpoint offers (`GET {base_url}/models`): a cheap check that
    /// the URL and key work, for `robit doctor`. The whole exchange is bounded by the
    /// first-token timeout.
    pub async fn probe(&self) -> Result<Vec<String>, LlmError> {
        let send = self
            .http
            .get(format!("{}/models", self.base_url))
            .timeout(self.first_token_timeout)
            .send();
        let response = send.await.map_err(request_error)?;
        let response = check_status(response).await?;
        let list: wire::ModelList = response.json().await.map_err(|e| {
            LlmError::Protocol(format!("unreadable model list: {}", error_chain(&e)))
        })?;
        Ok(list.data.into_iter().map(|m| m.id).collect())
    }
}

#[async_trait]
impl Provider for OpenAiCompatible {
    fn name(&self) -> &str {
        &self.name
    }

    async fn stream(
        &self,
        request: ChatRequest,
        cancel: CancellationToken,
    ) -> Result<ChatStream, LlmError> {
        let started = Instant::now();
        let deadlines = stream::Deadlines {
            first_token: started + self.first_token_timeout,
            idle: self.idle_timeout,
        };
        tracing::debug!(
            provider = %self.name,
            model = %request.model,
            messages = request.messages.len(),
            tools = request.tools.len(),
            "starting a streamed completion"
        );
        let send = self
            .http
            .post(format!("{}/chat/completions", self.base_url))
            .json(&wire::RequestBody::new(&request))
            .send();
        let response = tokio::select! {
            biased;
            () = cancel.cancelled() => return Err(LlmError::Cancelled),
            response = tokio::time::timeout_at(deadlines.first_token, send) => match response {
                Ok(response) => response.map_err(request_error)?,
                Err(_elapsed) => return Err(LlmError::Timeout(stream::FIRST_TOKEN_TIMEOUT)),
            },
        };
        let response = check_status(response).await?;
        tracing::debug!(
            provider = %self.name,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "completion stream opened"
        );
        Ok(stream::chat_stream(response, deadlines, cancel))
    }
}

/// Maps a failure to send the request or read its headers.
fn request_error(e: reqwest::Error) -> LlmError {
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

/// Passes a 2xx response through and turns anything else into the matching error.
async fn check_status(response: reqwest::Response) -> Result<reqwest::Response, LlmError> {
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
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
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
fn error_message(body: &str, status: StatusCode) -> String {
    const MAX: usize = 500;
    if let Ok(parsed) = serde_json::from_str::<wire::ErrorBody>(body) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config(key: Option<&str>) -> OpenAiConfig {
        OpenAiConfig {
            name: "t".into(),
            base_url: "http://127.0.0.1:9/v1/".into(),
            api_key: key.map(|k| SecretString::from(k.to_string())),
            connect_timeout: Duration::from_secs(1),
            first_token_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            extra_headers: vec![("X-Gateway-Key".into(), "hidden-value".into())],
        }
    }

    #[test]
    fn debug_never_prints_the_key_or_header_values() {
        let text = format!("{:?}", config(Some("sk-very-secret")));
        assert!(!text.contains("sk-very-secret"), "{text}");
        assert!(!text.contains("hidden-value"), "{text}");
        assert!(text.contains("<set>"), "{text}");
    }

    #[test]
    fn new_trims_the_trailing_slash_and_rejects_bad_urls() {
        let client = OpenAiCompatible::new(config(None)).unwrap();
        assert_eq!(client.base_url, "http://127.0.0.1:9/v1");
        let mut bad = config(None);
        bad.base_url = "ftp://example.com".into();
        assert!(matches!(
            OpenAiCompatible::new(bad),
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
            error_message("plain failure", StatusCode::BAD_GATEWAY),
            "plain failure"
        );
        assert_eq!(error_message("", StatusCode::BAD_GATEWAY), "bad gateway");
    }
}
