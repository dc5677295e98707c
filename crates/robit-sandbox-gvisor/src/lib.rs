//! The gVisor sandbox tier: native CPython 3 with numpy, pandas, matplotlib and scipy from
//! a read-only Debian root filesystem, run under gVisor (`runsc`), behind the same
//! [`CodeRunner`] trait as the Wasmtime tier.
//!
//! This crate must not read the environment or robit's configuration (it receives a
//! [`GvisorConfig`]), must never give a sandbox the network, robit's environment, a host
//! directory other than the read-only rootfs and the run's own scratch, or a second
//! program; it runs Python only.
//!
//! # How a run is isolated
//! - `runsc run` with an OCI bundle generated per sandbox (`spec.rs`), not `runsc do`:
//!   `do` shows the host's root (read-only, with a writable overlay) and offers no user,
//!   mount or limit control, while a bundle states all of it.
//! - gVisor's kernel (the Sentry) serves every system call; the host kernel sees only the
//!   Sentry and its file proxy. `--network=none` and a fresh network namespace: no
//!   interface but loopback.
//! - Root: the rootfs, read-only. Writable: `/work` (the working directory; a host tmpfs
//!   mounted per sandbox with `size=scratch_bytes`, so the disk quota holds by
//!   construction) and `/tmp` (a gVisor tmpfs of `tmp_bytes`).
//! - User `nobody` (65534), no capabilities, `no_new_privs`; environment fixed in
//!   `spec::ENV`, nothing inherited.
//! - Limits: memory through the sandbox's memory cgroup (run limit + `overhead_bytes` for
//!   the Sentry and the preloaded libraries; hitting it kills the sandbox ⇒
//!   [`Outcome::OutOfMemory`]); processes through `RLIMIT_NPROC` inside gVisor (fork fails
//!   with `EAGAIN`) with the pids cgroup as a backstop; CPU through a CFS quota of `cpus`
//!   (gVisor 2022 does not enforce `RLIMIT_CPU`, so CPU time is at most wall time × cpus);
//!   wall time from the moment the code is handed over ⇒ [`Outcome::TimedOut`]; output
//!   capped per stream as in the wasm tier, and a program that floods past 16 MiB is
//!   stopped ⇒ [`Outcome::OutputTruncated`].
//! - Files: inputs are written into the scratch before the code is handed over; after the
//!   run the regular files left there come back (`robit_sandbox::collect_outputs`: no
//!   symlinks followed, count and size limits). `plt.show()` saves `figure-N.png` there.
//!
//! # Warm pool
//! Starting a sandbox and importing numpy/pandas/matplotlib takes about a second or two; a
//! [`pool`] of `pool_size` sandboxes does that ahead of time. Each serves one run and is
//! destroyed; the pool is refilled in the background after the run.

mod cgroup;
mod config;
mod container;
mod pool;
mod spec;
mod status;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use robit_sandbox::{CodeRunner, InputFile, Language, Limits, RunOutput, SandboxError, Tier};
use tokio::sync::Semaphore;

pub use cgroup::Hierarchy;
pub use config::{GvisorConfig, DEFAULT_ROOTFS};
pub use status::{check, Check};

use container::{Container, Shared};
use pool::Pool;

/// Runs Python in single-use gVisor sandboxes.
pub struct GvisorSandbox {
    shared: Arc<Shared>,
    permits: Arc<Semaphore>,
    pool: Option<Arc<Pool>>,
    refill: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for GvisorSandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GvisorSandbox")
            .field("rootfs", &self.shared.config.rootfs)
            .field("pool_size", &self.shared.config.pool_size)
            .finish_non_exhaustive()
    }
}

static INSTANCES: AtomicU64 = AtomicU64::new(0);

impl GvisorSandbox {
    /// Checks that `runsc` and the rootfs are there, removes what a dead robit process left
    /// behind under `work_root`, and starts filling the warm pool (on the caller's runtime).
    /// Fails with the reason and the fix when the tier cannot work here.
    pub async fn new(config: GvisorConfig) -> Result<GvisorSandbox, SandboxError> {
        status::preflight(&config)?;
        let cgroups = cgroup::Cgroups::host()
            .map_err(|e| SandboxError::Internal(format!("gvisor cgroups: {e}")))?;
        let pid = std::process::id();
        let n = INSTANCES.fetch_add(1, Ordering::Relaxed);
        let work_root = config.work_root.clone();
        tokio::task::spawn_blocking({
            let runsc = config.runsc.clone();
            let work_root = work_root.clone();
            move || reap_dead(&runsc, &work_root)
        })
        .await
        .map_err(|e| SandboxError::Internal(format!("gvisor: cleaning up: {e}")))?;
        let instance_dir = work_root.join(format!("{pid}-{n}"));
        std::fs::create_dir_all(instance_dir.join("state")).map_err(SandboxError::Scratch)?;
        let shared = Arc::new(Shared::new(
            config.clone(),
            instance_dir,
            format!("robit-{pid}-{n}"),
            cgroups,
        ));
        let pool = (config.pool_size > 0).then(|| Pool::new(config.pool_size));
        let refill = pool
            .clone()
            .map(|p| tokio::spawn(p.refill_forever(shared.clone())));
        Ok(GvisorSandbox {
            shared,
            permits: Arc::new(Semaphore::new(config.max_concurrent.max(1))),
            pool,
            refill,
        })
    }

    /// Waits until the warm pool is full (at once without a pool).
    pub async fn warm_up(&self) {
        if let Some(pool) = &self.pool {
            pool.wait_full().await;
        }
    }

    /// Sandboxes that exist on the host right now (warm, running, or being torn down).
    pub fn live_sandboxes(&self) -> usize {
        self.shared.live.get()
    }

    /// The prefix of this instance's sandbox ids (`robit-<pid>-<n>`); each sandbox's cgroup
    /// is `/robit-gvisor/<id>` (on v1 under each controller), for measurements.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// This instance's directory under `work_root` (runsc state, one directory per sandbox).
    pub fn instance_dir(&self) -> &Path {
        &self.shared.instance_dir
    }

    /// Waits until at most `n` sandboxes exist (after runs whose teardown is in flight).
    pub async fn wait_live_at_most(&self, n: usize) {
        self.shared.live.wait_at_most(n).await;
    }

    /// Runs `code` in a fresh sandbox (a warm one when the pool has one).
    pub async fn run_python(
        &self,
        code: &str,
        stdin: &[u8],
        files: Vec<InputFile>,
        limits: Limits,
    ) -> Result<RunOutput, SandboxError> {
        let limits = limits.clamp_to(&self.shared.config.max_limits);
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| SandboxError::Internal("gvisor sandbox is shutting down".into()))?;
        let (warm, _refill) = match &self.pool {
            Some(pool) => {
                let (c, refill) = pool.take();
                (c, Some(refill))
            }
            None => (None, None),
        };
        let container = match warm {
            Some(c) => c,
            None => {
                let mut c = Container::spawn(&self.shared).await?;
                c.ready(self.shared.config.startup_timeout).await?;
                c
            }
        };
        container.run(code, stdin, &files, limits).await
    }
}

impl Drop for GvisorSandbox {
    fn drop(&mut self) {
        if let Some(refill) = self.refill.take() {
            refill.abort();
        }
        if let Some(pool) = &self.pool {
            pool.close();
        }
    }
}

#[async_trait::async_trait]
impl CodeRunner for GvisorSandbox {
    async fn run(
        &self,
        language: Language,
        code: &str,
        stdin: &[u8],
        limits: Limits,
    ) -> Result<RunOutput, SandboxError> {
        self.run_with_files(language, code, stdin, Vec::new(), limits)
            .await
    }

    async fn run_with_files(
        &self,
        language: Language,
        code: &str,
        stdin: &[u8],
        files: Vec<InputFile>,
        limits: Limits,
    ) -> Result<RunOutput, SandboxError> {
        if language != Language::Python {
            return Err(SandboxError::UnsupportedLanguage {
                tier: Tier::Gvisor,
                language,
            });
        }
        self.run_python(code, stdin, files, limits).await
    }

    fn tiers(&self) -> Vec<Tier> {
        vec![Tier::Gvisor]
    }

    /// Closes the warm pool and waits (at most [`SHUTDOWN_WAIT`]) until every sandbox is
    /// torn down: at process exit, the teardown threads would otherwise die with the
    /// process and leave scratch mounts (and cgroups) behind until the next start.
    async fn shutdown(&self) {
        if let Some(pool) = &self.pool {
            pool.close();
        }
        if tokio::time::timeout(SHUTDOWN_WAIT, self.shared.live.wait_at_most(0))
            .await
            .is_err()
        {
            tracing::warn!(
                left = self.shared.live.get(),
                "gvisor sandboxes still being torn down at exit; the next start removes them"
            );
        }
    }
}

/// The longest [`CodeRunner::shutdown`] waits for sandboxes to be torn down.
pub const SHUTDOWN_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// Removes the sandboxes, mounts and directories of robit processes that no longer run
/// (a crash or a kill leaves them behind). Directories of live processes are left alone,
/// so several robit processes (or tests) can share `work_root`.
fn reap_dead(runsc: &Path, work_root: &Path) {
    let Ok(entries) = std::fs::read_dir(work_root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let instance: PathBuf = entry.path();
        let state = instance.join("state");
        if let Ok(boxes) = std::fs::read_dir(&instance) {
            for b in boxes.flatten() {
                let id = b.file_name().to_string_lossy().into_owned();
                if id != "state" {
                    container::destroy(runsc, &state, &id, &b.path());
                }
            }
        }
        let _ = std::fs::remove_dir_all(&instance);
    }
}
