//! Whether the gVisor tier can work on this machine, with the reason and the fix when it
//! cannot: used by [`GvisorSandbox::new`](crate::GvisorSandbox::new) and `robit doctor`.

use std::path::Path;
use std::time::Duration;

use robit_sandbox::{Limits, Outcome, SandboxError};

use crate::cgroup::{Cgroups, Hierarchy, PARENT, ROOT};
use crate::config::GvisorConfig;

/// What a deployment in a container must grant (also in docs/gvisor.md).
pub const CONTAINER_HINT: &str = "in a container, gVisor needs CAP_SYS_ADMIN and \
CAP_SYS_PTRACE with the default seccomp and AppArmor profiles off (docker run --cap-add \
SYS_ADMIN --cap-add SYS_PTRACE --security-opt seccomp=unconfined --security-opt \
apparmor=unconfined, or --privileged; Kubernetes: securityContext.privileged) and a \
writable /sys/fs/cgroup (on cgroup v2 the host's cgroup namespace: --cgroupns=host)";

/// One line of the doctor's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub what: String,
    pub ok: bool,
    pub detail: String,
    /// How to fix it, when not ok.
    pub fix: Option<String>,
}

fn runsc_version(config: &GvisorConfig) -> Result<String, String> {
    match std::process::Command::new(&config.runsc)
        .arg("--version")
        .env_clear()
        .output()
    {
        Ok(out) if out.status.success() => Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .to_string()),
        Ok(out) => Err(String::from_utf8_lossy(&out.stderr).trim().to_string()),
        Err(e) => Err(format!("{} not found: {e}", config.runsc.display())),
    }
}

fn rootfs_stamp(rootfs: &Path) -> Result<String, String> {
    if !rootfs.join("usr/bin/python3").exists() {
        return Err(format!(
            "no rootfs at {} (usr/bin/python3 missing)",
            rootfs.display()
        ));
    }
    std::fs::read_to_string(rootfs.join("etc/robit-rootfs"))
        .map(|s| s.lines().nth(1).unwrap_or("").trim().to_string())
        .map_err(|_| {
            format!(
                "{} was not built by scripts/build-gvisor-rootfs (etc/robit-rootfs missing)",
                rootfs.display()
            )
        })
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// The checks that need no sandbox start: runsc, the rootfs, root.
fn static_checks(config: &GvisorConfig) -> Vec<Check> {
    let mut checks = Vec::new();
    checks.push(match runsc_version(config) {
        Ok(v) => Check {
            what: "gvisor runsc".into(),
            ok: true,
            detail: v,
            fix: None,
        },
        Err(e) => Check {
            what: "gvisor runsc".into(),
            ok: false,
            detail: e,
            fix: Some(
                "scripts/install-runsc (apt-get install runsc), or set sandbox.gvisor.runsc".into(),
            ),
        },
    });
    checks.push(match rootfs_stamp(&config.rootfs) {
        Ok(v) => Check {
            what: "gvisor rootfs".into(),
            ok: true,
            detail: format!("{}: {v}", config.rootfs.display()),
            fix: None,
        },
        Err(e) => Check {
            what: "gvisor rootfs".into(),
            ok: false,
            detail: e,
            fix: Some(format!(
                "scripts/build-gvisor-rootfs {} (as root, about 3 minutes), or set sandbox.gvisor.rootfs",
                config.rootfs.display()
            )),
        },
    });
    if !is_root() {
        checks.push(Check {
            what: "gvisor privileges".into(),
            ok: false,
            detail: "not root: runsc and the per-run scratch mount need root".into(),
            fix: Some(format!(
                "run robit as root for the gvisor tier; {CONTAINER_HINT}"
            )),
        });
        return checks;
    }
    checks.push(Check {
        what: "gvisor privileges".into(),
        ok: true,
        detail: "running as root".into(),
        fix: None,
    });
    checks.push(cgroups_check());
    checks
}

/// Whether robit can make the sandboxes' cgroups here, and on which hierarchy.
fn cgroups_check() -> Check {
    let found = Cgroups::host().and_then(|c| c.prepare().map(|()| c));
    match found {
        Ok(c) => Check {
            what: "gvisor cgroups".into(),
            ok: true,
            detail: match c.hierarchy {
                Hierarchy::V1 => format!(
                    "{}: memory and pids limits in {ROOT}/{{memory,pids}}/{PARENT}/<sandbox>, \
                     the CPU quota by runsc",
                    c.hierarchy
                ),
                Hierarchy::V2 => format!(
                    "{}: memory, pids and CPU limits in {ROOT}/{PARENT}/<sandbox> \
                     (v2 support is new and not yet run on a v2 host in CI; the sandbox \
                     start below is the real check)",
                    c.hierarchy
                ),
            },
            fix: None,
        },
        Err(e) => Check {
            what: "gvisor cgroups".into(),
            ok: false,
            detail: format!("robit cannot create the sandboxes' cgroups: {e}"),
            fix: Some(format!(
                "mount the cgroup file system read-write at {ROOT}; on cgroup v2 in a \
                 container, a cgroup that holds processes (robit's own) cannot hand \
                 controllers to children: use the host's cgroup namespace \
                 (--cgroupns=host); {CONTAINER_HINT}"
            )),
        },
    }
}

/// Fails with the first problem's detail and fix.
pub(crate) fn preflight(config: &GvisorConfig) -> Result<(), SandboxError> {
    match static_checks(config).into_iter().find(|c| !c.ok) {
        None => Ok(()),
        Some(c) => Err(SandboxError::Internal(format!(
            "{}: {} (fix: {})",
            c.what,
            c.detail,
            c.fix.unwrap_or_default()
        ))),
    }
}

/// Everything `robit doctor` reports for the tier, including a real sandbox start that
/// imports numpy (so a container lacking privileges shows up here, not in a user's run).
pub async fn check(config: &GvisorConfig) -> Vec<Check> {
    let mut checks = static_checks(config);
    if checks.iter().any(|c| !c.ok) {
        return checks;
    }
    let config = GvisorConfig {
        pool_size: 0,
        ..config.clone()
    };
    let started = std::time::Instant::now();
    let result = async {
        let sandbox = crate::GvisorSandbox::new(config).await?;
        let limits = Limits {
            wall_time: Duration::from_secs(20),
            ..sandbox.shared.config.max_limits
        };
        sandbox
            .run_python(
                "import numpy; print(numpy.arange(10).sum())",
                b"",
                Vec::new(),
                limits,
            )
            .await
    }
    .await;
    checks.push(match result {
        Ok(out) if out.outcome == Outcome::Finished && out.stdout.trim() == "45" => Check {
            what: "gvisor sandbox start".into(),
            ok: true,
            detail: format!(
                "numpy ran in a cold sandbox in {} ms",
                started.elapsed().as_millis()
            ),
            fix: None,
        },
        Ok(out) => Check {
            what: "gvisor sandbox start".into(),
            ok: false,
            detail: format!(
                "a test run ended {} (exit {:?}): {}",
                out.outcome,
                out.exit_code,
                out.stderr.trim()
            ),
            fix: Some(format!(
                "rebuild the rootfs with scripts/build-gvisor-rootfs; {CONTAINER_HINT}"
            )),
        },
        Err(e) => Check {
            what: "gvisor sandbox start".into(),
            ok: false,
            detail: e.to_string(),
            fix: Some(CONTAINER_HINT.to_string()),
        },
    });
    checks
}
