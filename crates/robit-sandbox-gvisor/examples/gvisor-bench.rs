//! Figures of the gVisor tier for BENCHMARKS.md (prints them; not a test).
//!
//! ```sh
//! cargo run -p robit-sandbox-gvisor --example gvisor-bench [-- ROOTFS]
//! ```
//!
//! Needs root, runsc and the rootfs (scripts/install-runsc, scripts/build-gvisor-rootfs).
//! Measures: cold start (no pool), warm p50/p99 of the numpy one-liner, the compute ratio
//! against the same interpreter run natively (`chroot ROOTFS python3`), the memory of a warm
//! sandbox, and the peak memory of 10 concurrent runs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use robit_sandbox::{Limits, Outcome};
use robit_sandbox_gvisor::{GvisorConfig, GvisorSandbox, DEFAULT_ROOTFS};

const ONE_LINER: &str = "import numpy; print(numpy.arange(10).sum())";

/// CPU-bound pure Python plus numpy; prints its own compute time so start-up is excluded
/// on both sides.
const COMPUTE: &str = r#"
import time, numpy
t = time.perf_counter()
def fib(n): return n if n < 2 else fib(n - 1) + fib(n - 2)
fib(25)
d = {}
for i in range(300000): d[str(i)] = i
s = sum(range(10**7))
a = numpy.random.default_rng(1).random((400, 400))
for _ in range(10): a = a @ a; a /= a.max()
print(time.perf_counter() - t)
"#;

fn limits() -> Limits {
    Limits {
        wall_time: Duration::from_secs(60),
        memory_bytes: 512 * 1024 * 1024,
        ..Limits::default()
    }
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn cgroup_bytes(path: &Path, file: &str) -> u64 {
    std::fs::read_to_string(path.join(file))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Memory cgroups of this instance's sandboxes.
fn cgroups(name: &str) -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup/memory/robit-gvisor");
    std::fs::read_dir(root)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(name))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// Resident set of every process in a cgroup (runsc's sandbox process and its stubs).
fn rss_of(cgroup: &Path) -> u64 {
    let Ok(procs) = std::fs::read_to_string(cgroup.join("cgroup.procs")) else {
        return 0;
    };
    procs
        .lines()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .filter_map(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .sum::<u64>()
        * 1024
}

fn mib(b: u64) -> String {
    format!("{:.0} MiB", b as f64 / (1024.0 * 1024.0))
}

#[tokio::main]
async fn main() {
    let rootfs = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_ROOTFS));
    let mut config = GvisorConfig::new(&rootfs);
    config.work_root = PathBuf::from("/var/tmp/robit-gvisor-bench");

    // Cold: no pool, every run starts a sandbox and imports the libraries.
    {
        let sb = GvisorSandbox::new(GvisorConfig {
            pool_size: 0,
            ..config.clone()
        })
        .await
        .expect("gvisor tier (scripts/install-runsc, scripts/build-gvisor-rootfs)");
        let mut times = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let out = sb
                .run_python(ONE_LINER, b"", Vec::new(), limits())
                .await
                .unwrap();
            assert_eq!(out.stdout.trim(), "45", "{out:?}");
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "cold start + numpy one-liner (5 runs): median {}, min {}, max {}",
            ms(pct(&times, 0.5)),
            ms(times[0]),
            ms(times[times.len() - 1])
        );
        sb.wait_live_at_most(0).await;
    }

    // Warm: a pool of 2; every run waits for a full pool first, as a run arriving at an
    // idle bot would find it.
    let warm_sb = GvisorSandbox::new(GvisorConfig {
        pool_size: 2,
        ..config.clone()
    })
    .await
    .unwrap();
    {
        let mut times = Vec::new();
        for _ in 0..40 {
            warm_sb.warm_up().await;
            let t = Instant::now();
            let out = warm_sb
                .run_python(ONE_LINER, b"", Vec::new(), limits())
                .await
                .unwrap();
            assert_eq!(out.stdout.trim(), "45");
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "warm numpy one-liner (40 runs, pool 2): p50 {}, p99 {}, min {}",
            ms(pct(&times, 0.5)),
            ms(pct(&times, 0.99)),
            ms(times[0])
        );
    }

    // Memory of a warm sandbox: the cgroup's charge and the resident set of its processes.
    warm_sb.warm_up().await;
    warm_sb.wait_live_at_most(2).await;
    let groups = cgroups(warm_sb.name());
    for g in &groups {
        println!(
            "warm sandbox {}: cgroup memory {}, RSS of its processes {}",
            g.file_name().unwrap().to_string_lossy(),
            mib(cgroup_bytes(g, "memory.usage_in_bytes")),
            mib(rss_of(g))
        );
    }

    // Compute: the same script under gVisor (warm) and natively (same interpreter and
    // libraries, via chroot into the rootfs), timed by the script itself.
    {
        let mut sandboxed = Vec::new();
        let mut native = Vec::new();
        for _ in 0..3 {
            warm_sb.warm_up().await;
            let out = warm_sb
                .run_python(COMPUTE, b"", Vec::new(), limits())
                .await
                .unwrap();
            assert_eq!(out.outcome, Outcome::Finished, "{out:?}");
            sandboxed.push(out.stdout.trim().parse::<f64>().unwrap());
            let n = Command::new("/usr/sbin/chroot")
                .arg(&rootfs)
                .args(["/usr/bin/python3", "-c", COMPUTE])
                .env_clear()
                .env("OPENBLAS_NUM_THREADS", "1")
                .output()
                .unwrap();
            native.push(
                String::from_utf8_lossy(&n.stdout)
                    .trim()
                    .parse::<f64>()
                    .unwrap(),
            );
        }
        let best = |v: &[f64]| v.iter().cloned().fold(f64::INFINITY, f64::min);
        println!(
            "compute (fib 25 + 300k dict inserts + sum(range(10**7)) + 10 400x400 matmuls): \
             gvisor {:.3} s, native {:.3} s (best of 3), ratio {:.2}x",
            best(&sandboxed),
            best(&native),
            best(&sandboxed) / best(&native)
        );
    }
    drop(warm_sb);

    // 10 concurrent cold runs (no pool): peak of the memory charged to all their cgroups.
    {
        let sb = Arc::new(
            GvisorSandbox::new(GvisorConfig {
                pool_size: 0,
                max_concurrent: 10,
                ..config.clone()
            })
            .await
            .unwrap(),
        );
        let name = sb.name().to_string();
        let done = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let peak_rss = Arc::new(AtomicU64::new(0));
        let sampler = {
            let (done, peak, peak_rss) = (done.clone(), peak.clone(), peak_rss.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    let groups = cgroups(&name);
                    let total: u64 = groups
                        .iter()
                        .map(|g| cgroup_bytes(g, "memory.usage_in_bytes"))
                        .sum();
                    let rss: u64 = groups.iter().map(|g| rss_of(g)).sum();
                    peak.fetch_max(total, Ordering::Relaxed);
                    peak_rss.fetch_max(rss, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        let t = Instant::now();
        let runs: Vec<_> = (0..10)
            .map(|_| {
                let sb = sb.clone();
                tokio::spawn(
                    async move { sb.run_python(ONE_LINER, b"", Vec::new(), limits()).await },
                )
            })
            .collect();
        for r in runs {
            let out = r.await.unwrap().unwrap();
            assert_eq!(out.stdout.trim(), "45");
        }
        let elapsed = t.elapsed();
        done.store(true, Ordering::Relaxed);
        sampler.join().unwrap();
        println!(
            "10 concurrent cold runs: all done in {}, peak memory charged {} (sum of cgroups), peak RSS {}",
            ms(elapsed),
            mib(peak.load(Ordering::Relaxed)),
            mib(peak_rss.load(Ordering::Relaxed))
        );
        sb.wait_live_at_most(0).await;
    }
}
