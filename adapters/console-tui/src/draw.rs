//! Draws the state: transcript (scrollable), the input line with its completion popup, the
//! status line, and the conversation list or model picker over them.
//!
//! A pure function of [`App`]: it only reads the state and writes the frame, so the
//! snapshot tests draw it on `ratatui`'s `TestBackend`.

use crate::state::{App, Entry, Overlay};
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, List, ListItem, ListState, Paragraph, Wrap};
use ratatui::Frame;
use std::time::Duration;
use unicode_width::UnicodeWidthStr;

const DIM: Style = Style::new().fg(Color::DarkGray);
const USER: Style = Style::new()
    .fg(Color::LightCyan)
    .add_modifier(Modifier::BOLD);
/// The keys to know, short enough for an 80-column terminal (the README has them all).
const KEYS: &str = " ↑↓ history · PgUp scroll · F2 conversations · F3 model · Ctrl-C stop ";

/// The transcript's height on a screen of `height` rows (what PageUp pages by).
pub fn transcript_height(height: u16) -> u16 {
    height.saturating_sub(4)
}

/// Draws the whole screen.
pub fn draw(frame: &mut Frame<'_>, app: &App) {
    let [transcript, input, status] = Layout::vertical([
        Constraint::Min(1),
        Constraint::Length(3),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    draw_transcript(frame, app, transcript);
    draw_input(frame, app, input);
    draw_status(frame, app, status);
    draw_completions(frame, app, transcript);
    match &app.overlay {
        Overlay::None => {}
        Overlay::Conversations { items, selected } => {
            let rows: Vec<ListItem<'_>> = match items {
                None => vec![ListItem::new(Span::styled("loading…", DIM))],
                Some(items) if items.is_empty() => {
                    vec![ListItem::new(Span::styled("no stored conversations", DIM))]
                }
                Some(items) => items
                    .iter()
                    .map(|c| {
                        let mark = if c.name == app.conversation {
                            "● "
                        } else {
                            "  "
                        };
                        let model = c.model.as_deref().unwrap_or(&app.default_model);
                        ListItem::new(Line::from(vec![
                            Span::raw(format!("{mark}{:<20} ", c.name)),
                            Span::styled(
                                format!(
                                    "{:<16} {:>5} msgs {:>8} tokens",
                                    model,
                                    c.messages,
                                    group(c.tokens)
                                ),
                                DIM,
                            ),
                        ]))
                    })
                    .collect(),
            };
            draw_picker(
                frame,
                " Conversations · Enter open · Esc close · /new <name> starts one ",
                rows,
                *selected,
            );
        }
        Overlay::Models { selected } => {
            let rows = app
                .model_choices()
                .into_iter()
                .map(|m| {
                    if m == app.status.model {
                        ListItem::new(Line::from(vec![
                            Span::raw(format!("● {m} ")),
                            Span::styled("(in use)", DIM),
                        ]))
                    } else {
                        ListItem::new(format!("  {m}"))
                    }
                })
                .collect();
            draw_picker(frame, " Model · Enter switch · Esc close ", rows, *selected);
        }
    }
}

/// The transcript's lines, before wrapping.
fn transcript_lines(app: &App) -> Vec<Line<'static>> {
    let mut lines: Vec<Line<'static>> = Vec::new();
    for entry in &app.entries {
        if !lines.is_empty() {
            lines.push(Line::default());
        }
        match entry {
            Entry::User(text) => {
                for (i, l) in text.lines().enumerate() {
                    let mark = if i == 0 { "› " } else { "  " };
                    lines.push(Line::from(vec![
                        Span::styled(mark, USER),
                        Span::styled(l.to_string(), USER),
                    ]));
                }
            }
            Entry::Reply {
                lines: body,
                run: None,
                ..
            } => lines.extend(body.iter().cloned()),
            Entry::Reply {
                lines: body,
                run: Some(run),
                ..
            } => {
                let colour = if run.ok() {
                    Color::LightGreen
                } else {
                    Color::LightRed
                };
                let frame = Style::new().fg(colour);
                lines.push(Line::from(vec![
                    Span::styled("╭─ ▶ sandbox run · ", frame),
                    Span::styled(run.title(), frame.add_modifier(Modifier::BOLD)),
                ]));
                for l in body {
                    let mut spans = vec![Span::styled("│ ", frame)];
                    spans.extend(l.spans.iter().cloned());
                    lines.push(Line::from(spans));
                }
                lines.push(Line::styled("╰─", frame));
            }
            Entry::File { path, comment } => {
                lines.push(Line::from(vec![
                    Span::styled("📎 saved ", Style::new().fg(Color::LightGreen)),
                    Span::styled(
                        path.clone(),
                        Style::new().add_modifier(Modifier::UNDERLINED),
                    ),
                ]));
                if !comment.is_empty() {
                    lines.push(Line::styled(format!("   {comment}"), DIM));
                }
            }
            Entry::Note(text) => lines.push(Line::styled(
                text.clone(),
                DIM.add_modifier(Modifier::ITALIC),
            )),
        }
    }
    if app.status.running > 0 && matches!(app.entries.last(), Some(Entry::User(_))) {
        lines.push(Line::default());
        lines.push(Line::styled("…", DIM));
    }
    lines
}

fn draw_transcript(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let paragraph = Paragraph::new(transcript_lines(app)).wrap(Wrap { trim: false });
    let total = paragraph.line_count(area.width);
    let bottom = total.saturating_sub(usize::from(area.height));
    let top = bottom.saturating_sub(usize::from(app.scroll));
    let top = u16::try_from(top).unwrap_or(u16::MAX);
    frame.render_widget(paragraph.scroll((top, 0)), area);
}

fn draw_input(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let title = format!(" {} ", app.conversation);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(DIM)
        .title(Span::styled(title, USER))
        .title_bottom(Span::styled(KEYS, DIM));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let prompt = "› ";
    let text = &app.input.text;
    let before: String = text.chars().take(app.input.cursor).collect();
    // Scrolls sideways so the cursor stays in view.
    let room = usize::from(inner.width).saturating_sub(prompt.width() + 1);
    let mut skip = 0;
    while before.chars().skip(skip).collect::<String>().width() > room {
        skip += 1;
    }
    let shown: String = text.chars().skip(skip).collect();
    let cursor_x = prompt.width() + before.chars().skip(skip).collect::<String>().width();
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(prompt, USER),
            Span::raw(shown),
        ])),
        inner,
    );
    if app.overlay == Overlay::None {
        frame.set_cursor_position(Position::new(
            inner.x + u16::try_from(cursor_x).unwrap_or(inner.width),
            inner.y,
        ));
    }
}

fn draw_status(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let s = &app.status;
    let bar = Style::new().bg(Color::DarkGray).fg(Color::White);
    let mut spans = vec![
        Span::styled(" robit ", bar.add_modifier(Modifier::BOLD)),
        Span::raw(format!(" {} ", s.model)),
        Span::styled(format!("· {} tokens ", group(s.tokens)), DIM),
    ];
    if let Some(d) = s.first_reply {
        spans.push(Span::styled(format!("· first reply {} ", duration(d)), DIM));
    }
    if let Some(d) = s.last_turn {
        spans.push(Span::styled(format!("· turn {} ", duration(d)), DIM));
    }
    if s.running > 0 {
        spans.push(Span::styled(
            "· ⏳ answering ",
            Style::new().fg(Color::LightYellow),
        ));
    }
    if app.scroll > 0 {
        spans.push(Span::styled(
            format!("· ↑ {} lines (Esc follows) ", app.scroll),
            DIM,
        ));
    }
    if let Some(n) = &app.notice {
        spans.push(Span::styled(
            format!("· {n}"),
            Style::new().fg(Color::LightYellow),
        ));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_completions(frame: &mut Frame<'_>, app: &App, above: Rect) {
    let hints = app.completions();
    if hints.is_empty() || app.overlay != Overlay::None {
        return;
    }
    let height = (hints.len() as u16 + 2).min(above.height);
    let width = 56.min(above.width);
    let area = Rect::new(
        above.x + 1.min(above.width),
        above.bottom() - height,
        width,
        height,
    );
    let rows: Vec<ListItem<'_>> = hints
        .iter()
        .map(|h| {
            ListItem::new(Line::from(vec![
                Span::raw(format!("{:<15}", h.name)),
                Span::styled(h.about, DIM),
            ]))
        })
        .collect();
    let list = List::new(rows)
        .block(
            Block::default()
                .borders(Borders::ALL)
                .border_style(DIM)
                .title(" Tab completes "),
        )
        .highlight_style(Style::new().bg(Color::Blue).fg(Color::White));
    let mut state = ListState::default().with_selected(Some(app.completion.min(hints.len() - 1)));
    frame.render_widget(Clear, area);
    frame.render_stateful_widget(list, area, &mut state);
}

fn draw_picker(frame: &mut Frame<'_>, title: &str, rows: Vec<ListItem<'_>>, selected: usize) {
    let screen = frame.area();
    let width = (screen.width / 5 * 4).max(20).min(screen.width);
    let height = (rows.len() as u16 + 2).clamp(3, screen.height.saturating_sub(4).max(3));
    let area = Rect::new(
        screen.x + (screen.width - width) / 2,
        screen.y + (screen.height.saturating_sub(height)) / 3,
        width,
        height.min(screen.height),
    );
    let list = List::new(rows)
        .block(
            Block::default()
                .borders(Borders::ALL)
                .border_style(Style::new().fg(Color::LightCyan))
                .title(title.to_string()),
        )
        .highlight_style(Style::new().bg(Color::Blue).fg(Color::White))
        .highlight_symbol("› ");
    let mut state = ListState::default().with_selected(Some(selected));
    frame.render_widget(Clear, area);
    frame.render_stateful_widget(list, area, &mut state);
}

/// `1234567` as `1,234,567`.
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}
