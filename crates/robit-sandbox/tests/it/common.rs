//! Shared fixtures: locating the guests, one shared `Sandbox` for the whole
//! test binary, and small helpers for running code and checking health.

use std::path::PathBuf;
use std::time::Duration;

use robit_sandbox::{Language, Limits, Outcome, RunOutput, Sandbox, SandboxConfig};
use tokio::sync::OnceCell;

/// Short wall-time limit for the tests that are meant to time out.
pub const SHORT_WALL: Duration = Duration::from_secs(2);

pub fn guests_dir() -> PathBuf {
    let dir = std::env::var_os("ROBIT_GUESTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/guests"))
        });
    for guest in ["python.wasm", "quickjs.wasm"] {
        assert!(
            dir.join(guest).is_file(),
            "guest {guest} not found in {}: run scripts/fetch-guests (or set ROBIT_GUESTS_DIR)",
            dir.display()
        );
    }
    dir
}

/// A compile cache shared by all test runs, so only the first run compiles.
pub fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("robit-sandbox-cache")
}

pub fn config() -> SandboxConfig {
    SandboxConfig::new(guests_dir(), cache_dir())
}

static SHARED: OnceCell<Sandbox> = OnceCell::const_new();

/// The sandbox most tests share: default limits, a Python pool of 2.
pub async fn sandbox() -> &'static Sandbox {
    SHARED
        .get_or_init(|| async { Sandbox::new(config()).await.expect("sandbox starts") })
        .await
}

pub async fn run(language: Language, code: &str) -> RunOutput {
    run_with(language, code, b"", Limits::default()).await
}

pub async fn run_with(language: Language, code: &str, stdin: &[u8], limits: Limits) -> RunOutput {
    sandbox()
        .await
        .run(language, code, stdin, limits)
        .await
        .expect("run completes without a sandbox error")
}

pub async fn py(code: &str) -> RunOutput {
    run(Language::Python, code).await
}

pub async fn js(code: &str) -> RunOutput {
    run(Language::JavaScript, code).await
}

pub fn short() -> Limits {
    Limits {
        wall_time: SHORT_WALL,
        ..Limits::default()
    }
}

/// A normal program still runs correctly on `sandbox` after whatever came before.
pub async fn assert_healthy_on(sandbox: &Sandbox) {
    for (language, code) in [
        (Language::Python, "print('ok')"),
        (Language::JavaScript, "console.log('ok')"),
    ] {
        let out = sandbox
            .run(language, code, b"", Limits::default())
            .await
            .expect("healthy run");
        assert_eq!(
            out.stdout, "ok\n",
            "{language} after the previous case: {out:?}"
        );
        assert_eq!(out.outcome, Outcome::Finished);
    }
}

pub async fn assert_healthy() {
    assert_healthy_on(sandbox().await).await;
}
