//! Ingest benchmark of the HTTP Events API intake: signed `app_mention` callbacks over
//! loopback into the real engine on a temp-file SQLite store; prints acked-and-persisted
//! events per second and ack latency percentiles.
//!
//! `cargo run --release -p robit-slack --example bench_ingest -- [events] [connections] [threads] [--intake-only] [--no-journal] [--compare]`
//!
//! Turns run with no provider configured and answer into a null sink, so the Slack Web API and
//! the model are not part of the number. `--compare` runs three rounds each without and with
//! the turn journal, alternating, each on a fresh database, and prints the ratio of the
//! medians: what the journal costs, measured in one run on one (noisy, shared) machine.

use robit_core::{Engine, EngineConfig};
use robit_slack::{bench_ingest, BenchOptions, BenchReport};

async fn round(options: BenchOptions) -> BenchReport {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = robit_store::connect_sqlite(dir.path().join("bench.db"))
        .await
        .expect("open sqlite");
    store.migrate().await.expect("migrate");
    let engine = Engine::new(EngineConfig::default(), store, None, None);
    let report = bench_ingest(engine.clone(), options)
        .await
        .expect("benchmark failed");
    engine.shutdown(std::time::Duration::from_secs(5)).await;
    report
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

#[tokio::main]
async fn main() {
    let flags = ["--intake-only", "--no-journal", "--compare"];
    let has = |flag: &str| std::env::args().any(|a| a == flag);
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter(|a| !flags.contains(&a.as_str()))
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
        intake_only: has("--intake-only"),
        journal: !has("--no-journal"),
        ..defaults
    };
    println!(
        "slack ingest{}: {} events, {} connections, {} threads, sqlite in a temp dir",
        if options.intake_only {
            " (intake only)"
        } else {
            ""
        },
        options.events,
        options.connections,
        options.threads,
    );
    if !has("--compare") {
        let journal = if options.journal { "on" } else { "off" };
        println!("journal {journal}: {}", round(options).await);
        return;
    }
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for i in 1..=3 {
        for journal in [false, true] {
            let report = round(BenchOptions {
                journal,
                ..options.clone()
            })
            .await;
            let name = if journal { "on " } else { "off" };
            println!("round {i} journal {name}: {report}");
            if journal { &mut with } else { &mut without }.push(report.events_per_sec);
        }
    }
    let (off, on) = (median(without), median(with));
    println!(
        "median events/s: journal off {off:.0}, journal on {on:.0}; on/off = {:.2}",
        on / off
    );
}
