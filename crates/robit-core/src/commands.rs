//! `/help`, `/reset`, `/model` and `/run` (`/config` is in `admin.rs`).

use crate::engine::{Inner, TurnOutcome};
use crate::format;
use crate::render::{neutralize_mentions, split_message, wait_out_rate_limits};
use robit_store::Conversation;
use robit_types::{Command, Inbound, ReplySink};
use std::sync::Arc;

pub(crate) const HELP: &str = "**robit** answers in this thread. Talk to it by mentioning it, \
in a DM, or with these commands:\n\
• `/ask <prompt>`: ask the model\n\
• `/run python <code>` or `/run js <code>` (or a ```python code block): run code in the sandbox\n\
• `/run gvisor <code>` (or a ```python-gvisor block): Python with numpy, pandas, matplotlib and \
scipy at native speed; charts from `plt.show()` are posted as images\n\
• `/model [name]`: show or switch this conversation's model\n\
• `/reset`: forget this conversation's history\n\
• `/config [show]`: this channel's settings; admins: `/config set <setting> <value>`, \
`/config unset <setting>` (`/config workspace set …` for the whole workspace), \
`/config allow|deny|clear user|role|channel <id>`\n\
• `/help`: this message";

pub(crate) async fn run(
    inner: &Arc<Inner>,
    inbound: &Inbound,
    conversation: &Conversation,
    sink: &Arc<dyn ReplySink>,
    command: Command,
) -> TurnOutcome {
    match command {
        Command::Help => say(sink, HELP).await,
        Command::Reset => unreachable!("the engine applies /reset at submit time"),
        Command::Model { name: None } => {
            let current = conversation
                .model
                .as_deref()
                .unwrap_or(&inner.config.default_model);
            let mut text = format!("This conversation uses `{current}`.");
            if !inner.config.models.is_empty() {
                text.push_str(&format!(
                    " Available: {}.",
                    inner
                        .config
                        .models
                        .iter()
                        .map(|m| format!("`{m}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            say(sink, &text).await;
        }
        Command::Model { name: Some(name) } => {
            if !inner.config.models.is_empty() && !inner.config.models.contains(&name) {
                say(
                    sink,
                    &format!(
                        "⚠️ Unknown model `{name}`. Available: {}.",
                        inner.config.models.join(", ")
                    ),
                )
                .await;
                return TurnOutcome::Failed("unknown model".into());
            }
            match inner.store.set_model(conversation.id, Some(&name)).await {
                Ok(()) => say(sink, &format!("This conversation now uses `{name}`.")).await,
                Err(e) => {
                    tracing::error!(error = %e, "set_model failed");
                    say(sink, "⚠️ I couldn't switch the model; please try again.").await;
                    return TurnOutcome::Failed("set_model failed".into());
                }
            }
        }
        Command::Config(c) => return crate::admin::run(inner, inbound, sink, c).await,
        Command::Run {
            language,
            code,
            tier,
        } => {
            let settings = crate::settings::effective(inner, &inbound.key).await;
            if !settings.run_code.value {
                say(sink, "⚠️ Running code is turned off in this channel.").await;
                return TurnOutcome::Failed("run_code disabled".into());
            }
            if let Err(why) = crate::tiers::check(inner, &settings, tier) {
                say(sink, &format!("⚠️ Not run: {why}.")).await;
                return TurnOutcome::Failed(why);
            }
            let limits = settings.limits(&inner.config.sandbox_limits);
            // Without a sandbox there is nothing to place the files in; run_and_post says so.
            let files = if inner.sandbox.is_some() {
                crate::attachments::run_inputs(inner, inbound, sink).await
            } else {
                Vec::new()
            };
            if let Err(e) =
                format::run_and_post(inner, sink, language, &code, files, false, limits, tier).await
            {
                say(sink, &format!("⚠️ {e}")).await;
                return TurnOutcome::Failed(e.to_string());
            }
        }
        Command::Ask { .. } => unreachable!("the engine turns /ask into a chat turn"),
    }
    TurnOutcome::Command
}

/// Posts a short engine message (split if needed, mentions inert). Failures are logged: there
/// is nowhere else to show them.
pub(crate) async fn say(sink: &Arc<dyn ReplySink>, text: &str) {
    let max = sink.capabilities().max_message_len;
    for part in split_message(&neutralize_mentions(text), max) {
        if let Err(e) = wait_out_rate_limits(|| sink.post(&part)).await {
            tracing::warn!(error = %e, "posting a message failed");
            return;
        }
    }
}
