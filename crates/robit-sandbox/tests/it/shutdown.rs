//! Dropping a sandbox right after a hostile JavaScript run (out of memory, output flood), as
//! `robit run` does on exit, while the Python pool is still starting: no panic may come out of
//! the sandbox's threads (wasmtime-wasi panics with "child task panicked" when a blocking task
//! it awaits is cancelled under it).

use std::sync::{Arc, Mutex, Once};

use robit_sandbox::{Language, Limits, Outcome, Sandbox, SandboxConfig};

use crate::common::config;

/// Panic messages seen in any thread of this test binary, recorded by a hook installed once
/// (the default hook still prints them).
fn panics() -> Arc<Mutex<Vec<String>>> {
    static INSTALL: Once = Once::new();
    static SEEN: Mutex<Option<Arc<Mutex<Vec<String>>>>> = Mutex::new(None);
    INSTALL.call_once(|| {
        let seen = Arc::new(Mutex::new(Vec::new()));
        *SEEN.lock().unwrap() = Some(seen.clone());
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            seen.lock().unwrap().push(info.to_string());
            default(info);
        }));
    });
    SEEN.lock().unwrap().clone().unwrap()
}

fn sandbox_panics(seen: &Mutex<Vec<String>>) -> Vec<String> {
    seen.lock()
        .unwrap()
        .iter()
        .filter(|m| m.contains("child task panicked"))
        .cloned()
        .collect()
}

async fn run_then_drop(code: &str, wall_ms: u64, want: Outcome) {
    let seen = panics();
    for _ in 0..5 {
        let sandbox = Sandbox::new(SandboxConfig {
            python_pool_size: 2,
            ..config()
        })
        .await
        .unwrap();
        let out = sandbox
            .run(
                Language::JavaScript,
                code,
                b"",
                Limits {
                    wall_time: std::time::Duration::from_millis(wall_ms),
                    memory_bytes: 64 << 20,
                    ..Limits::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(out.outcome, want, "{out:?}");
        // Dropping waits for the sandbox's threads, so their panics (if any) are in by now.
        drop(sandbox);
    }
    assert_eq!(sandbox_panics(&seen), Vec::<String>::new());
}

/// One test for all three cases: the panic record is global to the test binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_sandbox_after_javascript_runs_does_not_panic() {
    // A short run: the Python pool is still starting when the sandbox goes.
    run_then_drop("console.log(1)", 5_000, Outcome::Finished).await;
    run_then_drop(
        "let s = 'x'; for (;;) s = s + s;",
        5_000,
        Outcome::OutOfMemory,
    )
    .await;
    run_then_drop(
        "for (;;) console.log('x'.repeat(1000));",
        100,
        Outcome::TimedOut,
    )
    .await;
}
