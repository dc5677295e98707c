//! [`Sandbox`]: owns the engine, the compiled guests, the sandbox runtime, the
//! concurrency limit and the Python pool, and turns a `run` call into one fresh
//! guest instance.
//!
//! The caller's runtime only awaits a join handle: guests execute on the
//! sandbox's own tokio runtime, so CPU-heavy guests never occupy the workers that
//! serve the chat platforms.

use std::sync::Arc;

use robit_types::Language;
use tempfile::TempDir;
use tokio::runtime::{Handle, Runtime};
use tokio::sync::Semaphore;
use wasmtime::{Engine, InstancePre};

use crate::cache;
use crate::config::{default_concurrency, Limits, SandboxConfig};
use crate::disk::DiskPool;
use crate::engine::{self, Ticker};
use crate::error::{chain, SandboxError};
use crate::files::InputFile;
use crate::guest::{self, GuestStatus};
use crate::instance::{GuestState, Launch, Prepared};
use crate::output::RunOutput;
use crate::pool::{PythonPool, STARTUP_TIMEOUT};
use crate::CodeRunner;

/// The Python guest runs this instead of the user's code directly: it reads a
/// length line, then that many bytes of source from stdin, and executes them in
/// `__main__`'s namespace; the rest of stdin is left for the user's program.
/// This is what lets a pooled interpreter start before its code is known.
///
/// The first `compile` of bytes in a fresh interpreter costs about 5 ms of lazy
/// set-up, so the bootstrap compiles a trivial program before it waits for the
/// code: in a pooled instance that happens ahead of time.
///
/// Tracebacks skip the bootstrap frame and `SystemExit` is mapped to an exit
/// status as CPython does, so the result looks like that of `python -c`. At the
/// end it runs `atexit` handlers, drops the program's globals (closing files it
/// left open) and flushes, then leaves with `os._exit`: full interpreter
/// finalization costs about 7 ms and its effects die with the instance anyway.
const PYTHON_BOOTSTRAP: &str = r#"def _robit_main():
    import sys
    compile(b"pass", "<string>", "exec")
    b = sys.stdin.buffer
    src = b.read(int(b.readline()))
    g = globals()
    del g["_robit_main"]
    status = 0
    try:
        try:
            code = compile(src, "<string>", "exec")
        except SyntaxError as e:
            sys.excepthook(type(e), e.with_traceback(None), None)
            status = 1
        else:
            del b, src
            exec(code, g)
    except SystemExit as e:
        if e.code is None:
            status = 0
        elif isinstance(e.code, int):
            status = e.code
        else:
            print(e.code, file=sys.stderr)
            status = 1
    except BaseException as e:
        e = e.with_traceback(e.__traceback__.tb_next)
        sys.excepthook(type(e), e, e.__traceback__)
        status = 1
    import atexit, os
    atexit._run_exitfuncs()
    g.clear()
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except Exception:
            pass
    os._exit(status)
_robit_main()
"#;

/// `-u`: unbuffered stdout/stderr, so output printed before a timeout or a trap
/// is not lost in CPython's buffers. `-B`: no `.pyc` writes into the scratch dir.
fn python_args() -> Vec<String> {
    ["python", "-u", "-B", "-c", PYTHON_BOOTSTRAP]
        .map(String::from)
        .to_vec()
}

/// Console methods, object formatting and timers for QuickJS; see the file.
const QUICKJS_PRELUDE: &str = include_str!("js/prelude.js");

/// Where the directory holding the prelude appears inside a QuickJS guest.
const QUICKJS_PRELUDE_DIR: &str = "/.robit";

/// The environment Python gets; see the crate docs for why it is empty.
const PYTHON_ENV: &[(&str, &str)] = &[];

fn frame_python(code: &str, stdin: &[u8]) -> Vec<u8> {
    let mut input = format!("{}\n", code.len()).into_bytes();
    input.extend_from_slice(code.as_bytes());
    input.extend_from_slice(stdin);
    input
}

fn js_support_dir() -> Result<TempDir, SandboxError> {
    let dir = tempfile::Builder::new()
        .prefix("robit-js-")
        .tempdir()
        .map_err(SandboxError::Scratch)?;
    std::fs::write(dir.path().join("prelude.js"), QUICKJS_PRELUDE)
        .map_err(SandboxError::Scratch)?;
    Ok(dir)
}

/// Everything a run needs, cheap to clone into a task. It deliberately does not
/// own the runtime, so a task can never end up dropping the runtime it runs on.
#[derive(Clone)]
struct RunCtx {
    handle: Handle,
    engine: Engine,
    python: InstancePre<GuestState>,
    quickjs: InstancePre<GuestState>,
    permits: Arc<Semaphore>,
    pool: Option<Arc<PythonPool>>,
    max_limits: Limits,
    /// Holds the QuickJS prelude; shown read-only to JavaScript guests.
    js_support: Arc<TempDir>,
    /// Bytes held by all live runs' scratch directories, within `disk_total_bytes`.
    disk_pool: Arc<DiskPool>,
    scratch_parent: Option<Arc<std::path::Path>>,
}

impl RunCtx {
    fn spawn_python(&self, startup: Limits) -> Result<Prepared, SandboxError> {
        let args = python_args();
        Prepared::spawn(
            &self.handle,
            &self.engine,
            &self.python,
            Launch {
                language: Language::Python,
                args: &args,
                env: PYTHON_ENV,
                read_only_dir: None,
                startup,
                disk_pool: &self.disk_pool,
                scratch_parent: self.scratch_parent.as_deref(),
            },
        )
    }

    async fn run(
        self,
        language: Language,
        code: String,
        stdin: Vec<u8>,
        files: Vec<InputFile>,
        limits: Limits,
    ) -> Result<RunOutput, SandboxError> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| SandboxError::Internal("sandbox is shutting down".into()))?;
        match language {
            Language::Python => {
                let (warm, _refill) = match self.pool.as_deref() {
                    Some(pool) => {
                        let (warm, refill) = pool.take();
                        (warm, Some(refill))
                    }
                    None => (None, None),
                };
                let instance = match warm {
                    Some(instance) => instance,
                    None => self.spawn_python(limits)?,
                };
                instance
                    .run(frame_python(&code, &stdin), &files, limits, permit)
                    .await
            }
            Language::JavaScript => {
                // `--std` exposes the `std` and `os` modules as globals, which
                // scripts need for reading stdin (`std.in.readAsString()`) and
                // the prelude needs for writing to stderr.
                let prelude = format!("{QUICKJS_PRELUDE_DIR}/prelude.js");
                let args = ["qjs", "--std", "-I", &prelude, "-e", &code].map(String::from);
                let instance = Prepared::spawn(
                    &self.handle,
                    &self.engine,
                    &self.quickjs,
                    Launch {
                        language,
                        args: &args,
                        env: &[],
                        read_only_dir: Some((self.js_support.path(), QUICKJS_PRELUDE_DIR)),
                        startup: limits,
                        disk_pool: &self.disk_pool,
                        scratch_parent: self.scratch_parent.as_deref(),
                    },
                )?;
                instance.run(stdin, &files, limits, permit).await
            }
        }
    }
}

/// Runs untrusted Python and JavaScript in fresh WebAssembly instances.
pub struct Sandbox {
    ctx: RunCtx,
    _runtime: OwnedRuntime,
    _ticker: Ticker,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("max_limits", &self.ctx.max_limits)
            .finish_non_exhaustive()
    }
}

impl Sandbox {
    /// Loads (or compiles and caches) both guests and starts the sandbox runtime,
    /// the epoch ticker and the Python pool refill.
    pub async fn new(config: SandboxConfig) -> Result<Sandbox, SandboxError> {
        let workers = config.max_concurrent.clamp(1, default_concurrency());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name("robit-sandbox")
            .enable_all()
            .build()
            .map_err(SandboxError::Runtime)?;
        let handle = runtime.handle().clone();
        let runtime = OwnedRuntime(Some(runtime));

        let engine = engine::build(&config)?;
        let linker = engine::linker(&engine)?;
        let load = |language: Language| {
            let engine = engine.clone();
            let path = guest::guest_path(&config, language).to_path_buf();
            let cache_dir = config.cache_dir.clone();
            handle.spawn_blocking(move || cache::load(&engine, language, &path, &cache_dir))
        };
        let (python, quickjs) = (load(Language::Python), load(Language::JavaScript));
        let joined = |r: Result<_, tokio::task::JoinError>| {
            r.map_err(|e| SandboxError::Internal(format!("guest loader failed: {e}")))
        };
        let python = joined(python.await)??;
        let quickjs = joined(quickjs.await)??;
        let pre = |language: Language, module: &wasmtime::Module| {
            linker
                .instantiate_pre(module)
                .map_err(|e| SandboxError::Link {
                    language,
                    message: chain(&e),
                })
        };

        let ctx = RunCtx {
            handle: handle.clone(),
            python: pre(Language::Python, &python)?,
            quickjs: pre(Language::JavaScript, &quickjs)?,
            engine: engine.clone(),
            permits: Arc::new(Semaphore::new(config.max_concurrent.max(1))),
            pool: (config.python_pool_size > 0).then(|| PythonPool::new(config.python_pool_size)),
            max_limits: config.max_limits,
            js_support: Arc::new(js_support_dir()?),
            disk_pool: DiskPool::new(config.disk_total_bytes),
            scratch_parent: config.scratch_dir.as_deref().map(Arc::from),
        };
        let ticker = Ticker::start(engine)?;

        if let Some(pool) = ctx.pool.clone() {
            let spawner = ctx.clone();
            // Start-up limits for a pooled interpreter: the real ones are armed
            // when its job arrives.
            let startup = Limits {
                wall_time: STARTUP_TIMEOUT,
                ..config.max_limits
            };
            handle.spawn(pool.refill_forever(move || spawner.spawn_python(startup)));
        }

        Ok(Sandbox {
            ctx,
            _runtime: runtime,
            _ticker: ticker,
        })
    }

    /// Runs `code` with `stdin` in a fresh instance. `limits` are clamped to the
    /// configured maximum. Waits for a free slot when `max_concurrent` runs are
    /// already executing.
    pub async fn run(
        &self,
        language: Language,
        code: &str,
        stdin: &[u8],
        limits: Limits,
    ) -> Result<RunOutput, SandboxError> {
        self.run_with_files(language, code, stdin, Vec::new(), limits)
            .await
    }

    /// [`run`](Sandbox::run) with `files` written into the scratch directory (under
    /// [`safe_name`](crate::safe_name)s) before the code starts.
    pub async fn run_with_files(
        &self,
        language: Language,
        code: &str,
        stdin: &[u8],
        files: Vec<InputFile>,
        limits: Limits,
    ) -> Result<RunOutput, SandboxError> {
        let limits = limits.clamp_to(&self.ctx.max_limits);
        let task = self.ctx.handle.spawn(self.ctx.clone().run(
            language,
            code.to_owned(),
            stdin.to_vec(),
            files,
            limits,
        ));
        // If the caller stops waiting, stop the run too.
        // Aborting a finished task is a no-op, so the guard can simply drop.
        let _abort = AbortOnDrop(task.abort_handle());
        match task.await {
            Ok(output) => output,
            Err(e) => Err(SandboxError::Internal(format!("run task failed: {e}"))),
        }
    }

    /// Waits until the Python pool is full (immediately when there is no pool).
    /// Useful before reporting ready, and for benchmarks of the warm path.
    pub async fn warm_up(&self) {
        if let Some(pool) = &self.ctx.pool {
            pool.wait_full().await;
        }
    }

    /// Bytes all live runs hold in their scratch directories, as counted against
    /// `SandboxConfig::disk_total_bytes`.
    pub fn disk_in_use(&self) -> u64 {
        self.ctx.disk_pool.used()
    }

    /// Whether each guest file is present and has the pinned digest, with a fix
    /// hint otherwise; for `robit doctor`.
    pub fn guest_status(config: &SandboxConfig) -> Vec<GuestStatus> {
        guest::status(config)
    }
}

/// The sandbox's runtime, shut down when dropped: its tasks (guests, the pool) are dropped and
/// its worker threads have stopped by the time the drop returns (waiting at most
/// [`SHUTDOWN_WAIT`]), so nothing of the sandbox is still running when, say, `robit run` exits.
/// The wait happens on a thread of its own: dropping or shutting down a runtime with a wait
/// from inside an async context (a caller's task, an early return from `Sandbox::new`) panics.
struct OwnedRuntime(Option<Runtime>);

/// How long dropping a sandbox waits for its threads.
const SHUTDOWN_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            let stopper = std::thread::Builder::new()
                .name("robit-sandbox-stop".into())
                .spawn(move || rt.shutdown_timeout(SHUTDOWN_WAIT));
            if let Ok(stopper) = stopper {
                let _ = stopper.join();
            }
        }
    }
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[async_trait::async_trait]
impl CodeRunner for Sandbox {
    async fn run(
        &self,
        language: Language,
        code: &str,
        stdin: &[u8],
        limits: Limits,
    ) -> Result<RunOutput, SandboxError> {
        Sandbox::run(self, language, code, stdin, limits).await
    }

    async fn run_with_files(
        &self,
        language: Language,
        code: &str,
        stdin: &[u8],
        files: Vec<InputFile>,
        limits: Limits,
    ) -> Result<RunOutput, SandboxError> {
        Sandbox::run_with_files(self, language, code, stdin, files, limits).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_input_is_length_prefixed_code_then_stdin() {
        assert_eq!(frame_python("print(1)", b"in"), b"8\nprint(1)in".to_vec());
        // The length is in bytes, not characters.
        assert_eq!(frame_python("é", b""), "2\né".as_bytes().to_vec());
    }
}
