//! Recognises the engine's report of a sandbox run in a posted message, so the transcript can
//! show it as a panel with its exit status and duration.
//!
//! The engine posts a run's output as text every platform can show: the output in a code
//! block, then a status line `` `exit 0 · 12 ms` `` (`` `no exit code · 5 ms` ``), possibly
//! followed by ` · ⏱️ timed out` and the like (`robit-core`'s `code_run.rs`). The console reads
//! that status back rather than widening the `ReplySink` port for one adapter's looks; when
//! the wording changes, a message simply shows as ordinary Markdown. Pure functions, on
//! `markdown` only.

use ratatui::text::Line;

/// A run's status, read from the last line of its output message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunStatus {
    /// `None`: the guest ended without one (killed at a limit).
    pub exit_code: Option<i64>,
    pub duration_ms: u64,
    /// What else happened (`⏱️ timed out`), as the engine said it.
    pub note: Option<String>,
}

impl RunStatus {
    pub fn ok(&self) -> bool {
        self.exit_code == Some(0) && self.note.is_none()
    }

    /// `exit 0 · 12 ms`, with the note after it.
    pub fn title(&self) -> String {
        let exit = match self.exit_code {
            Some(c) => format!("exit {c}"),
            None => "no exit code".to_string(),
        };
        match &self.note {
            Some(n) => format!("{exit} · {} ms · {n}", self.duration_ms),
            None => format!("{exit} · {} ms", self.duration_ms),
        }
    }
}

/// The run's body (the text before the status) and its status, when `text` is the output of
/// a run.
pub fn parse(text: &str) -> Option<(&str, RunStatus)> {
    let text = text.trim_end();
    let (body, last) = match text.rsplit_once('\n') {
        Some((body, last)) => (body, last),
        None => ("", text),
    };
    // An output uploaded as a file has the status in its comment: "Output attached. `…`".
    let last = last.strip_prefix("Output attached. ").unwrap_or(last);
    let rest = last.strip_prefix('`')?;
    let (status, after) = rest.split_once('`')?;
    let (exit, duration) = status.split_once(" · ")?;
    let exit_code = match exit.strip_prefix("exit ") {
        Some(n) => Some(n.parse().ok()?),
        None if exit == "no exit code" => None,
        None => return None,
    };
    let duration_ms = duration.strip_suffix(" ms")?.parse().ok()?;
    let note = after.strip_prefix(" · ").map(str::to_string);
    if !after.is_empty() && note.is_none() {
        return None;
    }
    Some((
        body,
        RunStatus {
            exit_code,
            duration_ms,
            note,
        },
    ))
}

/// A run's output as lines: the engine puts it in one bare code block, which inside a panel
/// would be a frame in a frame, so its text is shown as it is (in the code style);
/// anything else is rendered as Markdown.
pub fn output_lines(body: &str) -> Vec<Line<'static>> {
    let inner = body
        .strip_prefix("```\n")
        .and_then(|b| b.strip_suffix("\n```").or_else(|| b.strip_suffix("```")));
    match inner {
        Some(text) if !text.contains("\n```") => text
            .lines()
            .map(|l| Line::styled(l.replace('\t', "    "), crate::markdown::CODE))
            .collect(),
        _ => crate::markdown::render(body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_engines_run_reports_are_recognised() {
        let (body, s) = parse("```\nhello\n```\n`exit 0 · 12 ms`").unwrap();
        assert_eq!(body, "```\nhello\n```");
        assert_eq!(s.title(), "exit 0 · 12 ms");
        assert!(s.ok());
        let (body, s) = parse("(no output)\n`no exit code · 5000 ms` · ⏱️ timed out").unwrap();
        assert_eq!(body, "(no output)");
        assert_eq!(s.exit_code, None);
        assert_eq!(s.note.as_deref(), Some("⏱️ timed out"));
        assert!(!s.ok());
        let (_, s) = parse("Output attached. `exit 1 · 3 ms`").unwrap();
        assert_eq!(s.exit_code, Some(1));
        let lines = output_lines("```\nhello\n\tworld\n```");
        let text: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        assert_eq!(text, ["hello", "    world"]);
    }

    #[test]
    fn ordinary_answers_are_not_runs() {
        for text in [
            "Use `exit 0` to leave.",
            "`exit 0 · soon`",
            "`code` · more",
            "plain text",
            "",
        ] {
            assert_eq!(parse(text), None, "{text}");
        }
    }
}
