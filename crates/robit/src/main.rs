//! The `robit` binary: command line, configuration, wiring of adapters, engine, provider,
//! sandbox and store. This is the only crate that reads configuration or the environment and
//! the only one that installs a tracing subscriber.

mod access_config;
mod admin_api;
mod apikey;
mod app;
mod cli;
mod cmd;
mod config;
mod guests;
mod gvisor;
mod http;
mod mcp;
mod providers;
mod telemetry;
#[cfg(test)]
mod telemetry_tests;

use clap::Parser;
use cli::Cli;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cmd::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            // The whole chain: the top says what robit was doing, the rest says why.
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}
