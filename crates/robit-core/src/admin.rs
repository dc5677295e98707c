//! `/config`: showing the effective settings to anyone, and changing settings and access
//! rules for admins, with every change written to the audit log.
//!
//! Input is checked completely before anything is stored, so a bad value changes nothing
//! and the error names the problem. Errors and refusals go only to the user who typed the
//! command (ephemeral where the platform can); a change is announced in the thread, because
//! everyone there is affected by it.

use crate::access::{self, Refusal};
use crate::config::EngineConfig;
use crate::outcome::TurnOutcome;
use crate::reply::{say, whisper};
use crate::settings;
use crate::shared::Shared;
use robit_store::{NewAuditEntry, SettingPlace, Store, StoreError};
use robit_types::{ConfigCommand, Inbound, ReplySink, SettingKey, SettingScope};
use std::sync::Arc;

pub(crate) async fn run(
    shared: &Arc<Shared>,
    inbound: &Inbound,
    sink: &Arc<dyn ReplySink>,
    command: ConfigCommand,
) -> TurnOutcome {
    if command == ConfigCommand::Show {
        let effective =
            settings::effective(shared.store.as_ref(), &shared.config, &inbound.key).await;
        say(sink, &effective.show(&shared.config.sandbox_limits)).await;
        return TurnOutcome::Command;
    }
    if !shared.config.access.is_admin(inbound) {
        let refusal = Refusal {
            reason: "not_admin",
            text: "🚫 Only robit's admins can change its settings. `/config show` shows them."
                .to_string(),
        };
        return access::refuse(shared.store.as_ref(), inbound, sink, refusal).await;
    }
    let key = &inbound.key;
    let actor = inbound.author.id.as_str();
    let (stored, action, detail, announce) = match command {
        ConfigCommand::Show => unreachable!("handled above"),
        ConfigCommand::Set {
            scope,
            key: setting,
            value,
        } => {
            let value = match settings::validate(&shared.config, setting, &value) {
                Ok(v) => v,
                Err(problem) => return invalid(inbound, sink, &problem).await,
            };
            let place = place(inbound, scope);
            let stored = shared
                .store
                .put_setting(&place, setting.as_str(), Some(&value), actor)
                .await;
            let shown = if setting == robit_types::SettingKey::SystemPrompt {
                format!("{} characters", value.chars().count())
            } else {
                format!("`{value}`")
            };
            (
                stored,
                "config.set",
                format!("{} {setting} = {value}", scope.as_str()),
                format!("⚙️ `{setting}` for this {} is now {shown}.", scope.as_str()),
            )
        }
        ConfigCommand::Unset {
            scope,
            key: setting,
        } => {
            let stored = shared
                .store
                .put_setting(&place(inbound, scope), setting.as_str(), None, actor)
                .await;
            (
                stored,
                "config.unset",
                format!("{} {setting}", scope.as_str()),
                format!(
                    "⚙️ `{setting}` for this {} is back to the inherited value.",
                    scope.as_str()
                ),
            )
        }
        ConfigCommand::Rule {
            kind,
            subject,
            effect,
        } => {
            let stored = shared
                .store
                .put_access_rule(key.platform, &key.workspace, kind, &subject, effect, actor)
                .await;
            shared.access.forget(key.platform, &key.workspace);
            (
                stored,
                match effect {
                    Some(robit_types::RuleEffect::Allow) => "access.allow",
                    Some(robit_types::RuleEffect::Deny) => "access.deny",
                    None => "access.clear",
                },
                format!("{} {subject}", kind.as_str()),
                match effect {
                    Some(e) => format!(
                        "🔐 Access rule for this workspace: {} {} `{subject}`.",
                        e.as_str(),
                        kind.as_str()
                    ),
                    None => format!(
                        "🔐 Removed the access rule on {} `{subject}`.",
                        kind.as_str()
                    ),
                },
            )
        }
    };
    if let Err(e) = stored {
        tracing::error!(error = %e, "storing a /config change failed");
        say(sink, "⚠️ I couldn't save that change; please try again.").await;
        return TurnOutcome::Failed("settings store failed".into());
    }
    access::audit(shared.store.as_ref(), inbound, action, detail).await;
    say(sink, &announce).await;
    TurnOutcome::Command
}

/// Validates and stores a setting for callers other than a chat (the binary's admin API,
/// through [`crate::Engine::change_setting`]): `value: None` removes it, and the change is
/// written to the audit log as `actor`'s. Nothing is stored when the value is invalid.
pub(crate) async fn change_setting(
    store: &dyn Store,
    config: &EngineConfig,
    place: &SettingPlace,
    key: SettingKey,
    value: Option<&str>,
    actor: &str,
) -> Result<(), SettingError> {
    let value = value
        .map(|v| settings::validate(config, key, v))
        .transpose()
        .map_err(SettingError::Invalid)?;
    store
        .put_setting(place, key.as_str(), value.as_deref(), actor)
        .await?;
    let scope = if place.channel.is_some() {
        "channel"
    } else {
        "workspace"
    };
    let (action, detail) = match &value {
        Some(v) => ("config.set", format!("{scope} {key} = {v}")),
        None => ("config.unset", format!("{scope} {key}")),
    };
    store
        .record_audit(NewAuditEntry {
            platform: place.platform.as_str().to_string(),
            workspace: place.workspace.to_string(),
            channel: place
                .channel
                .as_ref()
                .map(|c| c.to_string())
                .unwrap_or_default(),
            actor: actor.to_string(),
            action: action.to_string(),
            detail,
        })
        .await?;
    Ok(())
}

fn place(inbound: &Inbound, scope: SettingScope) -> SettingPlace {
    SettingPlace {
        platform: inbound.key.platform,
        workspace: inbound.key.workspace.clone(),
        channel: (scope == SettingScope::Channel).then(|| inbound.key.channel.clone()),
    }
}

/// Tells the admin what was wrong with the value; nothing was stored.
async fn invalid(inbound: &Inbound, sink: &Arc<dyn ReplySink>, problem: &str) -> TurnOutcome {
    let text = format!("⚠️ Nothing changed: {problem}.");
    whisper(sink, &inbound.author.id, &text, "a /config error").await;
    TurnOutcome::Failed("invalid setting".into())
}

/// Why a setting could not be changed through [`crate::Engine::change_setting`].
#[derive(Debug, thiserror::Error)]
pub enum SettingError {
    /// The value is not acceptable; the message names the problem.
    #[error("{0}")]
    Invalid(String),
    #[error("the settings could not be stored: {0}")]
    Store(#[from] StoreError),
}
