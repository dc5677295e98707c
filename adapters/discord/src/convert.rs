//! Pure conversions from what Discord sends to robit's common model: mention stripping,
//! thread names, slash-command options to a [`Command`], conversation keys.
//!
//! Kept free of serenity types and I/O so every rule here is a plain unit test.

use robit_types::{Command, CommandParseError, ConversationKey, Platform};

/// The workspace of DM conversations (a DM has no guild).
pub(crate) const DM_WORKSPACE: &str = "@me";

/// Longest thread name Discord accepts.
const THREAD_NAME_MAX: usize = 100;
/// Thread names stop at a word boundary past this; a name is a title, not the whole message.
const THREAD_NAME_SOFT: usize = 60;

/// The text without the bot's mentions (`<@id>` and the legacy `<@!id>`), trimmed.
pub(crate) fn strip_mention(text: &str, bot: u64) -> String {
    text.replace(&format!("<@{bot}>"), "")
        .replace(&format!("<@!{bot}>"), "")
        .trim()
        .to_string()
}

/// A thread title from the first words of a message: at most 100 characters, cut at a word
/// boundary after about 60, never empty.
pub(crate) fn thread_name(text: &str) -> String {
    let mut name = String::new();
    for word in text.split_whitespace() {
        let len = name.chars().count();
        if len > 0 && len + 1 + word.chars().count() > THREAD_NAME_SOFT {
            break;
        }
        if len > 0 {
            name.push(' ');
        }
        name.push_str(word);
        if name.chars().count() >= THREAD_NAME_SOFT {
            break;
        }
    }
    if name.chars().count() > THREAD_NAME_MAX {
        let cut: String = name.chars().take(THREAD_NAME_MAX - 1).collect();
        name = format!("{cut}…");
    }
    if name.is_empty() {
        "robit".to_string()
    } else {
        name
    }
}

/// A slash command's name and string options as one robit [`Command`].
pub(crate) fn command_from(
    name: &str,
    options: &[(String, String)],
) -> Result<Command, CommandParseError> {
    let opt = |key: &str| {
        options
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    };
    match name {
        "ask" => Command::from_parts("ask", opt("prompt")),
        // `/run` parses "language code", including a fenced block as the code.
        "run" => Command::from_parts("run", &format!("{} {}", opt("language"), opt("code"))),
        "reset" => Ok(Command::Reset),
        "model" => Command::from_parts("model", opt("name")),
        "help" => Ok(Command::Help),
        "config" => Command::from_parts("config", opt("args")),
        other => Command::from_parts(other, ""),
    }
}

/// The conversation of a channel message, a thread, or a DM. A thread keeps its parent
/// channel as `channel`, so all conversations of one channel sort together.
pub(crate) fn key(guild: Option<u64>, channel: u64, thread: Option<u64>) -> ConversationKey {
    ConversationKey::new(
        Platform::Discord,
        guild.map_or_else(|| DM_WORKSPACE.to_string(), |g| g.to_string()),
        channel.to_string(),
        thread.map(|t| t.to_string()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use robit_types::{Language, Tier};

    #[test]
    fn strips_both_mention_forms() {
        assert_eq!(strip_mention("<@42> hi <@!42>there", 42), "hi there");
        assert_eq!(strip_mention("<@7> hi", 42), "<@7> hi");
    }

    #[test]
    fn thread_names_are_short_titles() {
        assert_eq!(
            thread_name("  how do   I sort a list? "),
            "how do I sort a list?"
        );
        assert_eq!(thread_name(""), "robit");
        let long = "word ".repeat(50);
        let name = thread_name(&long);
        assert!(name.chars().count() <= 60, "{name}");
        assert!(name.ends_with("word"));
        let blob = "x".repeat(300);
        assert_eq!(thread_name(&blob).chars().count(), 100);
    }

    #[test]
    fn slash_options_become_commands() {
        let o = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        assert_eq!(
            command_from("ask", &o(&[("prompt", "hi")])),
            Ok(Command::Ask {
                prompt: "hi".into()
            })
        );
        assert_eq!(
            command_from("run", &o(&[("language", "python"), ("code", "print(1)")])),
            Ok(Command::Run {
                language: Language::Python,
                code: "print(1)".into(),
                tier: Tier::Wasm,
            })
        );
        assert_eq!(
            command_from(
                "run",
                &o(&[("language", "js"), ("code", "```js\nconsole.log(1)\n```")])
            ),
            Ok(Command::Run {
                language: Language::JavaScript,
                code: "console.log(1)".into(),
                tier: Tier::Wasm,
            })
        );
        assert_eq!(
            command_from("model", &[]),
            Ok(Command::Model { name: None })
        );
        assert!(command_from("ask", &[]).is_err());
        assert!(command_from("frob", &[]).is_err());
    }

    #[test]
    fn dm_and_thread_keys() {
        assert_eq!(key(None, 5, None).to_string(), "discord:@me:5");
        assert_eq!(key(Some(1), 5, Some(9)).to_string(), "discord:1:5:9");
    }
}
