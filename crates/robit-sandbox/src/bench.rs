//! The sandbox benchmark behind `robit bench sandbox`: latency of Python cold,
//! Python warm (pooled), JavaScript, a native `python3 -c` spawn for reference,
//! and peak memory for a burst of concurrent runs.
//!
//! Measurements only: this module must not change how the sandbox behaves, and
//! it reads nothing but `/proc/self/status` (and writes `/proc/self/clear_refs`
//! to reset the peak RSS before the burst).

use std::fmt;
use std::time::{Duration, Instant};

use robit_types::Language;

use crate::config::{Limits, SandboxConfig};
use crate::error::SandboxError;
use crate::output::Outcome;
use crate::sandbox::Sandbox;

/// Runs in the concurrency burst.
pub const BURST: usize = 50;

/// Latency percentiles of one scenario.
#[derive(Clone, Copy, Debug)]
pub struct Stats {
    pub samples: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub min: Duration,
}

impl Stats {
    fn of(mut samples: Vec<Duration>) -> Stats {
        samples.sort();
        let n = samples.len().max(1);
        let at = |q: f64| {
            let i = ((q * n as f64).ceil() as usize).clamp(1, n) - 1;
            samples.get(i).copied().unwrap_or_default()
        };
        Stats {
            samples: samples.len(),
            p50: at(0.50),
            p99: at(0.99),
            min: samples.first().copied().unwrap_or_default(),
        }
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p50 {:>8.2} ms  p99 {:>8.2} ms  min {:>8.2} ms  (n={})",
            ms(self.p50),
            ms(self.p99),
            ms(self.min),
            self.samples
        )
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A burst of [`BURST`] Python runs started at once.
#[derive(Clone, Copy, Debug)]
pub struct Burst {
    pub max_concurrent: usize,
    pub wall: Duration,
    /// Peak resident set of the whole process during the burst (VmHWM, reset
    /// before the burst when the kernel allows it).
    pub peak_rss_bytes: Option<u64>,
    /// Resident set just before the burst.
    pub rss_before_bytes: Option<u64>,
    pub all_correct: bool,
}

impl fmt::Display for Burst {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mib = |b: Option<u64>| {
            b.map_or("n/a".to_string(), |b| {
                format!("{:.0} MiB", b as f64 / 1048576.0)
            })
        };
        write!(
            f,
            "{BURST} runs, max_concurrent {:>2}: wall {:>7.0} ms, peak RSS {} (before {}), all correct: {}",
            self.max_concurrent,
            ms(self.wall),
            mib(self.peak_rss_bytes),
            mib(self.rss_before_bytes),
            self.all_correct
        )
    }
}

#[derive(Clone, Debug)]
pub struct BenchReport {
    pub iterations: usize,
    /// `Sandbox::new` with the compile cache present.
    pub startup: Duration,
    pub python_cold: Stats,
    pub python_warm: Stats,
    pub javascript: Stats,
    /// `python3 -c 'print(1)'` as a native process; `None` if there is no `python3`.
    pub native_python: Option<Stats>,
    pub bursts: Vec<Burst>,
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "sandbox benchmark ({} iterations each)", self.iterations)?;
        writeln!(
            f,
            "  sandbox start (cache present)  {:>8.2} ms",
            ms(self.startup)
        )?;
        writeln!(f, "  python cold  print(1)  {}", self.python_cold)?;
        writeln!(f, "  python warm  print(1)  {}", self.python_warm)?;
        writeln!(f, "  quickjs console.log(1) {}", self.javascript)?;
        match &self.native_python {
            Some(native) => {
                writeln!(f, "  native python3 -c      {native}")?;
                writeln!(
                    f,
                    "  warm / native p50: {:.2}x",
                    self.python_warm.p50.as_secs_f64() / native.p50.as_secs_f64()
                )?;
            }
            None => writeln!(f, "  native python3 -c      unavailable")?,
        }
        for burst in &self.bursts {
            writeln!(f, "  {burst}")?;
        }
        Ok(())
    }
}

async fn time_runs(
    sandbox: &Sandbox,
    language: Language,
    code: &str,
    iterations: usize,
    before_each_warm_up: bool,
) -> Result<Stats, SandboxError> {
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        if before_each_warm_up {
            sandbox.warm_up().await;
        }
        let started = Instant::now();
        let out = sandbox.run(language, code, b"", Limits::default()).await?;
        samples.push(started.elapsed());
        if out.stdout != "1\n" || out.outcome != Outcome::Finished {
            return Err(SandboxError::Internal(format!(
                "benchmark run gave unexpected output: {out:?}"
            )));
        }
    }
    Ok(Stats::of(samples))
}

/// The real interpreter behind `python3`: version managers (pyenv, asdf) put a
/// shell-script shim first on `PATH`, whose own start-up would dwarf Python's.
fn python3_executable() -> Option<String> {
    let out = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .ok()?;
    let path = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !path.is_empty()).then_some(path)
}

fn native_python(iterations: usize) -> Option<Stats> {
    let python = python3_executable()?;
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let started = Instant::now();
        let out = std::process::Command::new(&python)
            .args(["-c", "print(1)"])
            .output()
            .ok()?;
        samples.push(started.elapsed());
        if !out.status.success() {
            return None;
        }
    }
    Some(Stats::of(samples))
}

fn proc_status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

async fn burst(config: &SandboxConfig) -> Result<Burst, SandboxError> {
    let sandbox = Sandbox::new(config.clone()).await?;
    sandbox.warm_up().await;
    let rss_before = proc_status_kib("VmRSS:").map(|k| k * 1024);
    // "5" resets VmHWM to the current RSS (Linux >= 4.0).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let started = Instant::now();
    let runs = (0..BURST).map(|i| {
        let sandbox = &sandbox;
        async move {
            let code = format!("print({i} * 2)");
            let out = sandbox
                .run(Language::Python, &code, b"", Limits::default())
                .await?;
            Ok::<bool, SandboxError>(out.stdout == format!("{}\n", i * 2))
        }
    });
    let mut all_correct = true;
    // Polling the runs together is enough: each one executes on the sandbox runtime.
    for ok in join_all(runs).await {
        all_correct &= ok?;
    }
    let wall = started.elapsed();
    Ok(Burst {
        max_concurrent: config.max_concurrent,
        wall,
        peak_rss_bytes: proc_status_kib("VmHWM:").map(|k| k * 1024),
        rss_before_bytes: rss_before,
        all_correct,
    })
}

/// Polls all futures concurrently on the current task and collects their outputs in order.
async fn join_all<F: std::future::Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut set: Vec<_> = futures.into_iter().map(|f| Some(Box::pin(f))).collect();
    let mut out: Vec<Option<F::Output>> = set.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, result) in set.iter_mut().zip(out.iter_mut()) {
            if let Some(fut) = slot {
                match fut.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        *result = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

/// Runs the whole benchmark. `config` supplies guests, cache and limits; the
/// pool size and concurrency are varied per scenario.
pub async fn run(config: SandboxConfig, iterations: usize) -> Result<BenchReport, SandboxError> {
    let iterations = iterations.max(1);

    // Make sure the compile cache exists, so "cold" means a cold interpreter,
    // not a cold compiler.
    drop(
        Sandbox::new(SandboxConfig {
            python_pool_size: 0,
            ..config.clone()
        })
        .await?,
    );

    let started = Instant::now();
    let cold = Sandbox::new(SandboxConfig {
        python_pool_size: 0,
        ..config.clone()
    })
    .await?;
    let startup = started.elapsed();
    let python_cold = time_runs(&cold, Language::Python, "print(1)", iterations, false).await?;
    let javascript = time_runs(
        &cold,
        Language::JavaScript,
        "console.log(1)",
        iterations,
        false,
    )
    .await?;
    drop(cold);

    let warm = Sandbox::new(SandboxConfig {
        python_pool_size: config.python_pool_size.max(1),
        ..config.clone()
    })
    .await?;
    // Waiting for the refill between runs measures the latency a request sees
    // when a warm instance is available, which is the pool's steady state below
    // its refill rate.
    let python_warm = time_runs(&warm, Language::Python, "print(1)", iterations, true).await?;
    drop(warm);

    let native_python = tokio::task::spawn_blocking(move || native_python(iterations))
        .await
        .ok()
        .flatten();

    let mut bursts = vec![burst(&config).await?];
    if config.max_concurrent < BURST {
        bursts.push(
            burst(&SandboxConfig {
                max_concurrent: BURST,
                ..config.clone()
            })
            .await?,
        );
    }

    Ok(BenchReport {
        iterations,
        startup,
        python_cold,
        python_warm,
        javascript,
        native_python,
        bursts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_right_samples() {
        let samples = (1..=100).map(Duration::from_millis).collect();
        let s = Stats::of(samples);
        assert_eq!(s.p50, Duration::from_millis(50));
        assert_eq!(s.p99, Duration::from_millis(99));
        assert_eq!(s.min, Duration::from_millis(1));
    }
}
