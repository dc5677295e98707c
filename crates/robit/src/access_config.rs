//! The `[access]`, `[limits]` and `[admin_api]` configuration sections, and their mapping
//! onto the engine's typed access control and limits.
//!
//! Only the shapes and the translation live here; deciding who is let in is the engine's
//! (`robit-core`'s `access.rs`). A malformed subject fails the start with a message naming
//! it, rather than silently letting people in or keeping them out.

use anyhow::Context;
use robit_core::{AccessConfig, EngineConfig, LimitsConfig, Subject};
use robit_types::Rate;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Anyone no rule mentions may use robit.
    Open,
    /// Only those an allow rule names may.
    Closed,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessSection {
    pub default_policy: Policy,
    /// Subjects let in: `[platform:]kind:id`, kind = user, role, channel or workspace.
    pub allow: Vec<String>,
    /// Subjects kept out; the most specific rule wins, and at one level deny beats allow.
    pub deny: Vec<String>,
    /// Subjects that may change settings and rules with `/config` (users, Discord roles).
    pub admins: Vec<String>,
}

impl Default for AccessSection {
    fn default() -> Self {
        Self {
            default_policy: Policy::Open,
            allow: Vec::new(),
            deny: Vec::new(),
            admins: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    /// Turns one user may start in a workspace per `user_window_secs`; 0: no limit.
    pub user_turns: u32,
    pub user_window_secs: u64,
    /// Turns one channel may run per `channel_window_secs`; 0: no limit.
    pub channel_turns: u32,
    pub channel_window_secs: u64,
    /// Prompt plus completion tokens a workspace may use per UTC day; 0: no quota.
    pub workspace_daily_tokens: u64,
    /// The longest system prompt `/config` accepts, in characters.
    pub max_system_prompt_chars: usize,
}

impl Default for LimitsSection {
    fn default() -> Self {
        Self {
            user_turns: 0,
            user_window_secs: 60,
            channel_turns: 0,
            channel_window_secs: 60,
            workspace_daily_tokens: 0,
            max_system_prompt_chars: EngineConfig::default().max_system_prompt_chars,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminApiSection {
    /// Serve `/admin/v1/…` on the HTTP server, for holders of a key from `robit apikey create`.
    pub enabled: bool,
}

fn subjects(list: &[String], key: &str) -> anyhow::Result<Vec<Subject>> {
    list.iter()
        .map(|s| Subject::parse(s).map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<_>>()
        .with_context(|| format!("invalid entry in {key}"))
}

fn rate(turns: u32, window_secs: u64) -> Option<Rate> {
    (turns > 0).then(|| Rate::per(turns, Duration::from_secs(window_secs.max(1))))
}

/// Fills the engine's access control and limits from the configuration.
pub fn apply(
    access: &AccessSection,
    limits: &LimitsSection,
    engine: &mut EngineConfig,
) -> anyhow::Result<()> {
    engine.access = AccessConfig {
        default_allow: access.default_policy == Policy::Open,
        allow: subjects(&access.allow, "access.allow")?,
        deny: subjects(&access.deny, "access.deny")?,
        admins: subjects(&access.admins, "access.admins")?,
    };
    engine.limits = LimitsConfig {
        user_turns: rate(limits.user_turns, limits.user_window_secs),
        channel_turns: rate(limits.channel_turns, limits.channel_window_secs),
        workspace_daily_tokens: (limits.workspace_daily_tokens > 0)
            .then_some(limits.workspace_daily_tokens),
    };
    engine.max_system_prompt_chars = limits.max_system_prompt_chars;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_sections_and_names_a_bad_subject() {
        let mut engine = EngineConfig::default();
        let access = AccessSection {
            default_policy: Policy::Closed,
            admins: vec!["discord:role:42".into()],
            ..AccessSection::default()
        };
        let limits = LimitsSection {
            user_turns: 5,
            user_window_secs: 10,
            ..LimitsSection::default()
        };
        apply(&access, &limits, &mut engine).unwrap();
        assert!(!engine.access.default_allow);
        assert_eq!(engine.access.admins.len(), 1);
        assert_eq!(
            engine.limits.user_turns,
            Some(Rate::per(5, Duration::from_secs(10)))
        );
        assert_eq!(engine.limits.channel_turns, None);
        assert_eq!(engine.limits.workspace_daily_tokens, None);

        let bad = AccessSection {
            deny: vec!["slack:usr:U1".into()],
            ..AccessSection::default()
        };
        let err = format!("{:#}", apply(&bad, &limits, &mut engine).unwrap_err());
        assert!(err.contains("access.deny") && err.contains("usr"), "{err}");
    }
}
