//! The subcommands, one module each (as mini-redis has `cmd/`): each turns its arguments into
//! calls on the wiring in `app.rs` and prints the result. [`run`] picks one.

pub mod apikey;
pub mod audit;
pub mod bench;
pub mod chat;
pub mod doctor;
pub mod emulate;
pub mod guests;
pub mod healthcheck;
pub mod migrate;
pub mod run;
pub mod serve;
pub mod usage;

use crate::cli::{ApikeyCmd, Cli, Cmd, GuestsCmd};
use std::process::ExitCode;

/// Runs the subcommand `cli` names, after loading the configuration and installing logging
/// (except `emulate` and `guests`, which need neither).
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // The emulators need no configuration, database or logging set-up; nor does fetching the
    // guests, which must work before robit is configured (and with a broken robit.toml).
    match cli.command {
        Cmd::Emulate(args) => return emulate::run(args).await,
        Cmd::Guests {
            command: GuestsCmd::Fetch(args),
        } => return guests::fetch(args).await,
        _ => {}
    }
    let loaded = crate::config::load(cli.config.as_deref(), &cli.overrides())?;
    let chat = matches!(cli.command, Cmd::Chat);
    let log_file = (chat && crate::app::wants_tui()).then_some(&loaded.config.console.log_file);
    // The engine benchmark times the engine's stage spans beside the log output.
    let stages = matches!(
        &cli.command,
        Cmd::Bench(args) if matches!(args.what, crate::cli::BenchWhat::Engine)
    )
    .then(bench::StageTimes::layer);
    let telemetry = crate::app::init_tracing(
        &loaded.config,
        cli.log_format,
        chat,
        log_file.map(|p| p.as_path()),
        stages,
    );
    let result = match cli.command {
        Cmd::Serve => serve::run(loaded).await,
        Cmd::Chat => chat::run(loaded).await,
        Cmd::Migrate => migrate::run(loaded).await,
        Cmd::Doctor => doctor::run(loaded).await,
        Cmd::Run(args) => run::run(loaded, args).await,
        Cmd::Bench(args) => bench::run(loaded, args).await,
        Cmd::Usage(args) => usage::run(loaded, args).await,
        Cmd::Audit(args) => audit::run(loaded, args).await,
        Cmd::Apikey { command } => match command {
            ApikeyCmd::Create { name } => apikey::create(loaded, &name).await,
            ApikeyCmd::List => apikey::list(loaded).await,
            ApikeyCmd::Revoke { id } => apikey::revoke(loaded, id).await,
        },
        Cmd::Emulate(_) | Cmd::Guests { .. } => {
            unreachable!("handled before configuration is loaded")
        }
        Cmd::Healthcheck => healthcheck::run(&loaded.config.http.addr).await,
    };
    telemetry.shutdown().await;
    result
}
