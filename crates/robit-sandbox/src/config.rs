//! Typed configuration for the sandbox: where the guests are, where compiled
//! artifacts are cached, how many runs may execute at once, and the ceiling on
//! per-run limits.
//!
//! This module must not read the environment or any file: the binary builds a
//! `SandboxConfig` from its own configuration and hands it over.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Everything [`Sandbox::new`](crate::Sandbox::new) needs.
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// CPython WASI build (a WASI preview 1 command module).
    pub python_wasm: PathBuf,
    /// QuickJS-ng WASI build (a WASI preview 1 command module).
    pub quickjs_wasm: PathBuf,
    /// Directory for compiled guest artifacts (`*.cwasm`), so a restarted process
    /// does not pay the multi-second compile of `python.wasm` again.
    pub cache_dir: PathBuf,
    /// How many runs may execute at the same time; further runs wait.
    pub max_concurrent: usize,
    /// How many pre-initialized, never-used Python instances to keep ready.
    /// `0` disables the pool: every Python run then starts the interpreter cold.
    pub python_pool_size: usize,
    /// The most any single run may ask for; limits passed to `run` are clamped to these.
    pub max_limits: Limits,
    /// The most bytes all live runs together may hold in their scratch directories; a run
    /// whose write would pass it ends with `Outcome::DiskLimit`. Keep it below the space of
    /// the file system holding the scratch directories.
    pub disk_total_bytes: u64,
    /// Where runs' scratch directories are created; `None` is the system's temp dir.
    pub scratch_dir: Option<PathBuf>,
}

impl SandboxConfig {
    /// A configuration with the default concurrency, pool and limits, for guests
    /// named `python.wasm` and `quickjs.wasm` in `guests_dir`.
    pub fn new(guests_dir: impl AsRef<Path>, cache_dir: impl Into<PathBuf>) -> SandboxConfig {
        let guests_dir = guests_dir.as_ref();
        SandboxConfig {
            python_wasm: guests_dir.join("python.wasm"),
            quickjs_wasm: guests_dir.join("quickjs.wasm"),
            cache_dir: cache_dir.into(),
            max_concurrent: default_concurrency(),
            python_pool_size: 2,
            max_limits: Limits::default(),
            disk_total_bytes: DEFAULT_DISK_TOTAL_BYTES,
            scratch_dir: None,
        }
    }
}

/// The default for [`SandboxConfig::disk_total_bytes`]: four runs at the default quota,
/// well inside the 256 MiB the Kubernetes manifest gives `/tmp`.
pub const DEFAULT_DISK_TOTAL_BYTES: u64 = 4 * DEFAULT_DISK_BYTES;

/// The default per-run quota of bytes written to the scratch directory.
pub const DEFAULT_DISK_BYTES: u64 = 16 * 1024 * 1024;

/// The number of cores, which is where CPU-bound guests stop gaining from more parallelism.
pub fn default_concurrency() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Resource limits for one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time from the moment the code is handed to the guest.
    pub wall_time: Duration,
    /// Linear memory of the guest instance.
    pub memory_bytes: u64,
    /// Bytes kept of stdout, and separately of stderr; the rest is counted and dropped.
    pub output_bytes: usize,
    /// Files read back from the scratch directory after the run; more are reported, not read.
    pub max_files: usize,
    /// Largest file read back; larger ones are reported, not read.
    pub max_file_bytes: u64,
    /// Bytes the program may add to its scratch directory (input files placed by the host
    /// are not counted; growing them is).
    pub disk_bytes: u64,
    /// Files, directories and links the program may create in its scratch directory.
    pub disk_files: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            wall_time: Duration::from_secs(10),
            memory_bytes: 256 * 1024 * 1024,
            output_bytes: 64 * 1024,
            max_files: 10,
            max_file_bytes: 8 * 1024 * 1024,
            disk_bytes: DEFAULT_DISK_BYTES,
            disk_files: 256,
        }
    }
}

impl Limits {
    /// Each field is the smaller of `self` and `max`, so a caller can only tighten.
    pub fn clamp_to(self, max: &Limits) -> Limits {
        Limits {
            wall_time: self.wall_time.min(max.wall_time),
            memory_bytes: self.memory_bytes.min(max.memory_bytes),
            output_bytes: self.output_bytes.min(max.output_bytes),
            max_files: self.max_files.min(max.max_files),
            max_file_bytes: self.max_file_bytes.min(max.max_file_bytes),
            disk_bytes: self.disk_bytes.min(max.disk_bytes),
            disk_files: self.disk_files.min(max.disk_files),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamp_only_tightens() {
        let max = Limits::default();
        let asked = Limits {
            wall_time: Duration::from_secs(60),
            memory_bytes: 1024,
            output_bytes: usize::MAX,
            max_files: 1,
            max_file_bytes: u64::MAX,
            disk_bytes: 1,
            disk_files: u64::MAX,
        };
        let got = asked.clamp_to(&max);
        assert_eq!(got.wall_time, max.wall_time);
        assert_eq!(got.memory_bytes, 1024);
        assert_eq!(got.output_bytes, max.output_bytes);
        assert_eq!(got.max_files, 1);
        assert_eq!(got.max_file_bytes, max.max_file_bytes);
        assert_eq!(got.disk_bytes, 1);
        assert_eq!(got.disk_files, max.disk_files);
    }
}
