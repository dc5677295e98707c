//! Runs untrusted Python and JavaScript for robit inside WebAssembly (wasmtime),
//! with wall-time, memory and output limits, and reports what happened.
//!
//! This crate must not read the environment or the platform configuration (it
//! receives a typed [`SandboxConfig`]), must not link any host function beyond
//! WASI preview 1, and must never let a guest reach the network, the host's
//! environment variables or any host file outside its fresh per-run scratch dir.
//!
//! # Guests
//! `python.wasm` (CPython 3.12 for WASI, standard library embedded in the
//! module) and `quickjs.wasm` (QuickJS-ng), both WASI preview 1 command modules,
//! fetched and verified by `robit guests fetch` or `scripts/fetch-guests`. Python gets no environment
//! variables at all: this build finds its embedded standard library without
//! `PYTHONHOME`. QuickJS runs with `--std` and a small prelude (`src/js/prelude.js`,
//! shown read-only at `/.robit`) that adds `console.error`/`warn`/`info`,
//! Node-like object formatting and `setTimeout`, which QuickJS-ng lacks.
//!
//! # Execution model
//! Guests run as **async** wasmtime calls on a multi-threaded tokio runtime owned
//! by the [`Sandbox`] (as many workers as cores, at most `max_concurrent`), not
//! on the caller's runtime and not on `spawn_blocking`:
//! - A guest parked in a host wait (`time.sleep(3600)`, a read of stdin) is a
//!   pending future, and dropping it ends the guest. A synchronous call would
//!   pin a thread inside the host call, where epoch interruption cannot reach.
//! - A guest burning CPU yields at every epoch tick (5 ms, advanced by a
//!   dedicated ticker thread), so guests share the workers fairly and the
//!   deadline is checked on every tick.
//! - The separate runtime keeps CPU-bound guests off the workers that serve chat
//!   traffic; the caller only awaits a join handle, and dropping the `run`
//!   future aborts the guest.
//!
//! # Limits and outcomes
//! - Wall time, counted from the moment the code is handed over: the epoch
//!   callback traps once the deadline has passed; a host timer backs it up for a
//!   guest parked in a host wait ⇒ [`Outcome::TimedOut`].
//! - Memory: a `ResourceLimiter` traps on growth past the run's limit and
//!   records that it did ⇒ [`Outcome::OutOfMemory`]. (A request larger than a
//!   32-bit guest can express, such as `bytearray(10**10)`, never reaches it:
//!   CPython raises `OverflowError`/`MemoryError` itself, an ordinary exit 1.)
//! - Output: capped pipes keep the first `output_bytes` of stdout and of stderr
//!   and count the rest; the text ends with `… [output truncated: N more bytes]`
//!   ⇒ [`Outcome::OutputTruncated`] when the program otherwise finished. Python
//!   runs unbuffered (`-u`) and the prelude flushes, so output written before a
//!   timeout is kept.
//! - Disk: the scratch directory counts bytes and entries (files, directories, links)
//!   as the guest creates them (`disk.rs`, `wasi_quota.rs`): an operation that would pass
//!   `Limits::disk_bytes` or `disk_files`, or the sandbox-wide `disk_total_bytes` shared by
//!   all runs, is refused before it happens and ends the run ⇒ [`Outcome::DiskLimit`].
//! - Other traps ⇒ [`Outcome::Trapped`]. This QuickJS build has no stack
//!   overflow check and a 64 KiB C stack, so JavaScript recursion deeper than
//!   about 250 calls ends this way.
//! - Concurrency: at most `max_concurrent` live instances. A run holds its
//!   semaphore permit until its store has been torn down, which also keeps the
//!   pooling allocator's fixed number of slots sufficient.
//! - Isolation: every run gets a new store and instance; the only writable
//!   preopen is an empty temporary directory mounted at `/`, deleted after the
//!   run. Network access does not exist in WASI preview 1 and is denied anyway.
//! - Files: [`CodeRunner::run_with_files`] writes the caller's files into that
//!   directory before the code starts; after the run, the regular files the
//!   program left there come back in [`RunOutput::files`] (within
//!   `Limits::max_files` and `max_file_bytes`; see `files.rs`).
//!
//! # Start-up speed
//! - Compiled guests are cached on disk (`cache.rs`), keyed by the guest's
//!   sha256 and wasmtime's engine compatibility hash, so only the first start
//!   of a machine compiles `python.wasm` (about 5 s); later starts load both
//!   guests in about 50 ms.
//! - Imports are resolved once (`InstancePre`), and instances live in the
//!   pooling allocator with copy-on-write memory images. (Measured against the
//!   on-demand allocator the difference is within noise; the pool is kept for
//!   its hard, pre-sized bounds.)
//! - **Python pool.** A cold Python run costs about 45 ms, nearly all of it
//!   interpreter start-up. Python therefore always runs a small bootstrap (`-c`)
//!   that reads a length-prefixed program from stdin and `exec`s it in
//!   `__main__`; stdin after the program is the user's. A pooled instance is
//!   started ahead of time and left parked on that first read: a pending future
//!   holding its store, no thread. A run takes one, arms its limits and feeds it
//!   the code, skipping start-up entirely (about 2 ms for `print(1)`). Each
//!   instance serves one run; the pool is refilled one instance at a time, after
//!   the run that emptied a slot, so the refill does not compete with it. When
//!   the pool is empty a run starts an instance the same way, so pooled and
//!   cold runs behave identically. Two smaller wins measured on the warm path:
//!   the bootstrap compiles a dummy program before parking (the first
//!   `compile()` in an interpreter costs about 5 ms), and it ends with
//!   `os._exit` after running `atexit` handlers and flushing (interpreter
//!   finalization costs about 7 ms and its effects die with the instance).

mod cache;
mod config;
mod disk;
mod engine;
mod error;
mod files;
mod guest;
mod instance;
mod output;
mod pipes;
mod pool;
mod sandbox;
mod tiers;
mod wasi_quota;

pub mod bench;

pub use config::{
    default_concurrency, Limits, SandboxConfig, DEFAULT_DISK_BYTES, DEFAULT_DISK_TOTAL_BYTES,
};
pub use error::SandboxError;
pub use files::{collect_outputs, safe_name, write_inputs, Collected, InputFile};
pub use guest::{
    GuestStatus, GUEST_PACKAGE, GUEST_PACKAGE_VERSION, PYTHON_WASM_SHA256, QUICKJS_WASM_SHA256,
};
pub use output::{render as render_output, Outcome, RunOutput};
pub use robit_types::{Language, Tier};
pub use sandbox::Sandbox;
pub use tiers::Tiers;

/// Runs code for the engine; implemented by [`Sandbox`], held as `Arc<dyn CodeRunner>`
/// so tests can substitute a fake.
#[async_trait::async_trait]
pub trait CodeRunner: Send + Sync {
    async fn run(
        &self,
        language: Language,
        code: &str,
        stdin: &[u8],
        limits: Limits,
    ) -> Result<RunOutput, SandboxError>;

    /// Like [`run`](CodeRunner::run), with `files` placed in the scratch directory first.
    /// A runner without a file system refuses files rather than silently dropping them.
    async fn run_with_files(
        &self,
        language: Language,
        code: &str,
        stdin: &[u8],
        files: Vec<InputFile>,
        limits: Limits,
    ) -> Result<RunOutput, SandboxError> {
        if !files.is_empty() {
            return Err(SandboxError::Internal(
                "this code runner does not take input files".into(),
            ));
        }
        self.run(language, code, stdin, limits).await
    }

    /// The tiers this runner can run code on; a plain runner is one tier, the wasm one.
    fn tiers(&self) -> Vec<Tier> {
        vec![Tier::Wasm]
    }

    /// [`run_with_files`](CodeRunner::run_with_files) on a chosen tier. A runner that does
    /// not have `tier` refuses instead of running the code somewhere weaker or stronger
    /// than asked.
    async fn run_on(
        &self,
        tier: Tier,
        language: Language,
        code: &str,
        stdin: &[u8],
        files: Vec<InputFile>,
        limits: Limits,
    ) -> Result<RunOutput, SandboxError> {
        if self.tiers().contains(&tier) {
            self.run_with_files(language, code, stdin, files, limits)
                .await
        } else {
            Err(SandboxError::TierUnavailable(tier))
        }
    }

    /// Called once when the process stops, after the last run: stops pre-starting and
    /// returns when nothing this runner made on the host is left (a runner whose sandboxes
    /// are host processes and mounts would otherwise leave them behind at exit). Runs
    /// after it may be refused.
    async fn shutdown(&self) {}
}
