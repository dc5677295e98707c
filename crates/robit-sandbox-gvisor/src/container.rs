//! One sandbox: a `runsc run` of the rootfs with its own scratch tmpfs, started, made ready
//! (libraries imported), fed one program, and destroyed.
//!
//! A [`Container`] is single-use by construction: [`Container::run`] consumes it, and
//! dropping it (after a run, or when a run is abandoned) destroys the sandbox, unmounts
//! its scratch and removes its directory on a background thread. Nothing here may hand a
//! sandbox to a second program.

use std::io;
use std::os::unix::fs::chown;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use robit_sandbox::{collect_outputs, render_output, write_inputs, InputFile, Limits};
use robit_sandbox::{Outcome, RunOutput, SandboxError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};
use tokio::sync::Notify;

use crate::cgroup::{CgroupLimits, Cgroups};
use crate::config::GvisorConfig;
use crate::spec::{self, GID, UID};

/// What the in-sandbox server writes to stderr once the libraries are imported.
const READY: &[u8] = b"\x00robit-ready\n";
/// Start-up chatter kept to explain a sandbox that never became ready.
const STARTUP_STDERR_MAX: usize = 16 * 1024;
/// A program that writes this much more than its output cap is stopped: reading (and
/// dropping) an endless flood would only burn host CPU until the wall-time limit.
const FLOOD_STOP_BYTES: u64 = 16 * 1024 * 1024;
/// The in-sandbox server; see the file.
const SERVER: &str = include_str!("server.py");

fn internal(what: &str, e: impl std::fmt::Display) -> SandboxError {
    SandboxError::Internal(format!("gvisor: {what}: {e}"))
}

/// Counts sandboxes that exist on the host (started and not yet cleaned up), so tests and
/// shutdown can wait until none is left.
#[derive(Default)]
pub(crate) struct Live {
    count: Mutex<usize>,
    changed: Notify,
}

impl Live {
    fn inc(&self) {
        *self.count.lock().unwrap_or_else(|p| p.into_inner()) += 1;
    }
    fn dec(&self) {
        let mut n = self.count.lock().unwrap_or_else(|p| p.into_inner());
        *n = n.saturating_sub(1);
        self.changed.notify_waiters();
    }
    pub(crate) fn get(&self) -> usize {
        *self.count.lock().unwrap_or_else(|p| p.into_inner())
    }
    /// Waits until at most `n` sandboxes exist.
    pub(crate) async fn wait_at_most(&self, n: usize) {
        loop {
            let changed = self.changed.notified();
            if self.get() <= n {
                return;
            }
            changed.await;
        }
    }
}

/// What every container of one [`GvisorSandbox`](crate::GvisorSandbox) shares.
pub(crate) struct Shared {
    pub(crate) config: GvisorConfig,
    /// `<work_root>/<pid>-<n>`: this instance's directory; `state` (runsc's `--root`) and
    /// one directory per sandbox live in it.
    pub(crate) instance_dir: PathBuf,
    pub(crate) name: String,
    next: AtomicU64,
    pub(crate) live: Arc<Live>,
    /// The host's cgroup tree (v1 or v2), found once at start.
    cgroups: Cgroups,
}

impl Shared {
    pub(crate) fn new(
        config: GvisorConfig,
        instance_dir: PathBuf,
        name: String,
        cgroups: Cgroups,
    ) -> Shared {
        Shared {
            config,
            instance_dir,
            name,
            next: AtomicU64::new(0),
            live: Arc::new(Live::default()),
            cgroups,
        }
    }

    pub(crate) fn state_dir(&self) -> PathBuf {
        self.instance_dir.join("state")
    }

    fn runsc(&self) -> Command {
        let mut cmd = Command::new(&self.config.runsc);
        cmd.arg(format!("--root={}", self.state_dir().display()))
            .arg("--network=none")
            .arg(format!("--platform={}", self.config.platform))
            // runsc gets no environment from robit either (it needs none).
            .env_clear()
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }
}

/// A started sandbox waiting for (or running) its one program.
pub(crate) struct Container {
    shared: Arc<Shared>,
    id: String,
    dir: PathBuf,
    cgroup: String,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    stdout: Option<ChildStdout>,
    stderr: Option<ChildStderr>,
    /// Bytes read from stderr after the ready marker while waiting for it.
    stderr_head: Vec<u8>,
}

impl Container {
    /// Creates the sandbox's directory and scratch mount and starts `runsc run`. The
    /// sandbox is not ready until [`ready`](Container::ready) returns.
    pub(crate) async fn spawn(shared: &Arc<Shared>) -> Result<Container, SandboxError> {
        let n = shared.next.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}-{n}", shared.name);
        let dir = shared.instance_dir.join(&id);
        let scratch = dir.join("work");
        shared.live.inc();
        // From here on, dropping `container` cleans up whatever was created.
        let mut container = Container {
            shared: shared.clone(),
            id: id.clone(),
            dir: dir.clone(),
            cgroup: format!("/robit-gvisor/{id}"),
            child: None,
            stdin: None,
            stdout: None,
            stderr: None,
            stderr_head: Vec::new(),
        };
        let config = &shared.config;
        tokio::fs::create_dir_all(&scratch)
            .await
            .map_err(|e| internal("creating the sandbox directory", e))?;
        // The scratch is a tmpfs of its own: its size is the run's disk quota, and no other
        // run (or the host's disk) is reachable through it.
        let mount = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!(
                "size={},uid={UID},gid={GID},mode=0700,nosuid,nodev",
                config.scratch_bytes
            ))
            .arg("robit-scratch")
            .arg(&scratch)
            .output()
            .await
            .map_err(|e| internal("running mount", e))?;
        if !mount.status.success() {
            return Err(internal(
                "mounting the scratch tmpfs (robit needs root or CAP_SYS_ADMIN for the gvisor tier)",
                String::from_utf8_lossy(&mount.stderr).trim(),
            ));
        }
        let args: Vec<String> = ["/usr/bin/python3", "-I", "-u", "-B", "-c", SERVER]
            .map(String::from)
            .to_vec();
        let max = &config.max_limits;
        let cpu_seconds = (max.wall_time + config.startup_timeout).as_secs() + 1;
        let spec = spec::spec(
            config,
            &args,
            &scratch,
            &container.cgroup,
            max.memory_bytes + config.overhead_bytes,
            cpu_seconds,
        );
        // robit creates (and `destroy` removes) the memory and pids cgroups so their
        // counters outlive the sandbox; runsc writes no limit into a cgroup it did not
        // create, so the limits are written here (see cgroup.rs).
        let limits = CgroupLimits {
            memory_bytes: max.memory_bytes + config.overhead_bytes,
            pids: config.host_pids,
            cpu_quota_us: spec::cpu_quota_us(config),
            cpu_period_us: spec::CPU_PERIOD_US,
        };
        shared
            .cgroups
            .create(&id, limits)
            .map_err(|e| internal("setting up the sandbox's cgroups", e))?;
        tokio::fs::write(dir.join("config.json"), spec.to_string())
            .await
            .map_err(|e| internal("writing config.json", e))?;
        let mut child = shared
            .runsc()
            .arg("run")
            .arg(format!("--bundle={}", dir.display()))
            .arg(&id)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                internal(
                    &format!("starting {}", config.runsc.display()),
                    format!("{e} (install it with scripts/install-runsc)"),
                )
            })?;
        container.stdin = child.stdin.take();
        container.stdout = child.stdout.take();
        container.stderr = child.stderr.take();
        container.child = Some(child);
        Ok(container)
    }

    /// Waits until the server inside has imported the libraries and waits for code.
    pub(crate) async fn ready(&mut self, timeout: Duration) -> Result<(), SandboxError> {
        let stderr = self
            .stderr
            .as_mut()
            .ok_or_else(|| internal("ready", "no stderr"))?;
        let mut seen = Vec::new();
        let wait = async {
            let mut buf = [0u8; 4096];
            loop {
                let n = stderr.read(&mut buf).await?;
                if n == 0 {
                    return Ok::<bool, io::Error>(false);
                }
                seen.extend_from_slice(&buf[..n]);
                if let Some(at) = find(&seen, READY) {
                    self.stderr_head = seen.split_off(at + READY.len());
                    return Ok(true);
                }
                if seen.len() > STARTUP_STDERR_MAX {
                    let cut = seen.len() - STARTUP_STDERR_MAX;
                    seen.drain(..cut);
                }
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) => Err(internal(
                "the sandbox exited during start-up",
                String::from_utf8_lossy(&seen).trim(),
            )),
            Ok(Err(e)) => Err(internal("reading start-up output", e)),
            Err(_) => Err(internal(
                "start-up",
                format!("not ready within {} s", timeout.as_secs()),
            )),
        }
    }

    /// Runs `code` (with `stdin` after it and `files` in the scratch) and destroys the sandbox.
    pub(crate) async fn run(
        mut self,
        code: &str,
        stdin: &[u8],
        files: &[InputFile],
        limits: Limits,
    ) -> Result<RunOutput, SandboxError> {
        let scratch = self.dir.join("work");
        let inputs = {
            let scratch = scratch.clone();
            let files = files.to_vec();
            tokio::task::spawn_blocking(move || -> io::Result<_> {
                let written = write_inputs(&scratch, &files)?;
                // The program runs as `nobody` and may change or delete its inputs.
                for name in written.keys() {
                    chown(scratch.join(name), Some(UID), Some(GID))?;
                }
                Ok(written)
            })
            .await
            .map_err(|e| internal("writing input files", e))?
            .map_err(|e| internal("writing input files", e))?
        };
        // The sandbox was created with the largest memory limit; tighten it to this run's.
        // A run is never given more than its limit, so a failure here ends it.
        self.shared
            .cgroups
            .set_memory(
                &self.id,
                limits.memory_bytes + self.shared.config.overhead_bytes,
            )
            .map_err(|e| internal("setting the run's memory limit", e))?;

        let mut frame = format!("{}\n", code.len()).into_bytes();
        frame.extend_from_slice(code.as_bytes());
        frame.extend_from_slice(stdin);
        let mut pipe = self
            .stdin
            .take()
            .ok_or_else(|| internal("run", "no stdin"))?;
        let (stdout, stderr) = match (self.stdout.take(), self.stderr.take()) {
            (Some(o), Some(e)) => (o, e),
            _ => return Err(internal("run", "no output pipes")),
        };
        let out = Capture::new(limits.output_bytes);
        let err = Capture::new(limits.output_bytes);
        err.push(&std::mem::take(&mut self.stderr_head));
        let flood = Notify::new();
        let start = Instant::now();
        let mut child = self
            .child
            .take()
            .ok_or_else(|| internal("run", "no process"))?;
        let finished = async {
            let feed = async move {
                // A program that never reads its stdin makes this fail (broken pipe); fine.
                let _ = pipe.write_all(&frame).await;
                drop(pipe);
            };
            let ((), (), ()) =
                tokio::join!(feed, pump(stdout, &out, &flood), pump(stderr, &err, &flood));
            child.wait().await
        };
        let ended = tokio::select! {
            status = finished => Ended::Exited(status.map_err(|e| internal("waiting for runsc", e))?),
            () = tokio::time::sleep(limits.wall_time) => Ended::TimedOut,
            () = flood.notified() => Ended::Flooded,
        };
        let duration = start.elapsed();
        // Read the cgroup's verdicts before the sandbox (and its cgroup) is destroyed.
        let oom = self.shared.cgroups.memory_hit(&self.id);
        let pids_hit = self.shared.cgroups.pids_hit(&self.id);
        let (exit_code, outcome) = match ended {
            Ended::TimedOut => (None, Outcome::TimedOut),
            Ended::Flooded => (None, Outcome::OutputTruncated),
            Ended::Exited(status) => {
                let code = status.code();
                let killed = code.is_none_or(|c| c >= 128);
                if killed && oom {
                    (None, Outcome::OutOfMemory)
                } else if pids_hit && code != Some(0) {
                    (
                        None,
                        Outcome::Trapped("the sandbox reached its process limit".into()),
                    )
                } else if out.dropped() + err.dropped() > 0 {
                    (code, Outcome::OutputTruncated)
                } else {
                    (code, Outcome::Finished)
                }
            }
        };
        // Stop the sandbox now: whatever is still running inside must not touch the scratch
        // while it is read back.
        self.kill().await;
        let collected = {
            let limits_copy = limits;
            tokio::task::spawn_blocking(move || collect_outputs(&scratch, &inputs, &limits_copy))
                .await
                .map_err(|e| internal("reading output files", e))?
        };
        Ok(RunOutput {
            stdout: out.render(),
            stderr: err.render(),
            exit_code,
            duration,
            outcome,
            files: collected.files,
            files_left_out: collected.left_out,
        })
    }

    async fn kill(&mut self) {
        let _ = self
            .shared
            .runsc()
            .args(["kill", "--all", &self.id, "KILL"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        // `kill_on_drop` stops `runsc run`; the sandbox itself, its scratch mount and its
        // directory are removed on a thread, so no caller waits for the teardown.
        drop(self.child.take());
        let shared = self.shared.clone();
        let id = std::mem::take(&mut self.id);
        let dir = std::mem::take(&mut self.dir);
        std::thread::spawn(move || {
            destroy(&shared.config.runsc, &shared.state_dir(), &id, &dir);
            shared.live.dec();
        });
    }
}

/// Deletes sandbox `id` (if runsc still knows it), unmounts its scratch and removes `dir`.
pub(crate) fn destroy(runsc: &Path, state: &Path, id: &str, dir: &Path) {
    if !id.is_empty() {
        let _ = std::process::Command::new(runsc)
            .arg(format!("--root={}", state.display()))
            .args(["delete", "--force", id])
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    let scratch = dir.join("work");
    if is_mount_point(&scratch) {
        let ok = std::process::Command::new("umount")
            .arg(&scratch)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Still busy (a gofer on its way out): detach it; the kernel frees it when idle.
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&scratch)
                .stderr(Stdio::null())
                .status();
        }
    }
    if !is_mount_point(&scratch) {
        let _ = std::fs::remove_dir_all(dir);
    }
    if let (false, Ok(cgroups)) = (id.is_empty(), Cgroups::host()) {
        for path in cgroups.dirs(id) {
            // The sandbox's last tasks may take a moment to leave the cgroup.
            for _ in 0..50 {
                match std::fs::remove_dir(&path) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound && path.exists() => {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    _ => break,
                }
            }
        }
    }
}

fn is_mount_point(path: &Path) -> bool {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return false;
    };
    let Some(p) = path.to_str() else {
        return false;
    };
    mounts
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(p))
}

enum Ended {
    Exited(std::process::ExitStatus),
    TimedOut,
    Flooded,
}

/// Keeps the first `cap` bytes of a stream and counts the rest; shared with the reader so
/// what was read survives a timeout that drops the reader.
struct Capture {
    state: Mutex<(Vec<u8>, u64)>,
    cap: usize,
}

impl Capture {
    fn new(cap: usize) -> Capture {
        Capture {
            state: Mutex::new((Vec::new(), 0)),
            cap,
        }
    }

    fn push(&self, bytes: &[u8]) -> u64 {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let room = self.cap.saturating_sub(s.0.len());
        let keep = room.min(bytes.len());
        s.0.extend_from_slice(&bytes[..keep]);
        s.1 += (bytes.len() - keep) as u64;
        s.1
    }

    fn dropped(&self) -> u64 {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).1
    }

    fn render(&self) -> String {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        render_output(s.0.clone(), s.1)
    }
}

async fn pump(mut from: impl AsyncRead + Unpin, into: &Capture, flood: &Notify) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if into.push(&buf[..n]) > FLOOD_STOP_BYTES {
                    flood.notify_one();
                    return;
                }
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_keeps_the_head_and_counts_the_rest() {
        let c = Capture::new(4);
        c.push(b"ab");
        c.push(b"cdef");
        assert_eq!(c.dropped(), 2);
        assert_eq!(c.render(), "abcd\n… [output truncated: 2 more bytes]");
    }

    #[test]
    fn finds_the_ready_marker() {
        assert_eq!(find(b"noise\x00robit-ready\n", READY), Some(5));
        assert_eq!(find(b"noise", READY), None);
    }
}
