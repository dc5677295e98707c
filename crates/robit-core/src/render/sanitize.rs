//! Makes mentions in model output inert, so the bot can never ping @everyone, @here, a role or
//! a user, whatever the model writes. Adapters also send empty `allowed_mentions`; this is the
//! second belt, and the one that works on every platform.
//!
//! A zero-width space is put inside each mention syntax (Discord `@everyone`, `@here`, `<@id>`,
//! `<@&role>`; Slack `<!here>`, `<!channel>`, `<@U…>`). Text inside fenced code blocks is left
//! alone: platforms do not resolve mentions there, and code must stay copyable. That is only
//! safe because the text is first made fence-safe (`robit_types::fence::fence_safe`): the only
//! fences left are bare fence lines, so where this module sees a block is where the platform
//! does, and nothing inside a block can end it early.

use super::split::is_fence_line;

const ZWSP: &str = "\u{200B}";
const MENTION_STARTS: [&str; 4] = ["@everyone", "@here", "<@", "<!"];

pub fn neutralize_mentions(text: &str) -> String {
    let text = robit_types::fence::fence_safe(text);
    let mut out = String::with_capacity(text.len() + 8);
    let mut in_fence = false;
    for line in text.split_inclusive('\n') {
        if is_fence_line(line) {
            in_fence = !in_fence;
            out.push_str(line);
        } else if in_fence {
            out.push_str(line);
        } else {
            neutralize_line(line, &mut out);
        }
    }
    out
}

fn neutralize_line(line: &str, out: &mut String) {
    let mut rest = line;
    while let Some(i) = rest.find(['@', '<']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        // Both '@' and '<' are one byte, so slicing after the first byte is safe.
        out.push_str(&tail[..1]);
        if MENTION_STARTS.iter().any(|p| tail.starts_with(p)) {
            out.push_str(ZWSP);
        }
        rest = &tail[1..];
    }
    out.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everyone_here_and_user_mentions_are_inert() {
        let out =
            neutralize_mentions("hi @everyone and @here, <@123> <@!45> <@&9> <!channel> <@U1>");
        assert!(!out.contains("@everyone"));
        assert!(!out.contains("@here"));
        assert!(!out.contains("<@1"));
        assert!(!out.contains("<@!"));
        assert!(!out.contains("<@&"));
        assert!(!out.contains("<!c"));
        assert!(!out.contains("<@U"));
        assert_eq!(
            out.replace(ZWSP, ""),
            "hi @everyone and @here, <@123> <@!45> <@&9> <!channel> <@U1>"
        );
    }

    #[test]
    fn code_blocks_and_plain_text_are_untouched() {
        let text = "mail me@example.com, a < b\n```\n@everyone in code\n```\n";
        assert_eq!(neutralize_mentions(text), text);
    }
}
