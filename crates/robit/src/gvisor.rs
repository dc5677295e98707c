//! `[sandbox.gvisor]`: the configuration of the gVisor tier, the runner built from it, and
//! its `robit doctor` lines.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use robit_sandbox::{CodeRunner, Limits};
use robit_sandbox_gvisor::{GvisorConfig, GvisorSandbox};
use serde::{Deserialize, Serialize};

use crate::config::Config;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GvisorSection {
    /// Start the tier. Off by default: it needs root, `runsc` (scripts/install-runsc) and the
    /// rootfs (scripts/build-gvisor-rootfs). When on but unusable, robit runs without it and
    /// `robit doctor` says why.
    pub enabled: bool,
    /// Channels that did not set `sandbox.gvisor` may use the tier.
    pub allow_by_default: bool,
    pub runsc: PathBuf,
    pub rootfs: PathBuf,
    /// Per-sandbox directories and runsc state; owned by robit.
    pub work_dir: PathBuf,
    /// `ptrace` (works everywhere) or `kvm` (needs /dev/kvm).
    pub platform: String,
    /// Pre-started sandboxes with numpy/pandas/matplotlib imported (about 100 MB each).
    pub pool_size: usize,
    pub max_concurrent: usize,
    /// Ceilings of this tier (the channel's sandbox limits apply below them).
    pub wall_time_ms: u64,
    pub memory_mb: u64,
    /// The run's disk quota (`/work`) and `/tmp`, each.
    pub scratch_mb: u64,
    pub max_processes: u64,
    pub cpus: f64,
}

impl Default for GvisorSection {
    fn default() -> Self {
        let d = GvisorConfig::new(robit_sandbox_gvisor::DEFAULT_ROOTFS);
        Self {
            enabled: false,
            allow_by_default: true,
            runsc: d.runsc,
            rootfs: d.rootfs,
            work_dir: d.work_root,
            platform: d.platform,
            pool_size: d.pool_size,
            max_concurrent: d.max_concurrent,
            wall_time_ms: 30_000,
            memory_mb: 512,
            scratch_mb: 64,
            max_processes: d.max_processes,
            cpus: d.cpus,
        }
    }
}

pub fn gvisor_config(config: &Config) -> GvisorConfig {
    let g = &config.sandbox.gvisor;
    let mut c = GvisorConfig::new(g.rootfs.clone());
    c.runsc = g.runsc.clone();
    c.work_root = g.work_dir.clone();
    c.platform = g.platform.clone();
    c.pool_size = g.pool_size;
    c.max_concurrent = g.max_concurrent.max(1);
    c.max_limits = Limits {
        wall_time: Duration::from_millis(g.wall_time_ms),
        memory_bytes: g.memory_mb * 1024 * 1024,
        output_bytes: config.sandbox.output_kb * 1024,
        max_files: config.attachments.max_upload_files,
        max_file_bytes: config.attachments.max_upload_bytes,
        // The tier's scratch is a tmpfs of `scratch_mb`: its size is the quota by construction.
        disk_bytes: g.scratch_mb * 1024 * 1024,
        disk_files: Limits::default().disk_files,
    };
    c.scratch_bytes = g.scratch_mb * 1024 * 1024;
    c.tmp_bytes = g.scratch_mb * 1024 * 1024;
    c.max_processes = g.max_processes;
    c.cpus = g.cpus;
    c
}

/// The tier's runner, or `None` (with a warning naming the fix) when it is off or unusable.
pub async fn runner(config: &Config) -> Option<Arc<dyn CodeRunner>> {
    if !config.sandbox.gvisor.enabled {
        return None;
    }
    match GvisorSandbox::new(gvisor_config(config)).await {
        Ok(s) => Some(Arc::new(s)),
        Err(e) => {
            tracing::warn!(error = %e, "gvisor sandbox tier unavailable; `/run gvisor` is off (see robit doctor)");
            None
        }
    }
}

/// Prints the tier's checks; returns the number of problems (none when it is disabled).
pub async fn doctor(config: &Config) -> usize {
    if !config.sandbox.gvisor.enabled {
        println!("ok    gvisor sandbox tier: disabled (sandbox.gvisor.enabled = false)");
        return 0;
    }
    let mut problems = 0;
    for check in robit_sandbox_gvisor::check(&gvisor_config(config)).await {
        if check.ok {
            println!("ok    {}: {}", check.what, check.detail);
        } else {
            problems += 1;
            println!("FAIL  {}: {}", check.what, check.detail);
            if let Some(fix) = &check.fix {
                println!("      fix: {fix}");
            }
        }
    }
    problems
}
