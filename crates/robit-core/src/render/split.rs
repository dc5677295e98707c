//! Splits a long reply into messages that each fit the platform's limit, without breaking a
//! code fence: a fence open at a cut is closed at the end of one message and reopened (with
//! its language tag) at the start of the next, so every message renders on its own.
//!
//! Lengths are counted in Unicode scalar values, which is what Discord counts.

use std::ops::Range;

/// A fence line longer than this is treated as text: a code fence's info string is a word or
/// two, and bounding it keeps the reopening prefix small enough to always fit. The same bound
/// as `robit_types::fence`, so text made fence-safe has no other line starting with a fence.
const MAX_FENCE_LINE: usize = robit_types::fence::MAX_FENCE_LINE;
/// Room kept for the closing fence ("\n```") at the end of a message.
const CLOSE_RESERVE: usize = 4;
/// Limits below this cannot hold a reopened fence, one character and a closing fence.
pub const MIN_LIMIT: usize = 2 * MAX_FENCE_LINE + 2 * CLOSE_RESERVE;

/// One message of a split reply: `prefix + text[range] + suffix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// A reopened fence (for example "```python\n") when the cut fell inside a code block.
    pub prefix: String,
    /// The part of the original text this message carries.
    pub range: Range<usize>,
    /// A closing fence when the message ends inside a code block.
    pub suffix: String,
}

impl Chunk {
    pub fn render(&self, text: &str) -> String {
        let mut s = String::with_capacity(self.prefix.len() + self.range.len() + self.suffix.len());
        s.push_str(&self.prefix);
        s.push_str(&text[self.range.clone()]);
        s.push_str(&self.suffix);
        s
    }
}

/// Whether `line` (with or without its newline) opens or closes a code fence: up to three
/// spaces, then three backticks (CommonMark), and short enough to be a real fence line.
pub fn is_fence_line(line: &str) -> bool {
    let l = line.trim_end_matches(['\n', '\r']);
    starts_with_fence(l) && l.chars().count() <= MAX_FENCE_LINE
}

fn starts_with_fence(s: &str) -> bool {
    let indent = s.len() - s.trim_start_matches(' ').len();
    indent <= 3 && s[indent..].starts_with("```")
}

/// Splits `text` into messages of at most `max_chars` characters each (fences included).
///
/// Prefers cutting at line ends, then at whitespace, and only then mid-word. Nothing is lost:
/// the ranges of the returned chunks cover `text` exactly, in order.
pub fn split(text: &str, max_chars: usize) -> Vec<Chunk> {
    let max_chars = max_chars.max(MIN_LIMIT);
    let mut chunks = Vec::new();
    // The fence line that is open at the current position, if any.
    let mut fence: Option<&str> = None;
    let mut start = 0usize;
    let mut prefix = String::new();
    let mut used = 0usize;

    let close = |chunk_text: &str, fence: Option<&str>| -> String {
        match fence {
            None => String::new(),
            Some(_) if chunk_text.ends_with('\n') => "```".to_string(),
            Some(_) => "\n```".to_string(),
        }
    };
    let reopen = |fence: Option<&str>| -> String {
        fence
            .map(|f| format!("{}\n", f.trim_end_matches(['\n', '\r']).trim_start()))
            .unwrap_or_default()
    };

    let mut pos = 0usize;
    for line in text.split_inclusive('\n') {
        let line_start = pos;
        pos += line.len();
        let fence_after = if is_fence_line(line) {
            if fence.is_some() {
                None
            } else {
                Some(line)
            }
        } else {
            fence
        };
        let line_chars = line.chars().count();
        let reserve_after = if fence_after.is_some() {
            CLOSE_RESERVE
        } else {
            0
        };
        if used + line_chars + reserve_after <= max_chars {
            used += line_chars;
            fence = fence_after;
            continue;
        }
        // The line does not fit: end the current message before it, if it holds anything.
        if line_start > start {
            let body = &text[start..line_start];
            chunks.push(Chunk {
                prefix: std::mem::take(&mut prefix),
                range: start..line_start,
                suffix: close(body, fence),
            });
            start = line_start;
            prefix = reopen(fence);
            used = prefix.chars().count();
            if used + line_chars + reserve_after <= max_chars {
                used += line_chars;
                fence = fence_after;
                continue;
            }
        }
        // The line alone is too long for a message: cut it into pieces. A fence line is short
        // by definition, so only text lines get here and the fence state does not change
        // inside them.
        let mut rest = line_start;
        loop {
            let reserve = if fence.is_some() { CLOSE_RESERVE } else { 0 };
            let remaining = &text[rest..pos];
            let budget = max_chars - used - reserve;
            if remaining.chars().count() <= budget {
                used += remaining.chars().count();
                break;
            }
            let cut = rest + cut_point(remaining, budget);
            chunks.push(Chunk {
                prefix: std::mem::take(&mut prefix),
                range: start..cut,
                suffix: close(&text[start..cut], fence),
            });
            start = cut;
            rest = cut;
            prefix = reopen(fence);
            used = prefix.chars().count();
        }
        fence = fence_after;
    }
    if start < text.len() || chunks.is_empty() {
        chunks.push(Chunk {
            suffix: close(&text[start..], fence),
            prefix,
            range: start..text.len(),
        });
    }
    chunks
}

/// Byte offset at which to cut `s` so the first part has at most `budget` characters: after
/// the last whitespace in the second half of the budget if there is one, else mid-word.
fn cut_point(s: &str, budget: usize) -> usize {
    let hard = s
        .char_indices()
        .nth(budget)
        .map(|(i, _)| i)
        .unwrap_or(s.len());
    let head = &s[..hard];
    let min = s
        .char_indices()
        .nth(budget / 2)
        .map(|(i, _)| i)
        .unwrap_or(0);
    let mut cut = match head.rfind(char::is_whitespace) {
        Some(i) if i >= min => i + head[i..].chars().next().map_or(1, char::len_utf8),
        _ => hard,
    };
    // Never leave the next message starting with what reads as a fence: step back (at most
    // four characters, by the CommonMark indent rule) so the line starts with text.
    while cut > 0 && starts_with_fence(&s[cut..]) {
        cut -= s[..cut].chars().next_back().map_or(1, char::len_utf8);
    }
    cut
}

/// Splits and renders in one go.
pub fn split_message(text: &str, max_chars: usize) -> Vec<String> {
    split(text, max_chars)
        .iter()
        .map(|c| c.render(text))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fences_balanced(s: &str) -> bool {
        s.split_inclusive('\n').filter(|l| is_fence_line(l)).count() % 2 == 0
    }

    #[test]
    fn short_text_is_one_message() {
        assert_eq!(split_message("hello", 2000), vec!["hello".to_string()]);
        assert_eq!(split_message("", 2000), vec![String::new()]);
    }

    #[test]
    fn cuts_at_line_ends() {
        let text = format!("{}\n{}\n", "a".repeat(150), "b".repeat(150));
        let parts = split_message(&text, 200);
        assert_eq!(
            parts,
            vec![
                format!("{}\n", "a".repeat(150)),
                format!("{}\n", "b".repeat(150))
            ]
        );
    }

    #[test]
    fn a_cut_inside_a_code_block_closes_and_reopens_the_fence() {
        let body: String = (0..40).map(|i| format!("print({i})\n")).collect();
        let text = format!("Here:\n```python\n{body}```\nDone.");
        let parts = split_message(&text, 200);
        assert!(parts.len() > 1);
        for p in &parts {
            assert!(p.chars().count() <= 200, "{p:?}");
            assert!(fences_balanced(p), "unbalanced: {p:?}");
        }
        assert!(parts[1].starts_with("```python\n"));
        assert!(parts[0].ends_with("```"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        #[test]
        fn never_over_the_limit_never_a_broken_fence_nothing_lost(
            pieces in prop::collection::vec(
                prop_oneof![
                    "[a-z ]{0,30}\n",
                    "[a-zé😀 ]{50,400}",
                    Just("```python\n".to_string()),
                    Just("```\n".to_string()),
                    "```[a-z]{0,80}\n",
                    Just("\n".to_string()),
                ],
                0..60,
            ),
            max in MIN_LIMIT..600usize,
        ) {
            let text: String = pieces.concat();
            let chunks = split(&text, max);
            let mut expect = 0;
            for c in &chunks {
                prop_assert_eq!(c.range.start, expect);
                expect = c.range.end;
                let r = c.render(&text);
                prop_assert!(r.chars().count() <= max, "over the limit: {} > {}", r.chars().count(), max);
                prop_assert!(fences_balanced(&r), "broken fence in {:?}", r);
            }
            prop_assert_eq!(expect, text.len());
        }
    }
}
