//! Wiring: builds the store, provider, sandbox and engine from the configuration and runs the
//! adapters.

use crate::cli::RunArgs;
use crate::config::{Config, Loaded, LogFormat};
use anyhow::Context;
use axum::Router;
use robit_core::{Engine, EngineConfig};
use robit_sandbox::{CodeRunner, Limits, Sandbox, SandboxConfig};
use robit_store::Store;
use robit_types::Language;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

pub fn init_tracing(config: &Config, flag: Option<LogFormat>, interactive: bool) {
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
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match flag.unwrap_or(config.log.format) {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
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

pub fn sandbox_config(config: &Config) -> SandboxConfig {
    let s = &config.sandbox;
    SandboxConfig {
        python_wasm: s.python_wasm.clone(),
        quickjs_wasm: s.quickjs_wasm.clone(),
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
                tracing::warn!(error = %e, "sandbox unavailable; /run and run_code are off (run scripts/fetch-guests, then robit doctor)");
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
    let holder = robit_core::default_holder();
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

/// `robit serve`: the HTTP server, every adapter whose credentials are configured (the
/// console when there are none), until Ctrl-C or SIGTERM; then a graceful stop.
pub async fn serve(loaded: Loaded) -> anyhow::Result<ExitCode> {
    let config = &loaded.config;
    let metrics = crate::http::install_metrics()?;
    let (engine, store) = build_engine(config, true).await?;
    let shutdown = CancellationToken::new();
    // Adapters stop taking events first; running turns then get the grace period.
    let adapters_stop = CancellationToken::new();
    let mut adapters = tokio::task::JoinSet::new();
    let body_timeout = Duration::from_millis(config.http.body_read_timeout_ms);
    let probe_bodies = crate::http::BodyLimits {
        max_bytes: crate::http::MAX_PROBE_BODY_BYTES,
        read_timeout: body_timeout,
    };
    // The operators' routes; `public` gets the platform webhooks below.
    let mut ops = crate::http::with_body_limits(
        crate::http::router(crate::http::HttpState {
            store: store.clone(),
            metrics,
            connections: engine.connections().clone(),
            stopping: adapters_stop.clone(),
        }),
        probe_bodies,
    );
    let mut public = Router::new();
    if config.admin_api.enabled {
        ops = ops.merge(crate::http::with_body_limits(
            crate::admin_api::router(engine.clone(), store.clone()),
            crate::http::BodyLimits {
                max_bytes: crate::admin_api::MAX_BODY_BYTES,
                read_timeout: body_timeout,
            },
        ));
        tracing::info!(addr = %config.http.admin_addr, "admin API on /admin/v1");
    }
    let pruning = spawn_event_pruning(
        store.clone(),
        config.database.event_retention_hours,
        shutdown.clone(),
    );

    if config.discord.token.is_some() {
        let (engine, cfg, stop) = (
            engine.clone(),
            config.discord.clone(),
            adapters_stop.clone(),
        );
        adapters.spawn(async move {
            if let Err(e) = robit_discord::run(engine, cfg, stop).await {
                tracing::error!(error = %e, "the Discord adapter stopped");
            }
        });
        tracing::info!("Discord adapter started");
    }
    if config.slack.bot_token.is_some() {
        if config.slack.socket_mode() {
            let (engine, cfg, stop) = (engine.clone(), config.slack.clone(), adapters_stop.clone());
            adapters.spawn(async move {
                if let Err(e) = robit_slack::run(engine, cfg, stop).await {
                    tracing::error!(error = %e, "the Slack Socket Mode adapter stopped");
                }
            });
            tracing::info!("Slack adapter started (Socket Mode)");
        }
        if config.slack.signing_secret.is_some() {
            anyhow::ensure!(
                config.http.enabled,
                "slack.signing_secret is set (HTTP Events API) but http.enabled is false"
            );
            let events = robit_slack::events_router(engine.clone(), config.slack.clone())
                .context("setting up the Slack Events API intake")?;
            public = public.merge(crate::http::with_body_limits(
                events,
                crate::http::BodyLimits {
                    max_bytes: robit_core::MAX_WEBHOOK_BODY_BYTES,
                    read_timeout: body_timeout,
                },
            ));
            tracing::info!(path = %config.slack.events_path, "Slack Events API intake mounted");
        }
    }
    let mut http_tasks = Vec::new();
    if config.http.enabled {
        let limits = crate::http::ConnLimits {
            header_read_timeout: Duration::from_millis(config.http.header_read_timeout_ms),
            max_connections: config.http.max_connections.max(1),
        };
        let (addr, admin_addr) = (&config.http.addr, &config.http.admin_addr);
        if addr == admin_addr {
            let (local, task) = crate::http::serve(
                "http.addr",
                addr,
                ops.merge(public),
                limits,
                shutdown.clone(),
            )
            .await?;
            tracing::info!(%local, "HTTP server listening (webhooks, /healthz, /readyz, /metrics)");
            http_tasks.push(task);
        } else {
            let public = crate::http::with_body_limits(crate::http::health_router(), probe_bodies)
                .merge(public);
            let (local, task) =
                crate::http::serve("http.addr", addr, public, limits, shutdown.clone()).await?;
            tracing::info!(%local, "public HTTP server listening (webhooks, /healthz)");
            http_tasks.push(task);
            let (local, task) =
                crate::http::serve("http.admin_addr", admin_addr, ops, limits, shutdown.clone())
                    .await?;
            tracing::info!(%local, "operator HTTP server listening (/readyz, /metrics, /healthz, admin API)");
            http_tasks.push(task);
        }
    }
    let console = if adapters.is_empty() && config.slack.bot_token.is_none() {
        tracing::info!("no Discord or Slack credentials configured: running the console adapter");
        eprintln!("robit: no Discord or Slack credentials configured, so this is the console adapter. Type a message.");
        let engine = engine.clone();
        let config = config.clone();
        Some(tokio::spawn(
            async move { run_console(&engine, &config).await },
        ))
    } else {
        None
    };
    shutdown_signal().await;
    tracing::info!("stopping: no new events; waiting for running turns");
    adapters_stop.cancel();
    if let Some(c) = console {
        c.abort();
    }
    let grace = Duration::from_millis(config.engine.shutdown_grace_ms);
    engine.shutdown(grace).await;
    // Adapters close their connections once told to stop; don't wait forever on a stuck one.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while adapters.join_next().await.is_some() {}
    })
    .await;
    shutdown.cancel();
    for t in http_tasks {
        let _ = t.await;
    }
    if let Some(t) = pruning {
        let _ = t.await;
    }
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Prunes dedup records older than `retention_hours`, at start and hourly, until `stop`.
/// Every replica may run it: the deletes are idempotent and batched.
fn spawn_event_pruning(
    store: Arc<dyn Store>,
    retention_hours: u64,
    stop: CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    if retention_hours == 0 {
        return None;
    }
    let retention_ms = i64::try_from(retention_hours.saturating_mul(3_600_000)).unwrap_or(i64::MAX);
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            match store
                .prune_processed_events(now.saturating_sub(retention_ms))
                .await
            {
                Ok(0) => {}
                Ok(n) => tracing::info!(pruned = n, "old processed event ids pruned"),
                Err(e) => tracing::warn!(error = %e, "pruning processed event ids failed"),
            }
        }
    }))
}

pub async fn chat(loaded: Loaded) -> anyhow::Result<ExitCode> {
    let (engine, _store) = build_engine(&loaded.config, false).await?;
    tokio::select! {
        r = run_console(&engine, &loaded.config) => r?,
        _ = shutdown_signal() => tracing::info!("stopping"),
    }
    engine
        .shutdown(Duration::from_millis(
            loaded.config.engine.shutdown_grace_ms,
        ))
        .await;
    Ok(ExitCode::SUCCESS)
}

async fn run_console(engine: &Engine, config: &Config) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let options = robit_console::ConsoleOptions {
        conversation: config.console.conversation.clone(),
        user: config.console.user.clone(),
    };
    let sink = Arc::new(robit_console::ConsoleSink::new(Box::new(std::io::stdout())));
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

pub async fn migrate(loaded: Loaded) -> anyhow::Result<ExitCode> {
    open_store(&loaded.config).await?;
    println!(
        "migrations applied to {}",
        redact_url(&loaded.config.database.url)
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn run_code(loaded: Loaded, args: RunArgs) -> anyhow::Result<ExitCode> {
    let language = Language::parse(&args.language)
        .with_context(|| format!("unknown language `{}`: use python or js", args.language))?;
    let code = match (&args.code, &args.file) {
        (Some(c), _) => c.clone(),
        (None, Some(p)) if p.as_os_str() == "-" => {
            let mut s = String::new();
            tokio::io::stdin().read_to_string(&mut s).await?;
            s
        }
        (None, Some(p)) => {
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?
        }
        (None, None) => anyhow::bail!("give the program with -c CODE or a file path"),
    };
    let mut stdin = Vec::new();
    if args.stdin {
        tokio::io::stdin().read_to_end(&mut stdin).await?;
    }
    let sandbox = Sandbox::new(sandbox_config(&loaded.config))
        .await
        .context("starting the sandbox (run scripts/fetch-guests if the guests are missing)")?;
    let out = sandbox
        .run(language, &code, &stdin, limits(&loaded.config))
        .await
        .context("running the program")?;
    // A terminal obeys escape sequences in what it prints; the program's output is untrusted.
    // Piped output stays byte for byte.
    use std::io::IsTerminal;
    let shown = |text: &str, terminal: bool| -> String {
        if terminal {
            robit_console::strip_terminal_escapes(text).into_owned()
        } else {
            text.to_string()
        }
    };
    print!("{}", shown(&out.stdout, std::io::stdout().is_terminal()));
    eprint!("{}", shown(&out.stderr, std::io::stderr().is_terminal()));
    eprintln!(
        "[{:?} · exit {} · {} ms]",
        out.outcome,
        out.exit_code.map_or("-".to_string(), |c| c.to_string()),
        out.duration.as_millis()
    );
    Ok(match out.exit_code {
        Some(0) => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    })
}

pub async fn usage(loaded: Loaded, args: crate::cli::UsageArgs) -> anyhow::Result<ExitCode> {
    use crate::cli::UsageBy;
    use robit_store::UsageGroup;
    let store = open_store(&loaded.config).await?;
    let group = match args.by {
        UsageBy::Workspace => UsageGroup::Workspace,
        UsageBy::Channel => UsageGroup::Channel,
        UsageBy::User => UsageGroup::User,
        UsageBy::Model => UsageGroup::Model,
        UsageBy::Day => UsageGroup::Day,
    };
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let day_ms = 86_400_000;
    let since = (now_ms / day_ms - i64::from(args.days.saturating_sub(1))) * day_ms;
    let rows = store.usage_summary(group, since).await?;
    println!(
        "{:<40} {:>9} {:>14} {:>14}",
        format!("{:?}", args.by).to_lowercase(),
        "requests",
        "prompt tok",
        "completion tok"
    );
    for r in &rows {
        println!(
            "{:<40} {:>9} {:>14} {:>14}",
            r.group, r.requests, r.prompt_tokens, r.completion_tokens
        );
    }
    if rows.is_empty() {
        println!("(no usage in the last {} days)", args.days);
    }
    Ok(ExitCode::SUCCESS)
}
