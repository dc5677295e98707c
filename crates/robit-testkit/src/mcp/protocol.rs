//! The fake MCP server's JSON-RPC: what each method answers and what each tool does. No I/O
//! but the `sleep` tool's timer; the transports live in `mod.rs`.

use serde_json::{json, Value};
use std::sync::Mutex;
use std::time::Duration;

/// The tools the fake offers:
/// - `add {a, b}`: the sum, as text;
/// - `lookup {key}`: a fixed entry, or a tool error (`isError`) for an unknown key;
/// - `explode {}`: a JSON-RPC error instead of a result;
/// - `sleep {ms}`: answers `slept` after `ms` milliseconds;
/// - `delete_everything {}`: answers `deleted everything`; tests keep it off allow-lists.
pub const TOOL_NAMES: [&str; 5] = ["add", "lookup", "explode", "sleep", "delete_everything"];

/// One tool call that reached a tool.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCallRecord {
    pub name: String,
    pub arguments: Value,
}

pub(crate) struct Shared {
    pub bearer: Option<String>,
    calls: Mutex<Vec<ToolCallRecord>>,
    methods: Mutex<Vec<String>>,
}

impl Shared {
    pub fn new(bearer: Option<String>) -> Self {
        Shared {
            bearer,
            calls: Mutex::new(Vec::new()),
            methods: Mutex::new(Vec::new()),
        }
    }

    pub fn calls(&self) -> Vec<ToolCallRecord> {
        self.calls.lock().expect("poisoned").clone()
    }

    pub fn methods(&self) -> Vec<String> {
        self.methods.lock().expect("poisoned").clone()
    }

    /// The answer to one JSON-RPC message; `None` for notifications and responses.
    pub async fn handle(&self, message: Value) -> Option<Value> {
        let method = message["method"].as_str()?.to_string();
        self.methods.lock().expect("poisoned").push(method.clone());
        let id = message.get("id")?.clone();
        let params = message.get("params").cloned().unwrap_or(Value::Null);
        let outcome = match method.as_str() {
            "initialize" => Ok(json!({
                // Whatever version the client asks for: the fake implements the common part.
                "protocolVersion": params["protocolVersion"].as_str().unwrap_or("2025-06-18"),
                "capabilities": {"tools": {"listChanged": false}},
                "serverInfo": {"name": "fake-mcp", "version": "0.1.0"}
            })),
            "ping" => Ok(json!({})),
            "tools/list" => Ok(json!({"tools": tool_list()})),
            "tools/call" => self.call(&params).await,
            _ => Err((-32601, format!("method not found: {method}"))),
        };
        Some(match outcome {
            Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
            Err((code, message)) => {
                json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
            }
        })
    }

    async fn call(&self, params: &Value) -> Result<Value, (i64, String)> {
        let name = params["name"].as_str().unwrap_or_default().to_string();
        let args = params.get("arguments").cloned().unwrap_or(json!({}));
        if !TOOL_NAMES.contains(&name.as_str()) {
            return Err((-32602, format!("unknown tool: {name}")));
        }
        self.calls.lock().expect("poisoned").push(ToolCallRecord {
            name: name.clone(),
            arguments: args.clone(),
        });
        let text = |t: String| json!({"content": [{"type": "text", "text": t}], "isError": false});
        match name.as_str() {
            "add" => {
                let (Some(a), Some(b)) = (args["a"].as_f64(), args["b"].as_f64()) else {
                    return Err((-32602, "add needs numbers a and b".into()));
                };
                Ok(text(format!("{}", a + b)))
            }
            "lookup" => {
                let key = args["key"].as_str().unwrap_or_default();
                match key {
                    "robit" => Ok(text("robit is a chat bot with a sandbox".into())),
                    "mcp" => Ok(text("the Model Context Protocol".into())),
                    _ => Ok(json!({
                        "content": [{"type": "text", "text": format!("no entry for `{key}`")}],
                        "isError": true
                    })),
                }
            }
            "explode" => Err((-32603, "the tool exploded".into())),
            "sleep" => {
                let ms = args["ms"].as_u64().unwrap_or(1_000);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(text("slept".into()))
            }
            _ => Ok(text("deleted everything".into())),
        }
    }
}

fn tool_list() -> Value {
    let object = |properties: Value, required: &[&str]| json!({"type": "object", "properties": properties, "required": required});
    json!([
        {
            "name": "add",
            "description": "Adds two numbers.",
            "inputSchema": object(json!({"a": {"type": "number"}, "b": {"type": "number"}}), &["a", "b"])
        },
        {
            "name": "lookup",
            "description": "Looks up a word in a small glossary.",
            "inputSchema": object(json!({"key": {"type": "string"}}), &["key"])
        },
        {
            "name": "explode",
            "description": "Always fails with a protocol error.",
            "inputSchema": object(json!({}), &[])
        },
        {
            "name": "sleep",
            "description": "Waits, then answers.",
            "inputSchema": object(json!({"ms": {"type": "integer"}}), &[])
        },
        {
            "name": "delete_everything",
            "description": "A dangerous tool that should need approval.",
            "inputSchema": object(json!({}), &[])
        }
    ])
}
