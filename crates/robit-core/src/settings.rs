//! Per-channel and per-workspace settings: which value a conversation uses and where it came
//! from, and what values `/config set` accepts.
//!
//! Precedence, most specific first: channel setting, workspace setting (both stored by
//! admins), the configuration's per-channel and per-workspace system prompts, then the global
//! configuration. Sandbox limits set here are only ever tightened to the global maxima, never
//! raised past them. This file reads settings; changing them is `admin.rs`'s job.

use crate::config::EngineConfig;
use robit_sandbox::Limits;
use robit_store::{SettingRow, Store};
use robit_types::{ConversationKey, SettingKey};
use std::time::Duration;

const MIB: u64 = 1024 * 1024;

/// Where an effective value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The global configuration.
    Global,
    /// The configuration's override for this workspace or channel (`engine.system_prompts`).
    Configured,
    /// Set with `/config workspace set`.
    Workspace,
    /// Set with `/config set` in this channel.
    Channel,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Global => "global",
            Source::Configured => "configuration for this workspace/channel",
            Source::Workspace => "workspace",
            Source::Channel => "channel",
        }
    }
}

/// A value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced<T> {
    pub value: T,
    pub source: Source,
}

/// The settings a conversation runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effective {
    pub system_prompt: Sourced<String>,
    pub model: Sourced<String>,
    pub run_code: Sourced<bool>,
    pub wall_time_ms: Sourced<u64>,
    pub memory_mb: Sourced<u64>,
    pub output_kb: Sourced<u64>,
    /// `all`, `none`, or the comma-separated names of the MCP servers enabled here.
    pub mcp_servers: Sourced<String>,
    /// Whether the gVisor sandbox tier may be used here (if the server has it).
    pub gvisor: Sourced<bool>,
}

impl Effective {
    /// The MCP servers whose tools this conversation's turns are offered.
    pub fn mcp_filter(&self) -> robit_mcp::ServerFilter {
        match self.mcp_servers.value.as_str() {
            "all" => robit_mcp::ServerFilter::All,
            "none" => robit_mcp::ServerFilter::Only(Default::default()),
            names => robit_mcp::ServerFilter::Only(names.split(',').map(str::to_string).collect()),
        }
    }
}

impl Effective {
    /// The sandbox limits, within the global maxima whatever is stored.
    pub fn limits(&self, max: &Limits) -> Limits {
        Limits {
            wall_time: Duration::from_millis(self.wall_time_ms.value),
            memory_bytes: self.memory_mb.value.saturating_mul(MIB),
            output_bytes: usize::try_from(self.output_kb.value.saturating_mul(1024))
                .unwrap_or(usize::MAX),
            // Output files and the disk quota are not per-channel settings: the global
            // limits apply.
            max_files: max.max_files,
            max_file_bytes: max.max_file_bytes,
            disk_bytes: max.disk_bytes,
            disk_files: max.disk_files,
        }
        .clamp_to(max)
    }
}

/// A setting's effective value, typed as the setting is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingValue {
    Text(String),
    Number(u64),
    /// Shown as `on` or `off`.
    Switch(bool),
}

impl std::fmt::Display for SettingValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SettingValue::Text(text) => f.write_str(text),
            SettingValue::Number(n) => write!(f, "{n}"),
            SettingValue::Switch(on) => f.write_str(if *on { "on" } else { "off" }),
        }
    }
}

/// One setting as a conversation sees it: its name, value and where the value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingEntry {
    pub key: SettingKey,
    pub value: SettingValue,
    pub source: Source,
}

impl Effective {
    /// Every setting, in [`SettingKey::ALL`] order: the one list both `/config show` and the
    /// binary's admin API give, so neither can leave a setting out.
    pub fn entries(&self) -> Vec<SettingEntry> {
        let text = |s: &Sourced<String>| (SettingValue::Text(s.value.clone()), s.source);
        let number = |s: &Sourced<u64>| (SettingValue::Number(s.value), s.source);
        let switch = |s: &Sourced<bool>| (SettingValue::Switch(s.value), s.source);
        SettingKey::ALL
            .into_iter()
            .map(|key| {
                // Exhaustive, so a new setting cannot be missing from the list.
                let (value, source) = match key {
                    SettingKey::SystemPrompt => text(&self.system_prompt),
                    SettingKey::Model => text(&self.model),
                    SettingKey::RunCode => switch(&self.run_code),
                    SettingKey::SandboxWallTimeMs => number(&self.wall_time_ms),
                    SettingKey::SandboxMemoryMb => number(&self.memory_mb),
                    SettingKey::SandboxOutputKb => number(&self.output_kb),
                    SettingKey::McpServers => text(&self.mcp_servers),
                    SettingKey::SandboxGvisor => switch(&self.gvisor),
                };
                SettingEntry { key, value, source }
            })
            .collect()
    }
}

/// The effective settings for a conversation. A store failure falls back to the
/// configuration (logged): a turn should not fail because settings could not be read.
pub(crate) async fn effective(
    store: &dyn Store,
    config: &EngineConfig,
    key: &ConversationKey,
) -> Effective {
    let rows = match store
        .settings(key.platform, &key.workspace, &key.channel)
        .await
    {
        Ok(rows) => rows,
        Err(e) => {
            tracing::error!(error = %e, "reading settings failed; using the configuration");
            Vec::new()
        }
    };
    resolve(config, key, &rows)
}

/// [`effective`] without I/O.
pub(crate) fn resolve(
    config: &EngineConfig,
    key: &ConversationKey,
    rows: &[SettingRow],
) -> Effective {
    let stored = |k: SettingKey| -> Option<(String, Source)> {
        let find = |channel: bool| {
            rows.iter()
                .find(|r| r.key == k.as_str() && r.channel.is_some() == channel)
                .map(|r| r.value.clone())
        };
        find(true)
            .map(|v| (v, Source::Channel))
            .or_else(|| find(false).map(|v| (v, Source::Workspace)))
    };
    let number = |k: SettingKey, global: u64| -> Sourced<u64> {
        match stored(k).and_then(|(v, s)| Some((v.parse::<u64>().ok()?, s))) {
            Some((value, source)) => Sourced {
                value: value.min(global),
                source,
            },
            None => Sourced {
                value: global,
                source: Source::Global,
            },
        }
    };
    let configured_prompt = config.system_prompt_for(key);
    let system_prompt = match stored(SettingKey::SystemPrompt) {
        Some((value, source)) => Sourced { value, source },
        None => Sourced {
            value: configured_prompt.to_string(),
            source: if configured_prompt == config.system_prompt {
                Source::Global
            } else {
                Source::Configured
            },
        },
    };
    let max = maxima(config);
    Effective {
        system_prompt,
        model: match stored(SettingKey::Model) {
            Some((value, source)) => Sourced { value, source },
            None => Sourced {
                value: config.default_model.clone(),
                source: Source::Global,
            },
        },
        run_code: match stored(SettingKey::RunCode) {
            Some((v, source)) => Sourced {
                value: v == "true",
                source,
            },
            None => Sourced {
                value: config.run_code_tool,
                source: Source::Global,
            },
        },
        wall_time_ms: number(SettingKey::SandboxWallTimeMs, max.0),
        memory_mb: number(SettingKey::SandboxMemoryMb, max.1),
        output_kb: number(SettingKey::SandboxOutputKb, max.2),
        mcp_servers: match stored(SettingKey::McpServers) {
            Some((value, source)) => Sourced { value, source },
            None => Sourced {
                value: "all".into(),
                source: Source::Global,
            },
        },
        gvisor: match stored(SettingKey::SandboxGvisor) {
            Some((v, source)) => Sourced {
                value: v == "true",
                source,
            },
            None => Sourced {
                value: config.gvisor_by_default,
                source: Source::Global,
            },
        },
    }
}

/// The global sandbox limits in the units settings use: (ms, MiB, KiB).
fn maxima(config: &EngineConfig) -> (u64, u64, u64) {
    let l = &config.sandbox_limits;
    (
        u64::try_from(l.wall_time.as_millis()).unwrap_or(u64::MAX),
        l.memory_bytes / MIB,
        l.output_bytes as u64 / 1024,
    )
}

/// Checks a value for `/config set`; returns it as stored, or a message naming the problem.
pub(crate) fn validate(
    config: &EngineConfig,
    key: SettingKey,
    value: &str,
) -> Result<String, String> {
    let value = value.trim();
    let max = maxima(config);
    let range = |name: &str, top: u64| -> Result<String, String> {
        match value.parse::<u64>() {
            Ok(n) if (1..=top).contains(&n) => Ok(n.to_string()),
            _ => Err(format!(
                "`{name}` must be a whole number from 1 to {top} (the global maximum); got \
                 `{value}`"
            )),
        }
    };
    match key {
        SettingKey::SystemPrompt => {
            let chars = value.chars().count();
            if chars > config.max_system_prompt_chars {
                Err(format!(
                    "the system prompt is {chars} characters long; the most allowed is {}",
                    config.max_system_prompt_chars
                ))
            } else {
                Ok(value.to_string())
            }
        }
        SettingKey::Model => {
            if !config.models.is_empty() && !config.models.iter().any(|m| m == value) {
                Err(format!(
                    "unknown model `{value}`; available: {}",
                    config.models.join(", ")
                ))
            } else if value.contains(char::is_whitespace) || value.len() > 200 {
                Err(format!("`{value}` is not a model name"))
            } else {
                Ok(value.to_string())
            }
        }
        SettingKey::RunCode => match value.to_ascii_lowercase().as_str() {
            "on" | "true" | "yes" | "1" => Ok("true".into()),
            "off" | "false" | "no" | "0" => Ok("false".into()),
            _ => Err(format!("`run_code` is `on` or `off`; got `{value}`")),
        },
        SettingKey::SandboxWallTimeMs => range(key.as_str(), max.0),
        SettingKey::SandboxMemoryMb => range(key.as_str(), max.1),
        SettingKey::SandboxOutputKb => range(key.as_str(), max.2),
        SettingKey::McpServers => mcp_servers(value),
        SettingKey::SandboxGvisor => match value.to_ascii_lowercase().as_str() {
            "on" | "true" | "yes" | "1" => Ok("true".into()),
            "off" | "false" | "no" | "0" => Ok("false".into()),
            _ => Err(format!("`sandbox.gvisor` is `on` or `off`; got `{value}`")),
        },
    }
}

/// `all`, `none`, or server names (as in `[mcp.servers.<name>]`) separated by commas; stored
/// sorted and without repeats, so `show` and the filter read one spelling.
fn mcp_servers(value: &str) -> Result<String, String> {
    let lower = value.to_ascii_lowercase();
    if lower == "all" || lower == "none" {
        return Ok(lower);
    }
    let mut names = std::collections::BTreeSet::new();
    for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let ok = name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !ok {
            return Err(format!(
                "`mcp_servers` is `all`, `none` or server names separated by commas; `{name}` \
                 is not a server name"
            ));
        }
        names.insert(name.to_string());
    }
    if names.is_empty() {
        return Err("`mcp_servers` is `all`, `none` or server names separated by commas".into());
    }
    Ok(names.into_iter().collect::<Vec<_>>().join(","))
}

impl Effective {
    /// The text of `/config show`: one line per setting of [`Effective::entries`] with its
    /// source, and the global sandbox disk quota (not a setting) after the other sandbox
    /// limits, `max` being the global sandbox limits.
    pub fn show(&self, max: &Limits) -> String {
        let mut lines = vec![
            "**robit settings here** (most specific wins: channel, workspace, global)".to_string(),
        ];
        for entry in self.entries() {
            let key = entry.key;
            let source = entry.source.as_str();
            let shown = match (key, &entry.value) {
                (SettingKey::SystemPrompt, SettingValue::Text(prompt)) => {
                    let cut: String = prompt.chars().take(300).collect();
                    let ellipsis = if prompt.chars().count() > 300 {
                        "…"
                    } else {
                        ""
                    };
                    format!("{cut}{ellipsis}")
                }
                (SettingKey::Model, SettingValue::Text(model)) => format!("`{model}`"),
                (_, value) => value.to_string(),
            };
            // Stored sandbox limits are capped at the global ones, so say what the cap is.
            let at_most = match key {
                SettingKey::SandboxWallTimeMs => Some(max.wall_time.as_millis().to_string()),
                SettingKey::SandboxMemoryMb => Some((max.memory_bytes / MIB).to_string()),
                SettingKey::SandboxOutputKb => Some((max.output_bytes / 1024).to_string()),
                _ => None,
            };
            lines.push(match at_most {
                Some(top) => format!("• `{key}` ({source}): {shown} (at most {top})"),
                None => format!("• `{key}` ({source}): {shown}"),
            });
            if key == SettingKey::SandboxOutputKb {
                lines.push(format!(
                    "• sandbox disk (global): {} MiB and {} files per run",
                    max.disk_bytes / MIB,
                    max.disk_files
                ));
            }
        }
        lines.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use robit_types::{ChannelId, Platform};

    fn row(channel: Option<&str>, key: &str, value: &str) -> SettingRow {
        SettingRow {
            channel: channel.map(ChannelId::new),
            key: key.into(),
            value: value.into(),
            updated_by: "U".into(),
            updated_at: 0,
        }
    }

    fn key() -> ConversationKey {
        ConversationKey::new(Platform::Slack, "T1", "C1", None)
    }

    #[test]
    fn channel_beats_workspace_beats_configuration() {
        let mut config = EngineConfig::default();
        config
            .system_prompt_overrides
            .insert("slack:T1".into(), "configured".into());
        let e = resolve(&config, &key(), &[]);
        assert_eq!(e.system_prompt.source, Source::Configured);
        assert_eq!(e.model.source, Source::Global);
        let rows = [
            row(None, "system_prompt", "ws"),
            row(Some("C1"), "system_prompt", "chan"),
            row(None, "run_code", "false"),
            row(Some("C1"), "sandbox.memory_mb", "999999"),
        ];
        let e = resolve(&config, &key(), &rows);
        assert_eq!(e.system_prompt.value, "chan");
        assert_eq!(e.system_prompt.source, Source::Channel);
        assert_eq!(
            (e.run_code.value, e.run_code.source),
            (false, Source::Workspace)
        );
        // A stored value above the global maximum (lowered since) is capped.
        assert_eq!(e.memory_mb.value, 256);
        assert_eq!(e.mcp_filter(), robit_mcp::ServerFilter::All);
    }

    #[test]
    fn show_lists_every_setting_with_its_source_and_cap() {
        let config = EngineConfig {
            default_model: "m1".into(),
            ..EngineConfig::default()
        };
        let long = "p".repeat(301);
        let rows = [
            row(Some("C1"), "system_prompt", &long),
            row(None, "sandbox.wall_time_ms", "500"),
            row(Some("C1"), "mcp_servers", "calc"),
        ];
        let e = resolve(&config, &key(), &rows);
        let max = &config.sandbox_limits;
        let expected = format!(
            "**robit settings here** (most specific wins: channel, workspace, global)\n\
             • `system_prompt` (channel): {}…\n\
             • `model` (global): `m1`\n\
             • `run_code` (global): {}\n\
             • `sandbox.wall_time_ms` (workspace): 500 (at most {})\n\
             • `sandbox.memory_mb` (global): {} (at most {})\n\
             • `sandbox.output_kb` (global): {} (at most {})\n\
             • sandbox disk (global): {} MiB and {} files per run\n\
             • `mcp_servers` (channel): calc\n\
             • `sandbox.gvisor` (global): {}",
            "p".repeat(300),
            if config.run_code_tool { "on" } else { "off" },
            max.wall_time.as_millis(),
            max.memory_bytes / MIB,
            max.memory_bytes / MIB,
            max.output_bytes / 1024,
            max.output_bytes / 1024,
            max.disk_bytes / MIB,
            max.disk_files,
            if config.gvisor_by_default {
                "on"
            } else {
                "off"
            },
        );
        assert_eq!(e.show(max), expected);
        let keys: Vec<SettingKey> = e.entries().iter().map(|s| s.key).collect();
        assert_eq!(keys, SettingKey::ALL);
    }

    #[test]
    fn mcp_servers_setting_picks_servers() {
        let config = EngineConfig::default();
        assert_eq!(mcp_servers(" b, a ,a").as_deref(), Ok("a,b"));
        assert_eq!(mcp_servers("NONE").as_deref(), Ok("none"));
        assert!(mcp_servers("a b").unwrap_err().contains("`a b`"));
        assert!(mcp_servers(" , ").is_err());
        let e = resolve(&config, &key(), &[row(Some("C1"), "mcp_servers", "calc")]);
        assert_eq!(e.mcp_servers.source, Source::Channel);
        let filter = e.mcp_filter();
        assert!(filter.allows("calc") && !filter.allows("files"));
        let none = resolve(&config, &key(), &[row(None, "mcp_servers", "none")]).mcp_filter();
        assert!(!none.allows("calc"));
    }

    #[test]
    fn validation_names_the_problem() {
        let mut config = EngineConfig {
            max_system_prompt_chars: 10,
            ..EngineConfig::default()
        };
        let err = validate(&config, SettingKey::SystemPrompt, "x".repeat(11).as_str()).unwrap_err();
        assert!(err.contains("11 characters") && err.contains("10"), "{err}");
        let err = validate(&config, SettingKey::SandboxWallTimeMs, "99999").unwrap_err();
        assert!(
            err.contains("sandbox.wall_time_ms") && err.contains("10000"),
            "{err}"
        );
        assert!(validate(&config, SettingKey::SandboxMemoryMb, "0").is_err());
        assert_eq!(
            validate(&config, SettingKey::RunCode, "Off").unwrap(),
            "false"
        );
        config.models = vec!["a".into()];
        assert!(validate(&config, SettingKey::Model, "b")
            .unwrap_err()
            .contains("`b`"));
    }
}
