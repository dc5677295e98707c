//! Runs untrusted Python and JavaScript for robit inside WebAssembly (wasmtime),
//! with wall-time, memory and output limits, and returns what happened.
//!
//! This crate must not read the environment or the platform configuration (it
//! receives a typed [`SandboxConfig`]), must not link any host function beyond
//! WASI preview 1, and must never let a guest reach the network, the host's
//! environment variables or any host file outside a fresh per-run scratch dir.
//!
//! # Guests
//! `python.wasm` (CPython 3.12 WASI, standard library embedded in the module)
//! and `quickjs.wasm` (QuickJS-ng), both WASI preview 1 command modules, fetched
//! and verified by `scripts/fetch-guests`. Python gets no environment variables
//! at all: the all-in-one build finds its embedded standard library without
//! `PYTHONHOME`.
//!
//! # Execution model
//! Guests run as **async** wasmtime calls on a tokio runtime owned by the
//! [`Sandbox`], not on the caller's runtime and not on `spawn_blocking`:
//! - A guest parked in a host wait (`time.sleep(3600)`, a read of stdin) is just
//!   a pending future, and dropping it ends the guest. With synchronous calls the
//!   thread would be stuck inside the host call until it returned, which epoch
//!   interruption cannot cut short.
//! - A guest burning CPU yields at every epoch tick ([`EPOCH_TICK`](engine),
//!   5 ms, driven by a dedicated ticker thread), so many guests share few threads
//!   and the deadline is checked on each tick.
//! - The separate runtime keeps CPU-bound guests off the workers that serve chat
//!   traffic; the caller only awaits a join handle.
//!
//! # Limits and outcomes
//! - Wall time: checked by the epoch callback on each tick (a trap), backed by a
//!   host timer that drops the guest if it is parked in a host wait.
//!   ⇒ [`Outcome::TimedOut`].
//! - Memory: a `ResourceLimiter` traps on growth past the run's limit and
//!   records that it did ⇒ [`Outcome::OutOfMemory`]. A request larger than the
//!   32-bit guest can even express (`bytearray(10**10)`) never reaches the
//!   limiter: CPython raises `MemoryError` itself, which is an ordinary exit 1.
//! - Output: capped pipes keep the first `output_bytes` of stdout and of stderr
//!   and count the rest; the text ends with `… [output truncated: N more bytes]`
//!   ⇒ [`Outcome::OutputTruncated`] when the program otherwise finished.
//! - Concurrency: a semaphore of `max_concurrent` runs; more runs wait.
//! - Isolation: every run gets a new store and instance; the only preopen is an
//!   empty temporary directory mounted at `/`, deleted after the run.
//!
//! # Start-up speed
//! - Compiled guests are cached on disk ([`cache`]), keyed by the guest's sha256
//!   and wasmtime's engine compatibility hash, so only the first start of a
//!   machine compiles `python.wasm` (about 5 s).
//! - Imports are resolved once (`InstancePre`); the pooling allocator reuses
//!   instance slots whose memory images stay mapped copy-on-write.
//! - **Python pool.** Most of a short Python run is interpreter start-up. Python
//!   always runs a small bootstrap (`-c`) that reads a length-prefixed program
//!   from stdin and `exec`s it as `__main__`; stdin after the program is the
//!   user's. A pooled instance is started ahead of time and left parked on that
//!   first read (a pending future, holding no thread). A run takes one, arms its
//!   limits, and feeds it the code: start-up is already done. Each instance is
//!   used once; a background task refills the pool. When the pool is empty a run
//!   starts a fresh instance the same way, so pooled and cold runs behave
//!   identically.

mod cache;
mod config;
mod engine;
mod error;
mod guest;
mod instance;
mod output;
mod pipes;
mod pool;
mod sandbox;

pub mod bench;

pub use config::{default_concurrency, Limits, SandboxConfig};
pub use error::SandboxError;
pub use guest::{GuestStatus, PYTHON_WASM_SHA256, QUICKJS_WASM_SHA256};
pub use output::{Outcome, RunOutput};
pub use robit_types::Language;
pub use sandbox::Sandbox;

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
}
