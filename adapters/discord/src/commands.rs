//! The slash commands robit registers, and their registration at start (bulk overwrite:
//! global, or on `dev_guild_id` only, where changes show up at once).

use serenity::all::{CommandOptionType, CreateCommand, CreateCommandOption, GuildId};
use serenity::http::Http;
use serenity::model::application::Command as DiscordCommand;

/// `/ask prompt`, `/run language code`, `/reset`, `/model [name]`, `/help`, `/config [args]`.
pub(crate) fn definitions() -> Vec<CreateCommand> {
    vec![
        CreateCommand::new("ask")
            .description("Ask the model")
            .add_option(
                CreateCommandOption::new(CommandOptionType::String, "prompt", "What to ask")
                    .required(true),
            ),
        CreateCommand::new("run")
            .description("Run code in the sandbox")
            .add_option(
                CreateCommandOption::new(CommandOptionType::String, "language", "Language")
                    .required(true)
                    .add_string_choice("python", "python")
                    .add_string_choice("javascript", "javascript"),
            )
            .add_option(
                CreateCommandOption::new(CommandOptionType::String, "code", "The program")
                    .required(true),
            ),
        CreateCommand::new("reset").description("Forget this conversation"),
        CreateCommand::new("model")
            .description("Show or switch this conversation's model")
            .add_option(CreateCommandOption::new(
                CommandOptionType::String,
                "name",
                "The model to switch to",
            )),
        CreateCommand::new("help").description("What robit can do"),
        // One free-text option: the `/config` grammar (show, set, unset, allow, deny, clear)
        // is the same on every platform and parsed by robit-types.
        CreateCommand::new("config")
            .description("Show or change robit's settings here (admins)")
            .add_option(CreateCommandOption::new(
                CommandOptionType::String,
                "args",
                "show | set <setting> <value> | unset <setting> | allow|deny|clear user|role|channel <id>",
            )),
    ]
}

/// Overwrites the application's commands with [`definitions`]. Idempotent, so every replica
/// may do it at start.
pub(crate) async fn register(http: &Http, dev_guild: Option<u64>) -> serenity::Result<usize> {
    let registered = match dev_guild {
        Some(g) => GuildId::new(g).set_commands(http, definitions()).await?,
        None => DiscordCommand::set_global_commands(http, definitions()).await?,
    };
    Ok(registered.len())
}
