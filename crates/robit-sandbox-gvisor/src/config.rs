//! Typed configuration of the gVisor tier. Nothing here reads the environment or a file:
//! the binary builds a [`GvisorConfig`] from its own configuration.

use std::path::PathBuf;
use std::time::Duration;

use robit_sandbox::Limits;

/// Everything [`GvisorSandbox::new`](crate::GvisorSandbox::new) needs.
#[derive(Clone, Debug)]
pub struct GvisorConfig {
    /// The `runsc` binary (`runsc` looks it up on `PATH`).
    pub runsc: PathBuf,
    /// The read-only root filesystem built by `scripts/build-gvisor-rootfs`.
    pub rootfs: PathBuf,
    /// Where per-sandbox directories (OCI bundle, scratch mount point) and runsc's state
    /// live. Owned by this process: leftovers of a crashed process are removed at start.
    pub work_root: PathBuf,
    /// gVisor platform: `ptrace` works everywhere; `kvm` is faster where `/dev/kvm` exists.
    pub platform: String,
    /// Pre-started sandboxes kept waiting for code; `0` disables the warm pool.
    pub pool_size: usize,
    /// Runs executing at once (cold starts included); further runs wait.
    pub max_concurrent: usize,
    /// The most any run may ask for; limits passed to `run` are clamped to these.
    pub max_limits: Limits,
    /// Size of the per-run scratch (`/work`, a host tmpfs): the run's disk quota.
    pub scratch_bytes: u64,
    /// Size of the sandbox's own `/tmp` (a tmpfs inside gVisor).
    pub tmp_bytes: u64,
    /// Memory for the sandbox itself (gVisor's kernel and the preloaded libraries), added to
    /// a run's memory limit for the sandbox's cgroup.
    pub overhead_bytes: u64,
    /// Processes and threads the program may have (`RLIMIT_NPROC` inside gVisor).
    pub max_processes: u64,
    /// Host tasks of the whole sandbox (pids cgroup), a backstop for `max_processes`:
    /// gVisor's own threads count here, so it must be well above it.
    pub host_pids: u64,
    /// CPUs the sandbox may use (CFS quota); CPU time is therefore at most wall time × cpus.
    pub cpus: f64,
    /// Longest start-up (interpreter and library imports) accepted.
    pub startup_timeout: Duration,
}

impl GvisorConfig {
    /// Defaults for a rootfs at `rootfs`, work directory `/var/tmp/robit-gvisor-work`.
    pub fn new(rootfs: impl Into<PathBuf>) -> GvisorConfig {
        GvisorConfig {
            runsc: PathBuf::from("runsc"),
            rootfs: rootfs.into(),
            work_root: PathBuf::from("/var/tmp/robit-gvisor-work"),
            platform: "ptrace".into(),
            pool_size: 2,
            max_concurrent: 2,
            max_limits: Limits {
                wall_time: Duration::from_secs(30),
                memory_bytes: 512 * 1024 * 1024,
                ..Limits::default()
            },
            scratch_bytes: 64 * 1024 * 1024,
            tmp_bytes: 64 * 1024 * 1024,
            overhead_bytes: 192 * 1024 * 1024,
            max_processes: 64,
            host_pids: 512,
            cpus: 1.0,
            startup_timeout: Duration::from_secs(60),
        }
    }
}

/// The default rootfs location, shared with `scripts/build-gvisor-rootfs`.
pub const DEFAULT_ROOTFS: &str = "/var/tmp/robit-gvisor-rootfs";
