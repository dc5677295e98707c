//! Model aliases routed to providers, with failover, as a [`Provider`].
//!
//! A [`ModelRouter`] maps each model alias (what users pick with `/model`) to an ordered list
//! of targets, a configured provider and the model id that provider knows it by. A request
//! goes to the first target; if that fails before the first event of its answer with an error
//! another provider might not have (unreachable, 5xx, rate limited after its own retries, no
//! first token in time, a stream that broke before saying anything), the next target gets it.
//! Once an answer has started it is never moved: the user has already seen part of it. The
//! router emits [`StreamEvent::Served`] first so usage is recorded against whoever answered.
//! It must not retry a target itself; wrap targets in [`Retrying`](crate::Retrying) for that.

use crate::error::{LlmError, RouterConfigError};
use crate::types::{ChatRequest, ChatStream, Provider, StreamEvent};
use async_trait::async_trait;
use futures::stream::{self, StreamExt};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Routes model aliases to providers. Build it with [`ModelRouter::builder`].
pub struct ModelRouter {
    /// Aliases in the order they were configured, which is the order `/model` lists them.
    models: Vec<(String, Vec<Target>)>,
}

struct Target {
    provider_name: String,
    provider: Arc<dyn Provider>,
    /// The id the provider knows the model by.
    model: String,
}

impl fmt::Debug for ModelRouter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (alias, targets) in &self.models {
            let targets: Vec<String> = targets
                .iter()
                .map(|t| format!("{}:{}", t.provider_name, t.model))
                .collect();
            map.entry(alias, &targets);
        }
        map.finish()
    }
}

/// Collects providers and model aliases for a [`ModelRouter`].
#[derive(Default)]
pub struct ModelRouterBuilder {
    providers: HashMap<String, Arc<dyn Provider>>,
    models: Vec<(String, Vec<(String, String)>)>,
}

impl fmt::Debug for ModelRouterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut providers: Vec<&String> = self.providers.keys().collect();
        providers.sort();
        f.debug_struct("ModelRouterBuilder")
            .field("providers", &providers)
            .field("models", &self.models)
            .finish()
    }
}

impl ModelRouterBuilder {
    /// Registers `provider` under `name` (the name targets refer to and
    /// [`StreamEvent::Served`] reports). A later provider with the same name replaces it.
    pub fn provider(mut self, name: impl Into<String>, provider: Arc<dyn Provider>) -> Self {
        self.providers.insert(name.into(), provider);
        self
    }

    /// Routes `alias` to `targets`, `(provider name, upstream model id)` pairs tried in order.
    pub fn model<P: Into<String>, M: Into<String>>(
        mut self,
        alias: impl Into<String>,
        targets: impl IntoIterator<Item = (P, M)>,
    ) -> Self {
        let targets = targets
            .into_iter()
            .map(|(p, m)| (p.into(), m.into()))
            .collect();
        self.models.push((alias.into(), targets));
        self
    }

    /// Checks that every alias has targets and every target names a registered provider.
    pub fn build(self) -> Result<ModelRouter, RouterConfigError> {
        let mut models: Vec<(String, Vec<Target>)> = Vec::with_capacity(self.models.len());
        for (alias, targets) in self.models {
            if models.iter().any(|(a, _)| *a == alias) {
                return Err(RouterConfigError::DuplicateModel(alias));
            }
            if targets.is_empty() {
                return Err(RouterConfigError::NoTargets(alias));
            }
            let targets = targets
                .into_iter()
                .map(
                    |(provider_name, model)| match self.providers.get(&provider_name) {
                        Some(provider) => Ok(Target {
                            provider: provider.clone(),
                            provider_name,
                            model,
                        }),
                        None => Err(RouterConfigError::UnknownProvider {
                            model: alias.clone(),
                            provider: provider_name,
                        }),
                    },
                )
                .collect::<Result<Vec<_>, _>>()?;
            models.push((alias, targets));
        }
        Ok(ModelRouter { models })
    }
}

impl ModelRouter {
    pub fn builder() -> ModelRouterBuilder {
        ModelRouterBuilder::default()
    }

    /// The model aliases, in configuration order: what `/model` offers.
    pub fn models(&self) -> Vec<String> {
        self.models.iter().map(|(alias, _)| alias.clone()).collect()
    }

    /// The `(provider name, upstream model id)` targets of `alias`, in failover order.
    pub fn targets(&self, alias: &str) -> Option<Vec<(String, String)>> {
        self.lookup(alias).map(|targets| {
            targets
                .iter()
                .map(|t| (t.provider_name.clone(), t.model.clone()))
                .collect()
        })
    }

    fn lookup(&self, alias: &str) -> Option<&[Target]> {
        self.models
            .iter()
            .find(|(a, _)| a == alias)
            .map(|(_, targets)| targets.as_slice())
    }
}

/// Whether a failure before the first event is worth taking to the next target. Auth and
/// other 4xx answers are configuration or request problems that hiding would only prolong;
/// cancellation is the user's choice.
fn fails_over(error: &LlmError) -> bool {
    error.is_transient() || matches!(error, LlmError::Timeout(_) | LlmError::Stream(_))
}

#[async_trait]
impl Provider for ModelRouter {
    fn name(&self) -> &str {
        "router"
    }

    async fn stream(
        &self,
        request: ChatRequest,
        cancel: CancellationToken,
    ) -> Result<ChatStream, LlmError> {
        let Some(targets) = self.lookup(&request.model) else {
            return Err(LlmError::UnknownModel(request.model));
        };
        let alias = request.model.clone();
        let mut targets = targets.iter().peekable();
        while let Some(target) = targets.next() {
            let mut upstream = request.clone();
            upstream.model.clone_from(&target.model);
            // The first event is awaited here, not in the returned stream, so that a target
            // that accepted the request but then failed before answering can still be
            // replaced.
            let started = match target.provider.stream(upstream, cancel.clone()).await {
                Ok(mut answer) => match answer.next().await {
                    Some(Err(error)) => Err(error),
                    first => Ok((first, answer)),
                },
                Err(error) => Err(error),
            };
            match started {
                Ok((first, rest)) => {
                    let served = StreamEvent::Served {
                        provider: target.provider_name.clone(),
                        model: target.model.clone(),
                    };
                    return Ok(stream::iter(std::iter::once(Ok(served)).chain(first))
                        .chain(rest)
                        .boxed());
                }
                Err(error) if fails_over(&error) && targets.peek().is_some() => {
                    let next = targets.peek().expect("peeked");
                    tracing::warn!(
                        model = %alias,
                        provider = %target.provider_name,
                        upstream_model = %target.model,
                        next_provider = %next.provider_name,
                        error = %error,
                        "provider failed before answering; failing over"
                    );
                }
                Err(error) => return Err(error),
            }
        }
        unreachable!("a model always has at least one target, and the last one returns")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Never;

    #[async_trait]
    impl Provider for Never {
        fn name(&self) -> &str {
            "never"
        }

        async fn stream(
            &self,
            _request: ChatRequest,
            _cancel: CancellationToken,
        ) -> Result<ChatStream, LlmError> {
            Err(LlmError::Connect("never".into()))
        }
    }

    #[test]
    fn build_checks_providers_targets_and_duplicates() {
        let never: Arc<dyn Provider> = Arc::new(Never);
        let err = ModelRouter::builder()
            .provider("a", never.clone())
            .model("m", [("b", "x")])
            .build()
            .unwrap_err();
        assert!(matches!(err, RouterConfigError::UnknownProvider { .. }));
        let err = ModelRouter::builder()
            .model("m", Vec::<(String, String)>::new())
            .build()
            .unwrap_err();
        assert!(matches!(err, RouterConfigError::NoTargets(_)));
        let err = ModelRouter::builder()
            .provider("a", never.clone())
            .model("m", [("a", "x")])
            .model("m", [("a", "y")])
            .build()
            .unwrap_err();
        assert!(matches!(err, RouterConfigError::DuplicateModel(_)));
    }

    #[test]
    fn models_keep_configuration_order() {
        let never: Arc<dyn Provider> = Arc::new(Never);
        let router = ModelRouter::builder()
            .provider("a", never.clone())
            .model("zeta", [("a", "z-1")])
            .model("alpha", [("a", "a-1"), ("a", "a-2")])
            .build()
            .unwrap();
        assert_eq!(router.models(), vec!["zeta", "alpha"]);
        assert_eq!(
            router.targets("alpha").unwrap(),
            vec![("a".into(), "a-1".into()), ("a".into(), "a-2".into())]
        );
        assert!(router.targets("nope").is_none());
    }
}
