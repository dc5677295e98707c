//! `robit chat` and `robit serve` in the terminal.

use crate::support::{robit, text};
use robit_testkit::llm::{FakeLlm, Reply};

#[tokio::test(flavor = "multi_thread")]
async fn chat_streams_a_reply_and_remembers_it_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let llm = FakeLlm::start().await;
    llm.push(Reply::text("Nice to meet you, Ada.").chunk_words(1));
    let env = vec![
        (
            "ROBIT_DATABASE__URL",
            format!("sqlite://{}", dir.path().join("robit.db").display()),
        ),
        ("ROBIT_LLM__BASE_URL", llm.base_url()),
        ("ROBIT_SANDBOX__ENABLED", "false".to_string()),
    ];
    let d = dir.path().to_path_buf();
    let env2 = env.clone();
    let out = tokio::task::spawn_blocking(move || robit(&d, &["chat"], &env2, "my name is Ada\n"))
        .await
        .unwrap();
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("Nice to meet you, Ada."),
        "stdout: {}",
        text(&out.stdout)
    );

    // A new process on the same database continues the conversation.
    let d = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || robit(&d, &["chat"], &env, "what is my name?\n"))
        .await
        .unwrap();
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains("echo: what is my name?"));
    let second = &llm.chat_requests()[1].body["messages"];
    assert_eq!(second[1]["content"], "my name is Ada");
    assert_eq!(second[2]["content"], "Nice to meet you, Ada.");
    assert_eq!(second[3]["content"], "what is my name?");
}

/// Piped (not a terminal), `robit chat` prints each answer once, in full: a streamed answer
/// whose partial text had an open code fence (which the renderer closes, so the final text is
/// no extension of it) used to be printed a second time.
#[tokio::test(flavor = "multi_thread")]
async fn piped_chat_prints_each_answer_once() {
    let dir = tempfile::tempdir().unwrap();
    let llm = FakeLlm::start().await;
    let answer = "Here it is:\n```python\nprint(1)\nprint(2)\n```\nThat prints two lines.";
    llm.push(
        Reply::text(answer)
            .chunk_chars(6)
            .delay(std::time::Duration::from_millis(40)),
    );
    let env = vec![
        (
            "ROBIT_DATABASE__URL",
            format!("sqlite://{}", dir.path().join("robit.db").display()),
        ),
        ("ROBIT_LLM__BASE_URL", llm.base_url()),
        ("ROBIT_SANDBOX__ENABLED", "false".to_string()),
    ];
    let d = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || robit(&d, &["chat"], &env, "show me code\n"))
        .await
        .unwrap();
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.matches("Here it is:").count(), 1, "stdout: {stdout}");
    assert!(stdout.contains(answer), "stdout: {stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_without_platform_credentials_runs_the_console_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let llm = FakeLlm::start().await;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_robit"))
        .arg("serve")
        .current_dir(dir.path())
        .env(
            "ROBIT_DATABASE__URL",
            format!("sqlite://{}", dir.path().join("robit.db").display()),
        )
        .env("ROBIT_LLM__BASE_URL", llm.base_url())
        .env("ROBIT_SANDBOX__ENABLED", "false")
        .env("ROBIT_HTTP__ENABLED", "false")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"hello\n/help\n")
        .unwrap();
    // The input ends, but the service keeps running until it is told to stop.
    for _ in 0..100 {
        if llm.chat_requests().len() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "serve exited on end of input"
    );
    crate::support::sigterm(child.id());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("console adapter"),
        "{}",
        text(&out.stderr)
    );
    let stdout = text(&out.stdout);
    assert!(stdout.contains("echo: hello"), "{stdout}");
    assert!(stdout.contains("/reset"), "help was printed: {stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_without_a_provider_explains_how_to_configure_one() {
    let dir = tempfile::tempdir().unwrap();
    let env = vec![
        (
            "ROBIT_DATABASE__URL",
            format!("sqlite://{}", dir.path().join("robit.db").display()),
        ),
        ("ROBIT_SANDBOX__ENABLED", "false".to_string()),
    ];
    let d = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || robit(&d, &["chat"], &env, "hi\n"))
        .await
        .unwrap();
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("llm.base_url"),
        "{}",
        text(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_config_file_fails_with_the_key_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("robit.toml"),
        "[engine]\nmax_concurrent_turns = -3\n",
    )
    .unwrap();
    let d = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || robit(&d, &["migrate"], &[], ""))
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("max_concurrent_turns"), "{err}");
    assert!(err.contains("robit.toml"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_reports_tokens_by_model_after_a_chat() {
    let dir = tempfile::tempdir().unwrap();
    let llm = FakeLlm::start().await;
    llm.push(Reply::text("counted").usage(123, 45));
    let env = vec![
        (
            "ROBIT_DATABASE__URL",
            format!("sqlite://{}", dir.path().join("robit.db").display()),
        ),
        ("ROBIT_LLM__BASE_URL", llm.base_url()),
        ("ROBIT_LLM__MODEL", "m1".to_string()),
        ("ROBIT_SANDBOX__ENABLED", "false".to_string()),
    ];
    let d = dir.path().to_path_buf();
    let e = env.clone();
    tokio::task::spawn_blocking(move || robit(&d, &["chat"], &e, "hi\n"))
        .await
        .unwrap();
    let d = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || robit(&d, &["usage", "--by", "model"], &env, ""))
        .await
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line = stdout
        .lines()
        .find(|l| l.contains("/m1"))
        .unwrap_or_else(|| panic!("{stdout}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(&cols[1..], ["1", "123", "45"], "{stdout}");
}
