//! The two chat platforms behind one face, so each crash case runs on both emulators.

use robit_emulators::discord::DiscordEmulator;
use robit_emulators::slack::{SlackEmulator, ThreadRef, BOT_TOKEN, GENERAL, SIGNING_SECRET};

pub enum Platform {
    Slack(SlackEmulator),
    Discord(DiscordEmulator),
}

/// Where a question was asked and its answer is expected.
pub enum Asked {
    Slack(ThreadRef),
    /// A DM channel.
    Discord(u64),
}

impl Platform {
    pub async fn slack() -> Platform {
        Platform::Slack(SlackEmulator::start().await)
    }

    pub async fn discord() -> Platform {
        Platform::Discord(DiscordEmulator::start().await)
    }

    /// What `robit serve` needs to reach this emulator.
    pub fn env(&self) -> Vec<(String, String)> {
        let pairs: Vec<(&str, String)> = match self {
            Platform::Slack(s) => vec![
                ("ROBIT_SLACK__BOT_TOKEN", BOT_TOKEN.to_string()),
                ("ROBIT_SLACK__SIGNING_SECRET", SIGNING_SECRET.to_string()),
                ("ROBIT_SLACK__API_URL", s.api_url()),
                ("ROBIT_SLACK__EDIT_INTERVAL_MS", "50".to_string()),
            ],
            Platform::Discord(d) => vec![
                ("ROBIT_DISCORD__TOKEN", d.token()),
                ("ROBIT_DISCORD__API_BASE", d.base_url()),
                ("ROBIT_DISCORD__EDIT_INTERVAL_MS", "50".to_string()),
            ],
        };
        pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    /// Points the emulator at a (re)started process and waits until it can take messages.
    pub async fn attach(&self, robit: &robit_system_tests::Robit) {
        match self {
            Platform::Slack(s) => s.set_events_url(robit.events_url()),
            // `/readyz` follows the shard's connection; the handler knows who the bot is only
            // once READY is handled, which is when it registers its commands.
            Platform::Discord(d) => assert!(
                robit_system_tests::eventually(|| !d.global_commands().is_empty()).await,
                "the bot never handled READY"
            ),
        }
    }

    pub fn ask(&self, text: &str) -> Asked {
        match self {
            Platform::Slack(s) => Asked::Slack(s.user_mentions(GENERAL, text).thread()),
            Platform::Discord(d) => {
                let dm = d.dm_channel(d.user_id());
                d.user_says(dm, text);
                Asked::Discord(dm)
            }
        }
    }

    /// The texts of the bot's messages where `asked` was asked, oldest first.
    pub fn answers(&self, asked: &Asked) -> Vec<String> {
        match (self, asked) {
            (Platform::Slack(s), Asked::Slack(t)) => {
                s.bot_replies(t).into_iter().map(|m| m.text).collect()
            }
            (Platform::Discord(d), Asked::Discord(c)) => {
                d.bot_messages(*c).into_iter().map(|m| m.content).collect()
            }
            _ => unreachable!("asked on another platform"),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Platform::Slack(_) => "slack",
            Platform::Discord(_) => "discord",
        }
    }
}
