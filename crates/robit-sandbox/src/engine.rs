//! The shared wasmtime `Engine`: its configuration, the epoch ticker thread that
//! drives wall-time limits, and the linker that exposes WASI preview 1.
//!
//! Only WASI is linked: no custom host functions, so a guest can reach nothing
//! the WASI context of its store does not grant. This module must not hold
//! per-run state.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, Linker, PoolingAllocationConfig};

use crate::config::SandboxConfig;
use crate::error::{chain, SandboxError};
use crate::instance::GuestState;

/// How often the engine epoch advances. Each tick is a chance for a running guest
/// to yield its thread and to notice an expired deadline, so this bounds both
/// the overshoot of the wall-time limit and the latency added to other tasks.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Wasm call-stack budget. CPython's eval loop and deep C recursion (repr of
/// nested containers, the compiler) use it; overflowing it is a clean trap.
const MAX_WASM_STACK: usize = 1 << 20;

/// Fiber stack for async calls: the wasm stack plus room for host functions.
const ASYNC_STACK: usize = MAX_WASM_STACK + (1 << 20);

/// Instance slots beyond `max_concurrent + pool`: one for the pool instance
/// being started, and slack. Running instances hold a concurrency permit until
/// their store is dropped, so they never exceed `max_concurrent`.
const SPARE_SLOTS: usize = 2;

/// Builds the engine every guest runs on.
///
/// The pooling allocator pre-reserves one slot per possible live instance, so
/// instantiating is a matter of reusing a slot (with its memory image kept
/// copy-on-write mapped) instead of fresh `mmap`s; its slot count is also a hard
/// cap on live instances, sized from the concurrency and pool settings.
pub(crate) fn build(config: &SandboxConfig) -> Result<Engine, SandboxError> {
    let mut c = Config::new();
    c.epoch_interruption(true);
    c.max_wasm_stack(MAX_WASM_STACK);
    c.async_stack_size(ASYNC_STACK);

    let slots = config.max_concurrent.max(1) + config.python_pool_size + SPARE_SLOTS;
    let slots = u32::try_from(slots).unwrap_or(u32::MAX);
    let max_memory = usize::try_from(config.max_limits.memory_bytes).unwrap_or(usize::MAX);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_core_instances(slots)
        .total_memories(slots)
        .total_tables(slots)
        .total_stacks(slots)
        .total_component_instances(0)
        // A slot must fit the largest memory a guest may grow to; the limiter
        // stops it earlier with a classified out-of-memory outcome.
        .max_memory_size(max_memory.max(64 << 20))
        .table_elements(64 * 1024)
        .max_unused_warm_slots(slots);
    c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));

    Engine::new(&c).map_err(|e| SandboxError::Engine(chain(&e)))
}

/// A linker with WASI preview 1 (async flavour, behind the disk quota of `wasi_quota.rs`)
/// and nothing else.
pub(crate) fn linker(engine: &Engine) -> Result<Linker<GuestState>, SandboxError> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p1::wasi_snapshot_preview1::add_to_linker(&mut linker, |s: &mut GuestState| {
        &mut s.wasi
    })
    .map_err(|e| SandboxError::Engine(chain(&e)))?;
    Ok(linker)
}

/// A thread that advances the engine epoch every [`EPOCH_TICK`] until dropped.
///
/// A plain thread rather than a tokio task: it must keep ticking even when every
/// runtime worker is busy running guests, since the ticks are what make the
/// guests yield.
pub(crate) struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    pub(crate) fn start(engine: Engine) -> Result<Ticker, SandboxError> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("robit-sandbox-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .map_err(SandboxError::Runtime)?;
        Ok(Ticker {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
