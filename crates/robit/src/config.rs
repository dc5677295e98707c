//! The one typed configuration, loaded from defaults < `robit.toml` < `ROBIT_*` environment
//! variables < command-line flags. Only the binary reads configuration; library crates get
//! typed values built from this.

use anyhow::Context;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Environment variables: `ROBIT_` + the key path joined with `__`, for example
/// `ROBIT_LLM__BASE_URL` or `ROBIT_DATABASE__URL`.
pub const ENV_PREFIX: &str = "ROBIT";
pub const ENV_SEPARATOR: &str = "__";

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub database: DatabaseConfig,
    pub llm: LlmConfig,
    pub engine: EngineSection,
    pub sandbox: SandboxSection,
    pub console: ConsoleSection,
    pub log: LogConfig,
    pub http: HttpConfig,
    /// Files attached to messages, and files sandboxed code writes.
    pub attachments: AttachmentsSection,
    /// The Discord adapter; on when `discord.token` is set (`ROBIT_DISCORD__TOKEN`).
    pub discord: robit_discord::DiscordConfig,
    /// The Slack adapter; on when `slack.bot_token` is set (`ROBIT_SLACK__BOT_TOKEN`), over
    /// Socket Mode with `slack.app_token` and over HTTP with `slack.signing_secret`.
    pub slack: robit_slack::SlackConfig,
    /// MCP servers whose tools the model may call (`[mcp.servers.<name>]`).
    pub mcp: crate::mcp::McpSection,
    /// Who may use robit, and its admins.
    pub access: crate::access_config::AccessSection,
    /// Turn rate limits and the daily token quota.
    pub limits: crate::access_config::LimitsSection,
    /// The optional admin HTTP API (off by default).
    pub admin_api: crate::access_config::AdminApiSection,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Serve HTTP under `robit serve`: platform webhooks and `/healthz` on `addr`;
    /// `/readyz`, `/metrics` and the admin API on `admin_addr`.
    pub enabled: bool,
    /// The public listen address (the Slack Events API intake, `/healthz`). Loopback by
    /// default; a container sets `0.0.0.0:8080`.
    pub addr: String,
    /// The operators' listen address: `/readyz` (it echoes database errors), `/metrics`,
    /// the admin API and `/healthz`. Loopback by default; the container image sets
    /// `0.0.0.0:9090` for probes and scrapes, which must not be exposed publicly. Set it
    /// equal to `addr` to serve everything on one listener.
    pub admin_addr: String,
    /// How long a client has to send a request head (also how long an idle keep-alive
    /// connection stays open).
    pub header_read_timeout_ms: u64,
    /// How long a client has to send a request body once its head arrived.
    pub body_read_timeout_ms: u64,
    /// Open connections per listener; a connection beyond this is closed at once.
    pub max_connections: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            addr: "127.0.0.1:8080".into(),
            admin_addr: "127.0.0.1:9090".into(),
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 10_000,
            max_connections: 1024,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://robit.db` (created if missing) or `postgres://user@host/db`.
    pub url: String,
    /// PostgreSQL only: keep robit's tables in this schema (created if missing) instead of
    /// the connection's default, so several deployments can share one database.
    pub schema: Option<String>,
    pub max_connections: u32,
    pub acquire_timeout_ms: u64,
    /// `robit serve` only: how long to keep retrying a database that is down at start
    /// before giving up (0: try once). Other commands fail at once.
    pub startup_retry_secs: u64,
    /// How long processed event ids are kept for deduplication before `robit serve` prunes
    /// them (hourly). Must outlast every platform's redelivery window (Slack retries for
    /// about 5 minutes, Discord's gateway replays on resume within minutes); 0 keeps them
    /// forever.
    pub event_retention_hours: u64,
    /// SQLite only: `normal` (the default; under WAL a power loss or OS crash can lose the
    /// last commits, including acknowledged events) or `full` (an fsync per commit).
    pub sqlite_synchronous: SqliteSynchronous,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSynchronous {
    Normal,
    Full,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://robit.db".into(),
            schema: None,
            max_connections: 8,
            acquire_timeout_ms: 5_000,
            startup_retry_secs: 300,
            event_retention_hours: 7 * 24,
            sqlite_synchronous: SqliteSynchronous::Normal,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LlmConfig {
    /// Base URL of an OpenAI-compatible API (`https://api.openai.com/v1`,
    /// `http://127.0.0.1:11434/v1` for Ollama). Unset: no provider.
    pub base_url: Option<String>,
    /// The API key. Set it through `ROBIT_LLM__API_KEY` or `api_key_file`, not in the file.
    #[serde(skip_serializing)]
    pub api_key: Option<SecretString>,
    /// A file holding the API key (for example a mounted secret).
    pub api_key_file: Option<PathBuf>,
    /// The default model.
    pub model: String,
    /// Models `/model` may switch to; empty accepts any name.
    pub models: Vec<String>,
    pub connect_timeout_ms: u64,
    pub first_token_timeout_ms: u64,
    pub idle_timeout_ms: u64,
    /// Attempts per request before the first token (429, 5xx, connect errors are retried).
    pub max_attempts: u32,
    /// Named providers, for several at once (`[llm.providers.anthropic]`, …).
    pub providers: std::collections::BTreeMap<String, ProviderConfig>,
    /// Model aliases with an ordered fallback list of `provider:model` targets; a target
    /// failing before its first token moves the turn to the next.
    pub fallbacks: std::collections::BTreeMap<String, Vec<String>>,
    /// With no provider configured, look for a local OpenAI-compatible server (Ollama,
    /// llama.cpp, LM Studio) on its usual port.
    pub probe_local: bool,
    /// The models of `base_url` (`model` and `models`) accept images.
    pub vision: bool,
    /// More models (or fallback aliases) that accept images, by the name `/model` uses.
    pub vision_models: Vec<String>,
}

/// One named provider.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// `openai` (any OpenAI-compatible API) or `anthropic`.
    pub kind: ProviderKind,
    /// Defaults: https://api.openai.com/v1 for openai, https://api.anthropic.com for anthropic.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Set through `ROBIT_LLM__PROVIDERS__<NAME>__API_KEY` or `api_key_file`.
    #[serde(default, skip_serializing)]
    pub api_key: Option<SecretString>,
    #[serde(default)]
    pub api_key_file: Option<PathBuf>,
    /// Models this provider serves; each is a name `/model` accepts.
    #[serde(default)]
    pub models: Vec<String>,
    /// This provider's models accept images.
    #[serde(default)]
    pub vision: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Openai,
    Anthropic,
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            base_url: None,
            api_key: None,
            api_key_file: None,
            model: "gpt-4o-mini".into(),
            models: Vec::new(),
            connect_timeout_ms: 10_000,
            first_token_timeout_ms: 60_000,
            idle_timeout_ms: 30_000,
            max_attempts: 3,
            providers: Default::default(),
            fallbacks: Default::default(),
            probe_local: true,
            vision: false,
            vision_models: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineSection {
    pub max_concurrent_turns: usize,
    pub system_prompt: String,
    pub history_limit: u32,
    pub max_tool_rounds: u32,
    /// Tool calls run from one model response; the rest are answered "not run", with a note.
    pub max_tool_calls_per_round: usize,
    /// `max_tokens` sent with every model request.
    pub max_reply_tokens: u32,
    /// Characters of one answer shown; the answer is cut there, with a note.
    pub max_reply_chars: usize,
    pub run_code_tool: bool,
    /// Context window of models not listed in `model_context_tokens`.
    pub default_context_tokens: u32,
    /// Context window per model name, e.g. `{ "gpt-4o" = 128000 }`.
    pub model_context_tokens: std::collections::HashMap<String, u32>,
    /// Tokens kept free for the answer when fitting history.
    pub reply_reserve_tokens: u32,
    /// System prompts per workspace (`"slack:T123"`) or channel (`"discord:111:222"`).
    pub system_prompts: std::collections::HashMap<String, String>,
    /// A new message or /reset stops the turn running in that conversation.
    pub cancel_on_new_message: bool,
    /// How long after asking a user may edit their question (the latest of its
    /// conversation) to have it answered again; 0 turns edits off.
    pub edit_window_secs: u64,
    /// On SIGTERM, how long running turns get to finish before they are cut off.
    pub shutdown_grace_ms: u64,
    /// On PostgreSQL (several replicas), how long a conversation lease lives unrenewed: how
    /// long a dead replica's conversations wait before another replica takes them over.
    pub lease_ttl_ms: u64,
    /// Most turns one conversation may have waiting or running; past it the user is told.
    pub max_pending_per_conversation: usize,
    /// Most turns this replica may have waiting or running in all.
    pub max_pending_turns: usize,
}

impl Default for EngineSection {
    fn default() -> Self {
        let d = robit_core::EngineConfig::default();
        Self {
            max_concurrent_turns: d.max_concurrent_turns,
            system_prompt: d.system_prompt,
            history_limit: d.history_limit,
            max_tool_rounds: d.max_tool_rounds,
            max_tool_calls_per_round: d.max_tool_calls_per_round,
            max_reply_tokens: d.max_reply_tokens,
            max_reply_chars: d.max_reply_chars,
            run_code_tool: d.run_code_tool,
            default_context_tokens: d.default_context_tokens,
            model_context_tokens: d.model_context_tokens,
            reply_reserve_tokens: d.reply_reserve_tokens,
            system_prompts: d.system_prompt_overrides,
            cancel_on_new_message: d.cancel_on_new_message,
            edit_window_secs: d.edit_window.as_secs(),
            shutdown_grace_ms: 30_000,
            lease_ttl_ms: 30_000,
            max_pending_per_conversation: d.journal.max_pending_per_conversation,
            max_pending_turns: d.journal.max_pending_total,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxSection {
    pub enabled: bool,
    /// A guest the operator placed on purpose. Unset or empty (the default; the example file
    /// lists the keys empty so a copy of it keeps the default), each guest is looked for in
    /// `data/guests` of the working directory, then in the user's data directory where
    /// `robit guests fetch` puts it (`crate::guests::locate`); set, only this path counts,
    /// so a deployment never runs a guest from somewhere it did not name.
    pub python_wasm: Option<PathBuf>,
    pub quickjs_wasm: Option<PathBuf>,
    /// Where compiled guests are cached between runs.
    pub cache_dir: PathBuf,
    /// Runs at once; 0 means one per CPU core.
    pub max_concurrent: usize,
    /// Pre-started Python instances kept ready.
    pub python_pool_size: usize,
    pub wall_time_ms: u64,
    pub memory_mb: u64,
    pub output_kb: usize,
    /// Bytes one run may add to its scratch directory; past it the run is stopped.
    pub disk_mb: u64,
    /// Files, directories and links one run may create.
    pub disk_files: u64,
    /// Bytes all runs at once may hold in their scratch directories.
    pub disk_total_mb: u64,
    /// Where scratch directories are made (default: the system's temp dir). Point it at a
    /// volume of its own so a full sandbox disk cannot fill anything else.
    pub scratch_dir: Option<PathBuf>,
    /// The second tier, native CPython with data libraries under gVisor (`[sandbox.gvisor]`).
    pub gvisor: GvisorSection,
}

impl Default for SandboxSection {
    fn default() -> Self {
        Self {
            enabled: true,
            python_wasm: None,
            quickjs_wasm: None,
            cache_dir: "data/cache".into(),
            max_concurrent: 0,
            python_pool_size: 2,
            wall_time_ms: 10_000,
            memory_mb: 256,
            output_kb: 64,
            disk_mb: robit_sandbox::DEFAULT_DISK_BYTES >> 20,
            disk_files: robit_sandbox::Limits::default().disk_files,
            disk_total_mb: robit_sandbox::DEFAULT_DISK_TOTAL_BYTES >> 20,
            scratch_dir: None,
            gvisor: Default::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AttachmentsSection {
    /// Attachments of one message that are read.
    pub max_files: usize,
    /// Bytes of a text file put into the user's turn; longer files are cut, with a note.
    pub max_text_bytes: usize,
    /// Largest image sent to a model that accepts images.
    pub max_image_bytes: u64,
    /// Largest file placed in the sandbox for `/run`.
    pub max_run_file_bytes: u64,
    /// Files uploaded to the thread after one run.
    pub max_upload_files: usize,
    /// Largest file uploaded after a run (the platform's own limit also applies).
    pub max_upload_bytes: u64,
}

impl Default for AttachmentsSection {
    fn default() -> Self {
        let d = robit_core::AttachmentLimits::default();
        Self {
            max_files: d.max_files,
            max_text_bytes: d.max_text_bytes,
            max_image_bytes: d.max_image_bytes,
            max_run_file_bytes: d.max_run_file_bytes,
            max_upload_files: d.max_upload_files,
            max_upload_bytes: d.max_upload_bytes,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleSection {
    /// The conversation `robit chat` continues.
    pub conversation: String,
    pub user: String,
    /// Where `robit chat`'s terminal UI saves the files sandbox runs return (a folder per
    /// conversation).
    pub files_dir: PathBuf,
    /// Where `robit chat`'s terminal UI writes its log: the screen is the UI's.
    pub log_file: PathBuf,
}

impl Default for ConsoleSection {
    fn default() -> Self {
        Self {
            conversation: "default".into(),
            user: "local".into(),
            files_dir: "robit-files".into(),
            log_file: "robit-chat.log".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` (human readable) or `json`.
    pub format: LogFormat,
    /// A `RUST_LOG`-style filter; `RUST_LOG` wins when set.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            filter: "info".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Where a configuration came from, for error messages and `robit doctor`.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// The file read, if any.
    pub file: Option<PathBuf>,
}

/// Loads the configuration. `file`: an explicit `--config` path (must exist); otherwise
/// `robit.toml` in the working directory if present. `overrides`: `key=value` pairs from the
/// command line, applied last.
pub fn load(file: Option<&Path>, overrides: &[(String, String)]) -> anyhow::Result<Loaded> {
    load_with_env(file, overrides, std::env::vars())
}

/// [`load`] with the environment given explicitly (tests).
pub fn load_with_env(
    file: Option<&Path>,
    overrides: &[(String, String)],
    env: impl IntoIterator<Item = (String, String)>,
) -> anyhow::Result<Loaded> {
    let file = match file {
        Some(f) => {
            anyhow::ensure!(f.exists(), "config file {} does not exist", f.display());
            Some(f.to_path_buf())
        }
        None => Some(PathBuf::from("robit.toml")).filter(|p| p.exists()),
    };
    let env: config::Map<String, String> = env
        .into_iter()
        // Every key lives in a section, so a real setting always contains the separator;
        // this keeps ROBIT_CONFIG (the --config flag's variable) and the like out.
        .filter(|(k, _)| k.starts_with(&format!("{ENV_PREFIX}_")) && k.contains(ENV_SEPARATOR))
        // An empty variable is "not set": a deployment template that maps a missing secret
        // to "" must not turn a secret into the empty string (with which anyone can sign).
        .filter(|(_, v)| !v.trim().is_empty())
        .collect();
    let mut builder = config::Config::builder();
    if let Some(f) = &file {
        builder =
            builder.add_source(config::File::from(f.as_path()).format(config::FileFormat::Toml));
    }
    builder = builder.add_source(
        config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("_")
            .separator(ENV_SEPARATOR)
            .list_separator(",")
            .with_list_parse_key("llm.models")
            .with_list_parse_key("llm.vision_models")
            .with_list_parse_key("access.allow")
            .with_list_parse_key("access.deny")
            .with_list_parse_key("access.admins")
            .try_parsing(true)
            .source(Some(env)),
    );
    for (k, v) in overrides {
        builder = builder
            .set_override(k.as_str(), v.as_str())
            .with_context(|| format!("bad command-line setting `{k}`"))?;
    }
    let where_ = match &file {
        Some(f) => format!("{} (or a ROBIT_* variable / --set flag)", f.display()),
        None => "ROBIT_* environment variables or --set flags (no robit.toml found)".to_string(),
    };
    let raw = builder
        .build()
        .with_context(|| format!("could not read the configuration from {where_}"))?;
    let mut config: Config = raw
        .try_deserialize()
        .map_err(|e| anyhow::anyhow!("invalid configuration in {where_}: {e}"))?;
    if config.llm.api_key.is_none() {
        if let Some(path) = &config.llm.api_key_file {
            let key = std::fs::read_to_string(path)
                .with_context(|| format!("llm.api_key_file: cannot read {}", path.display()))?;
            config.llm.api_key = Some(SecretString::from(key.trim().to_string()));
        }
    }
    for (name, provider) in config.llm.providers.iter_mut() {
        if provider.api_key.is_none() {
            if let Some(path) = &provider.api_key_file {
                let key = std::fs::read_to_string(path).with_context(|| {
                    format!(
                        "llm.providers.{name}.api_key_file: cannot read {}",
                        path.display()
                    )
                })?;
                provider.api_key = Some(SecretString::from(key.trim().to_string()));
            }
        }
    }
    check_secrets(&config)?;
    Ok(Loaded { config, file })
}

/// The shortest secret or token accepted. Real ones are far longer (a Slack signing secret
/// has 32 characters, tokens 50 and more); anything this short is a placeholder or a
/// mistake, and a short HMAC key can be guessed.
pub const MIN_SECRET_CHARS: usize = 16;

/// Refuses empty and implausibly short platform secrets, naming the key. A request signed
/// with an empty signing secret verifies against an empty one, so starting with it would
/// let anyone forge events and commands as any user.
pub fn check_secrets(config: &Config) -> anyhow::Result<()> {
    use secrecy::ExposeSecret;
    let secrets = [
        ("slack.signing_secret", &config.slack.signing_secret),
        ("slack.bot_token", &config.slack.bot_token),
        ("slack.app_token", &config.slack.app_token),
        ("discord.token", &config.discord.token),
    ];
    for (key, value) in secrets {
        let Some(value) = value else { continue };
        let value = value.expose_secret();
        let env = format!("ROBIT_{}", key.to_uppercase().replace('.', ENV_SEPARATOR));
        anyhow::ensure!(
            !value.trim().is_empty(),
            "{key} ({env}) is set but empty; set the real value or remove the setting"
        );
        anyhow::ensure!(
            value.trim().chars().count() >= MIN_SECRET_CHARS && value.trim() == value,
            "{key} ({env}) is not a plausible secret: it is shorter than {MIN_SECRET_CHARS} \
             characters or has surrounding whitespace; copy it again from the platform's app \
             settings"
        );
    }
    if let Some(key) = &config.discord.public_key {
        let key = key.trim();
        anyhow::ensure!(
            key.len() == 64 && key.chars().all(|c| c.is_ascii_hexdigit()),
            "discord.public_key (ROBIT_DISCORD__PUBLIC_KEY) must be the application's Ed25519 \
             public key: 64 hexadecimal digits from the developer portal"
        );
    }
    Ok(())
}

/// Parses a `key=value` command-line setting.
pub fn parse_override(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not key=value (for example llm.model=gpt-4o)"))?;
    Ok((k.trim().to_string(), v.to_string()))
}

/// `[sandbox.gvisor]`: the second sandbox tier (`gvisor.rs` builds it from this).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GvisorSection {
    /// Start the tier. Off by default: it needs root, `runsc` (scripts/install-runsc) and the
    /// rootfs (scripts/build-gvisor-rootfs). When on but unusable, robit runs without it and
    /// `robit doctor` says why.
    pub enabled: bool,
    /// Channels that did not set `sandbox.gvisor` may use the tier.
    pub allow_by_default: bool,
    pub runsc: PathBuf,
    pub rootfs: PathBuf,
    /// Per-sandbox directories and runsc state; owned by robit.
    pub work_dir: PathBuf,
    /// `ptrace` (works everywhere) or `kvm` (needs /dev/kvm).
    pub platform: String,
    /// Pre-started sandboxes with numpy/pandas/matplotlib imported (about 100 MB each).
    pub pool_size: usize,
    pub max_concurrent: usize,
    /// Ceilings of this tier (the channel's sandbox limits apply below them).
    pub wall_time_ms: u64,
    pub memory_mb: u64,
    /// The run's disk quota (`/work`) and `/tmp`, each.
    pub scratch_mb: u64,
    pub max_processes: u64,
    pub cpus: f64,
}

impl Default for GvisorSection {
    fn default() -> Self {
        let d = robit_sandbox_gvisor::GvisorConfig::new(robit_sandbox_gvisor::DEFAULT_ROOTFS);
        Self {
            enabled: false,
            allow_by_default: true,
            runsc: d.runsc,
            rootfs: d.rootfs,
            work_dir: d.work_root,
            platform: d.platform,
            pool_size: d.pool_size,
            max_concurrent: d.max_concurrent,
            wall_time_ms: 30_000,
            memory_mb: 512,
            scratch_mb: 64,
            max_processes: d.max_processes,
            cpus: d.cpus,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn keys(prefix: &str, v: &toml::Value, out: &mut BTreeSet<String>) {
        if let toml::Value::Table(t) = v {
            for (k, v) in t {
                let path = if prefix.is_empty() {
                    k.clone()
                } else if prefix == "mcp.servers" {
                    // Servers are named by the user: compare their keys whatever the name.
                    format!("{prefix}.*")
                } else {
                    format!("{prefix}.{k}")
                };
                // Maps keyed by user data are one setting each.
                let dynamic = [
                    "engine.model_context_tokens",
                    "engine.system_prompts",
                    "llm.fallbacks",
                    "mcp.servers.*.env",
                ];
                if v.is_table() && !dynamic.contains(&path.as_str()) {
                    keys(&path, v, out);
                } else {
                    out.insert(path);
                }
            }
        }
    }

    fn example_path() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../robit.example.toml")
    }

    #[test]
    fn example_config_parses_and_covers_every_key() {
        // The key from the environment wins, so the example's api_key_file is not read.
        let env = vec![
            ("ROBIT_LLM__API_KEY".to_string(), "sk-test".to_string()),
            (
                "ROBIT_LLM__PROVIDERS__ANTHROPIC__API_KEY".to_string(),
                "sk-ant-test".to_string(),
            ),
        ];
        let loaded = load_with_env(Some(&example_path()), &[], env).unwrap();
        assert_eq!(
            loaded.config.llm.base_url.as_deref(),
            Some("https://api.openai.com/v1")
        );
        let example: toml::Value =
            toml::from_str(&std::fs::read_to_string(example_path()).unwrap()).unwrap();
        let mut in_example = BTreeSet::new();
        keys("", &example, &mut in_example);
        let mut full = Config::default();
        full.database.schema = Some("x".into());
        full.llm.base_url = Some("x".into());
        full.llm.api_key_file = Some("x".into());
        full.sandbox.python_wasm = Some("x".into());
        full.sandbox.quickjs_wasm = Some("x".into());
        full.llm.providers.insert(
            "anthropic".into(),
            ProviderConfig {
                kind: ProviderKind::Anthropic,
                base_url: Some("x".into()),
                api_key: None,
                api_key_file: Some("x".into()),
                models: vec!["x".into()],
                vision: true,
            },
        );
        full.mcp.servers.insert(
            "any".into(),
            crate::mcp::McpServerSection {
                command: Some("x".into()),
                args: vec!["x".into()],
                env: [("X".to_string(), "x".to_string())].into(),
                url: Some("x".into()),
                bearer_token: None,
                bearer_token_file: Some("x".into()),
                allow_tools: vec!["x".into()],
                timeout_secs: 1,
            },
        );
        let mut in_struct = BTreeSet::new();
        keys("", &toml::Value::try_from(&full).unwrap(), &mut in_struct);
        let missing: Vec<_> = in_struct.difference(&in_example).collect();
        assert!(missing.is_empty(), "robit.example.toml lacks {missing:?}");
        let unknown: Vec<_> = in_example.difference(&in_struct).collect();
        assert!(
            unknown.is_empty(),
            "robit.example.toml has unknown keys {unknown:?}"
        );
    }

    #[test]
    fn mcp_servers_keep_the_case_of_env_names_and_take_tokens_from_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("robit.toml");
        std::fs::write(
            &file,
            "[mcp.servers.gh]\ncommand = \"gh-mcp\"\nenv = { GITHUB_TOKEN = \"t\" }\n\
             [mcp.servers.search]\nurl = \"http://127.0.0.1:1/mcp\"\nallow_tools = [\"*\"]\n",
        )
        .unwrap();
        let env = vec![(
            "ROBIT_MCP__SERVERS__SEARCH__BEARER_TOKEN".to_string(),
            "tok-secret".to_string(),
        )];
        let c = load_with_env(Some(&file), &[], env).unwrap().config;
        assert!(c.mcp.servers["gh"].env.contains_key("GITHUB_TOKEN"));
        assert_eq!(c.mcp.servers["search"].timeout_secs, 30);
        use secrecy::ExposeSecret;
        let token = c.mcp.servers["search"].bearer_token.as_ref().unwrap();
        assert_eq!(token.expose_secret(), "tok-secret");
        assert!(!format!("{c:?}").contains("tok-secret"));
    }

    #[test]
    fn precedence_is_file_then_env_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("robit.toml");
        std::fs::write(
            &file,
            "[llm]\nmodel = \"from-file\"\nidle_timeout_ms = 5\n[engine]\nhistory_limit = 7\n",
        )
        .unwrap();
        let env = vec![
            ("ROBIT_LLM__MODEL".to_string(), "from-env".to_string()),
            ("ROBIT_ENGINE__HISTORY_LIMIT".to_string(), "9".to_string()),
            ("ROBIT_LLM__MODELS".to_string(), "a,b".to_string()),
            ("OTHER".to_string(), "ignored".to_string()),
        ];
        let overrides = vec![("llm.model".to_string(), "from-flag".to_string())];
        let c = load_with_env(Some(&file), &overrides, env).unwrap().config;
        assert_eq!(c.llm.model, "from-flag");
        assert_eq!(c.engine.history_limit, 9);
        assert_eq!(c.llm.idle_timeout_ms, 5);
        assert_eq!(c.llm.models, vec!["a".to_string(), "b".to_string()]);
    }

    #[test]
    fn a_config_error_names_the_key_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("robit.toml");
        std::fs::write(&file, "[engine]\nhistory_limit = \"lots\"\n").unwrap();
        let err = format!(
            "{:#}",
            load_with_env(Some(&file), &[], Vec::new()).unwrap_err()
        );
        assert!(err.contains("history_limit"), "{err}");
        assert!(err.contains(&file.display().to_string()), "{err}");

        std::fs::write(&file, "[llm]\nbase_urll = \"http://x\"\n").unwrap();
        let err = format!(
            "{:#}",
            load_with_env(Some(&file), &[], Vec::new()).unwrap_err()
        );
        assert!(err.contains("base_urll"), "{err}");
        assert!(err.contains(&file.display().to_string()), "{err}");
    }

    #[test]
    fn empty_or_short_secrets_refuse_to_start_and_name_the_key() {
        // An empty variable is ignored, as if it were not set at all.
        let env = vec![("ROBIT_SLACK__SIGNING_SECRET".to_string(), String::new())];
        let c = load_with_env(None, &[], env).unwrap().config;
        assert!(c.slack.signing_secret.is_none());

        let cases = [
            (
                "slack.signing_secret",
                "ROBIT_SLACK__SIGNING_SECRET",
                "tiny-secret",
            ),
            (
                "slack.bot_token",
                "ROBIT_SLACK__BOT_TOKEN",
                "xoxb-CHANGE-ME",
            ),
            ("slack.app_token", "ROBIT_SLACK__APP_TOKEN", "xapp-1"),
            ("discord.token", "ROBIT_DISCORD__TOKEN", "CHANGE-ME"),
            ("discord.public_key", "ROBIT_DISCORD__PUBLIC_KEY", "abcd"),
        ];
        for (key, var, value) in cases {
            let env = vec![(var.to_string(), value.to_string())];
            let err = format!("{:#}", load_with_env(None, &[], env).unwrap_err());
            assert!(err.contains(key), "{key}: {err}");
            assert!(!err.contains(value), "the value must not be echoed: {err}");
        }
        // An empty value in a file (or a flag) is refused, naming the key.
        let overrides = vec![("slack.signing_secret".to_string(), String::new())];
        let err = format!(
            "{:#}",
            load_with_env(None, &overrides, Vec::new()).unwrap_err()
        );
        assert!(
            err.contains("slack.signing_secret") && err.contains("empty"),
            "{err}"
        );
        let overrides = vec![("discord.token".to_string(), "  ".to_string())];
        let err = format!(
            "{:#}",
            load_with_env(None, &overrides, Vec::new()).unwrap_err()
        );
        assert!(err.contains("discord.token"), "{err}");

        let good = vec![
            (
                "ROBIT_SLACK__SIGNING_SECRET".to_string(),
                "8f742231b10e8888abcd99yyyzzz85a5".to_string(),
            ),
            (
                "ROBIT_SLACK__BOT_TOKEN".to_string(),
                "xoxb-emulator-bot-token".to_string(),
            ),
            ("ROBIT_DISCORD__PUBLIC_KEY".to_string(), "0f".repeat(32)),
        ];
        load_with_env(None, &[], good).unwrap();
    }

    #[test]
    fn the_api_key_is_never_printed() {
        let env = vec![(
            "ROBIT_LLM__API_KEY".to_string(),
            "sk-very-secret".to_string(),
        )];
        let c = load_with_env(None, &[], env).unwrap().config;
        assert!(c.llm.api_key.is_some());
        assert!(!format!("{c:?}").contains("sk-very-secret"));
    }

    #[test]
    fn the_api_key_file_is_read_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key");
        std::fs::write(&key, "sk-from-file\n").unwrap();
        let overrides = vec![("llm.api_key_file".to_string(), key.display().to_string())];
        let c = load_with_env(None, &overrides, Vec::new()).unwrap().config;
        use secrecy::ExposeSecret;
        assert_eq!(c.llm.api_key.unwrap().expose_secret(), "sk-from-file");
    }
}
