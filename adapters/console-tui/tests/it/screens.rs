//! Snapshots of the main screens: a streaming answer with Markdown and a code block, sandbox
//! panels with a saved file, the conversation list, the model picker and the completion
//! popup; and scrollback.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::Color;
use ratatui::Terminal;
use robit_console_tui::{draw, App, ConversationItem, Effect, Event};
use std::time::{Duration, Instant};
use unicode_width::UnicodeWidthStr;

fn screen(app: &App, width: u16, height: u16) -> Buffer {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|f| draw(f, app)).unwrap();
    terminal.backend().buffer().clone()
}

/// The screen's text, one line per row, trailing spaces cut (wide characters count once).
fn text(buffer: &Buffer) -> String {
    let area = buffer.area;
    let mut out = String::new();
    for y in 0..area.height {
        let mut line = String::new();
        let mut x = 0;
        while x < area.width {
            let symbol = buffer[(x, y)].symbol();
            line.push_str(symbol);
            x += symbol.width().max(1) as u16;
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn key(code: KeyCode) -> Event {
    Event::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn type_line(app: &mut App, line: &str, now: Instant) -> Vec<Effect> {
    for c in line.chars() {
        app.reduce(key(KeyCode::Char(c)), now);
    }
    app.reduce(key(KeyCode::Enter), now)
}

fn posted(id: u64, text: &str) -> Event {
    Event::Posted {
        conversation: "default".into(),
        id,
        text: text.into(),
    }
}

#[test]
fn a_streaming_answer_shows_rendered_markdown_and_a_highlighted_code_block() {
    let t0 = Instant::now();
    let mut app = App::new("default", "gpt-4o-mini", vec![]);
    assert_eq!(
        type_line(&mut app, "how do I print in python?", t0),
        [Effect::Send("how do I print in python?".into())]
    );
    app.reduce(posted(1, "## Printing"), t0 + Duration::from_millis(120));
    app.reduce(
        Event::Edited {
            conversation: "default".into(),
            id: 1,
            text: "## Printing\n\nUse **print** — it is *built in*:\n\n- no import\n- \
                   any value\n\n```python\nprint(\"hi\")"
                .into(),
        },
        t0 + Duration::from_millis(300),
    );
    let buffer = screen(&app, 80, 24);
    let shown = text(&buffer);
    insta::assert_snapshot!("streaming_answer", shown);
    assert!(shown.contains("Use print — it is built in:"), "{shown}");
    assert!(
        !shown.contains("**"),
        "markup is rendered, not shown: {shown}"
    );
    assert!(shown.contains("first reply 120 ms"), "{shown}");
    assert!(shown.contains("answering"), "{shown}");
    // The code is coloured by the highlighter, not printed in one colour.
    let y = shown
        .lines()
        .position(|l| l.contains("print(\"hi\")"))
        .unwrap() as u16;
    let colours: std::collections::HashSet<_> = (4..20)
        .map(|x| buffer[(x, y)].fg)
        .filter(|c| matches!(c, Color::Rgb(..)))
        .collect();
    assert!(colours.len() >= 2, "{colours:?}");
}

#[test]
fn sandbox_runs_show_as_panels_with_status_and_saved_files() {
    let t0 = Instant::now();
    let mut app = App::new("default", "gpt-4o-mini", vec![]);
    type_line(&mut app, "plot a sine", t0);
    app.reduce(
        posted(
            1,
            "Running python (gvisor):\n```python\nimport matplotlib.pyplot as plt\nplt.plot([0, 1])\nplt.show()\n```",
        ),
        t0,
    );
    app.reduce(posted(2, "```\nsaved 1 figure\n```\n`exit 0 · 412 ms`"), t0);
    app.reduce(
        Event::Saved {
            conversation: "default".into(),
            path: "/home/ada/robit-files/default/figure-1.png".into(),
            comment: "📎 `figure-1.png` from the run".into(),
        },
        t0,
    );
    app.reduce(
        posted(3, "```\nTraceback: ZeroDivisionError\n```\n`exit 1 · 9 ms`"),
        t0,
    );
    app.reduce(
        Event::TurnEnded {
            conversation: "default".into(),
            outcome: "replied",
            elapsed: Duration::from_millis(1400),
        },
        t0,
    );
    let buffer = screen(&app, 80, 30);
    let shown = text(&buffer);
    insta::assert_snapshot!("sandbox_panels", shown);
    assert!(
        shown.contains("╭─ ▶ sandbox run · exit 0 · 412 ms"),
        "{shown}"
    );
    assert!(
        shown.contains("╭─ ▶ sandbox run · exit 1 · 9 ms"),
        "{shown}"
    );
    assert!(
        shown.contains("📎 saved /home/ada/robit-files/default/figure-1.png"),
        "{shown}"
    );
    assert!(shown.contains("turn 1.4 s"), "{shown}");
    // Success is green, failure red.
    let row = |needle: &str| shown.lines().position(|l| l.contains(needle)).unwrap() as u16;
    assert_eq!(buffer[(0, row("exit 0"))].fg, Color::LightGreen);
    assert_eq!(buffer[(0, row("exit 1"))].fg, Color::LightRed);
}

#[test]
fn the_conversation_list_shows_stored_conversations_and_opens_one() {
    let t0 = Instant::now();
    let mut app = App::new("default", "gpt-4o-mini", vec![]);
    assert_eq!(
        app.reduce(key(KeyCode::F(2)), t0),
        [Effect::LoadConversations]
    );
    app.reduce(
        Event::Conversations(vec![
            ConversationItem {
                name: "default".into(),
                model: None,
                messages: 12,
                tokens: 4_310,
            },
            ConversationItem {
                name: "rust-questions".into(),
                model: Some("claude-sonnet-4-5".into()),
                messages: 48,
                tokens: 1_250_000,
            },
        ]),
        t0,
    );
    app.reduce(key(KeyCode::Down), t0);
    let shown = text(&screen(&app, 90, 20));
    insta::assert_snapshot!("conversation_list", shown);
    assert!(shown.contains("rust-questions"), "{shown}");
    assert!(shown.contains("1,250,000 tokens"), "{shown}");
    assert!(shown.contains("4,310 tokens"), "the status line: {shown}");
    assert_eq!(
        app.reduce(key(KeyCode::Enter), t0),
        [Effect::Opened("rust-questions".into())]
    );
    assert!(text(&screen(&app, 90, 20)).contains(" rust-questions "));
}

#[test]
fn the_model_picker_marks_the_model_in_use() {
    let t0 = Instant::now();
    let models = vec![
        "gpt-4o-mini".to_string(),
        "gpt-4o".to_string(),
        "anthropic:claude-sonnet-4-5".to_string(),
    ];
    let mut app = App::new("default", "gpt-4o-mini", models);
    assert_eq!(type_line(&mut app, "/model", t0), []);
    let shown = text(&screen(&app, 80, 16));
    insta::assert_snapshot!("model_picker", shown);
    assert!(shown.contains("● gpt-4o-mini (in use)"), "{shown}");
    app.reduce(key(KeyCode::Up), t0);
    assert_eq!(
        app.reduce(key(KeyCode::Enter), t0),
        [Effect::Send("/model anthropic:claude-sonnet-4-5".into())]
    );
}

#[test]
fn typing_a_slash_shows_the_commands_and_tab_completes() {
    let t0 = Instant::now();
    let mut app = App::new("default", "gpt-4o-mini", vec![]);
    app.reduce(key(KeyCode::Char('/')), t0);
    app.reduce(key(KeyCode::Char('r')), t0);
    let shown = text(&screen(&app, 80, 16));
    insta::assert_snapshot!("completion_popup", shown);
    assert!(shown.contains("/reset"), "{shown}");
    assert!(shown.contains("/run"), "{shown}");
    assert!(!shown.contains("/help"), "{shown}");
    app.reduce(key(KeyCode::Down), t0);
    app.reduce(key(KeyCode::Tab), t0);
    assert_eq!(app.input.text, "/run ");
}

#[test]
fn page_up_scrolls_back_and_escape_follows_the_answer_again() {
    let t0 = Instant::now();
    let mut app = App::new("default", "gpt-4o-mini", vec![]);
    let long: String = (1..=60).map(|i| format!("line {i}\n\n")).collect();
    app.reduce(posted(1, &long), t0);
    app.reduce(Event::Resize { height: 8 }, t0);
    let at_bottom = text(&screen(&app, 40, 12));
    assert!(at_bottom.contains("line 60"), "{at_bottom}");
    app.reduce(key(KeyCode::PageUp), t0);
    app.reduce(key(KeyCode::PageUp), t0);
    let scrolled = text(&screen(&app, 40, 12));
    assert!(!scrolled.contains("line 60"), "{scrolled}");
    assert!(scrolled.contains("line 53"), "{scrolled}");
    app.reduce(key(KeyCode::Esc), t0);
    assert_eq!(text(&screen(&app, 40, 12)), at_bottom);
}
