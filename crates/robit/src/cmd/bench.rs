//! `robit bench`: figures for BENCHMARKS.md, printed, never asserted.

use crate::app;
use crate::cli::{BenchArgs, BenchWhat};
use crate::config::Loaded;
use async_trait::async_trait;
use futures::stream;
use robit_core::{Engine, EngineConfig};
use robit_llm::{ChatRequest, ChatStream, LlmError, Provider, StreamEvent};
use robit_types::{
    Author, Capabilities, ConversationKey, EventId, Inbound, MessageRef, Platform, ReplySink,
    SinkError, UserId,
};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

pub async fn run(loaded: Loaded, args: BenchArgs) -> anyhow::Result<ExitCode> {
    match args.what {
        BenchWhat::Engine => engine(args.iterations).await?,
        BenchWhat::Sandbox => {
            let report =
                robit_sandbox::bench::run(app::sandbox_config(&loaded.config), args.iterations)
                    .await?;
            println!("{report}");
        }
        BenchWhat::Store => store(args.iterations).await?,
    }
    Ok(ExitCode::SUCCESS)
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

/// Records when the first reply reached the platform side.
struct TimingSink {
    first_post: Mutex<Option<Instant>>,
}

#[async_trait]
impl ReplySink for TimingSink {
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
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

async fn engine(iterations: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store = robit_store::connect(&url, robit_store::PoolOptions::default()).await?;
    store.migrate().await?;
    let config = EngineConfig {
        max_concurrent_turns: 1024,
        ..EngineConfig::default()
    };
    let engine = Engine::new(config, store, Some(Arc::new(InstantProvider)), None);
    println!(
        "engine latency, inbound -> first ReplySink::post, instant provider, SQLite file store"
    );
    for conversations in [1usize, 1000] {
        let rounds =
            (iterations / conversations).max(if conversations == 1 { iterations } else { 3 });
        let mut samples = Vec::new();
        for round in 0..rounds {
            let mut tasks = Vec::new();
            for c in 0..conversations {
                let engine = engine.clone();
                tasks.push(tokio::spawn(async move {
                    let sink = Arc::new(TimingSink {
                        first_post: Mutex::new(None),
                    });
                    let inbound = Inbound::message(
                        EventId(format!("bench-{conversations}-{round}-{c}")),
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
                    sub.wait().await;
                    let first = sink.first_post.lock().unwrap().expect("a reply was posted");
                    first - start
                }));
            }
            for t in tasks {
                samples.push(t.await?);
            }
        }
        samples.sort();
        println!(
            "  {conversations:>5} concurrent conversation(s): n={:<6} p50 {:>8.3} ms   p99 {:>8.3} ms",
            samples.len(),
            percentile(&samples, 0.50).as_secs_f64() * 1e3,
            percentile(&samples, 0.99).as_secs_f64() * 1e3,
        );
    }
    Ok(())
}

async fn store(iterations: usize) -> anyhow::Result<()> {
    let messages = iterations.max(1000);
    let dir = tempfile::tempdir()?;
    let sqlite = robit_store::connect(
        &format!("sqlite://{}", dir.path().join("bench.db").display()),
        robit_store::PoolOptions::default(),
    )
    .await?;
    sqlite.migrate().await?;
    let rate = robit_store::bench::bench_persist(sqlite, messages, 16).await?;
    println!(
        "sqlite:   {rate:>10.0} persisted messages/s ({messages} messages, 16 concurrent writers)"
    );
    let pg_url = std::env::var("ROBIT_BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    match robit_store::connect(&pg_url, robit_store::PoolOptions::default()).await {
        Ok(pg) => {
            pg.migrate().await?;
            let rate = robit_store::bench::bench_persist(pg, messages, 16).await?;
            println!("postgres: {rate:>10.0} persisted messages/s ({messages} messages, 16 concurrent writers)");
        }
        Err(e) => println!(
            "postgres: skipped, cannot connect to {}: {e}",
            app::redact_url(&pg_url)
        ),
    }
    Ok(())
}
