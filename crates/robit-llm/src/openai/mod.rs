//! The OpenAI-compatible chat-completions client (OpenAI, Ollama, vLLM, llama.cpp, LiteLLM, …).
//!
//! It sends a [`ChatRequest`] as a streamed `POST {base_url}/chat/completions` and turns the
//! answer into [`StreamEvent`](crate::StreamEvent)s. It must not retry, rate-limit or log
//! message contents or keys: retries and limits are decorators around the [`Provider`], and
//! what the user said is not ours to log.

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
        let base_url = http::base_url(&config.base_url)?;
        let mut headers = HeaderMap::new();
        if let Some(key) = &config.api_key {
            http::sensitive_header(
                &mut headers,
                "authorization",
                &format!("Bearer {}", key.expose_secret()),
            )
            .map_err(|_| LlmError::Connect("the api key is not a valid header value".into()))?;
        }
        for (name, value) in &config.extra_headers {
            http::sensitive_header(&mut headers, name, value)?;
        }
        Ok(OpenAiCompatible {
            name: config.name,
            base_url,
            first_token_timeout: config.first_token_timeout,
            idle_timeout: config.idle_timeout,
            http: http::client(config.connect_timeout, headers)?,
        })
    }

    /// Lists the model ids the endpoint offers (`GET {base_url}/models`): a cheap check that
    /// the URL and key work, for `robit doctor`. The whole exchange is bounded by the
    /// first-token timeout.
    pub async fn probe(&self) -> Result<Vec<String>, LlmError> {
        http::list_models(
            &self.http,
            format!("{}/models", self.base_url),
            self.first_token_timeout,
        )
        .await
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
        let deadlines = sse::Deadlines {
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
        let post = self
            .http
            .post(format!("{}/chat/completions", self.base_url))
            .json(&wire::RequestBody::new(&request));
        let response = http::send(post, deadlines.first_token, &cancel).await?;
        tracing::debug!(
            provider = %self.name,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "completion stream opened"
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
}
