//! Code fences that untrusted text cannot close: the one policy every path that shows guest
//! output, model text or a file inside a fence uses, on every platform.
//!
//! Why not only a longer fence (as CommonMark allows): Discord's and Slack's parsers close a
//! code block at the *first* three backticks that follow it, anywhere, whatever the length of
//! the opening fence. So the text itself must never hold three backticks in a row, except on a
//! line that is nothing but a fence (backticks and a language tag). Every longer run gets a
//! zero-width space after each second backtick: it still reads as backticks, it can no longer
//! close or open a block, and a plain three-backtick fence is then longer than every run left,
//! which is also the rule CommonMark renderers (Slack's `markdown_text`) follow.
//!
//! This module is pure string work and must stay so.

use std::borrow::Cow;

const ZWSP: char = '\u{200B}';

/// The longest run of consecutive backticks in `s`.
pub fn longest_backtick_run(s: &str) -> usize {
    let (mut longest, mut run) = (0, 0);
    for c in s.chars() {
        if c == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    longest
}

/// `s` with no run of more than two backticks: a zero-width space follows every second
/// backtick of a longer run. Single and double backticks (inline code) are left as they are.
pub fn break_backtick_runs(s: &str) -> Cow<'_, str> {
    if longest_backtick_run(s) < 3 {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    let mut chars = s.chars().peekable();
    let mut run = 0;
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '`' {
            run += 1;
            if run % 2 == 0 && chars.peek() == Some(&'`') {
                out.push(ZWSP);
            }
        } else {
            run = 0;
        }
    }
    Cow::Owned(out)
}

/// A fenced code block holding `content` verbatim except for broken backtick runs, so nothing
/// in it can end the block early. `info` is the language tag (`python`, or empty).
pub fn code_block(info: &str, content: &str) -> String {
    let info: String = info.chars().filter(|c| is_info_char(*c)).collect();
    let content = break_backtick_runs(content);
    let fence = "`".repeat(longest_backtick_run(&content).max(2) + 1);
    format!("{fence}{info}\n{content}\n{fence}")
}

fn is_info_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.' | '#')
}

/// Longest line taken for a fence, in characters; the engine's splitter uses the same bound,
/// so both agree on which lines are fences.
pub const MAX_FENCE_LINE: usize = 64;

/// Whether `line` (with or without its line ending) is only a fence: up to three spaces, three
/// or more backticks, then at most a language tag and spaces, in at most [`MAX_FENCE_LINE`]
/// characters. Nothing on such a line can be a mention or a link.
pub fn is_bare_fence_line(line: &str) -> bool {
    let l = line.trim_end_matches(['\n', '\r']);
    if l.chars().count() > MAX_FENCE_LINE {
        return false;
    }
    let indent = l.len() - l.trim_start_matches(' ').len();
    if indent > 3 {
        return false;
    }
    let rest = &l[indent..];
    let ticks = rest.len() - rest.trim_start_matches('`').len();
    ticks >= 3
        && rest[ticks..]
            .trim_matches([' ', '\t'])
            .chars()
            .all(is_info_char)
}

/// Markdown from an untrusted author (a model, a file) made safe to show: every run of three
/// or more backticks that is not a bare fence line is broken, so the fences a renderer sees are
/// exactly the bare fence lines, and text meant for inside a block cannot leave it. Idempotent,
/// and a prefix of the text maps to a prefix of the result except on a line still being
/// written (which streaming sinks handle by rewriting).
pub fn fence_safe(text: &str) -> Cow<'_, str> {
    if longest_backtick_run(text) < 3 {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for line in text.split_inclusive('\n') {
        if is_bare_fence_line(line) {
            out.push_str(line);
        } else {
            out.push_str(&break_backtick_runs(line));
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The attack from issue 15: four backticks, then a role mention, @everyone and a masked
    /// link, in output shown inside a fence.
    const ATTACK: &str = "````<@&123> @everyone [verify](https://evil.example)";

    /// Where a Discord- or Slack-style parser closes a block opened at the start of `s`: at
    /// the first three backticks after the opening fence line.
    fn first_close(s: &str) -> Option<usize> {
        let body = s.find('\n')? + 1;
        s[body..].find("```").map(|i| body + i)
    }

    #[test]
    fn the_issue_attack_stays_inside_a_code_block() {
        let block = code_block("", &format!("out\n{ATTACK}\nmore"));
        let close = first_close(&block).unwrap();
        assert_eq!(close, block.len() - 3, "closed early: {block:?}");
        assert!(block[..close].contains("@everyone [verify](https://evil.example)"));
        assert_eq!(longest_backtick_run(&block[4..close]), 2);
    }

    #[test]
    fn runs_are_broken_after_every_second_backtick() {
        assert_eq!(break_backtick_runs("a `b` ``c``"), "a `b` ``c``");
        assert_eq!(break_backtick_runs("```"), "``\u{200B}`");
        assert_eq!(break_backtick_runs("````x"), "``\u{200B}``x");
        assert_eq!(break_backtick_runs("`````"), "``\u{200B}``\u{200B}`");
        for n in 3..20 {
            let s = "`".repeat(n);
            assert_eq!(longest_backtick_run(&break_backtick_runs(&s)), 2, "{n}");
        }
    }

    #[test]
    fn model_text_keeps_its_fences_but_cannot_fake_one() {
        let md = format!("see:\n```python\nprint(1)\n{ATTACK}\n```\nand ``` inline");
        let safe = fence_safe(&md);
        let fence_lines: Vec<&str> = safe.lines().filter(|l| l.contains("```")).collect();
        assert_eq!(fence_lines, ["```python", "```"], "{safe:?}");
        // The attack line opens with ``-zwsp-``, which no parser reads as a fence.
        assert!(safe.contains("``\u{200B}``<@&123>"));
        assert_eq!(fence_safe(&safe), safe, "idempotent");
    }

    #[test]
    fn a_fence_line_with_text_after_it_is_not_a_fence() {
        assert!(is_bare_fence_line("```"));
        assert!(is_bare_fence_line("  ```c++ \n"));
        assert!(is_bare_fence_line("````"));
        assert!(!is_bare_fence_line(ATTACK));
        assert!(!is_bare_fence_line("```a b"));
        assert!(!is_bare_fence_line("    ```"));
        assert!(!is_bare_fence_line(&format!("```{}", "a".repeat(70))));
    }

    #[test]
    fn code_block_drops_odd_characters_from_the_language_tag() {
        assert_eq!(code_block("py\n```x", "1"), "```pyx\n1\n```");
    }
}
