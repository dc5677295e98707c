//! Markdown of an answer as styled terminal lines: emphasis, headings, lists, links, quotes
//! and code blocks with syntax highlighting.
//!
//! A leaf of the crate: pure functions of the text, no terminal. Lines are not wrapped here
//! (the transcript wraps them to the window), so a rendered message can be kept and reused
//! across resizes. The text must already be free of terminal escapes (the reducer strips
//! them where text enters the state); tabs become spaces, since a terminal cell holds none.

use pulldown_cmark::{CodeBlockKind, Event, HeadingLevel, Options, Parser, Tag, TagEnd};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use std::sync::LazyLock;
use syntect::easy::HighlightLines;
use syntect::highlighting::{Theme, ThemeSet};
use syntect::parsing::SyntaxSet;

static SYNTAXES: LazyLock<SyntaxSet> = LazyLock::new(SyntaxSet::load_defaults_newlines);
static THEME: LazyLock<Theme> = LazyLock::new(|| {
    let mut themes = ThemeSet::load_defaults().themes;
    themes
        .remove("base16-ocean.dark")
        .expect("syntect bundles base16-ocean.dark")
});

/// The style of code: inline spans and the lines of a block that has no known language.
pub const CODE: Style = Style::new().fg(Color::LightYellow);
const LINK: Style = Style::new()
    .fg(Color::LightBlue)
    .add_modifier(Modifier::UNDERLINED);
const URL: Style = Style::new().fg(Color::DarkGray);
const QUOTE: Style = Style::new().fg(Color::Gray);
const CODE_GUTTER: &str = "▎ ";

/// Renders `text` (Markdown) as lines.
pub fn render(text: &str) -> Vec<Line<'static>> {
    let mut r = Renderer::default();
    let options = Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    for event in Parser::new_ext(text, options) {
        r.event(event);
    }
    r.flush();
    // No trailing blank line: the transcript puts its own space between messages.
    while r.lines.last().is_some_and(|l| l.spans.is_empty()) {
        r.lines.pop();
    }
    r.lines
}

#[derive(Default)]
struct Renderer {
    lines: Vec<Line<'static>>,
    /// The line being built.
    spans: Vec<Span<'static>>,
    /// Inline styles in force (emphasis inside a link inside a heading...).
    styles: Vec<Style>,
    /// Open lists: the next number of an ordered one, `None` for bullets.
    lists: Vec<Option<u64>>,
    /// Prefix of the first line of the current list item (its bullet), then its indent.
    item_prefix: Option<String>,
    quote_depth: usize,
    /// Inside a code block: its language and the text so far.
    code: Option<(String, String)>,
    /// Destinations of open links, printed after their text.
    links: Vec<String>,
}

impl Renderer {
    fn style(&self) -> Style {
        self.styles
            .iter()
            .fold(Style::default(), |acc, s| acc.patch(*s))
    }

    fn push_style(&mut self, style: Style) {
        self.styles.push(style);
    }

    /// The prefix of a new line: quote bars and list indentation.
    fn prefix(&mut self) -> Vec<Span<'static>> {
        let mut out = Vec::new();
        if self.quote_depth > 0 {
            out.push(Span::styled("│ ".repeat(self.quote_depth), QUOTE));
        }
        let indent = "  ".repeat(self.lists.len().saturating_sub(1));
        match self.item_prefix.take() {
            Some(bullet) => out.push(Span::raw(format!("{indent}{bullet}"))),
            None if !self.lists.is_empty() => out.push(Span::raw(format!("{indent}  "))),
            None => {}
        }
        out
    }

    fn text(&mut self, text: &str) {
        let style = self.style();
        for (i, part) in text.split('\n').enumerate() {
            if i > 0 {
                self.flush();
            }
            if part.is_empty() {
                continue;
            }
            if self.spans.is_empty() {
                let prefix = self.prefix();
                self.spans.extend(prefix);
            }
            self.spans
                .push(Span::styled(part.replace('\t', "    "), style));
        }
    }

    /// Ends the current line, if it has anything.
    fn flush(&mut self) {
        if !self.spans.is_empty() {
            self.lines.push(Line::from(std::mem::take(&mut self.spans)));
        }
    }

    fn blank(&mut self) {
        self.flush();
        if self.lines.last().is_some_and(|l| !l.spans.is_empty()) {
            self.lines.push(Line::default());
        }
    }

    fn event(&mut self, event: Event<'_>) {
        if let Some((_, code)) = &mut self.code {
            match event {
                Event::Text(t) => code.push_str(&t),
                Event::End(TagEnd::CodeBlock) => {
                    let (lang, code) = self.code.take().expect("in a code block");
                    self.code_block(&lang, &code);
                }
                _ => {}
            }
            return;
        }
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::Text(t) => self.text(&t),
            Event::Code(t) => {
                self.push_style(CODE);
                self.text(&t);
                self.styles.pop();
            }
            Event::SoftBreak => self.text(" "),
            Event::HardBreak => self.flush(),
            Event::Rule => {
                self.blank();
                self.lines.push(Line::styled(
                    "─".repeat(40),
                    Style::new().fg(Color::DarkGray),
                ));
                self.lines.push(Line::default());
            }
            Event::TaskListMarker(done) => self.text(if done { "[x] " } else { "[ ] " }),
            // Raw HTML and math are shown as written: a terminal renders neither.
            Event::Html(t)
            | Event::InlineHtml(t)
            | Event::InlineMath(t)
            | Event::DisplayMath(t) => self.text(&t),
            Event::FootnoteReference(t) => self.text(&format!("[{t}]")),
        }
    }

    fn start(&mut self, tag: Tag<'_>) {
        match tag {
            // Paragraphs in a list item follow their bullet without a blank line.
            Tag::Paragraph if self.lists.is_empty() => self.blank(),
            Tag::Heading { level, .. } => {
                self.blank();
                let (marks, color) = match level {
                    HeadingLevel::H1 => ("# ", Color::LightMagenta),
                    HeadingLevel::H2 => ("## ", Color::LightCyan),
                    _ => ("### ", Color::LightGreen),
                };
                self.push_style(Style::new().fg(color).add_modifier(Modifier::BOLD));
                self.text(marks);
            }
            Tag::BlockQuote(_) => {
                self.blank();
                self.quote_depth += 1;
                self.push_style(QUOTE.add_modifier(Modifier::ITALIC));
            }
            Tag::CodeBlock(kind) => {
                self.blank();
                let lang = match kind {
                    CodeBlockKind::Fenced(info) => {
                        info.split([' ', ',', '{']).next().unwrap_or("").to_string()
                    }
                    CodeBlockKind::Indented => String::new(),
                };
                self.code = Some((lang, String::new()));
            }
            Tag::List(start) => {
                if self.lists.is_empty() {
                    self.blank();
                } else {
                    self.flush();
                }
                self.lists.push(start);
            }
            Tag::Item => {
                self.flush();
                let bullet = match self.lists.last_mut() {
                    Some(Some(n)) => {
                        let b = format!("{n}. ");
                        *n += 1;
                        b
                    }
                    _ => "• ".to_string(),
                };
                self.item_prefix = Some(bullet);
            }
            Tag::Emphasis => self.push_style(Style::new().add_modifier(Modifier::ITALIC)),
            Tag::Strong => self.push_style(Style::new().add_modifier(Modifier::BOLD)),
            Tag::Strikethrough => self.push_style(Style::new().add_modifier(Modifier::CROSSED_OUT)),
            Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. } => {
                self.push_style(LINK);
                self.links.push(dest_url.to_string());
            }
            // Tables, footnotes and metadata: their text comes through as plain text.
            _ => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Paragraph => {
                self.flush();
            }
            TagEnd::Heading(_) => {
                self.styles.pop();
                self.flush();
            }
            TagEnd::BlockQuote(_) => {
                self.styles.pop();
                self.flush();
                self.quote_depth = self.quote_depth.saturating_sub(1);
            }
            TagEnd::List(_) => {
                self.flush();
                self.lists.pop();
            }
            TagEnd::Item => self.flush(),
            TagEnd::Emphasis | TagEnd::Strong | TagEnd::Strikethrough => {
                self.styles.pop();
            }
            TagEnd::Link | TagEnd::Image => {
                self.styles.pop();
                if let Some(url) = self.links.pop() {
                    // The text is what the model chose to show; the address is where it
                    // really goes, so it is shown too (a terminal has no hover).
                    let shown: String = self.spans.iter().map(|s| s.content.as_ref()).collect();
                    if !url.is_empty() && !shown.ends_with(&url) {
                        self.spans.push(Span::styled(format!(" ({url})"), URL));
                    }
                }
            }
            _ => {}
        }
    }

    fn code_block(&mut self, lang: &str, code: &str) {
        let gutter = Style::new().fg(Color::DarkGray);
        let title = if lang.is_empty() { "code" } else { lang };
        let mut prefix = self.prefix();
        prefix.push(Span::styled(format!("┌ {title}"), gutter));
        self.lines.push(Line::from(prefix));
        let syntax = (!lang.is_empty())
            .then(|| SYNTAXES.find_syntax_by_token(lang))
            .flatten();
        let mut highlighter = syntax.map(|s| HighlightLines::new(s, &THEME));
        for line in syntect::util::LinesWithEndings::from(code) {
            let mut spans = self.prefix();
            spans.push(Span::styled(CODE_GUTTER, gutter));
            let ranges = highlighter
                .as_mut()
                .and_then(|h| h.highlight_line(line, &SYNTAXES).ok());
            match ranges {
                Some(ranges) => {
                    for (style, piece) in ranges {
                        let piece = piece.trim_end_matches(['\n', '\r']).replace('\t', "    ");
                        if piece.is_empty() {
                            continue;
                        }
                        let c = style.foreground;
                        spans.push(Span::styled(
                            piece,
                            Style::new().fg(Color::Rgb(c.r, c.g, c.b)),
                        ));
                    }
                }
                None => spans.push(Span::styled(
                    line.trim_end_matches(['\n', '\r']).replace('\t', "    "),
                    CODE,
                )),
            }
            self.lines.push(Line::from(spans));
        }
        let mut end = self.prefix();
        end.push(Span::styled("└", gutter));
        self.lines.push(Line::from(end));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(lines: &[Line<'_>]) -> Vec<String> {
        lines
            .iter()
            .map(|l| l.spans.iter().map(|s| s.content.as_ref()).collect())
            .collect()
    }

    #[test]
    fn emphasis_headings_lists_and_links_lose_their_markup_and_keep_their_style() {
        let lines = render(
            "# Title\n\nSome **bold** and *italic* text.\n\n- one\n- two\n  1. inner\n\n\
             See [the docs](https://example.com/docs).",
        );
        assert_eq!(
            plain(&lines),
            [
                "# Title",
                "",
                "Some bold and italic text.",
                "",
                "• one",
                "• two",
                "  1. inner",
                "",
                "See the docs (https://example.com/docs)."
            ]
        );
        let bold = &lines[2].spans[1];
        assert_eq!(bold.content, "bold");
        assert!(bold.style.add_modifier.contains(Modifier::BOLD));
        let italic = &lines[2].spans[3];
        assert!(italic.style.add_modifier.contains(Modifier::ITALIC));
        let link = &lines[8].spans[1];
        assert_eq!(link.content, "the docs");
        assert!(link.style.add_modifier.contains(Modifier::UNDERLINED));
    }

    #[test]
    fn code_blocks_are_highlighted_by_language() {
        let lines = render("```python\ndef f(x):\n\treturn x\n```");
        assert_eq!(
            plain(&lines),
            ["┌ python", "▎ def f(x):", "▎     return x", "└"]
        );
        // `def` and `f` are coloured differently: the highlighter knew the language.
        let colours: Vec<_> = lines[1].spans[1..].iter().map(|s| s.style.fg).collect();
        assert!(colours.iter().all(|c| matches!(c, Some(Color::Rgb(..)))));
        assert!(colours.windows(2).any(|w| w[0] != w[1]), "{colours:?}");
        // An unknown language is shown plain.
        let lines = render("```nosuchlang\nx\n```");
        assert_eq!(lines[1].spans[1].style, CODE);
    }

    #[test]
    fn an_unclosed_fence_while_streaming_still_renders_its_code() {
        let lines = render("Here:\n```js\nconsole.log(1)");
        assert_eq!(
            plain(&lines),
            ["Here:", "", "┌ js", "▎ console.log(1)", "└"]
        );
    }
}
