//! The `[mcp.servers.<name>]` configuration section, turned into `robit_mcp::ServerConfig`s,
//! and connecting the servers at start. Connecting never stops robit: a server that does not
//! answer is logged (and `robit doctor` reports it) and the bot runs without its tools.

use anyhow::Context;
use robit_mcp::{McpTools, ServerConfig, Transport};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Variables of robit's own environment that a stdio server gets; nothing else is inherited,
/// so robit's API keys and tokens never reach a third-party process.
const PASSED_THROUGH: [&str; 4] = ["PATH", "HOME", "LANG", "TMPDIR"];

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct McpSection {
    /// MCP servers by name; the name prefixes their tools (`name__tool`).
    pub servers: BTreeMap<String, McpServerSection>,
}

/// One MCP server: `command` (stdio) or `url` (streamable HTTP), not both.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct McpServerSection {
    /// The program to start; it speaks MCP on stdin/stdout.
    #[serde(default)]
    pub command: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    /// Extra environment for the program (PATH, HOME, LANG and TMPDIR are passed through).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// A streamable HTTP endpoint instead of a program.
    #[serde(default)]
    pub url: Option<String>,
    /// Sent as `Authorization: Bearer`; set it through
    /// `ROBIT_MCP__SERVERS__<NAME>__BEARER_TOKEN` or `bearer_token_file`.
    #[serde(default, skip_serializing)]
    pub bearer_token: Option<SecretString>,
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    /// Tools (the server's names) that run without an admin's approval; `["*"]` for all.
    #[serde(default)]
    pub allow_tools: Vec<String>,
    /// Limit for connecting and for each tool call.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

fn default_timeout_secs() -> u64 {
    30
}

/// `env` values are often tokens: print only the names.
impl std::fmt::Debug for McpServerSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpServerSection")
            .field("command", &self.command)
            .field("args", &self.args)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("url", &self.url)
            .field("bearer_token", &self.bearer_token)
            .field("bearer_token_file", &self.bearer_token_file)
            .field("allow_tools", &self.allow_tools)
            .field("timeout_secs", &self.timeout_secs)
            .finish()
    }
}

/// The servers as robit-mcp wants them; a configuration mistake is an error naming the key.
pub fn server_configs(
    section: &McpSection,
    own_env: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Vec<ServerConfig>> {
    let mut out = Vec::new();
    for (name, s) in &section.servers {
        let key = format!("mcp.servers.{name}");
        anyhow::ensure!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
            "{key}: a server name may use only letters, digits, `_` and `-`"
        );
        let transport = match (&s.command, &s.url) {
            (Some(command), None) => {
                let mut env: BTreeMap<String, String> = PASSED_THROUGH
                    .iter()
                    .filter_map(|k| own_env(k).map(|v| (k.to_string(), v)))
                    .collect();
                env.extend(s.env.clone());
                Transport::Stdio {
                    command: command.clone(),
                    args: s.args.clone(),
                    env,
                }
            }
            (None, Some(url)) => {
                let bearer_token = match (&s.bearer_token, &s.bearer_token_file) {
                    (Some(t), _) => Some(t.clone()),
                    (None, Some(path)) => {
                        let t = std::fs::read_to_string(path).with_context(|| {
                            format!("{key}.bearer_token_file: cannot read {}", path.display())
                        })?;
                        Some(SecretString::from(t.trim().to_string()))
                    }
                    (None, None) => None,
                };
                Transport::Http {
                    url: url.clone(),
                    bearer_token,
                }
            }
            (Some(_), Some(_)) => anyhow::bail!("{key}: set `command` or `url`, not both"),
            (None, None) => {
                anyhow::bail!("{key}: set `command` (a stdio server) or `url` (streamable HTTP)")
            }
        };
        anyhow::ensure!(s.timeout_secs > 0, "{key}.timeout_secs must be at least 1");
        out.push(ServerConfig {
            name: name.clone(),
            transport,
            allow_tools: s.allow_tools.clone(),
            timeout: Duration::from_secs(s.timeout_secs),
        });
    }
    Ok(out)
}

/// Connects every configured server; `None` when none is configured.
pub async fn connect(section: &McpSection) -> anyhow::Result<Option<McpTools>> {
    if section.servers.is_empty() {
        return Ok(None);
    }
    let configs = server_configs(section, |k| std::env::var(k).ok())?;
    Ok(Some(McpTools::connect(configs).await))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(command: Option<&str>, url: Option<&str>) -> McpServerSection {
        McpServerSection {
            command: command.map(str::to_string),
            args: vec!["-y".into()],
            env: BTreeMap::from([("TOKEN".to_string(), "t0ps3cret".to_string())]),
            url: url.map(str::to_string),
            bearer_token: None,
            bearer_token_file: None,
            allow_tools: vec!["add".into()],
            timeout_secs: 5,
        }
    }

    #[test]
    fn a_stdio_server_gets_only_the_passed_through_environment_and_its_own() {
        let section = McpSection {
            servers: BTreeMap::from([("files".to_string(), server(Some("npx"), None))]),
        };
        let configs = server_configs(&section, |k| match k {
            "PATH" => Some("/bin".into()),
            "ROBIT_LLM__API_KEY" => Some("sk-secret".into()),
            _ => None,
        })
        .unwrap();
        let Transport::Stdio { command, env, .. } = &configs[0].transport else {
            panic!("stdio expected");
        };
        assert_eq!(command, "npx");
        assert_eq!(
            env.keys().collect::<Vec<_>>(),
            ["PATH", "TOKEN"],
            "nothing else of robit's environment"
        );
        assert_eq!(configs[0].timeout, Duration::from_secs(5));
        assert!(configs[0].allows("add") && !configs[0].allows("rm"));
    }

    #[test]
    fn a_server_needs_exactly_one_of_command_and_url() {
        for (s, needle) in [
            (server(Some("x"), Some("http://x")), "not both"),
            (server(None, None), "set `command`"),
        ] {
            let section = McpSection {
                servers: BTreeMap::from([("s".to_string(), s)]),
            };
            let err = server_configs(&section, |_| None).unwrap_err().to_string();
            assert!(
                err.contains("mcp.servers.s") && err.contains(needle),
                "{err}"
            );
        }
    }

    #[test]
    fn env_values_are_not_printed() {
        assert!(!format!("{:?}", server(Some("x"), None)).contains("t0ps3cret"));
    }
}
