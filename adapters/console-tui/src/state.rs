//! What the screen shows, and the reducer that changes it: events in (keys, the engine's
//! replies, finished turns, lists loaded), state changed, [`Effect`]s out for the runtime to
//! carry out (send a line, stop the turn, load a list, quit).
//!
//! No terminal, no engine, no clock: time comes in with each event, so the snapshot tests
//! drive it exactly as the runtime does and render it on a test backend. Every text that
//! enters the state passes [`robit_console::strip_terminal_escapes`] here, once.

use crate::markdown;
use crate::panel::{self, RunStatus};
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::text::Line;
use robit_console::strip_terminal_escapes;
use std::time::{Duration, Instant};

/// A slash command the input line completes, and what it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandHint {
    pub name: &'static str,
    pub about: &'static str,
}

/// The commands completed: the engine's (sent as messages) and the console's own (handled
/// here, never sent).
pub const COMMANDS: &[CommandHint] = &[
    CommandHint {
        name: "/ask",
        about: "ask the model",
    },
    CommandHint {
        name: "/config",
        about: "this conversation's settings",
    },
    CommandHint {
        name: "/conversations",
        about: "stored conversations to switch to (F2)",
    },
    CommandHint {
        name: "/help",
        about: "what robit understands",
    },
    CommandHint {
        name: "/model",
        about: "pick this conversation's model (F3)",
    },
    CommandHint {
        name: "/new",
        about: "start or open the conversation <name>",
    },
    CommandHint {
        name: "/quit",
        about: "leave robit chat",
    },
    CommandHint {
        name: "/reset",
        about: "forget this conversation's history",
    },
    CommandHint {
        name: "/run",
        about: "run python or js in the sandbox",
    },
];

/// One stored conversation, as the list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationItem {
    pub name: String,
    pub model: Option<String>,
    pub messages: u64,
    pub tokens: u64,
}

/// Something to show in the transcript.
#[derive(Debug, Clone)]
pub enum Entry {
    /// A line the person sent.
    User(String),
    /// A message of the engine's, by the sink's id, rendered once per change.
    Reply {
        id: u64,
        text: String,
        lines: Vec<Line<'static>>,
        run: Option<RunStatus>,
    },
    /// A file the sandbox returned, saved to `path`.
    File { path: String, comment: String },
    /// A note of the console's own (dim).
    Note(String),
}

impl Entry {
    fn reply(id: u64, text: String) -> Entry {
        let (lines, run) = match panel::parse(&text) {
            Some((body, status)) => (panel::output_lines(body), Some(status)),
            None => (markdown::render(&text), None),
        };
        Entry::Reply {
            id,
            text,
            lines,
            run,
        }
    }
}

/// A list shown over the transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Overlay {
    None,
    /// Stored conversations (`None`: still loading).
    Conversations {
        items: Option<Vec<ConversationItem>>,
        selected: usize,
    },
    Models {
        selected: usize,
    },
}

/// The input line: text, cursor (in characters) and the lines sent before.
#[derive(Debug, Clone, Default)]
pub struct Input {
    pub text: String,
    pub cursor: usize,
    pub history: Vec<String>,
    /// Which history line Up/Down shows, while browsing.
    browsing: Option<usize>,
    /// What was typed before browsing began, restored past the newest line.
    draft: String,
}

impl Input {
    fn byte_at(&self, chars: usize) -> usize {
        self.text
            .char_indices()
            .nth(chars)
            .map_or(self.text.len(), |(i, _)| i)
    }

    fn set(&mut self, text: String) {
        self.cursor = text.chars().count();
        self.text = text;
    }

    fn insert(&mut self, s: &str) {
        let at = self.byte_at(self.cursor);
        self.text.insert_str(at, s);
        self.cursor += s.chars().count();
    }

    fn take(&mut self) -> String {
        self.browsing = None;
        self.cursor = 0;
        std::mem::take(&mut self.text)
    }

    fn older(&mut self) {
        let next = match self.browsing {
            None if self.history.is_empty() => return,
            None => {
                self.draft = self.text.clone();
                self.history.len() - 1
            }
            Some(0) => 0,
            Some(i) => i - 1,
        };
        self.browsing = Some(next);
        self.set(self.history[next].clone());
    }

    fn newer(&mut self) {
        match self.browsing {
            None => {}
            Some(i) if i + 1 < self.history.len() => {
                self.browsing = Some(i + 1);
                self.set(self.history[i + 1].clone());
            }
            Some(_) => {
                self.browsing = None;
                let draft = std::mem::take(&mut self.draft);
                self.set(draft);
            }
        }
    }
}

/// What the status line shows.
#[derive(Debug, Clone, Default)]
pub struct Status {
    /// This conversation's model (`/model`), else the default.
    pub model: String,
    /// Tokens recorded for this conversation (prompt + completion).
    pub tokens: u64,
    /// From sending the last line to the first text of its answer.
    pub first_reply: Option<Duration>,
    /// How long the last turn took, start to end.
    pub last_turn: Option<Duration>,
    /// Lines sent whose turns have not ended.
    pub running: usize,
}

/// An event the reducer takes.
#[derive(Debug, Clone)]
pub enum Event {
    Key(KeyEvent),
    Paste(String),
    /// The transcript area's height changed (PageUp scrolls by it).
    Resize {
        height: u16,
    },
    /// The engine posted a message in `conversation`.
    Posted {
        conversation: String,
        id: u64,
        text: String,
    },
    Edited {
        conversation: String,
        id: u64,
        text: String,
    },
    /// The sandbox returned a file; it was saved at `path`.
    Saved {
        conversation: String,
        path: String,
        comment: String,
    },
    /// A line's turn ended; `outcome` is the engine's label (`replied`, `cancelled`, …).
    TurnEnded {
        conversation: String,
        outcome: &'static str,
        elapsed: Duration,
    },
    /// The stored conversations, most recent first (for the list and the status line).
    Conversations(Vec<ConversationItem>),
    /// What was said in `conversation` before (on start and after a switch): (from the
    /// person?, text).
    Transcript {
        conversation: String,
        messages: Vec<(bool, String)>,
    },
    /// Something the runtime could not do (the store is down...).
    Failed(String),
}

/// What the reducer asks of the runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Submit this line to the engine in the current conversation.
    Send(String),
    /// Stop the current conversation's running turn.
    Stop,
    /// Load the stored conversations ([`Event::Conversations`]).
    LoadConversations,
    /// The current conversation changed: load its transcript and its status.
    Opened(String),
    Quit,
}

/// The whole screen's state.
#[derive(Debug, Clone)]
pub struct App {
    pub conversation: String,
    pub entries: Vec<Entry>,
    pub input: Input,
    pub overlay: Overlay,
    /// The highlighted line of the completion popup.
    pub completion: usize,
    pub status: Status,
    /// The models `/model` may pick; empty: any name.
    pub models: Vec<String>,
    pub default_model: String,
    /// Lines scrolled up from the newest; 0 follows the answer as it streams.
    pub scroll: u16,
    /// A short message in the status line (Ctrl-C hints, errors).
    pub notice: Option<String>,
    /// Height of the transcript area, for paging.
    pub page: u16,
    /// The last key was a Ctrl-C: another one quits.
    quit_armed: bool,
    /// When the line whose answer is awaited was sent, until its first text arrives.
    waiting_since: Option<Instant>,
}

impl App {
    pub fn new(conversation: &str, default_model: &str, models: Vec<String>) -> App {
        App {
            conversation: conversation.to_string(),
            entries: Vec::new(),
            input: Input::default(),
            overlay: Overlay::None,
            completion: 0,
            status: Status {
                model: default_model.to_string(),
                ..Status::default()
            },
            models,
            default_model: default_model.to_string(),
            scroll: 0,
            notice: None,
            page: 10,
            quit_armed: false,
            waiting_since: None,
        }
    }

    /// The commands matching what is typed, while a command name is being typed.
    pub fn completions(&self) -> Vec<&'static CommandHint> {
        let text = &self.input.text;
        if !text.starts_with('/') || text.contains(char::is_whitespace) {
            return Vec::new();
        }
        let matches: Vec<_> = COMMANDS
            .iter()
            .filter(|c| c.name.starts_with(text.as_str()))
            .collect();
        // A complete name needs no popup.
        if matches.len() == 1 && matches[0].name == text {
            return Vec::new();
        }
        matches
    }

    /// The models the picker offers: the configured ones, else the one in use.
    pub fn model_choices(&self) -> Vec<String> {
        if self.models.is_empty() {
            vec![self.default_model.clone()]
        } else {
            self.models.clone()
        }
    }

    /// Applies one event at time `now`; what the runtime should do next.
    pub fn reduce(&mut self, event: Event, now: Instant) -> Vec<Effect> {
        match event {
            Event::Key(key) if key.kind != KeyEventKind::Release => self.key(key, now),
            Event::Key(_) => Vec::new(),
            Event::Paste(text) => {
                // One line: an input line cannot hold newlines, and a pasted one must not
                // send half a paste.
                let text = strip_terminal_escapes(&text).replace(['\r', '\n'], " ");
                self.input.insert(&text);
                Vec::new()
            }
            Event::Resize { height } => {
                self.page = height.max(1);
                Vec::new()
            }
            Event::Posted {
                conversation,
                id,
                text,
            } => {
                if conversation == self.conversation {
                    if let Some(since) = self.waiting_since.take() {
                        self.status.first_reply = Some(now.saturating_duration_since(since));
                    }
                    let text = strip_terminal_escapes(&text).into_owned();
                    self.entries.push(Entry::reply(id, text));
                }
                Vec::new()
            }
            Event::Edited {
                conversation,
                id,
                text,
            } => {
                if conversation == self.conversation {
                    let text = strip_terminal_escapes(&text).into_owned();
                    let found = self
                        .entries
                        .iter_mut()
                        .rev()
                        .find(|e| matches!(e, Entry::Reply { id: i, .. } if *i == id));
                    if let Some(entry) = found {
                        *entry = Entry::reply(id, text);
                    }
                }
                Vec::new()
            }
            Event::Saved {
                conversation,
                path,
                comment,
            } => {
                if conversation == self.conversation {
                    self.entries.push(Entry::File {
                        path: strip_terminal_escapes(&path).into_owned(),
                        comment: strip_terminal_escapes(&comment).into_owned(),
                    });
                }
                Vec::new()
            }
            Event::TurnEnded {
                conversation,
                outcome,
                elapsed,
            } => {
                self.status.running = self.status.running.saturating_sub(1);
                if self.status.running == 0 {
                    self.waiting_since = None;
                }
                if conversation != self.conversation {
                    return Vec::new();
                }
                self.status.last_turn = Some(elapsed);
                if outcome == "cancelled" && !self.quit_armed {
                    self.notice = None;
                }
                // The tokens and model in the status line come from the store.
                vec![Effect::LoadConversations]
            }
            Event::Conversations(items) => {
                if let Some(me) = items.iter().find(|c| c.name == self.conversation) {
                    self.status.tokens = me.tokens;
                    self.status.model = me
                        .model
                        .clone()
                        .unwrap_or_else(|| self.default_model.clone());
                }
                if let Overlay::Conversations { items: shown, .. } = &mut self.overlay {
                    *shown = Some(
                        items
                            .into_iter()
                            .map(|mut c| {
                                c.name = strip_terminal_escapes(&c.name).into_owned();
                                c
                            })
                            .collect(),
                    );
                }
                Vec::new()
            }
            Event::Transcript {
                conversation,
                messages,
            } => {
                if conversation == self.conversation {
                    let earlier: Vec<Entry> = messages
                        .into_iter()
                        .map(|(user, text)| {
                            let text = strip_terminal_escapes(&text).into_owned();
                            if user {
                                Entry::User(text)
                            } else {
                                Entry::reply(0, text)
                            }
                        })
                        .collect();
                    // Before anything that arrived while it loaded.
                    self.entries.splice(0..0, earlier);
                }
                Vec::new()
            }
            Event::Failed(why) => {
                // In the transcript, where it stays readable; the status line is for hints.
                self.entries
                    .push(Entry::Note(format!("⚠️ {}", strip_terminal_escapes(&why))));
                Vec::new()
            }
        }
    }

    fn key(&mut self, key: KeyEvent, now: Instant) -> Vec<Effect> {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && key.code == KeyCode::Char('c') {
            return self.ctrl_c();
        }
        self.quit_armed = false;
        if self.notice.is_some() && self.status.running == 0 {
            self.notice = None;
        }
        if self.overlay != Overlay::None {
            return self.overlay_key(key, now);
        }
        let completions = self.completions();
        match key.code {
            KeyCode::Enter => return self.submit(now),
            KeyCode::Char('d') if ctrl && self.input.text.is_empty() => {
                return vec![Effect::Quit];
            }
            KeyCode::Char('u') if ctrl => {
                let at = self.input.byte_at(self.input.cursor);
                self.input.text.replace_range(..at, "");
                self.input.cursor = 0;
            }
            KeyCode::Char('a') if ctrl => self.input.cursor = 0,
            KeyCode::Char('e') if ctrl => self.input.cursor = self.input.text.chars().count(),
            KeyCode::Char(c) if !ctrl => {
                self.input.insert(c.encode_utf8(&mut [0; 4]));
                self.completion = 0;
            }
            KeyCode::Tab if !completions.is_empty() => {
                let pick = completions[self.completion.min(completions.len() - 1)];
                self.input.set(format!("{} ", pick.name));
                self.completion = 0;
            }
            KeyCode::Backspace if self.input.cursor > 0 => {
                let at = self.input.byte_at(self.input.cursor - 1);
                self.input.text.remove(at);
                self.input.cursor -= 1;
                self.completion = 0;
            }
            KeyCode::Delete if self.input.cursor < self.input.text.chars().count() => {
                let at = self.input.byte_at(self.input.cursor);
                self.input.text.remove(at);
            }
            KeyCode::Left => self.input.cursor = self.input.cursor.saturating_sub(1),
            KeyCode::Right => {
                self.input.cursor = (self.input.cursor + 1).min(self.input.text.chars().count())
            }
            KeyCode::Home => self.input.cursor = 0,
            KeyCode::End => self.input.cursor = self.input.text.chars().count(),
            KeyCode::Up if !completions.is_empty() => {
                self.completion = self
                    .completion
                    .checked_sub(1)
                    .unwrap_or(completions.len() - 1)
            }
            KeyCode::Down if !completions.is_empty() => {
                self.completion = (self.completion + 1) % completions.len()
            }
            KeyCode::Up => self.input.older(),
            KeyCode::Down => self.input.newer(),
            KeyCode::PageUp => self.scroll = self.scroll.saturating_add(self.page.max(2) - 1),
            KeyCode::PageDown => self.scroll = self.scroll.saturating_sub(self.page.max(2) - 1),
            KeyCode::Esc => self.scroll = 0,
            KeyCode::F(2) => return self.open_conversations(),
            KeyCode::F(3) => self.open_models(),
            _ => {}
        }
        Vec::new()
    }

    /// The first Ctrl-C stops the running turn (or, idle, clears the line); the second quits.
    fn ctrl_c(&mut self) -> Vec<Effect> {
        if self.quit_armed {
            return vec![Effect::Quit];
        }
        self.quit_armed = true;
        self.overlay = Overlay::None;
        if self.status.running > 0 {
            self.notice = Some("⏹️ Stopping the answer. Ctrl-C again quits.".into());
            vec![Effect::Stop]
        } else {
            self.input.take();
            self.notice = Some("Ctrl-C again quits.".into());
            Vec::new()
        }
    }

    fn submit(&mut self, now: Instant) -> Vec<Effect> {
        let line = self.input.text.trim().to_string();
        if line.is_empty() {
            return Vec::new();
        }
        self.input.take();
        if self.input.history.last() != Some(&line) {
            self.input.history.push(line.clone());
        }
        self.scroll = 0;
        let (name, args) = line
            .split_once(char::is_whitespace)
            .unwrap_or((line.as_str(), ""));
        let args = args.trim();
        match name {
            "/quit" | "/exit" => return vec![Effect::Quit],
            "/conversations" => return self.open_conversations(),
            "/model" if args.is_empty() => {
                self.open_models();
                return Vec::new();
            }
            "/new" | "/switch" | "/open" => {
                if args.is_empty() {
                    self.notice = Some(format!("{name} needs a conversation name"));
                    return Vec::new();
                }
                return self.switch(args);
            }
            _ => {}
        }
        self.entries.push(Entry::User(line.clone()));
        self.status.running += 1;
        if self.waiting_since.is_none() {
            self.waiting_since = Some(now);
        }
        vec![Effect::Send(line)]
    }

    fn switch(&mut self, name: &str) -> Vec<Effect> {
        self.overlay = Overlay::None;
        if name == self.conversation {
            return Vec::new();
        }
        self.conversation = name.to_string();
        self.entries.clear();
        self.scroll = 0;
        self.status = Status {
            model: self.default_model.clone(),
            running: self.status.running,
            ..Status::default()
        };
        vec![Effect::Opened(name.to_string())]
    }

    fn open_conversations(&mut self) -> Vec<Effect> {
        self.overlay = Overlay::Conversations {
            items: None,
            selected: 0,
        };
        vec![Effect::LoadConversations]
    }

    fn open_models(&mut self) {
        let selected = self
            .model_choices()
            .iter()
            .position(|m| *m == self.status.model)
            .unwrap_or(0);
        self.overlay = Overlay::Models { selected };
    }

    fn overlay_key(&mut self, key: KeyEvent, now: Instant) -> Vec<Effect> {
        let len = match &self.overlay {
            Overlay::Conversations { items, .. } => items.as_ref().map_or(0, Vec::len),
            Overlay::Models { .. } => self.model_choices().len(),
            Overlay::None => 0,
        };
        let selected = match &mut self.overlay {
            Overlay::Conversations { selected, .. } | Overlay::Models { selected } => selected,
            Overlay::None => return Vec::new(),
        };
        match key.code {
            KeyCode::Esc | KeyCode::F(2) | KeyCode::F(3) => self.overlay = Overlay::None,
            KeyCode::Up if len > 0 => *selected = selected.checked_sub(1).unwrap_or(len - 1),
            KeyCode::Down if len > 0 => *selected = (*selected + 1) % len,
            KeyCode::Enter if len > 0 => {
                let pick = *selected;
                match std::mem::replace(&mut self.overlay, Overlay::None) {
                    Overlay::Conversations {
                        items: Some(items), ..
                    } => return self.switch(&items[pick].name.clone()),
                    Overlay::Models { .. } => {
                        let model = self.model_choices()[pick].clone();
                        // The engine switches it (and checks it), like a typed `/model`.
                        self.input.set(format!("/model {model}"));
                        return self.submit(now);
                    }
                    _ => {}
                }
            }
            _ => {}
        }
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn key(code: KeyCode) -> Event {
        Event::Key(KeyEvent::new(code, KeyModifiers::NONE))
    }

    fn ctrl(c: char) -> Event {
        Event::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL))
    }

    fn typed(app: &mut App, text: &str) -> Vec<Effect> {
        let now = Instant::now();
        let mut effects = Vec::new();
        for c in text.chars() {
            effects.extend(app.reduce(key(KeyCode::Char(c)), now));
        }
        effects
    }

    #[test]
    fn enter_sends_the_line_and_up_recalls_it() {
        let mut app = App::new("default", "m1", vec![]);
        let now = Instant::now();
        typed(&mut app, "first");
        assert_eq!(
            app.reduce(key(KeyCode::Enter), now),
            [Effect::Send("first".into())]
        );
        typed(&mut app, "second");
        app.reduce(key(KeyCode::Enter), now);
        typed(&mut app, "draft");
        app.reduce(key(KeyCode::Up), now);
        assert_eq!(app.input.text, "second");
        app.reduce(key(KeyCode::Up), now);
        app.reduce(key(KeyCode::Up), now);
        assert_eq!(app.input.text, "first");
        app.reduce(key(KeyCode::Down), now);
        app.reduce(key(KeyCode::Down), now);
        assert_eq!(
            app.input.text, "draft",
            "past the newest line, the draft is back"
        );
        assert_eq!(app.status.running, 2);
    }

    #[test]
    fn ctrl_c_stops_the_running_turn_and_a_second_quits() {
        let mut app = App::new("default", "m1", vec![]);
        let now = Instant::now();
        typed(&mut app, "hi");
        app.reduce(key(KeyCode::Enter), now);
        assert_eq!(app.reduce(ctrl('c'), now), [Effect::Stop]);
        assert_eq!(app.reduce(ctrl('c'), now), [Effect::Quit]);
        // Idle: the first Ctrl-C only clears the line; another key disarms it.
        let mut app = App::new("default", "m1", vec![]);
        typed(&mut app, "half a thought");
        assert_eq!(app.reduce(ctrl('c'), now), []);
        assert_eq!(app.input.text, "");
        typed(&mut app, "x");
        assert_eq!(app.reduce(ctrl('c'), now), []);
        assert_eq!(app.reduce(ctrl('c'), now), [Effect::Quit]);
    }

    #[test]
    fn tab_completes_a_slash_command() {
        let mut app = App::new("default", "m1", vec![]);
        let now = Instant::now();
        typed(&mut app, "/re");
        let names: Vec<_> = app.completions().iter().map(|c| c.name).collect();
        assert_eq!(names, ["/reset"]);
        app.reduce(key(KeyCode::Tab), now);
        assert_eq!(app.input.text, "/reset ");
        assert!(app.completions().is_empty());
        app.reduce(ctrl('u'), now);
        typed(&mut app, "/");
        assert_eq!(app.completions().len(), COMMANDS.len());
        app.reduce(key(KeyCode::Down), now);
        app.reduce(key(KeyCode::Tab), now);
        assert_eq!(app.input.text, format!("{} ", COMMANDS[1].name));
    }

    #[test]
    fn replies_stream_into_their_message_and_escapes_never_enter_the_state() {
        let mut app = App::new("default", "m1", vec![]);
        let now = Instant::now();
        let post = |id, text: &str| Event::Posted {
            conversation: "default".into(),
            id,
            text: text.into(),
        };
        app.reduce(post(7, "Hel\u{1b}[2J"), now);
        app.reduce(
            Event::Edited {
                conversation: "default".into(),
                id: 7,
                text: "Hello \u{1b}]0;title\u{7}there".into(),
            },
            now,
        );
        // Another conversation's reply is not this one's.
        app.reduce(
            Event::Posted {
                conversation: "other".into(),
                id: 8,
                text: "elsewhere".into(),
            },
            now,
        );
        assert_eq!(app.entries.len(), 1);
        match &app.entries[0] {
            Entry::Reply { text, .. } => assert_eq!(text, "Hello there"),
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn picking_a_model_sends_the_model_command() {
        let mut app = App::new("default", "m1", vec!["m1".into(), "m2".into()]);
        let now = Instant::now();
        app.reduce(key(KeyCode::F(3)), now);
        assert_eq!(app.overlay, Overlay::Models { selected: 0 });
        app.reduce(key(KeyCode::Down), now);
        assert_eq!(
            app.reduce(key(KeyCode::Enter), now),
            [Effect::Send("/model m2".into())]
        );
        assert_eq!(app.overlay, Overlay::None);
    }

    #[test]
    fn switching_conversations_opens_the_picked_one() {
        let mut app = App::new("default", "m1", vec![]);
        let now = Instant::now();
        assert_eq!(
            app.reduce(key(KeyCode::F(2)), now),
            [Effect::LoadConversations]
        );
        app.reduce(
            Event::Conversations(vec![
                ConversationItem {
                    name: "default".into(),
                    model: None,
                    messages: 2,
                    tokens: 10,
                },
                ConversationItem {
                    name: "work".into(),
                    model: Some("m2".into()),
                    messages: 4,
                    tokens: 99,
                },
            ]),
            now,
        );
        app.reduce(key(KeyCode::Down), now);
        assert_eq!(
            app.reduce(key(KeyCode::Enter), now),
            [Effect::Opened("work".into())]
        );
        assert_eq!(app.conversation, "work");
        typed(&mut app, "/new scratch");
        assert_eq!(
            app.reduce(key(KeyCode::Enter), now),
            [Effect::Opened("scratch".into())]
        );
    }
}
