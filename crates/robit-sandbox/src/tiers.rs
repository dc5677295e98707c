//! [`Tiers`]: one [`CodeRunner`] in front of several sandbox tiers, so the engine keeps
//! holding a single runner and names a tier per run.
//!
//! It only dispatches: each tier is a complete runner with its own limits and isolation.
//! It must never fall back from the tier asked for to another one.

use std::sync::Arc;

use robit_types::{Language, Tier};

use crate::config::Limits;
use crate::error::SandboxError;
use crate::files::InputFile;
use crate::output::RunOutput;
use crate::CodeRunner;

/// The wasm tier (the default, used by [`CodeRunner::run`]) and any further tiers.
#[derive(Clone, Default)]
pub struct Tiers {
    wasm: Option<Arc<dyn CodeRunner>>,
    others: Vec<(Tier, Arc<dyn CodeRunner>)>,
}

impl std::fmt::Debug for Tiers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tiers")
            .field("tiers", &self.tiers())
            .finish()
    }
}

impl Tiers {
    /// `wasm` serves [`Tier::Wasm`] and plain `run` calls; `None` when its guests are missing.
    pub fn new(wasm: Option<Arc<dyn CodeRunner>>) -> Tiers {
        Tiers {
            wasm,
            others: Vec::new(),
        }
    }

    /// Adds (or replaces) the runner of `tier`.
    pub fn with(mut self, tier: Tier, runner: Arc<dyn CodeRunner>) -> Tiers {
        if tier == Tier::Wasm {
            self.wasm = Some(runner);
        } else {
            self.others.retain(|(t, _)| *t != tier);
            self.others.push((tier, runner));
        }
        self
    }

    /// Whether any tier is present.
    pub fn is_empty(&self) -> bool {
        self.wasm.is_none() && self.others.is_empty()
    }

    fn runner(&self, tier: Tier) -> Result<&Arc<dyn CodeRunner>, SandboxError> {
        let found = if tier == Tier::Wasm {
            self.wasm.as_ref()
        } else {
            self.others.iter().find(|(t, _)| *t == tier).map(|(_, r)| r)
        };
        found.ok_or(SandboxError::TierUnavailable(tier))
    }
}

#[async_trait::async_trait]
impl CodeRunner for Tiers {
    async fn run(
        &self,
        language: Language,
        code: &str,
        stdin: &[u8],
        limits: Limits,
    ) -> Result<RunOutput, SandboxError> {
        self.runner(Tier::Wasm)?
            .run(language, code, stdin, limits)
            .await
    }

    async fn run_with_files(
        &self,
        language: Language,
        code: &str,
        stdin: &[u8],
        files: Vec<InputFile>,
        limits: Limits,
    ) -> Result<RunOutput, SandboxError> {
        self.runner(Tier::Wasm)?
            .run_with_files(language, code, stdin, files, limits)
            .await
    }

    fn tiers(&self) -> Vec<Tier> {
        let mut tiers: Vec<Tier> = self.wasm.iter().map(|_| Tier::Wasm).collect();
        tiers.extend(self.others.iter().map(|(t, _)| *t));
        tiers
    }

    async fn run_on(
        &self,
        tier: Tier,
        language: Language,
        code: &str,
        stdin: &[u8],
        files: Vec<InputFile>,
        limits: Limits,
    ) -> Result<RunOutput, SandboxError> {
        self.runner(tier)?
            .run_with_files(language, code, stdin, files, limits)
            .await
    }

    async fn shutdown(&self) {
        for runner in self.wasm.iter().chain(self.others.iter().map(|(_, r)| r)) {
            runner.shutdown().await;
        }
    }
}
