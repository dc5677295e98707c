//! The ingest benchmark: signed Events API requests against the real HTTP intake over
//! loopback, measuring acknowledged-and-persisted events per second and ack latency.
//!
//! The path measured is the production one: signature check, JSON parse, classification,
//! `Engine::submit` (dedup + conversation + user message in one store transaction), ack.
//! Turns still run, but reply into a null sink so the Slack Web API is not part of the
//! number. The load generator is a minimal HTTP/1.1 keep-alive client on raw sockets with
//! requests signed before the clock starts, so it costs as little CPU as a generator can.

use crate::intake::{Intake, Replies};
use crate::{http, signature, SlackConfig, SlackError};
use robit_core::Engine;
use secrecy::SecretString;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BENCH_SECRET: &str = "bench-signing-secret";

/// What to send.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Events sent in total.
    pub events: usize,
    /// Concurrent keep-alive connections.
    pub connections: usize,
    /// Distinct threads (conversations) the mentions are spread over.
    pub threads: usize,
    /// Requests sent first and not measured (connection set-up, caches).
    pub warmup: usize,
    /// Send top-level channel messages without a mention instead: the adapter verifies,
    /// parses and drops them before `Engine::submit`, which measures the intake alone.
    pub intake_only: bool,
    /// Journal each event's turn (as production does). Off, the engine skips the journal:
    /// the difference between the two is what the journal costs.
    pub journal: bool,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            events: 20_000,
            connections: 32,
            threads: 1_000,
            warmup: 1_000,
            intake_only: false,
            journal: true,
        }
    }
}

/// What was measured.
#[derive(Debug, Clone)]
pub struct BenchReport {
    pub sent: usize,
    /// Answered 200.
    pub acked: usize,
    /// Submissions the engine queued (stored), over the measured run.
    pub persisted: u64,
    pub elapsed: Duration,
    pub events_per_sec: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} events sent, {} acked, {} persisted in {:.2?}: {:.0} events/s; ack latency p50 {:.2?}, p99 {:.2?}, max {:.2?}",
            self.sent,
            self.acked,
            self.persisted,
            self.elapsed,
            self.events_per_sec,
            self.p50,
            self.p99,
            self.max
        )
    }
}

/// Serves the HTTP intake for `engine` on 127.0.0.1:0 and drives `options.events` signed
/// `app_mention` callbacks at it.
pub async fn bench_ingest(
    engine: Engine,
    options: BenchOptions,
) -> Result<BenchReport, SlackError> {
    let config = SlackConfig {
        bot_token: Some(SecretString::from("xoxb-bench")),
        // Never called: the bot's identity comes from the events, replies go nowhere.
        api_url: Some("http://127.0.0.1:9/api".to_string()),
        ..SlackConfig::default()
    };
    let api = Arc::new(crate::api::SlackApi::new(&config, None)?);
    let intake = Arc::new(Intake::new(
        engine,
        api,
        Replies::Discard {
            journaled: options.journal,
        },
    ));
    let app = http::router(
        Arc::new(http::HttpState {
            intake: intake.clone(),
            signing_secret: SecretString::from(BENCH_SECRET),
        }),
        &config.events_path,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let connections = options.connections.max(1);
    let shape = Shape {
        threads: options.threads.max(1),
        intake_only: options.intake_only,
    };
    let warmup = requests(&config.events_path, "w", options.warmup, &shape);
    drive(addr, warmup, connections).await?;
    let before = intake.stats.queued.load(Ordering::Relaxed);
    let reqs = requests(&config.events_path, "m", options.events, &shape);
    let started = Instant::now();
    let results = drive(addr, reqs, connections).await?;
    let elapsed = started.elapsed();
    let persisted = intake.stats.queued.load(Ordering::Relaxed) - before;
    let ignored = intake.stats.ignored.load(Ordering::Relaxed);
    server.abort();

    let mut latencies: Vec<Duration> = results.iter().map(|(d, _)| *d).collect();
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or_default()
    };
    let acked = results.iter().filter(|(_, ok)| *ok).count();
    Ok(BenchReport {
        sent: results.len(),
        acked,
        persisted,
        elapsed,
        // Intake-only runs persist nothing by design; count what was verified and dropped.
        events_per_sec: if options.intake_only {
            acked.min(ignored as usize) as f64
        } else {
            persisted as f64
        } / elapsed.as_secs_f64(),
        p50: pct(0.50),
        p99: pct(0.99),
        max: latencies.last().copied().unwrap_or_default(),
    })
}

struct Shape {
    threads: usize,
    intake_only: bool,
}

/// Pre-built, signed HTTP/1.1 requests.
fn requests(path: &str, tag: &str, n: usize, shape: &Shape) -> Vec<Vec<u8>> {
    let now = signature::unix_now().to_string();
    let threads = shape.threads;
    let (kind, mention) = if shape.intake_only {
        ("message", "")
    } else {
        ("app_mention", "<@UBOT> ")
    };
    (0..n)
        .map(|i| {
            let thread = (!shape.intake_only).then(|| format!("1700000000.{:06}", i % threads));
            let ts = format!("1700000001.{i:06}");
            let body = serde_json::json!({
                "token": "x", "team_id": "TBENCH", "api_app_id": "ABENCH",
                "type": "event_callback", "event_id": format!("EvBench{tag}{i}"),
                "event_time": 1_700_000_001,
                "authorizations": [{"team_id": "TBENCH", "user_id": "UBOT", "is_bot": true, "is_enterprise_install": false}],
                "event": {
                    "type": kind, "user": "UALICE", "text": format!("{mention}question {i}"),
                    "channel_type": "channel",
                    "ts": ts, "thread_ts": thread, "channel": "CBENCH", "event_ts": ts, "team": "TBENCH"
                }
            })
            .to_string();
            let sig = signature::sign(BENCH_SECRET.as_bytes(), &now, body.as_bytes());
            let mut r = format!(
                "POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\nx-slack-request-timestamp: {now}\r\nx-slack-signature: {sig}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            r.extend_from_slice(body.as_bytes());
            r
        })
        .collect()
}

/// Sends the requests over `connections` keep-alive connections; returns each request's
/// latency and whether it was answered 200.
async fn drive(
    addr: std::net::SocketAddr,
    reqs: Vec<Vec<u8>>,
    connections: usize,
) -> Result<Vec<(Duration, bool)>, SlackError> {
    let mut shares: Vec<Vec<Vec<u8>>> = vec![Vec::new(); connections];
    for (i, r) in reqs.into_iter().enumerate() {
        shares[i % connections].push(r);
    }
    let mut tasks = Vec::new();
    for share in shares {
        tasks.push(tokio::spawn(async move {
            let mut stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let mut buf = Vec::with_capacity(1024);
            let mut out = Vec::with_capacity(share.len());
            for req in share {
                let t = Instant::now();
                stream.write_all(&req).await?;
                let ok = read_response(&mut stream, &mut buf).await?;
                out.push((t.elapsed(), ok));
            }
            Ok::<_, std::io::Error>(out)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.map_err(std::io::Error::other)??);
    }
    Ok(all)
}

/// Reads one HTTP/1.1 response with a `content-length` body; returns whether it was a 200.
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    buf.clear();
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Ok(head.starts_with("http/1.1 200"));
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
