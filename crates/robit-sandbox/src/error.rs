//! Errors from setting up or driving the sandbox.
//!
//! A guest that misbehaves (loops, allocates too much, floods its output, traps)
//! is not an error here: that is an [`Outcome`](crate::Outcome) of a successful
//! run. These variants are for the host side failing: a guest file missing,
//! a module that does not compile, the runtime refusing to start.

use std::io;
use std::path::PathBuf;

use robit_types::Language;

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("{language} guest not found at {path}; run `robit guests fetch` (or scripts/fetch-guests in a checkout)")]
    GuestMissing { language: Language, path: PathBuf },

    #[error("failed to read {language} guest at {path}")]
    ReadGuest {
        language: Language,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("failed to compile {language} guest at {path}: {message}")]
    Compile {
        language: Language,
        path: PathBuf,
        message: String,
    },

    #[error("failed to configure the wasm engine: {0}")]
    Engine(String),

    #[error("failed to link the {language} guest: {message}")]
    Link { language: Language, message: String },

    #[error("failed to start the sandbox runtime")]
    Runtime(#[source] io::Error),

    #[error("failed to create a scratch directory")]
    Scratch(#[source] io::Error),

    #[error("failed to instantiate the {language} guest: {message}")]
    Instantiate { language: Language, message: String },

    #[error("the {0} sandbox tier is not available here")]
    TierUnavailable(robit_types::Tier),

    #[error("the {tier} sandbox tier does not run {language}")]
    UnsupportedLanguage {
        tier: robit_types::Tier,
        language: Language,
    },

    #[error("sandbox worker failed: {0}")]
    Internal(String),
}

/// Formats a wasmtime error with its whole cause chain on one line.
pub(crate) fn chain(e: &wasmtime::Error) -> String {
    e.chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}
