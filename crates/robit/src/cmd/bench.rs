//! `robit bench`: figures for BENCHMARKS.md, printed, never asserted.

use crate::app;
use crate::cli::{BenchArgs, BenchWhat};
use crate::config::Loaded;
use async_trait::async_trait;
use futures::stream;
use robit_core::{Engine, EngineConfig, LeaseConfig};
use robit_llm::{ChatRequest, ChatStream, LlmError, Provider, StreamEvent};
use robit_store::Store;
use robit_types::{
    Author, Capabilities, ConversationKey, EventId, Inbound, MessageRef, Platform, ReplySink,
    SinkError, UserId,
};
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracing::span::{Attributes, Id};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Registry;

pub async fn run(loaded: Loaded, args: BenchArgs) -> anyhow::Result<ExitCode> {
    match args.what {
        BenchWhat::Engine => engine(args.iterations).await?,
        BenchWhat::Sandbox => {
            let report =
                robit_sandbox::bench::run(app::sandbox_config(&loaded.config), args.iterations)
                    .await?;
            println!("{report}");
        }
        BenchWhat::Store => store(args.iterations, &args.writers).await?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The PostgreSQL database the benchmarks write into: `ROBIT_BENCH_POSTGRES_URL`, else the
/// local test database.
fn postgres_url() -> String {
    std::env::var("ROBIT_BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Answers at once with a fixed reply: the engine's own cost is all that is left to measure.
struct InstantProvider;

#[async_trait]
impl Provider for InstantProvider {
    fn name(&self) -> &str {
        "instant"
    }

    async fn stream(&self, _r: ChatRequest, _c: CancellationToken) -> Result<ChatStream, LlmError> {
        Ok(Box::pin(stream::iter(vec![
            Ok(StreamEvent::TextDelta("pong".into())),
            Ok(StreamEvent::Done {
                reason: "stop".into(),
            }),
        ])))
    }
}

/// Records when the first reply reached the platform side. With a route, turns are
/// journaled as a platform adapter's are (the console's have none).
struct TimingSink {
    first_post: Mutex<Option<Instant>>,
    journaled: bool,
}

#[async_trait]
impl ReplySink for TimingSink {
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }
    fn route(&self) -> Option<String> {
        self.journaled.then(|| "bench".to_string())
    }
    async fn post(&self, _text: &str) -> Result<MessageRef, SinkError> {
        let mut f = self.first_post.lock().unwrap();
        f.get_or_insert_with(Instant::now);
        Ok(MessageRef("1".into()))
    }
    async fn edit(&self, _m: &MessageRef, _t: &str) -> Result<(), SinkError> {
        Ok(())
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The tracing target of the engine's stage spans (`robit_core`'s `stage` spans: access,
/// accept, lease, history, …), which [`StageTimes`] times.
const STAGE_TARGET: &str = "robit_core::stage";

/// How long each stage span lived, by span name, since the last [`take_stages`].
static STAGES: Mutex<BTreeMap<&'static str, Vec<Duration>>> = Mutex::new(BTreeMap::new());

/// A tracing layer that times the engine's stage spans, for the per-stage table
/// `robit bench engine` prints. Installed only for that benchmark.
pub struct StageTimes;

struct Opened(Instant);

impl StageTimes {
    pub fn layer() -> Box<dyn Layer<Registry> + Send + Sync> {
        Box::new(
            StageTimes.with_filter(tracing_subscriber::filter::filter_fn(|meta| {
                meta.is_span() && meta.target() == STAGE_TARGET
            })),
        )
    }
}

impl<S> Layer<S> for StageTimes
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, _attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Opened(Instant::now()));
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(&id) {
            if let Some(Opened(at)) = span.extensions().get::<Opened>() {
                STAGES
                    .lock()
                    .unwrap()
                    .entry(span.name())
                    .or_default()
                    .push(at.elapsed());
            }
        }
    }
}

fn take_stages() -> BTreeMap<&'static str, Vec<Duration>> {
    std::mem::take(&mut *STAGES.lock().unwrap())
}

async fn engine(iterations: usize) -> anyhow::Result<()> {
    println!("engine latency, Engine::submit -> first ReplySink::post, instant provider");
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let sqlite = robit_store::connect(&url, robit_store::PoolOptions::default()).await?;
    sqlite.migrate().await?;
    engine_on("sqlite", sqlite, false, iterations).await?;
    let pg_url = postgres_url();
    match robit_store::connect(&pg_url, robit_store::PoolOptions::default()).await {
        Ok(pg) => {
            pg.migrate().await?;
            engine_on("postgres", pg, true, iterations).await?;
        }
        Err(e) => println!(
            "postgres: skipped, cannot connect to {}: {e}",
            app::redact_url(&pg_url)
        ),
    }
    Ok(())
}

/// One backend: a conversation at a time, then 1,000 at once; each with the console's
/// unjournaled turns and with journaled ones as the platform adapters run them. `lease`:
/// take conversation leases, as `serve` does on PostgreSQL.
async fn engine_on(
    backend: &str,
    store: Arc<dyn Store>,
    lease: bool,
    iterations: usize,
) -> anyhow::Result<()> {
    let holder = robit_core::default_holder();
    let config = EngineConfig {
        max_concurrent_turns: 1024,
        lease: lease.then(|| LeaseConfig {
            holder: holder.clone(),
            ttl: Duration::from_secs(30),
        }),
        journal: robit_core::JournalConfig {
            holder,
            ..robit_core::JournalConfig::default()
        },
        ..EngineConfig::default()
    };
    let engine = Engine::new(config, store, Some(Arc::new(InstantProvider)), None);
    // Unique per run: the PostgreSQL database outlives it.
    let run = format!("{}-{}", std::process::id(), now_ms());
    for journaled in [false, true] {
        for conversations in [1usize, 1000] {
            let rounds =
                (iterations / conversations).max(if conversations == 1 { iterations } else { 3 });
            let mut samples = Vec::new();
            let mut submits = Vec::new();
            take_stages();
            for round in 0..rounds {
                let mut tasks = Vec::new();
                for c in 0..conversations {
                    let engine = engine.clone();
                    let event = format!("bench-{run}-{journaled}-{conversations}-{round}-{c}");
                    tasks.push(tokio::spawn(async move {
                        let sink = Arc::new(TimingSink {
                            first_post: Mutex::new(None),
                            journaled,
                        });
                        let inbound = Inbound::message(
                            EventId(event),
                            ConversationKey::new(Platform::Console, "bench", format!("c{c}"), None),
                            Author {
                                id: UserId("u".into()),
                                name: "u".into(),
                                is_bot: false,
                                roles: Vec::new(),
                            },
                            "ping".into(),
                        );
                        let start = Instant::now();
                        let sub = engine.submit(inbound, sink.clone()).await.expect("submit");
                        let submitted = start.elapsed();
                        sub.wait().await;
                        let first = sink.first_post.lock().unwrap().expect("a reply was posted");
                        (first - start, submitted)
                    }));
                }
                for t in tasks {
                    let (first, submitted) = t.await?;
                    samples.push(first);
                    submits.push(submitted);
                }
            }
            samples.sort();
            submits.sort();
            let what = if journaled { "journaled" } else { "console" };
            println!(
                "{backend:>8} {what:>9} {conversations:>5} at once: n={:<6} first post p50 {:>8.3} ms  p99 {:>8.3} ms   (submit returned p50 {:.3} ms, p99 {:.3} ms)",
                samples.len(),
                ms(percentile(&samples, 0.50)),
                ms(percentile(&samples, 0.99)),
                ms(percentile(&submits, 0.50)),
                ms(percentile(&submits, 0.99)),
            );
            for (stage, mut times) in take_stages() {
                times.sort();
                println!(
                    "{:>30} {stage:<14} p50 {:>8.3} ms  p99 {:>8.3} ms  (n={})",
                    "",
                    ms(percentile(&times, 0.50)),
                    ms(percentile(&times, 0.99)),
                    times.len()
                );
            }
        }
    }
    Ok(())
}

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default()
}

async fn store(iterations: usize, writers: &[usize]) -> anyhow::Result<()> {
    let messages = iterations.max(1000);
    let dir = tempfile::tempdir()?;
    let sqlite = robit_store::connect(
        &format!("sqlite://{}", dir.path().join("bench.db").display()),
        robit_store::PoolOptions::default(),
    )
    .await?;
    sqlite.migrate().await?;
    // SQLite's default (`synchronous=NORMAL` under WAL) skips the fsync per commit that
    // PostgreSQL pays by default; `full` is the like-for-like durability.
    let full = robit_store::connect(
        &format!("sqlite://{}", dir.path().join("bench-full.db").display()),
        robit_store::PoolOptions {
            sqlite_full_sync: true,
            ..robit_store::PoolOptions::default()
        },
    )
    .await?;
    full.migrate().await?;
    let pg_url = postgres_url();
    let pg = match robit_store::connect(&pg_url, robit_store::PoolOptions::default()).await {
        Ok(pg) => {
            pg.migrate().await?;
            Some(pg)
        }
        Err(e) => {
            println!(
                "postgres: skipped, cannot connect to {}: {e}",
                app::redact_url(&pg_url)
            );
            None
        }
    };
    // PostgreSQL's counterpart of SQLite's default: a commit does not wait for its WAL flush,
    // so a crash of the database server (not of robit) can lose the last commits, as a power
    // loss can SQLite's. robit never sets it; an operator can, on the role or in the URL
    // (docs/operations.md), so the like-for-like figure is printed too. sqlx joins repeated
    // `options` parameters, so a URL that has its own keeps them.
    let pg_async = match &pg {
        Some(_) => {
            let sep = if pg_url.contains('?') { '&' } else { '?' };
            let url = format!("{pg_url}{sep}options=-c%20synchronous_commit%3Doff");
            Some(robit_store::connect(&url, robit_store::PoolOptions::default()).await?)
        }
        None => None,
    };
    // Each writer count measures every backend before the next count, so the figures a ratio
    // compares come from the same minutes.
    for &concurrency in writers {
        let of = format!("({messages} messages, {concurrency} concurrent writers)");
        let rate =
            robit_store::bench::bench_persist(Arc::clone(&sqlite), messages, concurrency).await?;
        println!("sqlite:   {rate:>10.0} persisted messages/s {of}");
        let rate =
            robit_store::bench::bench_persist(Arc::clone(&full), messages, concurrency).await?;
        println!("sqlite, synchronous=full: {rate:>6.0} persisted messages/s {of}");
        if let Some(pg) = &pg {
            let rate =
                robit_store::bench::bench_persist(Arc::clone(pg), messages, concurrency).await?;
            println!("postgres: {rate:>10.0} persisted messages/s {of}");
        }
        if let Some(pg) = &pg_async {
            let rate =
                robit_store::bench::bench_persist(Arc::clone(pg), messages, concurrency).await?;
            println!("postgres, synchronous_commit=off: {rate:>6.0} persisted messages/s {of}");
        }
    }
    Ok(())
}
