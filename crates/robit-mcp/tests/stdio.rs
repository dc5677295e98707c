//! robit-mcp against the fake MCP server over stdio: this test binary starts itself again as
//! the server (`ROBIT_FAKE_MCP_STDIO=1`), so the child process, its pipes and the cleared
//! environment are all real.
//!
//! It runs without libtest (`harness = false`) because libtest writes to stdout, which is the
//! protocol channel of a stdio server; it prints a libtest-style summary itself.

use robit_mcp::{McpTools, ServerConfig, ToolProvider, Transport};
use std::collections::BTreeMap;
use std::time::Duration;

const SERVER_FLAG: &str = "ROBIT_FAKE_MCP_STDIO";

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    if std::env::var_os(SERVER_FLAG).is_some() {
        runtime.block_on(robit_testkit::mcp::serve_stdio(
            tokio::io::BufReader::new(tokio::io::stdin()),
            tokio::io::stdout(),
        ));
        return;
    }
    let tests: [(&str, fn() -> _); 2] = [
        (
            "a_stdio_server_is_started_and_its_tools_run",
            a_stdio_server_is_started_and_its_tools_run,
        ),
        (
            "a_command_that_does_not_exist_is_reported",
            a_command_that_does_not_exist_is_reported,
        ),
    ];
    let mut failed = 0;
    for (name, test) in tests {
        let result = std::panic::catch_unwind(|| runtime.block_on(test()));
        println!(
            "test {name} ... {}",
            if result.is_ok() { "ok" } else { "FAILED" }
        );
        failed += usize::from(result.is_err());
    }
    println!("{} passed, {failed} failed", tests.len() - failed);
    if failed > 0 {
        std::process::exit(1);
    }
}

fn stdio(command: String, env: BTreeMap<String, String>) -> ServerConfig {
    ServerConfig {
        name: "local".into(),
        transport: Transport::Stdio {
            command,
            args: Vec::new(),
            env,
        },
        allow_tools: vec!["add".into(), "lookup".into()],
        timeout: Duration::from_secs(10),
    }
}

fn a_stdio_server_is_started_and_its_tools_run(
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> {
    Box::pin(async {
        let me = std::env::current_exe().unwrap().display().to_string();
        let env = BTreeMap::from([(SERVER_FLAG.to_string(), "1".to_string())]);
        let tools = McpTools::connect(vec![stdio(me, env)]).await;
        assert_eq!(
            tools.status()[0].result.as_ref().ok(),
            Some(&5),
            "{:?}",
            tools.status()
        );
        let out = tools
            .call("local__add", r#"{"a":20,"b":22}"#)
            .await
            .unwrap();
        assert_eq!(out.text, "42");
        let out = tools
            .call("local__lookup", r#"{"key":"mcp"}"#)
            .await
            .unwrap();
        assert_eq!(out.text, "the Model Context Protocol");
        assert!(tools.call("local__explode", "{}").await.is_err());
    })
}

fn a_command_that_does_not_exist_is_reported(
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> {
    Box::pin(async {
        let tools = McpTools::connect(vec![stdio(
            "/nonexistent/mcp-server".into(),
            BTreeMap::new(),
        )])
        .await;
        let err = tools.status()[0].result.as_ref().unwrap_err().to_string();
        assert!(err.contains("could not start"), "{err}");
        assert!(tools.tools().is_empty());
    })
}
