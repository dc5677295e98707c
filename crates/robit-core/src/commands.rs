//! `/help`, `/reset`, `/model` and `/run` (`/config` is in `admin.rs`).

use crate::code_run::{self, Program};
use crate::outcome::TurnOutcome;
use crate::reply::say;
use crate::settings;
use crate::shared::Shared;
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
    shared: &Arc<Shared>,
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
                .unwrap_or(&shared.config.default_model);
            let mut text = format!("This conversation uses `{current}`.");
            if !shared.config.models.is_empty() {
                text.push_str(&format!(
                    " Available: {}.",
                    shared
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
            if !shared.config.models.is_empty() && !shared.config.models.contains(&name) {
                say(
                    sink,
                    &format!(
                        "⚠️ Unknown model `{name}`. Available: {}.",
                        shared.config.models.join(", ")
                    ),
                )
                .await;
                return TurnOutcome::Failed("unknown model".into());
            }
            match shared.store.set_model(conversation.id, Some(&name)).await {
                Ok(()) => say(sink, &format!("This conversation now uses `{name}`.")).await,
                Err(e) => {
                    tracing::error!(error = %e, "set_model failed");
                    say(sink, "⚠️ I couldn't switch the model; please try again.").await;
                    return TurnOutcome::Failed("set_model failed".into());
                }
            }
        }
        Command::Config(c) => return crate::admin::run(shared, inbound, sink, c).await,
        Command::Run {
            language,
            code,
            tier,
        } => {
            let settings =
                settings::effective(shared.store.as_ref(), &shared.config, &inbound.key).await;
            let program = Program {
                language,
                code,
                tier,
            };
            return code_run::command(
                shared.sandbox.as_deref(),
                &shared.config,
                &settings,
                inbound,
                sink,
                program,
            )
            .await;
        }
        Command::Ask { .. } => unreachable!("the engine turns /ask into a chat turn"),
    }
    TurnOutcome::Command
}
