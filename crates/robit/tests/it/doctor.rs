//! `robit doctor` says what is wrong and how to fix it.

use crate::support::{robit, text};
use robit_testkit::llm::FakeLlm;

#[tokio::test(flavor = "multi_thread")]
async fn doctor_reports_a_rejected_key_and_a_missing_guest_with_fixes() {
    let dir = tempfile::tempdir().unwrap();
    let llm = FakeLlm::with_api_key("sk-right").await;
    let env = vec![
        (
            "ROBIT_DATABASE__URL",
            format!("sqlite://{}", dir.path().join("robit.db").display()),
        ),
        ("ROBIT_LLM__BASE_URL", llm.base_url()),
        ("ROBIT_LLM__API_KEY", "sk-wrong".to_string()),
        (
            "ROBIT_SANDBOX__PYTHON_WASM",
            "/nonexistent/python.wasm".to_string(),
        ),
    ];
    let d = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || robit(&d, &["doctor"], &env, ""))
        .await
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains("ok    database"), "{stdout}");
    assert!(stdout.contains("FAIL  LLM provider"), "{stdout}");
    assert!(stdout.contains("API key"), "{stdout}");
    assert!(stdout.contains("/nonexistent/python.wasm"), "{stdout}");
    assert!(stdout.contains("fetch-guests"), "{stdout}");
    assert!(
        !stdout.contains("sk-wrong") && !text(&out.stderr).contains("sk-wrong"),
        "the key leaked"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_passes_on_a_good_setup() {
    let dir = tempfile::tempdir().unwrap();
    let llm = FakeLlm::start().await;
    let env = vec![
        (
            "ROBIT_DATABASE__URL",
            format!("sqlite://{}", dir.path().join("robit.db").display()),
        ),
        ("ROBIT_LLM__BASE_URL", llm.base_url()),
        ("ROBIT_SANDBOX__ENABLED", "false".to_string()),
    ];
    let d = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || robit(&d, &["doctor"], &env, ""))
        .await
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("all checks passed"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_never_prints_a_database_password() {
    let dir = tempfile::tempdir().unwrap();
    let llm = FakeLlm::start().await;
    for url in [
        "postgres://robit@127.0.0.1:1/robit?password=hunter2-in-query",
        "postgres://robit:hunter2-in-userinfo@127.0.0.1:1/robit",
    ] {
        let env = vec![
            ("ROBIT_DATABASE__URL", url.to_string()),
            ("ROBIT_LLM__BASE_URL", llm.base_url()),
            ("ROBIT_SANDBOX__ENABLED", "false".to_string()),
        ];
        let d = dir.path().to_path_buf();
        let out = tokio::task::spawn_blocking(move || robit(&d, &["doctor"], &env, ""))
            .await
            .unwrap();
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(
            stdout.contains("FAIL  database postgres://robit"),
            "{stdout}"
        );
        assert!(stdout.contains("***"), "{stdout}");
        assert!(
            !stdout.contains("hunter2") && !stderr.contains("hunter2"),
            "the password leaked: {stdout}\n{stderr}"
        );
    }
}
