//! The OCI runtime spec (`config.json`) of one sandbox.
//!
//! Everything the isolation rests on is stated here, in one place: the read-only root, the
//! mounts (nothing of the host but the rootfs and this run's own scratch), an unprivileged
//! user with no capabilities, a fixed environment that shares nothing with robit's, fresh
//! namespaces (no network at all), and the limits gVisor and the host cgroup enforce.

use std::path::Path;

use serde_json::{json, Value};

use crate::config::GvisorConfig;

/// The user code runs as `nobody` (it exists in every Debian base system).
pub(crate) const UID: u32 = 65534;
pub(crate) const GID: u32 = 65534;

/// Where the run's scratch appears inside the sandbox; also the working directory.
pub(crate) const WORK_DIR: &str = "/work";

/// The whole environment of the sandboxed program: nothing is inherited from robit's.
/// One BLAS/OpenMP thread keeps numpy inside the process limit and the CPU quota.
pub(crate) const ENV: &[&str] = &[
    "PATH=/usr/local/bin:/usr/bin:/bin",
    "HOME=/tmp",
    "LANG=C.UTF-8",
    "MPLBACKEND=Agg",
    "MPLCONFIGDIR=/tmp/.matplotlib",
    "OPENBLAS_NUM_THREADS=1",
    "OMP_NUM_THREADS=1",
    "MKL_NUM_THREADS=1",
];

/// The CFS period of a sandbox's CPU quota.
pub(crate) const CPU_PERIOD_US: u64 = 100_000;

/// `cpus` CPUs as a CFS quota per [`CPU_PERIOD_US`] (at least a tenth of a CPU).
pub(crate) fn cpu_quota_us(config: &GvisorConfig) -> u64 {
    (config.cpus.max(0.1) * CPU_PERIOD_US as f64) as u64
}

/// The spec for one sandbox running `args`; `scratch` is the host directory (a tmpfs of
/// its own) mounted read-write at [`WORK_DIR`], `cgroup` the cgroup path runsc creates.
pub(crate) fn spec(
    config: &GvisorConfig,
    args: &[String],
    scratch: &Path,
    cgroup: &str,
    memory_limit: u64,
    cpu_seconds: u64,
) -> Value {
    let period = CPU_PERIOD_US;
    let quota = cpu_quota_us(config);
    let rlimit = |kind: &str, n: u64| json!({"type": kind, "soft": n, "hard": n});
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": UID, "gid": GID, "additionalGids": []},
            "args": args,
            "env": ENV,
            "cwd": WORK_DIR,
            "capabilities": {
                "bounding": [], "effective": [], "inheritable": [], "permitted": [], "ambient": []
            },
            "rlimits": [
                rlimit("RLIMIT_NPROC", config.max_processes),
                rlimit("RLIMIT_NOFILE", 256),
                rlimit("RLIMIT_CORE", 0),
                rlimit("RLIMIT_FSIZE", config.scratch_bytes.max(config.tmp_bytes)),
                // gVisor 2022 does not enforce RLIMIT_CPU (measured); the CFS quota and the
                // wall-time limit bound CPU time. Set anyway for runsc versions that do.
                rlimit("RLIMIT_CPU", cpu_seconds),
            ],
            "noNewPrivileges": true
        },
        "root": {"path": config.rootfs, "readonly": true},
        "hostname": "sandbox",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "nodev", "noexec", "size=16m"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "nodev", format!("size={}", config.tmp_bytes), "mode=1777"]},
            {"destination": WORK_DIR, "type": "bind", "source": scratch,
             "options": ["rbind", "rw", "nosuid", "nodev"]}
        ],
        "linux": {
            "cgroupsPath": cgroup,
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}
            ],
            "resources": {
                "memory": {"limit": memory_limit, "swap": memory_limit},
                "cpu": {"quota": quota, "period": period},
                "pids": {"limit": config.host_pids}
            },
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
            "readonlyPaths": ["/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_states_the_isolation() {
        let config = GvisorConfig::new("/rootfs");
        let s = spec(
            &config,
            &["python3".into()],
            Path::new("/scratch"),
            "/robit-gvisor/x",
            1 << 30,
            40,
        );
        assert_eq!(s["root"]["readonly"], true);
        assert_eq!(s["process"]["user"]["uid"], 65534);
        assert_eq!(s["process"]["noNewPrivileges"], true);
        assert!(s["process"]["capabilities"]["effective"]
            .as_array()
            .unwrap()
            .is_empty());
        let env: Vec<&str> = s["process"]["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(env.iter().all(|e| !e.contains("ROBIT")));
        let namespaces = s["linux"]["namespaces"].to_string();
        assert!(namespaces.contains("network"));
        assert_eq!(s["linux"]["resources"]["memory"]["limit"], 1u64 << 30);
        let mounts = s["mounts"].as_array().unwrap();
        // The scratch is the only host directory in the sandbox besides the read-only root.
        let binds: Vec<&Value> = mounts.iter().filter(|m| m["type"] == "bind").collect();
        assert_eq!(binds.len(), 1);
        assert_eq!(binds[0]["source"], "/scratch");
    }
}
