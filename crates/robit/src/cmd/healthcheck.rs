//! `robit healthcheck`: for container health checks, which have no HTTP client of their own.

use std::time::Duration;

/// `robit healthcheck`: exits 0 when the local server's `/healthz` answers 200.
pub async fn run(addr: &str) -> anyhow::Result<std::process::ExitCode> {
    // A wildcard listen address is reached through loopback.
    let addr = addr
        .replace("0.0.0.0", "127.0.0.1")
        .replace("[::]", "[::1]");
    let url = format!("http://{addr}/healthz");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()?;
    match client.get(&url).send().await {
        Ok(r) if r.status().is_success() => Ok(std::process::ExitCode::SUCCESS),
        Ok(r) => {
            eprintln!("{url}: {}", r.status());
            Ok(std::process::ExitCode::FAILURE)
        }
        Err(e) => {
            eprintln!("{url}: {e}");
            Ok(std::process::ExitCode::FAILURE)
        }
    }
}
