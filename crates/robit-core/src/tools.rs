//! The tools of a chat turn, and the one place a tool call is dispatched: the `run_code`
//! tool (its description, which tells the model when to pick the gVisor tier, and its
//! arguments; the run itself is `code_run.rs`'s) and the tools of MCP servers (which ones the
//! model is offered, running a call through the [`ToolProvider`] port, the compact line the
//! thread shows for it, and the text fed back to the model).
//!
//! It must not name an MCP SDK type (the port hides them) and must not end a turn: a refused,
//! failing or timed-out call becomes a result the model reads and a line the user sees.

use crate::code_run::{self, Program};
use crate::config::EngineConfig;
use crate::metrics as m;
use crate::reply::say;
use crate::settings::Effective;
use crate::tiers;
use robit_llm::{ToolCall, ToolSpec};
use robit_mcp::{ServerFilter, ToolError, ToolProvider};
use robit_sandbox::CodeRunner;
use robit_types::{Language, ReplySink, Tier};
use std::sync::Arc;
use tracing::Instrument;

/// The name of the sandbox tool the model is offered.
pub(crate) const RUN_CODE_TOOL: &str = "run_code";

/// Most characters of a tool's result fed back to the model.
const RESULT_MAX: usize = 8_000;
/// Most characters of arguments and of the result shown in the thread's one-line summary.
const SHOWN_MAX: usize = 160;

/// What one conversation's tool calls may use: the ports and the conversation's settings.
pub(crate) struct Toolbox<'a> {
    sandbox: Option<&'a dyn CodeRunner>,
    mcp: Option<&'a dyn ToolProvider>,
    config: &'a EngineConfig,
    settings: &'a Effective,
    /// The MCP servers enabled here (from `settings`).
    servers: ServerFilter,
}

impl<'a> Toolbox<'a> {
    pub(crate) fn new(
        sandbox: Option<&'a dyn CodeRunner>,
        mcp: Option<&'a dyn ToolProvider>,
        config: &'a EngineConfig,
        settings: &'a Effective,
    ) -> Self {
        Self {
            sandbox,
            mcp,
            config,
            settings,
            servers: settings.mcp_filter(),
        }
    }

    /// The tools the model is offered: `run_code` when there is a sandbox and the
    /// conversation allows running code, then the tools of the enabled MCP servers.
    pub(crate) fn offered(&self) -> Vec<ToolSpec> {
        let mut tools = if self.sandbox.is_some() && self.settings.run_code.value {
            vec![run_code_spec(tiers::gvisor_offered(
                self.sandbox,
                self.settings,
            ))]
        } else {
            Vec::new()
        };
        if let Some(mcp) = self.mcp {
            tools.extend(specs(mcp, &self.servers));
        }
        tools
    }

    /// Runs one tool call; returns the text fed back to the model.
    pub(crate) async fn run(&self, sink: &Arc<dyn ReplySink>, call: &ToolCall) -> String {
        let span = tracing::info_span!("tool.call", tool = %call.name);
        self.dispatch(sink, call).instrument(span).await
    }

    async fn dispatch(&self, sink: &Arc<dyn ReplySink>, call: &ToolCall) -> String {
        if call.name != RUN_CODE_TOOL {
            let result = match self.mcp {
                Some(mcp) => run_mcp(mcp, sink, call, &self.servers).await,
                None => None,
            };
            return result.unwrap_or_else(|| format!("error: unknown tool `{}`", call.name));
        }
        match parse_args(&call.arguments) {
            Ok(program) => {
                code_run::for_model(self.sandbox, self.config, self.settings, sink, program).await
            }
            Err(e) => e,
        }
    }
}

/// The `run_code` tool; with `gvisor`, it has the `tier` parameter and says when to use it.
fn run_code_spec(gvisor: bool) -> ToolSpec {
    let mut description = String::from(
        "Run a short Python or JavaScript program in a sandbox (no network, no files but a \
         scratch directory) and get its stdout, stderr and exit code. The code and its output \
         are shown to the user.",
    );
    let mut properties = serde_json::json!({
        "language": {"type": "string", "enum": ["python", "javascript"]},
        "code": {"type": "string", "description": "the program to run"}
    });
    if gvisor {
        description.push_str(
            " The default tier `wasm` starts instantly but has only the Python standard \
             library and computes several times slower than native. Use tier `gvisor` \
             (Python only) for data work: numpy, pandas, matplotlib and scipy are installed \
             and it runs at native speed, but starts in about a second. Files the program \
             writes in its working directory are sent to the user; with matplotlib, \
             `plt.show()` (or any figure left open) is posted as a PNG.",
        );
        properties["tier"] = serde_json::json!({
            "type": "string",
            "enum": ["wasm", "gvisor"],
            "description": "`gvisor` for numpy/pandas/matplotlib/scipy or heavy computation; \
                            `wasm` (default) for quick standard-library snippets and JavaScript"
        });
    }
    ToolSpec {
        name: RUN_CODE_TOOL.to_string(),
        description,
        parameters: serde_json::json!({
            "type": "object",
            "properties": properties,
            "required": ["language", "code"]
        }),
    }
}

/// The parsed arguments of a `run_code` call, or the error the model reads.
fn parse_args(arguments: &str) -> Result<Program, String> {
    #[derive(serde::Deserialize)]
    struct Args {
        language: String,
        code: String,
        #[serde(default)]
        tier: Option<String>,
    }
    let args: Args = serde_json::from_str(arguments)
        .map_err(|e| format!("error: invalid arguments for run_code: {e}"))?;
    let Some(language) = Language::parse(&args.language) else {
        return Err(format!(
            "error: unsupported language `{}`; use python or javascript",
            args.language
        ));
    };
    let tier = match args
        .tier
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        None => Tier::Wasm,
        Some(t) => Tier::parse(t)
            .ok_or_else(|| format!("error: unknown tier `{t}`; use wasm or gvisor"))?,
    };
    Ok(Program {
        language,
        code: args.code,
        tier,
    })
}

/// The tools of the enabled servers, as the model is offered them.
fn specs(tools: &dyn ToolProvider, filter: &ServerFilter) -> Vec<ToolSpec> {
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
async fn run_mcp(
    tools: &dyn ToolProvider,
    sink: &Arc<dyn ReplySink>,
    call: &ToolCall,
    filter: &ServerFilter,
) -> Option<String> {
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
    fn tier_parameter_only_when_offered() {
        let plain = run_code_spec(false);
        assert!(plain.parameters["properties"].get("tier").is_none());
        let with = run_code_spec(true);
        assert_eq!(
            with.parameters["properties"]["tier"]["enum"],
            serde_json::json!(["wasm", "gvisor"])
        );
        assert!(with.description.contains("pandas"));
    }

    #[test]
    fn arguments_default_to_wasm() {
        assert_eq!(
            parse_args(r#"{"language":"python","code":"1"}"#).unwrap(),
            Program {
                language: Language::Python,
                code: "1".to_string(),
                tier: Tier::Wasm
            }
        );
        assert_eq!(
            parse_args(r#"{"language":"python","code":"1","tier":"gvisor"}"#).unwrap(),
            Program {
                language: Language::Python,
                code: "1".to_string(),
                tier: Tier::Gvisor
            }
        );
        assert!(parse_args(r#"{"language":"python","code":"1","tier":"vm"}"#).is_err());
    }

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
