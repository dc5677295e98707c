//! The host cgroups of one sandbox, on either cgroup hierarchy: where they are, the limits
//! robit writes into them, and the counters that say whether a run hit a limit.
//!
//! robit creates each sandbox's cgroups itself, before `runsc run`, and removes them after
//! the sandbox is gone, because runsc removes the cgroups *it* created as soon as the
//! sandbox exits, and the counters must still be readable then. runsc (20221219) treats a
//! cgroup that already exists as "set up by the caller" and writes no limit into it
//! (measured: `pids.max` stayed `max` and the memory limit unlimited), so every limit of
//! such a cgroup is written here, and a limit that cannot be written fails the sandbox.
//!
//! - **v1** (separate hierarchies; also a "hybrid" host whose controllers are v1): robit
//!   owns `memory/robit-gvisor/<id>` and `pids/robit-gvisor/<id>`; runsc creates the other
//!   controllers' cgroups (`cpu` with the CFS quota) from the spec.
//! - **v2** (one unified tree, `cgroup.controllers` at the root): one directory,
//!   `robit-gvisor/<id>`, which is also the spec's `cgroupsPath`, so runsc leaves all of it
//!   to robit: memory, pids and the CPU quota. The controllers are enabled
//!   for the children of the root and of `robit-gvisor` first. Only exercised against a
//!   fake cgroup tree in the unit tests: no v2 host was available (docs/gvisor.md).

use std::io;
use std::path::{Path, PathBuf};

/// Where the cgroup file system is mounted on every supported host.
pub(crate) const ROOT: &str = "/sys/fs/cgroup";
/// robit's parent cgroup; each sandbox's cgroup is `PARENT/<id>` under it.
pub(crate) const PARENT: &str = "robit-gvisor";
/// v2 controllers a sandbox's cgroup needs from its parents.
const V2_CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];

/// Which cgroup hierarchy the host uses for the controllers robit needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hierarchy {
    V1,
    V2,
}

impl std::fmt::Display for Hierarchy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Hierarchy::V1 => "cgroup v1",
            Hierarchy::V2 => "cgroup v2",
        })
    }
}

/// The limits written into a sandbox's cgroups when it is created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CgroupLimits {
    /// The largest a run may get; [`Cgroups::set_memory`] tightens it when code arrives.
    pub memory_bytes: u64,
    pub pids: u64,
    /// CFS quota and period in microseconds (v2 only: on v1 runsc sets the `cpu` cgroup).
    pub cpu_quota_us: u64,
    pub cpu_period_us: u64,
}

/// The cgroup tree robit uses: its mount point and hierarchy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Cgroups {
    root: PathBuf,
    pub(crate) hierarchy: Hierarchy,
}

impl Cgroups {
    /// The host's tree at [`ROOT`], or why the tier cannot use it.
    pub(crate) fn host() -> Result<Cgroups, String> {
        Cgroups::at(Path::new(ROOT))
    }

    /// The tree mounted at `root`: v2 when `root` is the unified hierarchy (it has
    /// `cgroup.controllers`); v1 when it has the `memory` and `pids` controllers.
    pub(crate) fn at(root: &Path) -> Result<Cgroups, String> {
        let hierarchy = if root.join("cgroup.controllers").is_file() {
            Hierarchy::V2
        } else if root.join("memory").is_dir() && root.join("pids").is_dir() {
            Hierarchy::V1
        } else {
            return Err(format!(
                "{} has neither the cgroup v2 tree nor the v1 memory and pids controllers",
                root.display()
            ));
        };
        Ok(Cgroups {
            root: root.to_path_buf(),
            hierarchy,
        })
    }

    fn parents(&self) -> Vec<PathBuf> {
        match self.hierarchy {
            Hierarchy::V1 => ["memory", "pids"]
                .iter()
                .map(|c| self.root.join(c).join(PARENT))
                .collect(),
            Hierarchy::V2 => vec![self.root.join(PARENT)],
        }
    }

    /// Creates robit's parent cgroups (and on v2 enables the controllers for their
    /// children): the check that this host lets robit manage cgroups at all.
    pub(crate) fn prepare(&self) -> Result<(), String> {
        let fail = |what: &Path, e: io::Error| format!("{}: {e}", what.display());
        if self.hierarchy == Hierarchy::V2 {
            enable_controllers(&self.root).map_err(|e| fail(&self.root, e))?;
        }
        for parent in self.parents() {
            std::fs::create_dir_all(&parent).map_err(|e| fail(&parent, e))?;
            if self.hierarchy == Hierarchy::V2 {
                enable_controllers(&parent).map_err(|e| fail(&parent, e))?;
            }
        }
        Ok(())
    }

    /// The directories of sandbox `id`, created by [`create`](Self::create).
    pub(crate) fn dirs(&self, id: &str) -> Vec<PathBuf> {
        self.parents().into_iter().map(|p| p.join(id)).collect()
    }

    fn memory_dir(&self, id: &str) -> PathBuf {
        match self.hierarchy {
            Hierarchy::V1 => self.root.join("memory").join(PARENT).join(id),
            Hierarchy::V2 => self.root.join(PARENT).join(id),
        }
    }

    fn pids_dir(&self, id: &str) -> PathBuf {
        match self.hierarchy {
            Hierarchy::V1 => self.root.join("pids").join(PARENT).join(id),
            Hierarchy::V2 => self.root.join(PARENT).join(id),
        }
    }

    /// Creates sandbox `id`'s cgroups with `limits` in them; fails if a limit cannot be set.
    pub(crate) fn create(&self, id: &str, limits: CgroupLimits) -> io::Result<()> {
        self.prepare().map_err(io::Error::other)?;
        for dir in self.dirs(id) {
            std::fs::create_dir_all(&dir)?;
        }
        self.set_memory(id, limits.memory_bytes)?;
        write(&self.pids_dir(id).join("pids.max"), limits.pids)?;
        if self.hierarchy == Hierarchy::V2 {
            let cpu = format!("{} {}", limits.cpu_quota_us, limits.cpu_period_us);
            std::fs::write(self.memory_dir(id).join("cpu.max"), cpu)?;
        }
        Ok(())
    }

    /// Sets the memory limit of sandbox `id` (raising or lowering it). Swap is not limited
    /// here: with `memory.memsw.limit_in_bytes` set as well, a memory bomb ended with a bare
    /// SIGKILL that no counter recorded (measured on v1 with runsc 20221219), so it could
    /// not be reported as "out of memory"; v2 leaves `memory.swap.max` alone the same way.
    /// Hosts of this tier should run without swap (docs/gvisor.md).
    pub(crate) fn set_memory(&self, id: &str, bytes: u64) -> io::Result<()> {
        let dir = self.memory_dir(id);
        match self.hierarchy {
            Hierarchy::V1 => write(&dir.join("memory.limit_in_bytes"), bytes),
            Hierarchy::V2 => write(&dir.join("memory.max"), bytes),
        }
    }

    /// Whether sandbox `id` reached its memory limit (read before its cgroup is removed).
    pub(crate) fn memory_hit(&self, id: &str) -> bool {
        let dir = self.memory_dir(id);
        match self.hierarchy {
            Hierarchy::V1 => read(&dir.join("memory.failcnt"))
                .and_then(|t| t.trim().parse::<u64>().ok())
                .is_some_and(|n| n > 0),
            Hierarchy::V2 => read(&dir.join("memory.events"))
                .is_some_and(|t| event_count(&t, "max") > 0 || event_count(&t, "oom_kill") > 0),
        }
    }

    /// Whether sandbox `id` reached its pids limit.
    pub(crate) fn pids_hit(&self, id: &str) -> bool {
        read(&self.pids_dir(id).join("pids.events")).is_some_and(|t| event_count(&t, "max") > 0)
    }
}

/// `<key> <count>` lines, as in `memory.events` and `pids.events`; 0 when absent.
fn event_count(text: &str, key: &str) -> u64 {
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .find(|(k, _)| *k == key)
        .and_then(|(_, n)| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Enables the v2 controllers robit needs for the children of `dir`. Only the missing ones
/// are written: re-enabling is harmless, but a cgroup with processes of its own refuses
/// any change (the "no internal processes" rule), and one that already has them is fine.
fn enable_controllers(dir: &Path) -> io::Result<()> {
    let enabled = std::fs::read_to_string(dir.join("cgroup.subtree_control"))?;
    let missing: Vec<String> = V2_CONTROLLERS
        .iter()
        .filter(|c| !enabled.split_whitespace().any(|e| e == **c))
        .map(|c| format!("+{c}"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    std::fs::write(dir.join("cgroup.subtree_control"), missing.join(" "))
}

fn write(path: &Path, value: u64) -> io::Result<()> {
    std::fs::write(path, value.to_string())
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap()
    }

    const LIMITS: CgroupLimits = CgroupLimits {
        memory_bytes: 700,
        pids: 512,
        cpu_quota_us: 50_000,
        cpu_period_us: 100_000,
    };

    #[test]
    fn a_tree_without_the_controllers_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let err = Cgroups::at(root.path()).unwrap_err();
        assert!(err.contains("neither"), "{err}");
    }

    #[test]
    fn v1_limits_go_into_robits_own_memory_and_pids_cgroups() {
        let root = tempfile::tempdir().unwrap();
        for c in ["memory", "pids", "cpu"] {
            std::fs::create_dir(root.path().join(c)).unwrap();
        }
        let cg = Cgroups::at(root.path()).unwrap();
        assert_eq!(cg.hierarchy, Hierarchy::V1);
        cg.create("s1", LIMITS).unwrap();
        let mem = root.path().join("memory/robit-gvisor/s1");
        assert_eq!(file(&mem.join("memory.limit_in_bytes")), "700");
        assert!(!mem.join("memory.memsw.limit_in_bytes").exists());
        let pids = root.path().join("pids/robit-gvisor/s1");
        assert_eq!(file(&pids.join("pids.max")), "512");
        // runsc sets the cpu cgroup it creates itself.
        assert!(!root.path().join("cpu/robit-gvisor").exists());
        assert_eq!(cg.dirs("s1"), vec![mem.clone(), pids.clone()]);

        cg.set_memory("s1", 300).unwrap();
        assert_eq!(file(&mem.join("memory.limit_in_bytes")), "300");

        assert!(!cg.memory_hit("s1") && !cg.pids_hit("s1"));
        std::fs::write(mem.join("memory.failcnt"), "3\n").unwrap();
        std::fs::write(pids.join("pids.events"), "max 1\n").unwrap();
        assert!(cg.memory_hit("s1") && cg.pids_hit("s1"));
    }

    #[test]
    fn v2_limits_go_into_one_cgroup_with_the_controllers_enabled() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(
            root.path().join("cgroup.controllers"),
            "cpu memory pids io\n",
        )
        .unwrap();
        // The root already delegates memory; cpu and pids are added.
        std::fs::write(root.path().join("cgroup.subtree_control"), "memory\n").unwrap();
        let parent = root.path().join("robit-gvisor");
        std::fs::create_dir(&parent).unwrap();
        std::fs::write(parent.join("cgroup.subtree_control"), "").unwrap();
        let cg = Cgroups::at(root.path()).unwrap();
        assert_eq!(cg.hierarchy, Hierarchy::V2);
        let dir = parent.join("s1");
        cg.create("s1", LIMITS).unwrap();
        assert_eq!(
            file(&root.path().join("cgroup.subtree_control")),
            "+pids +cpu"
        );
        assert_eq!(
            file(&parent.join("cgroup.subtree_control")),
            "+memory +pids +cpu"
        );
        assert_eq!(file(&dir.join("memory.max")), "700");
        assert!(!dir.join("memory.swap.max").exists());
        cg.set_memory("s1", 300).unwrap();
        assert_eq!(file(&dir.join("memory.max")), "300");
        assert_eq!(file(&dir.join("pids.max")), "512");
        assert_eq!(file(&dir.join("cpu.max")), "50000 100000");
        assert_eq!(cg.dirs("s1"), vec![dir.clone()]);

        std::fs::write(
            dir.join("memory.events"),
            "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n",
        )
        .unwrap();
        std::fs::write(dir.join("pids.events"), "max 0\n").unwrap();
        assert!(!cg.memory_hit("s1") && !cg.pids_hit("s1"));
        std::fs::write(
            dir.join("memory.events"),
            "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n",
        )
        .unwrap();
        std::fs::write(dir.join("pids.events"), "max 2\n").unwrap();
        assert!(cg.memory_hit("s1") && cg.pids_hit("s1"));
    }

    #[test]
    fn event_counts() {
        assert_eq!(event_count("max 3\n", "max"), 3);
        assert_eq!(event_count("oom 1\noom_kill 2\n", "oom_kill"), 2);
        assert_eq!(event_count("oom_kill 2\n", "oom"), 0);
        assert_eq!(event_count("", "max"), 0);
    }
}
