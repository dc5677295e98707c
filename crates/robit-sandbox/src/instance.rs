//! One guest instance, from creation to its classified result.
//!
//! [`Prepared::spawn`] builds a fresh store (its own WASI context, scratch
//! directory, pipes and limiter) and starts the guest's `_start` on the sandbox
//! runtime right away; the guest runs until it needs stdin. [`Prepared::run`]
//! then arms the limits, delivers stdin (for Python: the framed user code plus
//! the user's stdin), and waits for the guest to end or for its time to run out.
//! An instance is used for exactly one run and then dropped with its store and
//! scratch directory, so nothing carries over between runs.
//!
//! Nothing here may block a thread: the guest runs as an async wasmtime call
//! that yields on every epoch tick and whenever it waits on a host operation.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use robit_types::Language;
use tempfile::TempDir;
use tokio::runtime::Handle;
use tokio::sync::{oneshot, OwnedSemaphorePermit};
use tokio::task::JoinHandle;
use wasmtime::{Engine, InstancePre, ResourceLimiter, Store, Trap, UpdateDeadline};
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

use crate::config::Limits;
use crate::disk::{DiskDenied, DiskPool, DiskUse};
use crate::error::{chain, SandboxError};
use crate::files::{collect_outputs, write_inputs, InputFile};
use crate::output::{render, Outcome, RunOutput};
use crate::pipes::{CappedPipe, StdinFeed};
use crate::wasi_quota::QuotaWasi;

/// Where the scratch directory appears inside the guest. It is mounted as the
/// root, so relative paths (resolved against the guest's cwd `/`) land in it,
/// and absolute host paths such as `/etc/passwd` simply do not exist.
pub(crate) const GUEST_ROOT: &str = "/";

/// Slack on top of the wall-time limit before the host gives up on the guest
/// task. A guest burning CPU is stopped by the epoch callback at the deadline;
/// this only fires for a guest parked in a host wait (e.g. `time.sleep`).
const HARD_STOP_SLACK: Duration = Duration::from_millis(20);

/// Table elements a guest may grow to; CPython's function table is far smaller.
const MAX_TABLE_ELEMENTS: usize = 64 * 1024;

/// Store data: the WASI context (behind the disk quota) and the limiter.
pub(crate) struct GuestState {
    pub(crate) wasi: QuotaWasi,
    limiter: GuestLimiter,
}

/// Limits and verdicts shared between the host side of a run and the guest's
/// store, so they can be changed after the guest started (a pooled instance gets
/// its real limits only when its job arrives).
struct RunControl {
    base: Instant,
    /// Deadline in nanoseconds after `base`.
    deadline_ns: AtomicU64,
    memory_cap: AtomicU64,
    memory_denied: AtomicBool,
    timed_out: AtomicBool,
}

impl RunControl {
    fn new(deadline: Duration, memory_cap: u64) -> RunControl {
        let control = RunControl {
            base: Instant::now(),
            deadline_ns: AtomicU64::new(0),
            memory_cap: AtomicU64::new(memory_cap),
            memory_denied: AtomicBool::new(false),
            timed_out: AtomicBool::new(false),
        };
        control.set_deadline(Instant::now() + deadline);
        control
    }

    fn set_deadline(&self, at: Instant) {
        let ns = at.saturating_duration_since(self.base).as_nanos();
        self.deadline_ns
            .store(u64::try_from(ns).unwrap_or(u64::MAX), Ordering::SeqCst);
    }

    fn expired(&self) -> bool {
        let now = self.base.elapsed().as_nanos();
        now >= u128::from(self.deadline_ns.load(Ordering::SeqCst))
    }

    /// Called by wasmtime on every epoch tick while the guest runs.
    fn on_tick(&self) -> wasmtime::Result<UpdateDeadline> {
        if self.expired() {
            self.timed_out.store(true, Ordering::SeqCst);
            return Err(wasmtime::Error::new(DeadlineReached));
        }
        // Yield so other guests and tasks on the same worker get their turn.
        Ok(UpdateDeadline::Yield(1))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("wall-time limit reached")]
struct DeadlineReached;

#[derive(Debug, thiserror::Error)]
#[error("memory limit reached")]
struct MemoryLimitReached;

/// Refuses memory growth past the run's cap by trapping, and records that it
/// did, so the run is classified as out of memory even if the trap surfaces
/// through some other error path.
struct GuestLimiter(Arc<RunControl>);

impl ResourceLimiter for GuestLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.0.memory_cap.load(Ordering::SeqCst) {
            self.0.memory_denied.store(true, Ordering::SeqCst);
            // Trapping (rather than failing the grow) ends the run at once with a
            // clear verdict; a failed grow would let CPython limp on with a
            // MemoryError that user code may swallow.
            return Err(wasmtime::Error::new(MemoryLimitReached));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        4
    }

    fn memories(&self) -> usize {
        1
    }
}

/// How the guest task ended, before classification.
enum GuestEnd {
    Instantiate(wasmtime::Error),
    Returned(wasmtime::Result<()>),
}

/// What a guest gets besides its stdin.
pub(crate) struct Launch<'a> {
    pub(crate) language: Language,
    pub(crate) args: &'a [String],
    pub(crate) env: &'a [(&'a str, &'a str)],
    /// A host directory to show read-only at a guest path (QuickJS's prelude).
    pub(crate) read_only_dir: Option<(&'a Path, &'a str)>,
    /// Limits while the guest starts, before [`Prepared::run`] arms the real ones.
    pub(crate) startup: Limits,
    /// The sandbox-wide bound on bytes held by live runs.
    pub(crate) disk_pool: &'a Arc<DiskPool>,
    /// Where the scratch directory is created; `None` is the system's temp dir.
    pub(crate) scratch_parent: Option<&'a Path>,
}

/// A started guest waiting for (or already consuming) its stdin.
pub(crate) struct Prepared {
    language: Language,
    control: Arc<RunControl>,
    stdin: StdinFeed,
    stdout: CappedPipe,
    stderr: CappedPipe,
    task: Option<JoinHandle<()>>,
    ended: oneshot::Receiver<GuestEnd>,
    /// The run's concurrency permit, released by the guest task once its store
    /// is gone, so the limit counts live instances rather than waiting callers.
    permit: Arc<Mutex<Option<OwnedSemaphorePermit>>>,
    /// Deleted on drop, after the run.
    scratch: TempDir,
    /// The run's disk use; declared after `scratch` so that, when this is the last holder,
    /// the bytes go back to the pool only once the directory is gone.
    disk: DiskUse,
}

impl Prepared {
    pub(crate) fn spawn(
        rt: &Handle,
        engine: &Engine,
        pre: &InstancePre<GuestState>,
        launch: Launch<'_>,
    ) -> Result<Prepared, SandboxError> {
        let mut builder = tempfile::Builder::new();
        builder.prefix("robit-run-");
        let scratch = match launch.scratch_parent {
            Some(parent) => builder.tempdir_in(parent),
            None => builder.tempdir(),
        }
        .map_err(SandboxError::Scratch)?;
        let disk = DiskUse::new(
            launch.disk_pool.clone(),
            launch.startup.disk_bytes,
            launch.startup.disk_files,
        );
        let stdin = StdinFeed::new();
        let stdout = CappedPipe::new(launch.startup.output_bytes);
        let stderr = CappedPipe::new(launch.startup.output_bytes);

        // Deny-by-default: no inherited env, args, stdio or network; the only
        // file system is the empty scratch directory.
        let mut wasi = WasiCtxBuilder::new();
        wasi.args(launch.args)
            .stdin(stdin.clone())
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            // File operations run inline on the sandbox's own worker instead of on tokio's
            // blocking pool. The scratch directory is local and the guest is ours to block;
            // and a blocking task cancelled under a guest (the runtime shutting down while a
            // pooled Python starts, as on `robit run`'s exit) makes wasmtime-wasi panic with
            // "child task panicked: JoinError::Cancelled".
            .allow_blocking_current_thread(true);
        for (k, v) in launch.env {
            wasi.env(k, v);
        }
        let preopen_failed =
            |e: wasmtime::Error| SandboxError::Scratch(std::io::Error::other(chain(&e)));
        wasi.preopened_dir(scratch.path(), GUEST_ROOT, FsPerms::ReadWrite)
            .map_err(preopen_failed)?;
        if let Some((host, guest)) = launch.read_only_dir {
            wasi.preopened_dir(host, guest, FsPerms::ReadOnly)
                .map_err(preopen_failed)?;
        }

        let control = Arc::new(RunControl::new(
            launch.startup.wall_time,
            launch.startup.memory_bytes,
        ));
        let mut store = Store::new(
            engine,
            GuestState {
                wasi: QuotaWasi::new(wasi.build_p1(), disk.clone()),
                limiter: GuestLimiter(control.clone()),
            },
        );
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(1);
        let ticks = control.clone();
        store.epoch_deadline_callback(move |_| ticks.on_tick());

        let pre = pre.clone();
        let (report, ended) = oneshot::channel();
        let permit = Arc::new(Mutex::new(None::<OwnedSemaphorePermit>));
        let held = permit.clone();
        let task = rt.spawn(async move {
            let end = match pre.instantiate_async(&mut store).await {
                Err(e) => GuestEnd::Instantiate(e),
                Ok(instance) => match instance.get_typed_func::<(), ()>(&mut store, "_start") {
                    Err(e) => GuestEnd::Instantiate(e),
                    Ok(start) => GuestEnd::Returned(start.call_async(&mut store, ()).await),
                },
            };
            // Report before tearing the store down: returning its memory slot
            // takes milliseconds that the caller need not wait for.
            let _ = report.send(end);
            drop(store);
            // Only now is the instance's slot free for another run.
            drop(held.lock().unwrap_or_else(|p| p.into_inner()).take());
        });

        Ok(Prepared {
            language: launch.language,
            control,
            stdin,
            stdout,
            stderr,
            task: Some(task),
            ended,
            permit,
            scratch,
            disk,
        })
    }

    /// Resolves once the guest is blocked reading stdin, i.e. done starting up.
    /// Errors if the guest ended (or failed to instantiate) before that.
    pub(crate) async fn until_waiting(&mut self) -> Result<(), SandboxError> {
        tokio::select! {
            () = self.stdin.reader_waiting() => Ok(()),
            end = &mut self.ended => {
                let why = match end {
                    Ok(GuestEnd::Instantiate(e)) => chain(&e),
                    Ok(GuestEnd::Returned(Ok(()))) => "exited during start-up".into(),
                    Ok(GuestEnd::Returned(Err(e))) => chain(&e),
                    Err(_) => "guest task ended without a result".into(),
                };
                Err(SandboxError::Instantiate { language: self.language, message: why })
            }
        }
    }

    /// Arms `limits`, hands the guest `input` as its whole stdin, and waits for
    /// the result. Must be awaited on a runtime with a time driver.
    pub(crate) async fn run(
        mut self,
        input: Vec<u8>,
        files: &[InputFile],
        limits: Limits,
        permit: OwnedSemaphorePermit,
    ) -> Result<RunOutput, SandboxError> {
        if self.task.is_none() {
            return Err(SandboxError::Internal("guest task already taken".into()));
        }
        // The guest has not touched its file system yet: it is parked on its first read of
        // stdin (a pooled Python) or has just been started, so the files are there before
        // the program's first line runs.
        let inputs = write_inputs(self.scratch.path(), files).map_err(SandboxError::Scratch)?;
        *self.permit.lock().unwrap_or_else(|p| p.into_inner()) = Some(permit);
        self.stdout.reset(limits.output_bytes);
        self.stderr.reset(limits.output_bytes);
        let started = Instant::now();
        self.control.set_deadline(started + limits.wall_time);
        self.control
            .memory_cap
            .store(limits.memory_bytes, Ordering::SeqCst);
        self.disk.arm(limits.disk_bytes, limits.disk_files);
        self.stdin.deliver(input);

        let hard_stop = tokio::time::sleep(limits.wall_time + HARD_STOP_SLACK);
        let end = tokio::select! {
            end = &mut self.ended => end.ok(),
            () = hard_stop => {
                // Parked in a host wait: dropping the task drops the guest's
                // fiber and its store. Wait for that, so the slot is free when
                // this run's permit is released.
                self.control.timed_out.store(true, Ordering::SeqCst);
                if let Some(task) = self.task.take() {
                    task.abort();
                    let _ = task.await;
                }
                None
            }
        };
        let duration = started.elapsed();
        if end.is_some() {
            // The guest reported; let its task finish tearing the store down in
            // the background instead of aborting it when `self` drops. (Had this
            // future been dropped before, `Drop` would have aborted the guest.)
            drop(self.task.take());
        }

        let (exit_code, outcome) = match end {
            Some(GuestEnd::Returned(result)) => self.classify(result),
            Some(GuestEnd::Instantiate(e)) => {
                if self.control.memory_denied.load(Ordering::SeqCst) {
                    (None, Outcome::OutOfMemory)
                } else if self.disk.denied().is_some() {
                    (None, Outcome::DiskLimit)
                } else {
                    return Err(SandboxError::Instantiate {
                        language: self.language,
                        message: chain(&e),
                    });
                }
            }
            None if self.control.timed_out.load(Ordering::SeqCst) => (None, Outcome::TimedOut),
            // The task ended without reporting: it panicked.
            None => {
                let why = match self.task.take() {
                    Some(task) => match task.await {
                        Err(e) => e.to_string(),
                        Ok(()) => "no result".into(),
                    },
                    None => "no result".into(),
                };
                return Err(SandboxError::Internal(format!(
                    "{} guest task failed: {why}",
                    self.language
                )));
            }
        };

        let (out, out_dropped) = self.stdout.take();
        let (err, err_dropped) = self.stderr.take();
        // The guest has stopped (it reported, or its task was aborted and awaited), so the
        // directory no longer changes under us.
        let collected = collect_outputs(self.scratch.path(), &inputs, &limits);
        let outcome = if outcome == Outcome::Finished && (out_dropped > 0 || err_dropped > 0) {
            Outcome::OutputTruncated
        } else {
            outcome
        };
        Ok(RunOutput {
            stdout: render(out, out_dropped),
            stderr: render(err, err_dropped),
            exit_code,
            duration,
            outcome,
            files: collected.files,
            files_left_out: collected.left_out,
        })
    }

    fn classify(&self, result: wasmtime::Result<()>) -> (Option<i32>, Outcome) {
        let e = match result {
            Ok(()) => return (Some(0), Outcome::Finished),
            Err(e) => e,
        };
        if let Some(exit) = e.downcast_ref::<I32Exit>() {
            return (Some(exit.0), Outcome::Finished);
        }
        if self.control.timed_out.load(Ordering::SeqCst)
            || e.is::<DeadlineReached>()
            || e.downcast_ref::<Trap>() == Some(&Trap::Interrupt)
        {
            return (None, Outcome::TimedOut);
        }
        if self.control.memory_denied.load(Ordering::SeqCst) || e.is::<MemoryLimitReached>() {
            return (None, Outcome::OutOfMemory);
        }
        if self.disk.denied().is_some() || e.is::<DiskDenied>() {
            return (None, Outcome::DiskLimit);
        }
        let why = match e.downcast_ref::<Trap>() {
            // This QuickJS build has no stack-overflow check and a 64 KiB C
            // stack: a few hundred nested calls run off its end and corrupt
            // memory until something traps. That is by far the usual cause.
            Some(trap) if self.language == Language::JavaScript => {
                format!("{trap} (most likely recursion too deep for QuickJS's small stack)")
            }
            Some(trap) => trap.to_string(),
            None => e.root_cause().to_string(),
        };
        (None, Outcome::Trapped(why))
    }
}

impl Drop for Prepared {
    fn drop(&mut self) {
        // An instance dropped unused (pool shutdown, a cancelled run) must not
        // keep running or waiting on the runtime.
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
