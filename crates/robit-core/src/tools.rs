//! Tools from MCP servers in a chat turn: which ones the model is offered, running a call
//! through the [`ToolProvider`] port, the compact line the thread shows for it, and the text
//! fed back to the model.
//!
//! It must not name an MCP SDK type (the port hides them) and must not end a turn: a refused,
//! failing or timed-out call becomes a result the model reads and a line the user sees.

use crate::reply::say;
use crate::engine::Inner;
use crate::metrics as m;
use robit_llm::{ToolCall, ToolSpec};
use robit_mcp::{ServerFilter, ToolError, ToolProvider};
use robit_types::ReplySink;
use std::sync::Arc;

/// Most characters of a tool's result fed back to the model.
const RESULT_MAX: usize = 8_000;
/// Most characters of arguments and of the result shown in the thread's one-line summary.
const SHOWN_MAX: usize = 160;

/// The tools of the enabled servers, as the model is offered them.
pub(crate) fn specs(tools: &dyn ToolProvider, filter: &ServerFilter) -> Vec<ToolSpec> {
    tools
        .tools()
        .into_iter()
        .filter(|t| filter.allows(&t.server))
        .map(|t| ToolSpec {
            name: t.name,
            description: if t.allowed {
                t.description
            } else {
                // Saying so up front spares a round trip to learn it.
                format!(
                    "{} (Needs an admin's approval: calling it will be refused.)",
                    t.description
                )
            },
            parameters: t.parameters,
        })
        .collect()
}

/// Runs `call` if it names a tool of an enabled server; `None` when it is not an MCP tool.
/// Shows one compact line in the thread and returns the text for the model.
pub(crate) async fn run(
    inner: &Arc<Inner>,
    sink: &Arc<dyn ReplySink>,
    call: &ToolCall,
    filter: &ServerFilter,
) -> Option<String> {
    let tools = inner.tools.as_ref()?;
    let def = tools.tools().into_iter().find(|t| t.name == call.name)?;
    let shown_call = format!("`{}` {}", call.name, inline_code(&call.arguments));
    if !filter.allows(&def.server) {
        say(
            sink,
            &format!(
                "🚫 {shown_call}: the MCP server `{}` is not enabled here",
                def.server
            ),
        )
        .await;
        record(&def.server, "disabled");
        return Some(format!(
            "error: the MCP server `{}` is not enabled in this channel",
            def.server
        ));
    }
    let _ = sink.typing().await;
    let result = tools.call(&call.name, &call.arguments).await;
    let (line, for_model, outcome) = match result {
        Ok(out) if out.is_error => (
            format!("⚠️ {shown_call} → tool error: {}", inline_code(&out.text)),
            format!(
                "error (reported by the tool): {}",
                cut(&out.text, RESULT_MAX)
            ),
            "tool_error",
        ),
        Ok(out) => (
            format!("🔧 {shown_call} → {}", inline_code(&out.text)),
            cut(&out.text, RESULT_MAX),
            "ok",
        ),
        Err(e @ ToolError::NeedsApproval { .. }) => (
            format!("🔒 {shown_call} was not run: it needs an admin's approval"),
            format!(
                "error: {e}. It was not run; tell the user an admin has to add it to the \
                 server's allow_tools"
            ),
            "needs_approval",
        ),
        Err(e @ ToolError::Timeout { .. }) => (
            format!("⏱️ {shown_call} timed out: {e}"),
            format!("error: {e}; the call was cancelled"),
            "timeout",
        ),
        Err(e) => (
            format!("⚠️ {shown_call} failed: {e}"),
            format!("error: {e}"),
            "error",
        ),
    };
    tracing::info!(tool = %call.name, server = %def.server, outcome, "MCP tool call");
    record(&def.server, outcome);
    say(sink, &line).await;
    Some(for_model)
}

fn record(server: &str, outcome: &'static str) {
    metrics::counter!(m::MCP_TOOL_CALLS, "server" => server.to_string(), "outcome" => outcome)
        .increment(1);
}

/// `text` on one line, cut to [`SHOWN_MAX`] characters, as inline code that cannot be closed
/// early by a backtick inside it.
fn inline_code(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.is_empty() {
        return "(empty)".to_string();
    }
    let short = cut(&one_line, SHOWN_MAX);
    // A double-backtick span with padding holds single backticks; runs of two become `'`.
    let safe = short.replace("``", "`'");
    if safe.contains('`') {
        format!("`` {safe} ``")
    } else {
        format!("`{safe}`")
    }
}

/// The first `max` characters, with `…` when something was cut.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut s: String = text.chars().take(max).collect();
    s.push('…');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_code_is_one_short_line() {
        assert_eq!(
            inline_code("{\"a\": 1,\n \"b\": 2}"),
            "`{\"a\": 1, \"b\": 2}`"
        );
        assert_eq!(inline_code(""), "(empty)");
        let long = inline_code(&"x".repeat(500));
        assert!(long.chars().count() <= SHOWN_MAX + 3, "{long}");
        assert!(long.ends_with("…`"));
    }

    #[test]
    fn backticks_cannot_close_the_span() {
        assert_eq!(inline_code("a`b"), "`` a`b ``");
        assert_eq!(inline_code("a```b"), "`` a`'`b ``");
    }

    struct Two;

    #[async_trait::async_trait]
    impl ToolProvider for Two {
        fn tools(&self) -> Vec<robit_mcp::ToolDef> {
            ["a", "b"]
                .iter()
                .map(|server| robit_mcp::ToolDef {
                    name: format!("{server}__t"),
                    server: server.to_string(),
                    tool: "t".into(),
                    description: "does t".into(),
                    parameters: serde_json::json!({"type": "object"}),
                    allowed: *server == "a",
                })
                .collect()
        }
        async fn call(&self, _: &str, _: &str) -> Result<robit_mcp::ToolOutput, ToolError> {
            unreachable!()
        }
    }

    #[test]
    fn the_filter_picks_servers_and_unapproved_tools_say_so() {
        let all = specs(&Two, &ServerFilter::All);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].description, "does t");
        assert!(all[1].description.contains("Needs an admin's approval"));
        let only_b = specs(&Two, &ServerFilter::Only(["b".to_string()].into()));
        assert_eq!(only_b.len(), 1);
        assert_eq!(only_b[0].name, "b__t");
    }

    #[test]
    fn cut_marks_what_it_dropped() {
        assert_eq!(cut("abc", 3), "abc");
        assert_eq!(cut("abcd", 3), "abc…");
    }
}
