//! The two chat platforms behind one face, so each system case runs on both emulators: how
//! robit reaches each emulator, how a user asks, what the bot posted where it was asked
//! (texts, uploaded files, the buttons on its messages), and how a user clicks a button.

use robit_emulators::discord::DiscordEmulator;
use robit_emulators::slack::{
    SharedFile, SlackEmulator, ThreadRef, BOT_TOKEN, BOT_USER, GENERAL, SIGNING_SECRET, USER,
};
use serde_json::Value;

pub enum Platform {
    Slack(SlackEmulator),
    Discord(DiscordEmulator),
}

/// Where a user asked: a Slack thread, or a Discord DM channel.
pub enum Asked {
    Slack(ThreadRef),
    Discord(u64),
}

/// A question a user can edit: where it was asked, the platform's id of its message, and
/// whether it mentions the bot (an edit keeps the mention).
pub struct Question {
    pub asked: Asked,
    /// The Discord message id, or the Slack `ts`.
    pub message: String,
    pub mentions: bool,
}

/// The bot's messages where it was asked, oldest first, and the files uploaded with them.
pub struct Posted {
    pub texts: Vec<String>,
    /// `(file name, bytes)` as the emulator received them.
    pub files: Vec<(String, Vec<u8>)>,
}

/// One of the bot's messages where a user asked, with the ids of the buttons it shows.
#[derive(Debug, Clone)]
pub struct BotMessage {
    /// The Discord message id, or the Slack `ts`.
    pub id: String,
    pub text: String,
    pub buttons: Vec<String>,
}

/// Who clicks a button.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User(pub String);

/// A click the platform delivered: what the bot then showed only the clicker is read from it.
pub enum Clicked {
    Slack { user: String, delivery: String },
    Discord { interaction: u64 },
}

/// Every `custom_id` / `action_id` in a tree of components or blocks.
fn button_ids(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            for key in ["custom_id", "action_id"] {
                if let Some(Value::String(id)) = o.get(key) {
                    out.push(id.clone());
                }
            }
            o.values().for_each(|v| button_ids(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| button_ids(v, out)),
        _ => {}
    }
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

    /// A user mentions the bot in a channel: Slack's #general (answered in the message's
    /// thread), Discord's guild text channel (answered in the thread robit starts from the
    /// message, whose id is the message's).
    pub fn ask_in_channel(&self, text: &str) -> Question {
        match self {
            Platform::Slack(s) => {
                let delivered = s.user_mentions(GENERAL, text);
                Question {
                    message: delivered.ts.clone(),
                    asked: Asked::Slack(delivered.thread()),
                    mentions: true,
                }
            }
            Platform::Discord(d) => {
                let id = d.user_says(d.channel_id(), &format!("<@{}> {text}", d.bot_id()));
                Question {
                    asked: Asked::Discord(id),
                    message: id.to_string(),
                    mentions: true,
                }
            }
        }
    }

    /// The user asks again where `asked` was asked, without a mention (a reply in the
    /// bot's thread).
    pub fn follow_up(&self, asked: &Asked, text: &str) -> Question {
        match (self, asked) {
            (Platform::Slack(s), Asked::Slack(t)) => Question {
                message: s.user_replies(t, text).ts,
                asked: Asked::Slack(t.clone()),
                mentions: false,
            },
            (Platform::Discord(d), Asked::Discord(c)) => Question {
                message: d.user_says(*c, text).to_string(),
                asked: Asked::Discord(*c),
                mentions: false,
            },
            _ => unreachable!("asked on another platform"),
        }
    }

    /// The asker edits `question` to `text` (keeping its mention of the bot): Discord
    /// MESSAGE_UPDATE, Slack `message_changed`.
    pub fn edit(&self, question: &Question, text: &str) {
        match (self, &question.asked) {
            (Platform::Slack(s), Asked::Slack(t)) => {
                let text = if question.mentions {
                    format!("<@{BOT_USER}> {text}")
                } else {
                    text.to_string()
                };
                s.user_edits(&t.channel, &question.message, &text)
                    .expect("the user's message is there");
            }
            (Platform::Discord(d), Asked::Discord(_)) => {
                let text = if question.mentions {
                    format!("<@{}> {text}", d.bot_id())
                } else {
                    text.to_string()
                };
                d.user_edits(question.message.parse().expect("a discord id"), &text)
                    .expect("the user's message is there");
            }
            _ => unreachable!("asked on another platform"),
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

    /// The user who asks in [`Platform::ask`].
    pub fn asker(&self) -> User {
        match self {
            Platform::Slack(_) => User(USER.to_string()),
            Platform::Discord(d) => User(d.user_id().to_string()),
        }
    }

    /// Another user of the workspace, who did not ask.
    pub fn someone_else(&self) -> User {
        match self {
            Platform::Slack(_) => User("U0MALLORY".to_string()),
            Platform::Discord(d) => User(d.add_user("mallory", false).to_string()),
        }
    }

    /// The bot's messages where `asked` was asked, with their buttons, oldest first.
    pub fn bot_messages(&self, asked: &Asked) -> Vec<BotMessage> {
        match (self, asked) {
            (Platform::Slack(s), Asked::Slack(t)) => s
                .bot_replies(t)
                .into_iter()
                .map(|m| {
                    let mut buttons = Vec::new();
                    if let Some(b) = &m.blocks {
                        button_ids(b, &mut buttons);
                    }
                    BotMessage {
                        id: m.ts,
                        text: m.text,
                        buttons,
                    }
                })
                .collect(),
            (Platform::Discord(d), Asked::Discord(c)) => d
                .bot_messages(*c)
                .into_iter()
                .map(|m| {
                    let mut buttons = Vec::new();
                    button_ids(&Value::Array(m.components.clone()), &mut buttons);
                    BotMessage {
                        id: m.id.to_string(),
                        text: m.content,
                        buttons,
                    }
                })
                .collect(),
            _ => unreachable!("asked on another platform"),
        }
    }

    /// `user` clicks the button `button` on the bot's message `message` where `asked` was
    /// asked (a gateway INTERACTION_CREATE on Discord, a signed `block_actions` POST on Slack).
    pub fn click(&self, asked: &Asked, message: &str, button: &str, user: &User) -> Clicked {
        match (self, asked) {
            (Platform::Slack(s), Asked::Slack(t)) => {
                let delivered = s
                    .click_button_as(&user.0, &t.channel, message, button)
                    .expect("the button is on the message");
                Clicked::Slack {
                    user: user.0.clone(),
                    delivery: delivered.event_id,
                }
            }
            (Platform::Discord(d), Asked::Discord(_)) => {
                let i = d
                    .component_as(
                        user.0.parse().expect("a discord user id"),
                        message.parse().expect("a discord message id"),
                        button,
                        None,
                    )
                    .expect("the button is on the message");
                Clicked::Discord { interaction: i.id }
            }
            _ => unreachable!("asked on another platform"),
        }
    }

    /// What the bot showed only the clicker after `clicked` (Slack `chat.postEphemeral`,
    /// Discord ephemeral follow-ups of the interaction).
    pub fn whispers(&self, clicked: &Clicked) -> Vec<String> {
        match (self, clicked) {
            (Platform::Slack(s), Clicked::Slack { user, .. }) => s
                .ephemerals()
                .into_iter()
                .filter(|e| &e.user == user)
                .map(|e| e.text)
                .collect(),
            (Platform::Discord(d), Clicked::Discord { interaction }) => d
                .interaction_messages(*interaction)
                .into_iter()
                .filter(|m| m.flags & 64 != 0)
                .map(|m| m.content)
                .collect(),
            _ => unreachable!("clicked on another platform"),
        }
    }

    /// Whether the platform saw the click acknowledged within its deadline (Discord: a
    /// callback of type 6, deferred update; Slack: the envelope acknowledged over Socket
    /// Mode, or the POST answered 200).
    pub fn click_acknowledged(&self, clicked: &Clicked) -> bool {
        match (self, clicked) {
            (Platform::Slack(s), Clicked::Slack { delivery, .. }) => {
                s.acked(delivery)
                    || s.delivery_attempts()
                        .iter()
                        .any(|a| &a.id == delivery && a.status == Some(200))
            }
            (Platform::Discord(d), Clicked::Discord { interaction }) => d
                .interaction(*interaction)
                .is_some_and(|i| i.response_type == Some(6)),
            _ => unreachable!("clicked on another platform"),
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
