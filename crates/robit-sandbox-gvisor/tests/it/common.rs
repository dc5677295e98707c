use std::path::PathBuf;
use std::time::Duration;

use robit_sandbox::Limits;
use robit_sandbox_gvisor::{GvisorConfig, GvisorSandbox, DEFAULT_ROOTFS};

pub fn runsc_present() -> bool {
    std::process::Command::new("runsc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

pub fn config(pool_size: usize) -> GvisorConfig {
    let rootfs = std::env::var_os("ROBIT_GVISOR_ROOTFS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_ROOTFS));
    let mut config = GvisorConfig::new(rootfs);
    config.pool_size = pool_size;
    config.max_concurrent = 4;
    config.work_root = PathBuf::from("/var/tmp/robit-gvisor-test");
    config
}

/// The sandbox, or `None` (after printing why) when runsc is not installed here.
pub async fn sandbox(pool_size: usize) -> Option<GvisorSandbox> {
    if !runsc_present() {
        eprintln!("SKIPPED: runsc is not installed (run scripts/install-runsc)");
        return None;
    }
    let config = config(pool_size);
    match GvisorSandbox::new(config.clone()).await {
        Ok(s) => Some(s),
        Err(e) => panic!(
            "runsc is installed but the gvisor tier does not start: {e}\n\
             build the rootfs with scripts/build-gvisor-rootfs {}",
            config.rootfs.display()
        ),
    }
}

pub fn limits() -> Limits {
    Limits {
        wall_time: Duration::from_secs(20),
        memory_bytes: 256 * 1024 * 1024,
        output_bytes: 16 * 1024,
        max_files: 10,
        max_file_bytes: 4 * 1024 * 1024,
        ..Limits::default()
    }
}

/// Waits until every sandbox of `sandbox` is torn down, then checks the host kept nothing:
/// no scratch mount and no sandbox directory under its instance directory, and runsc knows
/// no container of it.
pub async fn assert_host_clean(sandbox: &GvisorSandbox) {
    tokio::time::timeout(Duration::from_secs(30), sandbox.wait_live_at_most(0))
        .await
        .expect("sandboxes torn down within 30 s");
    let dir = sandbox.instance_dir().to_str().unwrap().to_string();
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(
        !mounts.lines().any(|l| l.contains(&dir)),
        "a scratch mount was left under {dir}"
    );
    let left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "state")
        .collect();
    assert!(left.is_empty(), "sandbox directories left: {left:?}");
    for controller in ["memory", "pids"] {
        let cgroups = format!("/sys/fs/cgroup/{controller}/robit-gvisor");
        let ours = format!("{}-", sandbox.name());
        let left: Vec<String> = std::fs::read_dir(&cgroups)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(&ours))
                    .collect()
            })
            .unwrap_or_default();
        assert!(left.is_empty(), "{controller} cgroups left: {left:?}");
    }
    let list = std::process::Command::new("runsc")
        .arg(format!("--root={dir}/state"))
        .args(["list", "-quiet"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&list.stdout).trim().is_empty(),
        "runsc still lists containers: {}",
        String::from_utf8_lossy(&list.stdout)
    );
}
