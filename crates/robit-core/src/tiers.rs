//! Sandbox tiers for `/run` and the `run_code` tool: whether a tier may be used in a
//! conversation, the tool's description (which tells the model when to pick the gVisor
//! tier), and the tool's arguments.
//!
//! The tier itself is the sandbox's business (`robit_sandbox::Tiers`); this file decides
//! only what is offered and allowed here, and says why when it is not.

use crate::engine::Inner;
use crate::settings::Effective;
use robit_llm::ToolSpec;
use robit_types::{Language, Tier};

/// Whether the sandbox has `tier` at all (the gVisor tier is absent without runsc or the
/// rootfs; `robit doctor` says why).
pub(crate) fn present(inner: &Inner, tier: Tier) -> bool {
    inner
        .sandbox
        .as_ref()
        .is_some_and(|s| s.tiers().contains(&tier))
}

/// Whether runs in this conversation may use the gVisor tier.
pub(crate) fn gvisor_offered(inner: &Inner, settings: &Effective) -> bool {
    settings.gvisor.value && present(inner, Tier::Gvisor)
}

/// `Ok` when `tier` may run here; otherwise the sentence to show the user (or the model).
pub(crate) fn check(inner: &Inner, settings: &Effective, tier: Tier) -> Result<(), String> {
    match tier {
        Tier::Wasm => Ok(()),
        Tier::Gvisor if !present(inner, Tier::Gvisor) => Err(
            "the gvisor sandbox tier is not available on this server (an admin can run \
             `robit doctor` to see why)"
                .into(),
        ),
        Tier::Gvisor if !settings.gvisor.value => {
            Err("the gvisor sandbox tier is turned off in this channel (`sandbox.gvisor`)".into())
        }
        Tier::Gvisor => Ok(()),
    }
}

/// The `run_code` tool; with `gvisor`, it has the `tier` parameter and says when to use it.
pub(crate) fn run_code_spec(gvisor: bool) -> ToolSpec {
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
        name: crate::turn::RUN_CODE_TOOL.to_string(),
        description,
        parameters: serde_json::json!({
            "type": "object",
            "properties": properties,
            "required": ["language", "code"]
        }),
    }
}

/// The parsed arguments of a `run_code` call, or the error the model reads.
pub(crate) fn parse_args(arguments: &str) -> Result<(Language, String, Tier), String> {
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
    Ok((language, args.code, tier))
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
            (Language::Python, "1".to_string(), Tier::Wasm)
        );
        assert_eq!(
            parse_args(r#"{"language":"python","code":"1","tier":"gvisor"}"#).unwrap(),
            (Language::Python, "1".to_string(), Tier::Gvisor)
        );
        assert!(parse_args(r#"{"language":"python","code":"1","tier":"vm"}"#).is_err());
    }
}
