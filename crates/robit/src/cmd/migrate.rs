//! `robit migrate`: applies the database migrations and exits.

use crate::app::{open_store, redact_url};
use crate::config::Loaded;
use std::process::ExitCode;

pub async fn run(loaded: Loaded) -> anyhow::Result<ExitCode> {
    open_store(&loaded.config).await?;
    println!(
        "migrations applied to {}",
        redact_url(&loaded.config.database.url)
    );
    Ok(ExitCode::SUCCESS)
}
