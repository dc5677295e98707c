//! `robit chat`: the console adapter in this terminal (the full-screen UI when both ends are
//! a terminal, lines otherwise); the conversation persists across runs.

use crate::app::{build_engine, run_console, shutdown_signal, wants_tui};
use crate::config::Loaded;
use std::process::ExitCode;
use std::time::Duration;

pub async fn run(loaded: Loaded) -> anyhow::Result<ExitCode> {
    let (engine, _store) = build_engine(&loaded.config, false).await?;
    tokio::select! {
        r = run_console(&engine, &loaded.config, wants_tui()) => r?,
        _ = shutdown_signal() => tracing::info!("stopping"),
    }
    engine
        .shutdown(Duration::from_millis(
            loaded.config.engine.shutdown_grace_ms,
        ))
        .await;
    Ok(ExitCode::SUCCESS)
}
