//! The wiring the subcommands share: logging, the store, the sandbox and the engine built from
//! the configuration, the console adapter, and the stop signal. Each subcommand is a module
//! of `cmd/`.

use crate::config::{Config, LogFormat};
use anyhow::Context;
use robit_core::{Engine, EngineConfig};
use robit_sandbox::{CodeRunner, Limits, Sandbox, SandboxConfig};
use robit_store::Store;
use std::sync::Arc;
use std::time::Duration;
use tracing_subscriber::{Layer, Registry};

/// Whether `robit chat` runs its terminal UI: only when both ends are a terminal. A pipe or a
/// file on either side gets the line-by-line console (each answer printed once, in full).
pub fn wants_tui() -> bool {
    use std::io::IsTerminal;
    std::io::stdin().is_terminal() && std::io::stdout().is_terminal()
}

/// Installs logging (and trace export when the `OTEL_*` variables ask for it, see
/// `telemetry`). `interactive`: the terminal is the chat, so logs are kept to warnings unless
/// `RUST_LOG` asks for more; `log_file`: they go to that file (appended) instead of stderr,
/// because a full-screen UI owns the screen; `extra` is one more layer beside the log output
/// (the engine benchmark's stage timer). Keep the returned value until the subcommand ends,
/// then [`Telemetry::shutdown`] it so the last spans are sent.
pub fn init_tracing(
    config: &Config,
    flag: Option<LogFormat>,
    interactive: bool,
    log_file: Option<&std::path::Path>,
    extra: Option<Box<dyn Layer<Registry> + Send + Sync>>,
) -> Telemetry {
    use tracing_subscriber::fmt::writer::BoxMakeWriter;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| {
        if interactive {
            // The terminal is the chat; keep logs to warnings unless asked.
            "warn".to_string()
        } else {
            config.log.filter.clone()
        }
    });
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let writer = match log_file {
        None => BoxMakeWriter::new(std::io::stderr),
        Some(path) => match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            Ok(file) => BoxMakeWriter::new(std::sync::Mutex::new(file)),
            // Nowhere to say so that the UI would not overwrite; the UI still works.
            Err(_) => BoxMakeWriter::new(std::io::sink),
        },
    };
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(log_file.is_none())
        .with_writer(writer);
    let fmt = match flag.unwrap_or(config.log.format) {
        LogFormat::Json => fmt.json().with_filter(filter).boxed(),
        LogFormat::Text => fmt.with_filter(filter).boxed(),
    };
    let settings = crate::telemetry::settings(|name| std::env::var(name).ok());
    let (provider, failed) = match &settings {
        Some(s) => match crate::telemetry::otlp_provider(s, replica_id()) {
            Ok(p) => (Some(p), None),
            Err(e) => (None, Some(e)),
        },
        None => (None, None),
    };
    let otel = provider.as_ref().map(crate::telemetry::layer);
    tracing_subscriber::registry()
        .with(extra)
        .with(fmt)
        .with(otel)
        .init();
    if let (Some(s), Some(_)) = (&settings, &provider) {
        crate::telemetry::install_propagator();
        tracing::info!(endpoint = %s.endpoint, replica = replica_id(), "exporting traces over OTLP");
    }
    if let Some(e) = failed {
        tracing::warn!(error = %e, "trace export is configured but could not start; running without it");
    }
    Telemetry { provider }
}

/// The trace exporter, while one runs.
pub struct Telemetry {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Telemetry {
    /// Sends the spans still batched and stops the exporter (after a graceful stop, so the
    /// last turns' spans are in).
    pub async fn shutdown(self) {
        if let Some(provider) = self.provider {
            // The SDK blocks on its export thread; not on a runtime worker.
            let result = tokio::task::spawn_blocking(move || provider.shutdown()).await;
            if let Ok(Err(e)) = result {
                tracing::warn!(error = %e, "flushing the last spans failed");
            }
        }
    }
}

/// This process's replica id: the holder name of its journal and conversation leases, and
/// the `service.instance.id` of its traces. One per process, whoever asks first.
pub fn replica_id() -> &'static str {
    static REPLICA: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    REPLICA.get_or_init(robit_core::default_holder)
}

pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let options = robit_store::PoolOptions {
        max_connections: config.database.max_connections,
        acquire_timeout: Duration::from_millis(config.database.acquire_timeout_ms),
        sqlite_full_sync: config.database.sqlite_synchronous
            == crate::config::SqliteSynchronous::Full,
    };
    let url = &config.database.url;
    let store: Arc<dyn Store> = match &config.database.schema {
        Some(schema) if url.starts_with("postgres") => Arc::new(
            robit_store::PostgresStore::connect_with_schema(url, schema, options)
                .await
                .with_context(|| {
                    format!("opening the database {} (schema {schema})", redact_url(url))
                })?,
        ),
        _ => robit_store::connect(url, options)
            .await
            .with_context(|| format!("opening the database {}", redact_url(url)))?,
    };
    store
        .migrate()
        .await
        .context("applying database migrations")?;
    Ok(store)
}

/// Hides the passwords in a database URL before it is printed or logged.
pub fn redact_url(url: &str) -> String {
    robit_store::redact_url(url)
}

/// The sandbox's settings, with each guest where `guests::locate` finds it.
pub fn sandbox_config(config: &Config) -> SandboxConfig {
    let s = &config.sandbox;
    let [python, quickjs] = crate::guests::locate::locate_all(s);
    SandboxConfig {
        python_wasm: python.path,
        quickjs_wasm: quickjs.path,
        cache_dir: s.cache_dir.clone(),
        max_concurrent: if s.max_concurrent == 0 {
            robit_sandbox::default_concurrency()
        } else {
            s.max_concurrent
        },
        python_pool_size: s.python_pool_size,
        max_limits: limits(config),
        disk_total_bytes: s.disk_total_mb.saturating_mul(1024 * 1024),
        scratch_dir: s.scratch_dir.clone(),
    }
}

pub fn limits(config: &Config) -> Limits {
    Limits {
        wall_time: Duration::from_millis(config.sandbox.wall_time_ms),
        memory_bytes: config.sandbox.memory_mb * 1024 * 1024,
        output_bytes: config.sandbox.output_kb * 1024,
        // The sandbox reads back no more than the engine may upload.
        max_files: config.attachments.max_upload_files,
        max_file_bytes: config.attachments.max_upload_bytes,
        disk_bytes: config.sandbox.disk_mb.saturating_mul(1024 * 1024),
        disk_files: config.sandbox.disk_files,
    }
}

/// Attachment limits and the models that accept images: the `llm.base_url` models when
/// `llm.vision`, each `vision` provider's models, and `llm.vision_models`. A fallback alias
/// counts only when listed in `llm.vision_models`: its targets might not all see.
pub fn attachment_limits(config: &Config) -> robit_core::AttachmentLimits {
    let llm = &config.llm;
    let mut vision_models = llm.vision_models.clone();
    if llm.vision {
        vision_models.push(llm.model.clone());
        vision_models.extend(llm.models.iter().cloned());
    }
    for p in llm.providers.values().filter(|p| p.vision) {
        vision_models.extend(p.models.iter().cloned());
    }
    vision_models.sort();
    vision_models.dedup();
    let a = &config.attachments;
    robit_core::AttachmentLimits {
        max_files: a.max_files,
        max_text_bytes: a.max_text_bytes,
        max_image_bytes: a.max_image_bytes,
        max_run_file_bytes: a.max_run_file_bytes,
        max_upload_files: a.max_upload_files,
        max_upload_bytes: a.max_upload_bytes,
        vision_models,
    }
}

/// The sandbox, or `None` (with a warning) when it is disabled or its guests are missing:
/// robit still chats without it, and `/run` says what to do.
pub async fn sandbox(config: &Config) -> Option<Arc<dyn CodeRunner>> {
    let wasm: Option<Arc<dyn CodeRunner>> = if !config.sandbox.enabled {
        None
    } else {
        match Sandbox::new(sandbox_config(config)).await {
            Ok(s) => Some(Arc::new(s)),
            Err(e) => {
                tracing::warn!(error = %e, "sandbox unavailable; /run and run_code are off (run robit guests fetch, then robit doctor)");
                None
            }
        }
    };
    // The gVisor tier rides along behind the same runner when it is enabled and works here.
    match crate::gvisor::runner(config).await {
        Some(gvisor) => Some(Arc::new(
            robit_sandbox::Tiers::new(wasm).with(robit_sandbox::Tier::Gvisor, gvisor),
        )),
        None => wasm,
    }
}

pub fn engine_config(config: &Config, providers: &crate::providers::Providers) -> EngineConfig {
    let holder = replica_id().to_string();
    EngineConfig {
        max_concurrent_turns: config.engine.max_concurrent_turns,
        system_prompt: config.engine.system_prompt.clone(),
        default_model: providers.default_model.clone(),
        models: providers.models.clone(),
        history_limit: config.engine.history_limit,
        max_tool_rounds: config.engine.max_tool_rounds,
        max_tool_calls_per_round: config.engine.max_tool_calls_per_round,
        max_reply_tokens: config.engine.max_reply_tokens,
        max_reply_chars: config.engine.max_reply_chars,
        run_code_tool: config.engine.run_code_tool,
        sandbox_limits: limits(config),
        gvisor_by_default: config.sandbox.gvisor.allow_by_default,
        default_context_tokens: config.engine.default_context_tokens,
        model_context_tokens: config.engine.model_context_tokens.clone(),
        reply_reserve_tokens: config.engine.reply_reserve_tokens,
        system_prompt_overrides: config.engine.system_prompts.clone(),
        cancel_on_new_message: config.engine.cancel_on_new_message,
        edit_window: Duration::from_secs(config.engine.edit_window_secs),
        attachments: attachment_limits(config),
        // One holder name for both kinds of lease, so operators see one replica id.
        journal: robit_core::JournalConfig {
            holder: holder.clone(),
            lease: Duration::from_millis(config.engine.lease_ttl_ms),
            max_pending_per_conversation: config.engine.max_pending_per_conversation,
            max_pending_total: config.engine.max_pending_turns,
        },
        // Leases matter only when replicas share the database, which SQLite cannot do.
        lease: config
            .database
            .url
            .starts_with("postgres")
            .then(|| robit_core::LeaseConfig {
                holder,
                ttl: Duration::from_millis(config.engine.lease_ttl_ms),
            }),
        ..EngineConfig::default()
    }
}

/// [`open_store`] for `serve`: a database that is down at start is retried with backoff
/// for `database.startup_retry_secs`, because in a deployment robit and its database often
/// start together and a crash loop helps nobody. `/readyz` is not served yet meanwhile, so
/// the replica stays out of rotation.
async fn open_store_patiently(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let deadline =
        std::time::Instant::now() + Duration::from_secs(config.database.startup_retry_secs);
    let mut pause = Duration::from_millis(250);
    loop {
        match open_store(config).await {
            Ok(store) => return Ok(store),
            Err(e) if std::time::Instant::now() + pause < deadline => {
                tracing::warn!(error = format!("{e:#}"), retry_in = ?pause, "database not available yet");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(10));
            }
            Err(e) => return Err(e),
        }
    }
}

/// The engine on the configured store and providers; `patient` retries a database that is
/// down at start (see [`open_store_patiently`]).
pub async fn build_engine(
    config: &Config,
    patient: bool,
) -> anyhow::Result<(Engine, Arc<dyn Store>)> {
    let store = if patient {
        open_store_patiently(config).await?
    } else {
        open_store(config).await?
    };
    let providers = crate::providers::build(config).await?;
    match &providers.provider {
        None => tracing::warn!(
            "no LLM provider configured (llm.base_url); chat messages will get a setup hint"
        ),
        Some(_) => {
            tracing::info!(source = %providers.source, default_model = %providers.default_model, "LLM provider ready")
        }
    }
    let sandbox = sandbox(config).await;
    let mut engine_config = engine_config(config, &providers);
    crate::access_config::apply(&config.access, &config.limits, &mut engine_config)?;
    let mut engine = Engine::new(
        engine_config,
        store.clone(),
        providers.provider.clone(),
        sandbox,
    );
    if let Some(tools) = crate::mcp::connect(&config.mcp).await? {
        engine = engine.with_tools(Arc::new(tools));
    }
    Ok((engine, store))
}

/// The console adapter on this terminal's stdin and stdout (`robit chat`, and `robit serve`
/// with no platform configured). `tui`: the full-screen terminal UI (`robit chat` in a
/// terminal, see [`wants_tui`]); otherwise lines in, replies out.
pub async fn run_console(engine: &Engine, config: &Config, tui: bool) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let options = robit_console::ConsoleOptions {
        conversation: config.console.conversation.clone(),
        user: config.console.user.clone(),
    };
    if tui {
        let options = robit_console_tui::TuiOptions {
            console: options,
            files_dir: config.console.files_dir.clone(),
        };
        robit_console_tui::run(engine, options)
            .await
            .context("terminal UI")?;
        return Ok(());
    }
    // A pipe or a file gets each answer once, in full; only a terminal sees it stream.
    let out = Box::new(std::io::stdout());
    let sink = Arc::new(if std::io::stdout().is_terminal() {
        robit_console::ConsoleSink::new(out)
    } else {
        robit_console::ConsoleSink::plain(out)
    });
    let input = tokio::io::BufReader::new(tokio::io::stdin());
    let prompt = std::io::stdin().is_terminal();
    robit_console::run(engine, &options, input, sink, prompt)
        .await
        .context("console")?;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
