//! Finds an OpenAI-compatible model server running on this machine, so `robit` can work out
//! of the box with Ollama, llama.cpp or LM Studio and no configuration.
//!
//! Each candidate is asked `GET {base_url}/models` with a short timeout; the first one in
//! list order that answers wins. This module only looks: it must not start, pull or configure
//! anything, and it only ever talks to the addresses it is given (by default loopback ones).

use crate::openai::{OpenAiCompatible, OpenAiConfig};
use std::time::Duration;

/// The conventional local servers, in the order they are preferred: `(name, base_url)`.
pub const LOCAL_SERVERS: &[(&str, &str)] = &[
    ("ollama", "http://127.0.0.1:11434/v1"),
    ("llama.cpp", "http://127.0.0.1:8080/v1"),
    ("lm-studio", "http://127.0.0.1:1234/v1"),
];

/// A local server that answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalServer {
    /// The candidate's name, e.g. `ollama`.
    pub name: String,
    /// Its OpenAI-compatible API root, ready for [`OpenAiConfig::base_url`].
    pub base_url: String,
    /// The model ids it lists; may be empty (Ollama with no model pulled yet), which a caller
    /// should report rather than treat as no server.
    pub models: Vec<String>,
}

/// Probes [`LOCAL_SERVERS`], each bounded by `timeout`.
pub async fn probe_local(timeout: Duration) -> Option<LocalServer> {
    probe_local_in(LOCAL_SERVERS, timeout).await
}

/// Probes `candidates` (`(name, base_url)`) at once, each bounded by `timeout`, and returns
/// the first in list order that answered, so a slow or absent server costs `timeout` once
/// rather than once per candidate.
pub async fn probe_local_in<N: AsRef<str>, U: AsRef<str>>(
    candidates: &[(N, U)],
    timeout: Duration,
) -> Option<LocalServer> {
    let probes = candidates
        .iter()
        .map(|(name, base_url)| probe_one(name.as_ref(), base_url.as_ref(), timeout));
    futures::future::join_all(probes)
        .await
        .into_iter()
        .flatten()
        .next()
}

async fn probe_one(name: &str, base_url: &str, timeout: Duration) -> Option<LocalServer> {
    let client = OpenAiCompatible::new(OpenAiConfig {
        name: name.to_string(),
        base_url: base_url.to_string(),
        api_key: None,
        connect_timeout: timeout,
        first_token_timeout: timeout,
        idle_timeout: timeout,
        extra_headers: Vec::new(),
    })
    .ok()?;
    match client.probe().await {
        Ok(models) => Some(LocalServer {
            name: name.to_string(),
            base_url: base_url.trim_end_matches('/').to_string(),
            models,
        }),
        Err(e) => {
            tracing::debug!(server = name, base_url, error = %e, "no local model server here");
            None
        }
    }
}
