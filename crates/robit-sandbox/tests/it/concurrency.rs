//! Many runs at once, cancellation, and clamping of limits.

use std::time::{Duration, Instant};

use robit_sandbox::{CodeRunner, Language, Limits, Outcome, Sandbox, SandboxConfig};

use crate::common::{assert_healthy_on, config, sandbox};

#[tokio::test]
async fn fifty_runs_at_once_all_complete() {
    let sandbox = sandbox().await;
    let handles: Vec<_> = (0..50u32)
        .map(|i| {
            tokio::spawn(async move {
                let (language, code, want) = if i % 5 == 0 {
                    (Language::JavaScript, format!("console.log({i} * 3)"), i * 3)
                } else {
                    (Language::Python, format!("print({i} * 2)"), i * 2)
                };
                let out = sandbox
                    .run(language, &code, b"", Limits::default())
                    .await
                    .unwrap();
                (out, want)
            })
        })
        .collect();
    for h in handles {
        let (out, want) = h.await.unwrap();
        assert_eq!(out.stdout, format!("{want}\n"), "{out:?}");
        assert_eq!(out.outcome, Outcome::Finished);
    }
}

#[tokio::test]
async fn a_dropped_run_frees_its_slot() {
    let sandbox = Sandbox::new(SandboxConfig {
        max_concurrent: 1,
        python_pool_size: 0,
        ..config()
    })
    .await
    .unwrap();
    let abandoned = tokio::time::timeout(
        Duration::from_millis(300),
        sandbox.run(Language::Python, "while True: pass", b"", Limits::default()),
    )
    .await;
    assert!(abandoned.is_err(), "the loop cannot have finished");
    // With one slot, this only runs promptly if the abandoned guest was stopped.
    let started = Instant::now();
    assert_healthy_on(&sandbox).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn limits_are_clamped_to_the_maximum() {
    let mut cfg = config();
    cfg.python_pool_size = 0;
    cfg.max_limits.wall_time = Duration::from_secs(1);
    let sandbox = Sandbox::new(cfg).await.unwrap();
    let asked = Limits {
        wall_time: Duration::from_secs(60),
        ..Limits::default()
    };
    let out = sandbox
        .run(Language::JavaScript, "for (;;) {}", b"", asked)
        .await
        .unwrap();
    assert_eq!(out.outcome, Outcome::TimedOut);
    assert!(out.duration < Duration::from_secs(3), "{:?}", out.duration);
}

#[tokio::test]
async fn sandbox_is_usable_as_a_code_runner() {
    let runner: std::sync::Arc<dyn CodeRunner> = std::sync::Arc::new(
        Sandbox::new(SandboxConfig {
            python_pool_size: 0,
            ..config()
        })
        .await
        .unwrap(),
    );
    let out = runner
        .run(
            Language::Python,
            "print('via trait')",
            b"",
            Limits::default(),
        )
        .await
        .unwrap();
    assert_eq!(out.stdout, "via trait\n");
}
