//! The Anthropic Messages API client.
//!
//! It sends a [`ChatRequest`] as a streamed `POST {base_url}/v1/messages` and turns the answer
//! into [`StreamEvent`](crate::StreamEvent)s, with the same timeouts and cancellation as the
//! OpenAI-compatible client (both use [`crate::http`] and [`crate::sse`]). Like that client it
//! must not retry, rate-limit or log message contents or keys: retries and failover are
//! decorators around the [`Provider`], and what the user said is not ours to log.

mod stream;
mod wire;

use crate::error::LlmError;
use crate::http;
use crate::sse;
use crate::types::{ChatRequest, ChatStream, Provider};
use async_trait::async_trait;
use reqwest::header::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use std::fmt;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Where the real API lives.
pub const ANTHROPIC_BASE_URL: &str = "https://api.anthropic.com";

/// The `anthropic-version` this client speaks.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// How to reach the Anthropic API (or a gateway that speaks it).
#[derive(Clone)]
pub struct AnthropicConfig {
    /// The provider's name in logs and usage records.
    pub name: String,
    /// The API root without `/v1`, e.g. [`ANTHROPIC_BASE_URL`].
    pub base_url: String,
    /// Sent as `x-api-key` when set; a gateway that adds its own key may need none.
    pub api_key: Option<SecretString>,
    /// `max_tokens` for requests that set none: the API requires a limit on every request.
    pub default_max_tokens: u32,
    /// Limit on establishing the TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Limit from sending the request to the first token of the answer.
    pub first_token_timeout: Duration,
    /// Limit on the gap between two events once the answer is flowing.
    pub idle_timeout: Duration,
    /// Added to every request (e.g. `anthropic-beta`, or a gateway's own key header).
    pub extra_headers: Vec<(String, String)>,
}

impl Default for AnthropicConfig {
    /// The real API with no key, 4096 output tokens, and the binary's default timeouts.
    fn default() -> Self {
        AnthropicConfig {
            name: "anthropic".into(),
            base_url: ANTHROPIC_BASE_URL.into(),
            api_key: None,
            default_max_tokens: 4096,
            connect_timeout: Duration::from_secs(10),
            first_token_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(30),
            extra_headers: Vec::new(),
        }
    }
}

impl fmt::Debug for AnthropicConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Neither the key nor header values are printed: gateways put keys in headers too.
        let header_names: Vec<&str> = self.extra_headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("AnthropicConfig")
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
            .field("default_max_tokens", &self.default_max_tokens)
            .field("connect_timeout", &self.connect_timeout)
            .field("first_token_timeout", &self.first_token_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("extra_headers", &header_names)
            .finish()
    }
}

/// A [`Provider`] speaking Anthropic's Messages protocol.
pub struct Anthropic {
    name: String,
    /// `base_url` without a trailing slash, so paths can be appended.
    base_url: String,
    default_max_tokens: u32,
    first_token_timeout: Duration,
    idle_timeout: Duration,
    http: reqwest::Client,
}

impl fmt::Debug for Anthropic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Anthropic")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl Anthropic {
    /// Builds the client. Fails (as [`LlmError::Connect`], since the provider could not be
    /// reached with it) when the base URL or a header is invalid.
    pub fn new(config: AnthropicConfig) -> Result<Self, LlmError> {
        let base_url = http::base_url(&config.base_url)?;
        let mut headers = HeaderMap::new();
        if let Some(key) = &config.api_key {
            http::sensitive_header(&mut headers, "x-api-key", key.expose_secret())
                .map_err(|_| LlmError::Connect("the api key is not a valid header value".into()))?;
        }
        http::sensitive_header(&mut headers, "anthropic-version", ANTHROPIC_VERSION)?;
        for (name, value) in &config.extra_headers {
            http::sensitive_header(&mut headers, name, value)?;
        }
        Ok(Anthropic {
            name: config.name,
            base_url,
            default_max_tokens: config.default_max_tokens.max(1),
            first_token_timeout: config.first_token_timeout,
            idle_timeout: config.idle_timeout,
            http: http::client(config.connect_timeout, headers)?,
        })
    }

    /// Lists the model ids the API offers (`GET {base_url}/v1/models`): a cheap check that the
    /// URL and key work, for `robit doctor`. The whole exchange is bounded by the first-token
    /// timeout.
    pub async fn probe(&self) -> Result<Vec<String>, LlmError> {
        http::list_models(
            &self.http,
            format!("{}/v1/models", self.base_url),
            self.first_token_timeout,
        )
        .await
    }
}

#[async_trait]
impl Provider for Anthropic {
    fn name(&self) -> &str {
        &self.name
    }

    async fn stream(
        &self,
        request: ChatRequest,
        cancel: CancellationToken,
    ) -> Result<ChatStream, LlmError> {
        let started = Instant::now();
        let deadlines = sse::Deadlines {
            first_token: started + self.first_token_timeout,
            idle: self.idle_timeout,
        };
        tracing::debug!(
            provider = %self.name,
            model = %request.model,
            messages = request.messages.len(),
            tools = request.tools.len(),
            "starting a streamed message"
        );
        // reqwest's `json` sets `content-type: application/json`, as the API requires.
        let post = self
            .http
            .post(format!("{}/v1/messages", self.base_url))
            .json(&wire::RequestBody::new(&request, self.default_max_tokens));
        let response = http::send(post, deadlines.first_token, &cancel).await?;
        tracing::debug!(
            provider = %self.name,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "message stream opened"
        );
        Ok(sse::chat_stream(
            response,
            stream::Decoder::default(),
            deadlines,
            cancel,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_key_or_header_values() {
        let config = AnthropicConfig {
            api_key: Some(SecretString::from("sk-ant-very-secret".to_string())),
            extra_headers: vec![("x-gateway-key".into(), "hidden-value".into())],
            ..AnthropicConfig::default()
        };
        let text = format!("{config:?}");
        assert!(!text.contains("sk-ant-very-secret"), "{text}");
        assert!(!text.contains("hidden-value"), "{text}");
        assert!(text.contains("<set>"), "{text}");
    }

    #[test]
    fn new_trims_the_trailing_slash() {
        let client = Anthropic::new(AnthropicConfig {
            base_url: "http://127.0.0.1:9/".into(),
            ..AnthropicConfig::default()
        })
        .unwrap();
        assert_eq!(client.base_url, "http://127.0.0.1:9");
    }
}
