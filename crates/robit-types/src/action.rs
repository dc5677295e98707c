//! Buttons on an answer and what a click on one asks for, in the same words on every platform.
//!
//! The engine decides which buttons an answer shows ([`AnswerControls`]); an adapter draws
//! them (Discord message components, Slack Block Kit buttons) with the ids [`Button::id`]
//! gives, and turns a click back into an [`AnswerAction`] with [`AnswerAction::parse_id`], so
//! both adapters read and write one id format.

use serde::{Deserialize, Serialize};

/// What a click on an answer's button asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnswerAction {
    /// Cancel the running turn at once; the answer keeps what was shown.
    Stop,
    /// Run the turn again and replace the answer in place.
    Regenerate,
    /// 👍 on the answer.
    Up,
    /// 👎 on the answer.
    Down,
}

/// The prefix of every button id robit makes, so an adapter can tell its own buttons from
/// another app's components in the same message.
const ID_PREFIX: &str = "robit:";

impl AnswerAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AnswerAction::Stop => "stop",
            AnswerAction::Regenerate => "regenerate",
            AnswerAction::Up => "up",
            AnswerAction::Down => "down",
        }
    }

    pub fn parse(s: &str) -> Option<AnswerAction> {
        match s {
            "stop" => Some(AnswerAction::Stop),
            "regenerate" => Some(AnswerAction::Regenerate),
            "up" => Some(AnswerAction::Up),
            "down" => Some(AnswerAction::Down),
            _ => None,
        }
    }

    /// Whether only the asker (or an admin) may do it: stopping or regenerating changes
    /// someone's answer; a vote is each user's own.
    pub fn needs_owner(self) -> bool {
        matches!(self, AnswerAction::Stop | AnswerAction::Regenerate)
    }

    /// The id of this action's button on the answer to question `turn`: `robit:stop:42`.
    /// Short (Discord allows 100 characters, Slack 255) and free of anything secret: a client
    /// can send any id it likes, so the engine checks who clicked, never the id's origin.
    pub fn id(self, turn: i64) -> String {
        format!("{ID_PREFIX}{}:{turn}", self.as_str())
    }

    /// The action and question of a button id made by [`AnswerAction::id`]; `None` for any
    /// other id.
    pub fn parse_id(id: &str) -> Option<(AnswerAction, i64)> {
        let (action, turn) = id.strip_prefix(ID_PREFIX)?.split_once(':')?;
        Some((AnswerAction::parse(action)?, turn.parse().ok()?))
    }
}

/// The buttons one message of an answer shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AnswerControls {
    /// No buttons (an earlier part of a long answer, a message that lost its buttons).
    #[default]
    None,
    /// The answer is streaming: Stop.
    Streaming { turn: i64 },
    /// The answer is complete (or stopped, or failed): Regenerate, 👍 and 👎.
    Done { turn: i64 },
}

/// One button as an adapter draws it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Button {
    pub action: AnswerAction,
    /// What the platform sends back when it is clicked ([`AnswerAction::parse_id`]).
    pub id: String,
    pub label: &'static str,
    /// Drawn as a warning (Discord's red Danger style, Slack's `danger`).
    pub danger: bool,
}

impl AnswerControls {
    /// The buttons, left to right.
    pub fn buttons(&self) -> Vec<Button> {
        let button = |action: AnswerAction, turn: i64, label: &'static str| Button {
            action,
            id: action.id(turn),
            label,
            danger: action == AnswerAction::Stop,
        };
        match *self {
            AnswerControls::None => Vec::new(),
            AnswerControls::Streaming { turn } => vec![button(AnswerAction::Stop, turn, "⏹ Stop")],
            AnswerControls::Done { turn } => vec![
                button(AnswerAction::Regenerate, turn, "🔄 Regenerate"),
                button(AnswerAction::Up, turn, "👍"),
                button(AnswerAction::Down, turn, "👎"),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_button_id_round_trips_and_foreign_ids_are_not_ours() {
        for action in [
            AnswerAction::Stop,
            AnswerAction::Regenerate,
            AnswerAction::Up,
            AnswerAction::Down,
        ] {
            assert_eq!(AnswerAction::parse_id(&action.id(42)), Some((action, 42)));
        }
        assert_eq!(AnswerAction::parse_id("robit:stop:x"), None);
        assert_eq!(AnswerAction::parse_id("robit:launch:1"), None);
        assert_eq!(AnswerAction::parse_id("other:stop:1"), None);
    }

    #[test]
    fn a_streaming_answer_offers_stop_and_a_finished_one_regenerate_and_the_votes() {
        let ids =
            |c: AnswerControls| -> Vec<String> { c.buttons().into_iter().map(|b| b.id).collect() };
        assert_eq!(ids(AnswerControls::Streaming { turn: 7 }), ["robit:stop:7"]);
        assert_eq!(
            ids(AnswerControls::Done { turn: 7 }),
            ["robit:regenerate:7", "robit:up:7", "robit:down:7"]
        );
        assert!(ids(AnswerControls::None).is_empty());
    }
}
