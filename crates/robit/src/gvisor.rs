//! The gVisor tier built from `[sandbox.gvisor]` (the section is `config::GvisorSection`),
//! and its `robit doctor` lines.

use std::sync::Arc;
use std::time::Duration;

use robit_sandbox::{CodeRunner, Limits};
use robit_sandbox_gvisor::{GvisorConfig, GvisorSandbox};

use crate::config::Config;

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
