//! MCP servers configured in `robit.toml`: `robit chat` offers their tools and shows a call,
//! and `robit doctor` reports each server. The fake MCP server runs on loopback.

use crate::support::{free_port, robit, text};
use robit_testkit::llm::{FakeLlm, Reply};
use robit_testkit::mcp::FakeMcp;

/// A robit.toml with a working server (`calc`, only `add` allowed) and one nobody answers.
fn write_config(dir: &std::path::Path, mcp: &FakeMcp) {
    let config = format!(
        "[mcp.servers.calc]\nurl = \"{}\"\nallow_tools = [\"add\"]\ntimeout_secs = 5\n\n\
         [mcp.servers.gone]\nurl = \"http://127.0.0.1:{}/mcp\"\ntimeout_secs = 2\n",
        mcp.url(),
        free_port()
    );
    std::fs::write(dir.join("robit.toml"), config).unwrap();
}

fn env(dir: &std::path::Path, llm: &FakeLlm) -> Vec<(&'static str, String)> {
    vec![
        (
            "ROBIT_DATABASE__URL",
            format!("sqlite://{}", dir.join("robit.db").display()),
        ),
        ("ROBIT_LLM__BASE_URL", llm.base_url()),
        ("ROBIT_SANDBOX__ENABLED", "false".to_string()),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_offers_configured_mcp_tools_and_shows_the_call() {
    let dir = tempfile::tempdir().unwrap();
    let llm = FakeLlm::start().await;
    let mcp = FakeMcp::start(None).await;
    write_config(dir.path(), &mcp);
    llm.push(Reply::tool_call("calc__add", r#"{"a":20,"b":22}"#));
    llm.push(Reply::text("The answer is 42."));
    let (d, e) = (dir.path().to_path_buf(), env(dir.path(), &llm));
    let out = tokio::task::spawn_blocking(move || robit(&d, &["chat"], &e, "20+22?\n"))
        .await
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert!(
        stdout.contains(r#"🔧 `calc__add` `{"a":20,"b":22}` → `42`"#),
        "{stdout}"
    );
    assert!(stdout.contains("The answer is 42."), "{stdout}");
    assert_eq!(mcp.calls()[0].name, "add");
    let second = &llm.chat_requests()[1].body["messages"];
    let last = &second[second.as_array().unwrap().len() - 1];
    assert_eq!(last["role"], "tool");
    assert_eq!(last["content"], "42");
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_reports_each_mcp_server() {
    let dir = tempfile::tempdir().unwrap();
    let llm = FakeLlm::start().await;
    let mcp = FakeMcp::start(None).await;
    write_config(dir.path(), &mcp);
    let (d, e) = (dir.path().to_path_buf(), env(dir.path(), &llm));
    let out = tokio::task::spawn_blocking(move || robit(&d, &["doctor"], &e, ""))
        .await
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(!out.status.success(), "the unreachable server is a problem");
    assert!(
        stdout.contains("ok    MCP server calc: 5 tools, 1 on its allow-list"),
        "{stdout}"
    );
    assert!(stdout.contains("FAIL  MCP server gone"), "{stdout}");
    assert!(stdout.contains("mcp.servers.gone"), "{stdout}");
}
