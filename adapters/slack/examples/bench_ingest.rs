//! Ingest benchmark of the HTTP Events API intake: signed `app_mention` callbacks over
//! loopback into the real engine on a temp-file SQLite store; prints acked-and-persisted
//! events per second and ack latency percentiles.
//!
//! `cargo run --release -p robit-slack --example bench_ingest -- [events] [connections] [threads] [--intake-only]`
//!
//! Turns run with no provider configured and answer into a null sink, so the Slack Web API and
//! the model are not part of the number.

use robit_core::{Engine, EngineConfig};
use robit_slack::{bench_ingest, BenchOptions};

#[tokio::main]
async fn main() {
    let intake_only = std::env::args().any(|a| a == "--intake-only");
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter(|a| a != "--intake-only")
        .map(|a| {
            a.parse()
                .expect("numeric arguments: events connections threads")
        })
        .collect();
    let defaults = BenchOptions::default();
    let options = BenchOptions {
        events: args.first().copied().unwrap_or(defaults.events),
        connections: args.get(1).copied().unwrap_or(defaults.connections),
        threads: args.get(2).copied().unwrap_or(defaults.threads),
        intake_only,
        ..defaults
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let store = robit_store::connect_sqlite(dir.path().join("bench.db"))
        .await
        .expect("open sqlite");
    store.migrate().await.expect("migrate");
    let engine = Engine::new(EngineConfig::default(), store, None, None);
    println!(
        "slack ingest{}: {} events, {} connections, {} threads, sqlite at {}",
        if options.intake_only {
            " (intake only)"
        } else {
            ""
        },
        options.events,
        options.connections,
        options.threads,
        dir.path().display()
    );
    let report = bench_ingest(engine.clone(), options)
        .await
        .expect("benchmark failed");
    println!("{report}");
    engine.shutdown(std::time::Duration::from_secs(5)).await;
}
