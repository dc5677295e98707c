//! Who may use robit: allow and deny rules from configuration and from the database, admins,
//! and the refusal a user gets when a rule (or a limit, see `limits.rs`) keeps them out.
//!
//! The decision is a pure function of the rules and the event ([`decide`]), so it is tested
//! without a store. The most specific rule wins: user, then role, then channel, then
//! workspace, then the default policy; at one level a deny beats an allow. Admins are always
//! let in, so a rule can never lock out the people who can fix it. A refusal is never
//! silent: the user is told (ephemerally where the platform can), a metric counts it and
//! the audit log records it. This file must not name a platform type.

use crate::metrics as m;
use crate::outcome::TurnOutcome;
use crate::reply::whisper;
use robit_store::{AccessRule, NewAuditEntry, Store};
use robit_types::{Inbound, Platform, ReplySink, RuleEffect, SubjectKind, WorkspaceId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a workspace's database rules are reused before they are read again. A change
/// made on this replica applies at once (the cache entry is dropped); one made on another
/// replica applies within this long.
const RULES_TTL: Duration = Duration::from_secs(5);

/// Who a configured rule or admin entry is about: `slack:user:U123`, `discord:role:42`,
/// `discord:workspace:111`, `slack:channel:C1`; the platform may be left out
/// (`user:U123`) to match on every platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub platform: Option<Platform>,
    pub kind: SubjectKind,
    pub id: String,
}

impl Subject {
    /// Parses `[platform:]kind:id`; the error says what was wrong, for the configuration
    /// check at start.
    pub fn parse(s: &str) -> Result<Subject, String> {
        let parts: Vec<&str> = s.trim().splitn(3, ':').collect();
        let (platform, kind, id) = match parts.as_slice() {
            [kind, id] => (None, *kind, *id),
            [platform, kind, id] => (
                Some(
                    Platform::parse(platform)
                        .ok_or_else(|| format!("`{s}`: unknown platform `{platform}`"))?,
                ),
                *kind,
                *id,
            ),
            _ => {
                return Err(format!(
                    "`{s}` is not `[platform:]kind:id`, for example `slack:user:U0123` or \
                     `discord:role:42`"
                ))
            }
        };
        let kind = SubjectKind::parse(kind).ok_or_else(|| {
            format!("`{s}`: unknown kind `{kind}`; use user, role, channel or workspace")
        })?;
        if id.is_empty() {
            return Err(format!("`{s}` has no id"));
        }
        Ok(Subject {
            platform,
            kind,
            id: id.to_string(),
        })
    }

    fn matches(&self, kind: SubjectKind, inbound: &Inbound) -> bool {
        self.kind == kind
            && self.platform.is_none_or(|p| p == inbound.key.platform)
            && ids_of(kind, inbound).iter().any(|id| *id == self.id)
    }
}

/// The configured side of access control.
#[derive(Debug, Clone, Default)]
pub struct AccessConfig {
    /// Let in anyone no rule mentions (`open`, the default) or no one (`closed`).
    pub default_allow: bool,
    pub allow: Vec<Subject>,
    pub deny: Vec<Subject>,
    /// May change settings and rules with `/config`; never refused by a rule.
    pub admins: Vec<Subject>,
}

impl AccessConfig {
    /// Everyone may use robit, no one is an admin: the behaviour before access control.
    pub fn open() -> Self {
        Self {
            default_allow: true,
            ..Self::default()
        }
    }

    pub fn is_admin(&self, inbound: &Inbound) -> bool {
        [SubjectKind::User, SubjectKind::Role]
            .into_iter()
            .any(|kind| self.admins.iter().any(|a| a.matches(kind, inbound)))
    }
}

/// What keeps an event out, and what the user is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// The metric label and audit action: `denied`, `not_admin`, `user_rate`,
    /// `channel_rate`, `quota`, `unavailable` (the rules could not be read).
    pub reason: &'static str,
    pub text: String,
}

/// The ids an event has for one kind of subject.
fn ids_of(kind: SubjectKind, inbound: &Inbound) -> Vec<&str> {
    match kind {
        SubjectKind::User => vec![inbound.author.id.as_str()],
        SubjectKind::Role => inbound.author.roles.iter().map(String::as_str).collect(),
        SubjectKind::Channel => vec![inbound.key.channel.as_str()],
        SubjectKind::Workspace => vec![inbound.key.workspace.as_str()],
    }
}

/// Whether `inbound`'s author may use robit, given the configured rules and the workspace's
/// stored ones.
pub(crate) fn decide(config: &AccessConfig, stored: &[AccessRule], inbound: &Inbound) -> bool {
    if config.is_admin(inbound) {
        return true;
    }
    for kind in [
        SubjectKind::User,
        SubjectKind::Role,
        SubjectKind::Channel,
        SubjectKind::Workspace,
    ] {
        let ids = ids_of(kind, inbound);
        let stored_effects = stored
            .iter()
            .filter(|r| r.kind == kind && ids.contains(&r.subject.as_str()))
            .map(|r| r.effect);
        let configured = config
            .deny
            .iter()
            .filter(|s| s.matches(kind, inbound))
            .map(|_| RuleEffect::Deny)
            .chain(
                config
                    .allow
                    .iter()
                    .filter(|s| s.matches(kind, inbound))
                    .map(|_| RuleEffect::Allow),
            );
        let effects: Vec<RuleEffect> = stored_effects.chain(configured).collect();
        if effects.contains(&RuleEffect::Deny) {
            return false;
        }
        if effects.contains(&RuleEffect::Allow) {
            return true;
        }
    }
    config.default_allow
}

/// A workspace's stored rules and when they were read.
type CachedRules = (Instant, Arc<Vec<AccessRule>>);

/// Per-process state of access control: a short-lived cache of each workspace's rules, so
/// intake does not read them for every event.
#[derive(Default)]
pub(crate) struct AccessState {
    rules: Mutex<HashMap<(Platform, WorkspaceId), CachedRules>>,
}

impl AccessState {
    /// Drops the cached rules of a workspace after this replica changed them.
    pub(crate) fn forget(&self, platform: Platform, workspace: &WorkspaceId) {
        self.rules
            .lock()
            .expect("poisoned")
            .remove(&(platform, workspace.clone()));
    }
}

/// The workspace's stored rules, cached for [`RULES_TTL`].
async fn stored_rules(
    state: &AccessState,
    store: &dyn Store,
    platform: Platform,
    workspace: &WorkspaceId,
) -> Result<Arc<Vec<AccessRule>>, robit_store::StoreError> {
    let cache_key = (platform, workspace.clone());
    if let Some((at, rules)) = state.rules.lock().expect("poisoned").get(&cache_key) {
        if at.elapsed() < RULES_TTL {
            return Ok(rules.clone());
        }
    }
    let rules = Arc::new(store.access_rules(platform, workspace).await?);
    state
        .rules
        .lock()
        .expect("poisoned")
        .insert(cache_key, (Instant::now(), rules.clone()));
    Ok(rules)
}

/// Checks the event's author against the rules; `Some` when they are kept out.
///
/// When the stored rules cannot be read, the event is refused (configured admins excepted,
/// so someone can still look into it): deciding on the configured rules alone would let in
/// a user an admin denied with `/config deny` for as long as the database hiccups.
pub(crate) async fn check(
    state: &AccessState,
    store: &dyn Store,
    config: &AccessConfig,
    inbound: &Inbound,
) -> Option<Refusal> {
    let stored =
        match stored_rules(state, store, inbound.key.platform, &inbound.key.workspace).await {
            Ok(stored) => stored,
            Err(_) if config.is_admin(inbound) => return None,
            Err(e) => {
                tracing::error!(error = %e, "reading access rules failed; refusing the event");
                return Some(unavailable());
            }
        };
    if decide(config, &stored, inbound) {
        return None;
    }
    Some(Refusal {
        reason: "denied",
        text: "🚫 You don't have access to robit here. Ask one of its admins if you think you \
               should."
            .to_string(),
    })
}

/// The refusal when access rules or limits cannot be checked (the store failed).
pub(crate) fn unavailable() -> Refusal {
    Refusal {
        reason: "unavailable",
        text: "⚠️ robit can't check its access rules and limits right now (its database is not \
               answering), so it isn't taking requests. Try again in a minute."
            .to_string(),
    }
}

/// Tells the user why they were refused (only them, where the platform can), counts it and
/// records it in the audit log.
pub(crate) async fn refuse(
    store: &dyn Store,
    inbound: &Inbound,
    sink: &Arc<dyn ReplySink>,
    refusal: Refusal,
) -> TurnOutcome {
    metrics::counter!(m::REFUSALS, "platform" => inbound.key.platform.as_str(), "reason" => refusal.reason)
        .increment(1);
    tracing::info!(reason = refusal.reason, user = %inbound.author.id, "refused");
    whisper(sink, &inbound.author.id, &refusal.text, "a refusal").await;
    audit(
        store,
        inbound,
        &format!("refused.{}", refusal.reason),
        refusal.text.clone(),
    )
    .await;
    TurnOutcome::Refused(refusal.reason.to_string())
}

/// Appends an audit line about `inbound`'s author; a failure is logged, not shown.
pub(crate) async fn audit(store: &dyn Store, inbound: &Inbound, action: &str, detail: String) {
    let entry = NewAuditEntry {
        platform: inbound.key.platform.as_str().to_string(),
        workspace: inbound.key.workspace.to_string(),
        channel: inbound.key.channel.to_string(),
        actor: inbound.author.id.to_string(),
        action: action.to_string(),
        detail,
    };
    if let Err(e) = store.record_audit(entry).await {
        tracing::error!(error = %e, "writing the audit log failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use robit_types::{Author, ConversationKey, EventId};

    fn inbound(user: &str, roles: &[&str], channel: &str) -> Inbound {
        let mut author = Author::user(user, user);
        author.roles = roles.iter().map(|r| r.to_string()).collect();
        Inbound::message(
            EventId::new("e"),
            ConversationKey::new(Platform::Discord, "G1", channel, None),
            author,
            "hi".into(),
        )
    }

    fn rule(kind: SubjectKind, subject: &str, effect: RuleEffect) -> AccessRule {
        AccessRule {
            kind,
            subject: subject.into(),
            effect,
            updated_by: "admin".into(),
            updated_at: 0,
        }
    }

    fn s(x: &str) -> Subject {
        Subject::parse(x).unwrap()
    }

    #[test]
    fn parses_subjects() {
        assert_eq!(
            s("slack:user:U1"),
            Subject {
                platform: Some(Platform::Slack),
                kind: SubjectKind::User,
                id: "U1".into()
            }
        );
        assert_eq!(s("role:42").platform, None);
        assert!(Subject::parse("slack:planet:x")
            .unwrap_err()
            .contains("planet"));
        assert!(Subject::parse("U1").is_err());
        assert!(Subject::parse("irc:user:x").unwrap_err().contains("irc"));
    }

    #[test]
    fn default_policy_applies_when_no_rule_matches() {
        let open = AccessConfig::open();
        assert!(decide(&open, &[], &inbound("U1", &[], "C1")));
        let closed = AccessConfig::default();
        assert!(!decide(&closed, &[], &inbound("U1", &[], "C1")));
    }

    #[test]
    fn the_most_specific_rule_wins_and_deny_beats_allow_at_one_level() {
        let mut config = AccessConfig::default();
        config.allow.push(s("discord:channel:C1"));
        let stored = vec![
            rule(SubjectKind::User, "U2", RuleEffect::Deny),
            rule(SubjectKind::Role, "R-muted", RuleEffect::Deny),
            rule(SubjectKind::User, "U3", RuleEffect::Allow),
        ];
        assert!(decide(&config, &stored, &inbound("U1", &[], "C1")));
        assert!(!decide(&config, &stored, &inbound("U1", &[], "C2")));
        assert!(
            !decide(&config, &stored, &inbound("U2", &[], "C1")),
            "user deny beats channel allow"
        );
        assert!(!decide(
            &config,
            &stored,
            &inbound("U1", &["R-muted"], "C1")
        ));
        assert!(
            decide(&config, &stored, &inbound("U3", &["R-muted"], "C2")),
            "user allow beats role deny"
        );
        config.deny.push(s("user:U3"));
        assert!(
            !decide(&config, &stored, &inbound("U3", &[], "C1")),
            "deny beats allow"
        );
    }

    #[test]
    fn admins_are_never_refused_and_rules_are_per_platform() {
        let mut config = AccessConfig::default();
        config.admins.push(s("discord:role:R-admin"));
        config.allow.push(s("slack:user:U1"));
        let stored = vec![rule(SubjectKind::User, "U9", RuleEffect::Deny)];
        assert!(decide(&config, &stored, &inbound("U9", &["R-admin"], "C1")));
        assert!(config.is_admin(&inbound("U9", &["R-admin"], "C1")));
        assert!(!config.is_admin(&inbound("U9", &[], "C1")));
        assert!(
            !decide(&config, &[], &inbound("U1", &[], "C1")),
            "a slack rule on discord"
        );
    }
}
