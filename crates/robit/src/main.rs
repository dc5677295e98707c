//! The `robit` binary: command line, configuration, wiring of adapters, engine, provider,
//! sandbox and store. This is the only crate that reads configuration or the environment and
//! the only one that installs a tracing subscriber.

mod access_config;
mod admin_api;
mod apikey;
mod app;
mod audit;
mod bench;
mod cli;
mod config;
mod doctor;
mod emulate;
mod gvisor;
mod http;
mod mcp;
mod providers;

use clap::Parser;
use cli::{Cli, Cmd};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
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

async fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    // The emulators need no configuration, database or logging set-up.
    if let Cmd::Emulate(args) = cli.command {
        return emulate::run(args).await;
    }
    let loaded = config::load(cli.config.as_deref(), &cli.overrides())?;
    app::init_tracing(
        &loaded.config,
        cli.log_format,
        matches!(cli.command, Cmd::Chat),
    );
    match cli.command {
        Cmd::Serve => app::serve(loaded).await,
        Cmd::Chat => app::chat(loaded).await,
        Cmd::Migrate => app::migrate(loaded).await,
        Cmd::Doctor => doctor::run(loaded).await,
        Cmd::Run(args) => app::run_code(loaded, args).await,
        Cmd::Bench(args) => bench::run(loaded, args).await,
        Cmd::Usage(args) => app::usage(loaded, args).await,
        Cmd::Audit(args) => audit::run(loaded, args).await,
        Cmd::Apikey { command } => match command {
            cli::ApikeyCmd::Create { name } => apikey::run_create(loaded, &name).await,
            cli::ApikeyCmd::List => apikey::run_list(loaded).await,
            cli::ApikeyCmd::Revoke { id } => apikey::run_revoke(loaded, id).await,
        },
        Cmd::Emulate(_) => unreachable!("handled before configuration is loaded"),
        Cmd::Healthcheck => http::healthcheck(&loaded.config.http.addr).await,
    }
}
