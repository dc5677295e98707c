//! The two chat platforms behind one face, so each system case runs on both emulators: how
//! robit reaches each emulator, how a user asks, and what the bot posted where it was asked
//! (texts and uploaded files).

use robit_emulators::discord::DiscordEmulator;
use robit_emulators::slack::{
    SharedFile, SlackEmulator, ThreadRef, BOT_TOKEN, GENERAL, SIGNING_SECRET,
};

pub enum Platform {
    Slack(SlackEmulator),
    Discord(DiscordEmulator),
}

/// Where a user asked: a Slack thread, or a Discord DM channel.
pub enum Asked {
    Slack(ThreadRef),
    Discord(u64),
}

/// The bot's messages where it was asked, oldest first, and the files uploaded with them.
pub struct Posted {
    pub texts: Vec<String>,
    /// `(file name, bytes)` as the emulator received them.
    pub files: Vec<(String, Vec<u8>)>,
}

impl Posted {
    pub fn names(&self) -> Vec<&str> {
        self.files.iter().map(|(n, _)| n.as_str()).collect()
    }
}

impl Platform {
    pub async fn slack() -> Platform {
        Platform::Slack(SlackEmulator::start().await)
    }

    pub async fn discord() -> Platform {
        Platform::Discord(DiscordEmulator::start().await)
    }

    pub fn name(&self) -> &'static str {
        match self {
            Platform::Slack(_) => "slack",
            Platform::Discord(_) => "discord",
        }
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

    /// Points the emulator at the process and waits until it can take messages.
    pub async fn attach(&self, robit: &crate::Robit) {
        match self {
            Platform::Slack(s) => s.set_events_url(robit.events_url()),
            // Commands are registered once READY is handled: from then on it knows who it is.
            Platform::Discord(d) => assert!(
                crate::eventually(|| !d.global_commands().is_empty()).await,
                "the bot never handled READY"
            ),
        }
    }

    /// A user mentions the bot in a channel (Slack) or writes to it in a DM (Discord).
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

    /// Slack only: the mention shares a CSV file.
    pub fn ask_with_csv(&self, text: &str, name: &str, csv: &str) -> Asked {
        match self {
            Platform::Slack(s) => {
                let file = SharedFile::new(name, "text/csv", csv.as_bytes().to_vec());
                Asked::Slack(
                    s.user_mentions_with_files(GENERAL, text, vec![file])
                        .thread(),
                )
            }
            Platform::Discord(_) => unimplemented!("the Discord emulator takes no user files"),
        }
    }

    /// The texts of the bot's messages where `asked` was asked, oldest first.
    pub fn answers(&self, asked: &Asked) -> Vec<String> {
        self.posted(asked).texts
    }

    pub fn posted(&self, asked: &Asked) -> Posted {
        match (self, asked) {
            (Platform::Slack(s), Asked::Slack(t)) => {
                let replies = s.bot_replies(t);
                let uploaded = s.files();
                let files = replies
                    .iter()
                    .flat_map(|m| m.files.iter())
                    .filter_map(|id| uploaded.iter().find(|f| &f.id == id && f.completed))
                    .map(|f| (f.name.clone(), f.bytes.clone().unwrap_or_default()))
                    .collect();
                Posted {
                    texts: replies.into_iter().map(|m| m.text).collect(),
                    files,
                }
            }
            (Platform::Discord(d), Asked::Discord(c)) => {
                let messages = d.bot_messages(*c);
                let files = messages
                    .iter()
                    .flat_map(|m| m.attachments.iter())
                    .map(|a| (a.filename.clone(), a.data.clone()))
                    .collect();
                Posted {
                    texts: messages.into_iter().map(|m| m.content).collect(),
                    files,
                }
            }
            _ => unreachable!("asked on another platform"),
        }
    }
}
