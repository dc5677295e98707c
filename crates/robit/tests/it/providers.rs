//! Provider configuration end to end: Anthropic, fallbacks between providers, retries.

use crate::support::{robit, text};
use robit_testkit::llm::{FakeAnthropic, FakeLlm, Reply};

fn run(
    dir: &std::path::Path,
    args: &'static [&'static str],
    env: Vec<(&'static str, String)>,
    input: &'static str,
) -> std::process::Output {
    let d = dir.to_path_buf();
    std::thread::spawn(move || robit(&d, args, &env, input))
        .join()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_named_anthropic_provider_answers_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let claude = FakeAnthropic::with_api_key("sk-ant").await;
    claude.push(Reply::text("Hello from Claude.").chunk_words(1));
    std::fs::write(
        dir.path().join("robit.toml"),
        format!(
            "[llm]\nmodel = \"claude-x\"\nprobe_local = false\n[llm.providers.claude]\nkind = \"anthropic\"\nbase_url = \"{}\"\nmodels = [\"claude-x\"]\n[sandbox]\nenabled = false\n",
            claude.base_url()
        ),
    )
    .unwrap();
    let env = vec![
        (
            "ROBIT_DATABASE__URL",
            format!("sqlite://{}", dir.path().join("r.db").display()),
        ),
        (
            "ROBIT_LLM__PROVIDERS__CLAUDE__API_KEY",
            "sk-ant".to_string(),
        ),
    ];
    let out = run(dir.path(), &["chat"], env, "hi claude\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("Hello from Claude."),
        "{}",
        text(&out.stdout)
    );
    let req = &claude.message_requests()[0];
    assert_eq!(req.body["model"], "claude-x");
    assert_eq!(req.body["messages"][0]["content"][0]["text"], "hi claude");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_primary_moves_the_turn_to_the_fallback_and_usage_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let primary = FakeLlm::start().await;
    primary.set_default(Reply::status(503).message("primary down"));
    let backup = FakeAnthropic::start().await;
    backup.push(Reply::text("Answered by the backup.").usage(11, 4));
    std::fs::write(
        dir.path().join("robit.toml"),
        format!(
            "[llm]\nmodel = \"smart\"\nmax_attempts = 1\nprobe_local = false\n\
             [llm.providers.primary]\nkind = \"openai\"\nbase_url = \"{}\"\nmodels = [\"m1\"]\n\
             [llm.providers.backup]\nkind = \"anthropic\"\nbase_url = \"{}\"\nmodels = [\"claude-x\"]\n\
             [llm.fallbacks]\nsmart = [\"primary:m1\", \"backup:claude-x\"]\n[sandbox]\nenabled = false\n",
            primary.base_url(),
            backup.base_url()
        ),
    )
    .unwrap();
    let env = vec![(
        "ROBIT_DATABASE__URL",
        format!("sqlite://{}", dir.path().join("r.db").display()),
    )];
    let out = run(dir.path(), &["chat"], env.clone(), "hello\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("Answered by the backup."),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(
        primary.chat_requests().len(),
        1,
        "the primary was tried first"
    );
    assert_eq!(primary.chat_requests()[0].body["model"], "m1");

    let out = run(dir.path(), &["usage", "--by", "model"], env, "");
    let stdout = text(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("backup/claude-x"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert_eq!(
        line.split_whitespace().collect::<Vec<_>>()[1..],
        ["1", "11", "4"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rate_limited_request_is_retried_before_the_first_token() {
    let dir = tempfile::tempdir().unwrap();
    let llm = FakeLlm::start().await;
    llm.push(Reply::status(429).retry_after(0));
    llm.push(Reply::text("after the retry"));
    let env = vec![
        (
            "ROBIT_DATABASE__URL",
            format!("sqlite://{}", dir.path().join("r.db").display()),
        ),
        ("ROBIT_LLM__BASE_URL", llm.base_url()),
        ("ROBIT_SANDBOX__ENABLED", "false".to_string()),
    ];
    let out = run(dir.path(), &["chat"], env, "hi\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("after the retry"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(llm.chat_requests().len(), 2);
}
