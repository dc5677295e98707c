//! Setting up: missing guests, guest status for `robit doctor`, the compile cache.

use std::time::Duration;

use robit_sandbox::{Language, Limits, Sandbox, SandboxConfig, SandboxError};

use crate::common::{config, guests_dir};

#[tokio::test]
async fn missing_guest_fails_with_a_fetch_hint() {
    let empty = tempfile::tempdir().unwrap();
    let err = Sandbox::new(SandboxConfig::new(empty.path(), empty.path().join("cache")))
        .await
        .unwrap_err();
    assert!(matches!(err, SandboxError::GuestMissing { .. }), "{err:?}");
    assert!(err.to_string().contains("scripts/fetch-guests"), "{err}");
}

#[test]
fn guest_status_reports_verified_guests() {
    let status = Sandbox::guest_status(&config());
    assert_eq!(status.len(), 2);
    for s in status {
        assert!(s.present && s.sha256_ok, "{s:?}");
        assert!(s.hint.is_none());
    }
}

#[tokio::test]
async fn compile_cache_is_written_and_reused() {
    let cache = tempfile::tempdir().unwrap();
    let cfg = SandboxConfig {
        python_pool_size: 0,
        ..SandboxConfig::new(guests_dir(), cache.path())
    };
    drop(Sandbox::new(cfg.clone()).await.unwrap());
    let mut entries: Vec<_> = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    entries.sort();
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert!(entries[0].starts_with("javascript-") && entries[0].ends_with(".cwasm"));
    assert!(entries[1].starts_with("python-") && entries[1].ends_with(".cwasm"));

    // A second start loads instead of compiling: well under the compile time.
    let started = std::time::Instant::now();
    let sandbox = Sandbox::new(cfg).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let out = sandbox
        .run(Language::Python, "print('cached')", b"", Limits::default())
        .await
        .unwrap();
    assert_eq!(out.stdout, "cached\n");
}

#[tokio::test]
async fn corrupt_cache_entry_is_replaced() {
    let cache = tempfile::tempdir().unwrap();
    // Seed the cache from the shared one, then corrupt the JavaScript entry.
    let cfg = SandboxConfig {
        python_pool_size: 0,
        ..SandboxConfig::new(guests_dir(), cache.path())
    };
    for entry in std::fs::read_dir(crate::common::cache_dir())
        .into_iter()
        .flatten()
    {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), cache.path().join(entry.file_name())).unwrap();
    }
    drop(Sandbox::new(cfg.clone()).await.unwrap());
    let js_entry = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("javascript-")
        })
        .unwrap();
    std::fs::write(&js_entry, b"garbage").unwrap();
    let sandbox = Sandbox::new(cfg).await.unwrap();
    let out = sandbox
        .run(
            Language::JavaScript,
            "console.log('recompiled')",
            b"",
            Limits::default(),
        )
        .await
        .unwrap();
    assert_eq!(out.stdout, "recompiled\n");
    assert!(std::fs::metadata(&js_entry).unwrap().len() > 1000);
}
