//! Builds the LLM provider the engine talks to from configuration: one OpenAI-compatible
//! endpoint (`llm.base_url`), named providers (`[llm.providers.*]`, OpenAI-compatible or
//! Anthropic), model aliases with fallbacks, retries before the first token, and, when
//! nothing is configured, a local server found on its usual port.

use crate::config::{Config, ProviderKind};
use anyhow::Context;
use robit_llm::{
    Anthropic, AnthropicConfig, LlmError, ModelRouter, OpenAiCompatible, OpenAiConfig, Provider,
    RetryPolicy, Retrying,
};
use std::sync::Arc;
use std::time::Duration;

/// The name of the provider configured by the `llm.base_url` shorthand.
pub const DEFAULT_PROVIDER: &str = "default";

/// A configured client, kept concrete so `robit doctor` can probe it.
pub enum Client {
    OpenAi(Arc<OpenAiCompatible>),
    Anthropic(Arc<Anthropic>),
}

impl Client {
    pub async fn probe(&self) -> Result<Vec<String>, LlmError> {
        match self {
            Client::OpenAi(c) => c.probe().await,
            Client::Anthropic(c) => c.probe().await,
        }
    }

    fn provider(&self) -> Arc<dyn Provider> {
        match self {
            Client::OpenAi(c) => c.clone(),
            Client::Anthropic(c) => c.clone(),
        }
    }
}

/// What the engine gets: the provider (a router when there are several models or
/// providers), the models `/model` offers, and the default model.
pub struct Providers {
    pub provider: Option<Arc<dyn Provider>>,
    pub models: Vec<String>,
    pub default_model: String,
    /// Where the provider came from, for logs and `robit doctor`.
    pub source: String,
}

/// The configured clients by name (`default` for `llm.base_url`), without network access.
pub fn clients(config: &Config) -> anyhow::Result<Vec<(String, Client)>> {
    let llm = &config.llm;
    let timeouts = (
        Duration::from_millis(llm.connect_timeout_ms),
        Duration::from_millis(llm.first_token_timeout_ms),
        Duration::from_millis(llm.idle_timeout_ms),
    );
    let openai = |name: &str, base_url: String, key| -> anyhow::Result<Client> {
        Ok(Client::OpenAi(Arc::new(OpenAiCompatible::new(
            OpenAiConfig {
                name: name.to_string(),
                base_url,
                api_key: key,
                connect_timeout: timeouts.0,
                first_token_timeout: timeouts.1,
                idle_timeout: timeouts.2,
                extra_headers: Vec::new(),
            },
        )?)))
    };
    let mut out = Vec::new();
    if let Some(base_url) = &llm.base_url {
        let client = openai(DEFAULT_PROVIDER, base_url.clone(), llm.api_key.clone())
            .context("setting up the LLM client (llm.base_url)")?;
        out.push((DEFAULT_PROVIDER.to_string(), client));
    }
    for (name, p) in &llm.providers {
        let client = match p.kind {
            ProviderKind::Openai => openai(
                name,
                p.base_url
                    .clone()
                    .unwrap_or_else(|| "https://api.openai.com/v1".into()),
                p.api_key.clone(),
            ),
            ProviderKind::Anthropic => {
                let d = AnthropicConfig::default();
                Anthropic::new(AnthropicConfig {
                    name: name.clone(),
                    base_url: p.base_url.clone().unwrap_or(d.base_url.clone()),
                    api_key: p.api_key.clone(),
                    connect_timeout: timeouts.0,
                    first_token_timeout: timeouts.1,
                    idle_timeout: timeouts.2,
                    ..d
                })
                .map(|c| Client::Anthropic(Arc::new(c)))
                .map_err(Into::into)
            }
        }
        .with_context(|| format!("setting up llm.providers.{name}"))?;
        out.push((name.clone(), client));
    }
    Ok(out)
}

pub async fn build(config: &Config) -> anyhow::Result<Providers> {
    let llm = &config.llm;
    let mut clients = clients(config)?;
    let mut default_model = llm.model.clone();
    let mut source = "configuration".to_string();
    if clients.is_empty() && llm.probe_local {
        if let Some(found) = robit_llm::probe_local(Duration::from_millis(500)).await {
            tracing::info!(server = %found.name, base_url = %found.base_url, "no provider configured; using a local server");
            if !found.models.contains(&default_model) {
                if let Some(first) = found.models.first() {
                    default_model = first.clone();
                }
            }
            source = format!("local {} at {}", found.name, found.base_url);
            let client = Client::OpenAi(Arc::new(OpenAiCompatible::new(OpenAiConfig {
                name: found.name.to_string(),
                base_url: found.base_url.clone(),
                api_key: None,
                connect_timeout: Duration::from_millis(llm.connect_timeout_ms),
                first_token_timeout: Duration::from_millis(llm.first_token_timeout_ms),
                idle_timeout: Duration::from_millis(llm.idle_timeout_ms),
                extra_headers: Vec::new(),
            })?));
            clients.push((DEFAULT_PROVIDER.to_string(), client));
        }
    }
    if clients.is_empty() {
        return Ok(Providers {
            provider: None,
            models: llm.models.clone(),
            default_model,
            source: "none".into(),
        });
    }
    let policy = RetryPolicy {
        max_attempts: llm.max_attempts.max(1),
        ..RetryPolicy::default()
    };
    // One plain endpoint: no routing, and any model name is passed through.
    if clients.len() == 1 && clients[0].0 == DEFAULT_PROVIDER && llm.fallbacks.is_empty() {
        let provider = Arc::new(Retrying::new(clients[0].1.provider(), policy));
        return Ok(Providers {
            provider: Some(provider),
            models: llm.models.clone(),
            default_model,
            source,
        });
    }
    let mut builder = ModelRouter::builder();
    for (name, client) in &clients {
        builder = builder.provider(
            name.clone(),
            Arc::new(Retrying::new(client.provider(), policy)),
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    for (alias, targets) in &llm.fallbacks {
        let targets = targets
            .iter()
            .map(|t| {
                t.split_once(':')
                    .map(|(p, m)| (p.to_string(), m.to_string()))
                    .with_context(|| format!("llm.fallbacks.{alias}: `{t}` is not provider:model"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        builder = builder.model(alias.clone(), targets);
        seen.insert(alias.clone());
    }
    let mut direct = Vec::new();
    if clients.iter().any(|(n, _)| n == DEFAULT_PROVIDER) {
        for m in llm.models.iter().chain(std::iter::once(&llm.model)) {
            direct.push((DEFAULT_PROVIDER.to_string(), m.clone()));
        }
    }
    for (name, p) in &llm.providers {
        for m in &p.models {
            direct.push((name.clone(), m.clone()));
        }
    }
    for (provider, model) in direct {
        if seen.insert(model.clone()) {
            builder = builder.model(model.clone(), vec![(provider, model)]);
        }
    }
    let router = builder.build().context("llm.providers / llm.fallbacks")?;
    let models = router.models();
    if !models.contains(&default_model) {
        anyhow::bail!(
            "llm.model `{default_model}` is not served by any configured provider; known models: {}",
            models.join(", ")
        );
    }
    Ok(Providers {
        provider: Some(Arc::new(router)),
        models,
        default_model,
        source,
    })
}
