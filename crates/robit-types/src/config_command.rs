//! `/config`: the admin command that shows and changes settings of a channel or workspace and
//! the workspace's access rules, in its parsed form.
//!
//! This file knows the grammar and the names of settings only. Whether a value is in range
//! depends on the deployment's global maxima, which only the engine knows, so values stay
//! strings here; it must not grow validation that needs configuration.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A per-channel (or per-workspace) setting an admin may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SettingKey {
    SystemPrompt,
    Model,
    RunCode,
    SandboxWallTimeMs,
    SandboxMemoryMb,
    SandboxOutputKb,
    /// Which configured MCP servers' tools the model is offered here.
    McpServers,
    /// Whether `/run gvisor` and the model's `run_code` may use the gVisor tier here.
    SandboxGvisor,
}

impl SettingKey {
    pub const ALL: [SettingKey; 8] = [
        SettingKey::SystemPrompt,
        SettingKey::Model,
        SettingKey::RunCode,
        SettingKey::SandboxWallTimeMs,
        SettingKey::SandboxMemoryMb,
        SettingKey::SandboxOutputKb,
        SettingKey::McpServers,
        SettingKey::SandboxGvisor,
    ];

    /// The name typed in `/config set <name> …` and stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            SettingKey::SystemPrompt => "system_prompt",
            SettingKey::Model => "model",
            SettingKey::RunCode => "run_code",
            SettingKey::SandboxWallTimeMs => "sandbox.wall_time_ms",
            SettingKey::SandboxMemoryMb => "sandbox.memory_mb",
            SettingKey::SandboxOutputKb => "sandbox.output_kb",
            SettingKey::McpServers => "mcp_servers",
            SettingKey::SandboxGvisor => "sandbox.gvisor",
        }
    }

    pub fn parse(s: &str) -> Option<SettingKey> {
        let s = s.trim().to_ascii_lowercase();
        SettingKey::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The names, for error messages.
    pub fn names() -> String {
        SettingKey::ALL
            .iter()
            .map(|k| format!("`{}`", k.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for SettingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a setting applies: the channel the command was typed in, or its whole workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SettingScope {
    Channel,
    Workspace,
}

impl SettingScope {
    pub fn as_str(self) -> &'static str {
        match self {
            SettingScope::Channel => "channel",
            SettingScope::Workspace => "workspace",
        }
    }
}

/// What an access rule is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SubjectKind {
    User,
    /// A Discord role (Slack has none).
    Role,
    Channel,
    /// A whole workspace (guild or team); only in configuration, where rules span workspaces.
    Workspace,
}

impl SubjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SubjectKind::User => "user",
            SubjectKind::Role => "role",
            SubjectKind::Channel => "channel",
            SubjectKind::Workspace => "workspace",
        }
    }

    pub fn parse(s: &str) -> Option<SubjectKind> {
        match s.trim().to_ascii_lowercase().as_str() {
            "user" => Some(SubjectKind::User),
            "role" => Some(SubjectKind::Role),
            "channel" => Some(SubjectKind::Channel),
            "workspace" | "guild" | "team" => Some(SubjectKind::Workspace),
            _ => None,
        }
    }
}

/// Whether a rule lets its subject use robit or keeps it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RuleEffect {
    Allow,
    Deny,
}

impl RuleEffect {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleEffect::Allow => "allow",
            RuleEffect::Deny => "deny",
        }
    }

    pub fn parse(s: &str) -> Option<RuleEffect> {
        match s {
            "allow" => Some(RuleEffect::Allow),
            "deny" => Some(RuleEffect::Deny),
            _ => None,
        }
    }
}

/// A parsed `/config …`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigCommand {
    /// `/config` or `/config show`: the effective settings and where each comes from.
    Show,
    /// `/config set <key> <value>` (channel) or `/config workspace set <key> <value>`.
    Set {
        scope: SettingScope,
        key: SettingKey,
        value: String,
    },
    /// `/config unset <key>` or `/config workspace unset <key>`: back to the inherited value.
    Unset {
        scope: SettingScope,
        key: SettingKey,
    },
    /// `/config allow|deny|clear user|role|channel <id>`: a rule for this workspace
    /// (`effect: None` removes it).
    Rule {
        kind: SubjectKind,
        subject: String,
        effect: Option<RuleEffect>,
    },
}

/// Why `/config` could not be parsed; shown to the user as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigParseError {
    #[error("`/config` takes `show`, `set <setting> <value>`, `unset <setting>` (add `workspace` first for the whole workspace), or `allow|deny|clear user|role|channel <id>`; got `{0}`")]
    Usage(String),
    #[error("unknown setting `{0}`; settings are {names}", names = SettingKey::names())]
    UnknownSetting(String),
    #[error("`/config set {0}` needs a value")]
    MissingValue(String),
    #[error("an access rule is about a `user`, `role` or `channel`, not `{0}`")]
    UnknownSubject(String),
    #[error("`/config {0}` needs the id of a {1}")]
    MissingSubject(String, &'static str),
}

impl ConfigCommand {
    /// Parses the words after `/config`.
    pub fn parse(args: &str) -> Result<ConfigCommand, ConfigParseError> {
        let args = args.trim();
        let (first, rest) = split_word(args);
        let (scope, verb, rest) = if first.eq_ignore_ascii_case("workspace") {
            let (verb, rest) = split_word(rest);
            (SettingScope::Workspace, verb, rest)
        } else {
            (SettingScope::Channel, first, rest)
        };
        match verb.to_ascii_lowercase().as_str() {
            "" | "show" if rest.is_empty() => Ok(ConfigCommand::Show),
            "set" => {
                let (key, value) = split_word(rest);
                let key = parse_key(key)?;
                let value = value.trim();
                if value.is_empty() {
                    return Err(ConfigParseError::MissingValue(key.as_str().into()));
                }
                Ok(ConfigCommand::Set {
                    scope,
                    key,
                    value: value.to_string(),
                })
            }
            "unset" => {
                let (key, extra) = split_word(rest);
                if !extra.is_empty() {
                    return Err(ConfigParseError::Usage(args.into()));
                }
                Ok(ConfigCommand::Unset {
                    scope,
                    key: parse_key(key)?,
                })
            }
            verb @ ("allow" | "deny" | "clear") if scope == SettingScope::Channel => {
                let (kind, subject) = split_word(rest);
                let kind = match SubjectKind::parse(kind) {
                    Some(k @ (SubjectKind::User | SubjectKind::Role | SubjectKind::Channel)) => k,
                    _ => return Err(ConfigParseError::UnknownSubject(kind.into())),
                };
                let subject = normalize_subject(subject);
                if subject.is_empty() || subject.contains(char::is_whitespace) {
                    return Err(ConfigParseError::MissingSubject(
                        format!("{verb} {}", kind.as_str()),
                        kind.as_str(),
                    ));
                }
                Ok(ConfigCommand::Rule {
                    kind,
                    subject,
                    effect: RuleEffect::parse(verb),
                })
            }
            _ => Err(ConfigParseError::Usage(args.into())),
        }
    }
}

fn parse_key(key: &str) -> Result<SettingKey, ConfigParseError> {
    if key.is_empty() {
        return Err(ConfigParseError::Usage(key.into()));
    }
    SettingKey::parse(key).ok_or_else(|| ConfigParseError::UnknownSetting(key.into()))
}

fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim_start()),
        None => (s, ""),
    }
}

/// Accepts a bare id or a platform mention of it (`<@U1>`, `<@U1|alice>`, `<#C1|general>`,
/// `<@&123>`, `<@!123>`), because admins paste mentions.
fn normalize_subject(s: &str) -> String {
    let s = s.trim();
    let inner = s
        .strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .unwrap_or(s);
    let inner = inner.split('|').next().unwrap_or(inner);
    inner
        .trim_start_matches(['@', '#', '&', '!'])
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_show_set_unset() {
        assert_eq!(ConfigCommand::parse(""), Ok(ConfigCommand::Show));
        assert_eq!(ConfigCommand::parse(" show "), Ok(ConfigCommand::Show));
        assert_eq!(
            ConfigCommand::parse("set system_prompt You are a pirate.  Arr"),
            Ok(ConfigCommand::Set {
                scope: SettingScope::Channel,
                key: SettingKey::SystemPrompt,
                value: "You are a pirate.  Arr".into()
            })
        );
        assert_eq!(
            ConfigCommand::parse("workspace unset sandbox.memory_mb"),
            Ok(ConfigCommand::Unset {
                scope: SettingScope::Workspace,
                key: SettingKey::SandboxMemoryMb
            })
        );
    }

    #[test]
    fn names_the_problem() {
        let e = ConfigCommand::parse("set colour blue").unwrap_err();
        assert_eq!(e, ConfigParseError::UnknownSetting("colour".into()));
        assert!(e.to_string().contains("`colour`") && e.to_string().contains("system_prompt"));
        assert_eq!(
            ConfigCommand::parse("set model"),
            Err(ConfigParseError::MissingValue("model".into()))
        );
        assert!(matches!(
            ConfigCommand::parse("frob"),
            Err(ConfigParseError::Usage(_))
        ));
    }

    #[test]
    fn parses_rules_and_mentions() {
        assert_eq!(
            ConfigCommand::parse("deny user <@U0BOB|bob>"),
            Ok(ConfigCommand::Rule {
                kind: SubjectKind::User,
                subject: "U0BOB".into(),
                effect: Some(RuleEffect::Deny)
            })
        );
        assert_eq!(
            ConfigCommand::parse("clear role <@&42>"),
            Ok(ConfigCommand::Rule {
                kind: SubjectKind::Role,
                subject: "42".into(),
                effect: None
            })
        );
        assert!(matches!(
            ConfigCommand::parse("allow planet earth"),
            Err(ConfigParseError::UnknownSubject(_))
        ));
        assert!(matches!(
            ConfigCommand::parse("allow user"),
            Err(ConfigParseError::MissingSubject(..))
        ));
    }
}
