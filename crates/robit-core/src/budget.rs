//! Fitting a conversation into the model's context window.
//!
//! History is trimmed oldest-first until the estimated prompt fits the budget (the model's
//! context size minus room for the answer). The system prompt and the newest user message
//! are always kept; a tool result is never kept without the assistant message that called
//! it, since providers reject such a request. Sizes come from [`estimate_tokens`].

use crate::tokens::estimate_tokens;
use robit_llm::{ChatMessage, Role};

/// The turn cannot fit even with all history dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooLarge {
    pub needed: u64,
    pub budget: u64,
}

fn cost(m: &ChatMessage) -> u64 {
    estimate_tokens(&m.content)
        + m.tool_calls
            .iter()
            .map(|c| estimate_tokens(&c.arguments) + estimate_tokens(&c.name))
            .sum::<u64>()
}

/// Drops the oldest history so `messages` fits in `budget` tokens. `messages` is
/// `[system, history…, newest user message]`; the first and last are always kept.
pub fn fit(messages: Vec<ChatMessage>, budget: u64) -> Result<Vec<ChatMessage>, TooLarge> {
    let total: u64 = messages.iter().map(cost).sum();
    if total <= budget || messages.len() <= 2 {
        return if total <= budget {
            Ok(messages)
        } else {
            Err(TooLarge {
                needed: total,
                budget,
            })
        };
    }
    let last = messages.len() - 1;
    let mut remaining = total;
    let mut first_kept = 1;
    // Drop from the oldest history message until it fits, or only the newest is left.
    while remaining > budget && first_kept < last {
        remaining -= cost(&messages[first_kept]);
        first_kept += 1;
    }
    // Tool results whose call was dropped go too.
    while first_kept < last && messages[first_kept].role == Role::Tool {
        remaining -= cost(&messages[first_kept]);
        first_kept += 1;
    }
    if remaining > budget {
        return Err(TooLarge {
            needed: remaining,
            budget,
        });
    }
    let mut out = Vec::with_capacity(messages.len() - first_kept + 1);
    let mut iter = messages.into_iter();
    out.push(iter.next().expect("system message"));
    out.extend(iter.skip(first_kept - 1));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use robit_llm::ToolCall;

    fn m(role: Role, text: &str) -> ChatMessage {
        ChatMessage::new(role, text)
    }

    #[test]
    fn fitting_history_is_left_alone() {
        let msgs = vec![
            m(Role::System, "sys"),
            m(Role::User, "a"),
            m(Role::Assistant, "b"),
            m(Role::User, "c"),
        ];
        assert_eq!(fit(msgs.clone(), 1000).unwrap(), msgs);
    }

    #[test]
    fn the_oldest_turns_go_first_and_system_and_newest_stay() {
        let long = "x".repeat(400); // ~104 tokens each
        let msgs = vec![
            m(Role::System, "sys"),
            m(Role::User, &format!("old {long}")),
            m(Role::Assistant, &format!("old answer {long}")),
            m(Role::User, &format!("recent {long}")),
            m(Role::Assistant, &format!("recent answer {long}")),
            m(Role::User, "newest"),
        ];
        let kept = fit(msgs, 250).unwrap();
        let contents: Vec<_> = kept
            .iter()
            .map(|m| m.content.trim_end_matches('x').trim_end().to_string())
            .collect();
        assert_eq!(contents, ["sys", "recent", "recent answer", "newest"]);
    }

    #[test]
    fn a_tool_result_never_outlives_its_call() {
        let mut call = m(Role::Assistant, "");
        call.tool_calls = vec![ToolCall {
            id: "c1".into(),
            name: "run_code".into(),
            arguments: "x".repeat(400),
        }];
        let mut result = m(Role::Tool, "42");
        result.tool_call_id = Some("c1".into());
        let msgs = vec![
            m(Role::System, "sys"),
            m(Role::User, "q"),
            call,
            result,
            m(Role::User, "newest"),
        ];
        let kept = fit(msgs, 40).unwrap();
        assert!(kept.iter().all(|m| m.role != Role::Tool), "{kept:?}");
        assert_eq!(kept.last().unwrap().content, "newest");
    }

    #[test]
    fn a_turn_too_large_alone_is_an_error() {
        let msgs = vec![
            m(Role::System, "sys"),
            m(Role::User, "a"),
            m(Role::User, &"y".repeat(4000)),
        ];
        let err = fit(msgs, 100).unwrap_err();
        assert!(err.needed > err.budget);
    }
}
