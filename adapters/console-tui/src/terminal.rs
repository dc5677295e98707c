//! The runtime: puts the terminal in raw mode on the alternate screen, feeds keys and the
//! engine's replies to the reducer, draws after each batch of events, and carries out the
//! reducer's effects on the engine. The terminal is restored on every way out: return,
//! error, the future being dropped (SIGTERM), and panic.

use crate::draw::{draw, transcript_height};
use crate::error::TuiError;
use crate::sink::TuiSink;
use crate::state::{App, ConversationItem, Effect, Event};
use crossterm::event::{DisableBracketedPaste, EnableBracketedPaste, EventStream};
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use futures::StreamExt;
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;
use robit_console::{conversation_key, line_to_inbound, ConsoleOptions};
use robit_core::{Engine, Submission};
use std::path::PathBuf;
use std::sync::{Arc, Once};
use std::time::Instant;
use tokio::sync::mpsc::{self, UnboundedSender};

/// The most stored conversations listed, and the most earlier messages shown on opening one.
const LIST_LIMIT: u32 = 200;
const TRANSCRIPT_LIMIT: u32 = 200;

/// What the terminal UI needs besides the engine.
#[derive(Debug, Clone)]
pub struct TuiOptions {
    /// The conversation to open first, and who types.
    pub console: ConsoleOptions,
    /// Where files that sandbox runs return are saved (one folder per conversation).
    pub files_dir: PathBuf,
}

/// Runs the terminal UI until the person quits (Ctrl-C twice, Ctrl-D on an empty line,
/// `/quit`). Turns still running are left to the engine's shutdown.
pub async fn run(engine: &Engine, options: TuiOptions) -> Result<(), TuiError> {
    let _restore = Restore::enter()?;
    let mut terminal = Terminal::new(CrosstermBackend::new(std::io::stdout()))?;
    terminal.clear()?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let config = engine.config();
    let mut app = App::new(
        &options.console.conversation,
        &config.default_model,
        config.models.clone(),
    );
    let runtime = Runtime {
        engine: engine.clone(),
        options,
        events: tx,
    };
    runtime.open(&app.conversation);
    let height = transcript_height(terminal.size()?.height);
    app.reduce(Event::Resize { height }, Instant::now());
    let mut keys = EventStream::new();
    loop {
        terminal.draw(|frame| draw(frame, &app))?;
        let mut batch = Vec::new();
        tokio::select! {
            key = keys.next() => match key {
                Some(Ok(e)) => batch.extend(translate(e)),
                Some(Err(e)) => return Err(e.into()),
                None => return Ok(()),
            },
            Some(e) = rx.recv() => batch.push(e),
        }
        // Everything else already waiting goes into the same frame: a fast stream costs one
        // draw per batch, not one per edit.
        while let Ok(e) = rx.try_recv() {
            batch.push(e);
        }
        for event in batch {
            for effect in app.reduce(event, Instant::now()) {
                if effect == Effect::Quit {
                    return Ok(());
                }
                runtime.perform(effect, &app).await;
            }
        }
    }
}

/// A terminal event as the reducer sees it; `None` for what only needs a redraw.
fn translate(event: crossterm::event::Event) -> Option<Event> {
    use crossterm::event::Event as T;
    match event {
        T::Key(k) => Some(Event::Key(k)),
        T::Paste(text) => Some(Event::Paste(text)),
        T::Resize(_, rows) => Some(Event::Resize {
            height: transcript_height(rows),
        }),
        _ => None,
    }
}

struct Runtime {
    engine: Engine,
    options: TuiOptions,
    events: UnboundedSender<Event>,
}

impl Runtime {
    async fn perform(&self, effect: Effect, app: &App) {
        match effect {
            Effect::Send(line) => self.send(&app.conversation, &line).await,
            Effect::Stop => {
                if !self
                    .engine
                    .stop_turn(&conversation_key(&app.conversation), "you")
                {
                    // A command or a sandbox run: nothing streams that could be cut.
                    tracing::debug!("no chat turn to stop");
                }
            }
            Effect::LoadConversations => self.load_conversations(),
            Effect::Opened(name) => self.open(&name),
            Effect::Quit => {}
        }
    }

    /// Submits the line; a task waits for its turn and reports the end. Submitting is
    /// awaited here (one database write) so lines reach the engine in the order typed.
    async fn send(&self, conversation: &str, line: &str) {
        let options = ConsoleOptions {
            conversation: conversation.to_string(),
            ..self.options.console.clone()
        };
        let sink = Arc::new(TuiSink::new(
            conversation,
            self.events.clone(),
            &self.options.files_dir,
        ));
        let started = Instant::now();
        let events = self.events.clone();
        let name = conversation.to_string();
        let ended = move |outcome: &'static str| Event::TurnEnded {
            conversation: name,
            outcome,
            elapsed: started.elapsed(),
        };
        match self
            .engine
            .submit(line_to_inbound(&options, line), sink)
            .await
        {
            Ok(Submission::Queued(handle)) => {
                tokio::spawn(async move {
                    let outcome = handle.wait().await;
                    let _ = events.send(ended(outcome.label()));
                });
            }
            Ok(Submission::Duplicate | Submission::Ignored) => {
                let _ = events.send(ended("ignored"));
            }
            Err(e) => {
                tracing::warn!(error = %e, "submitting a line failed");
                let _ = events.send(Event::Failed(format!(
                    "not sent, robit could not store it: {e}"
                )));
                let _ = events.send(ended("failed"));
            }
        }
    }

    fn load_conversations(&self) {
        let engine = self.engine.clone();
        let events = self.events.clone();
        tokio::spawn(async move {
            let key = conversation_key("");
            let event = match engine
                .conversations(key.platform, &key.workspace, LIST_LIMIT)
                .await
            {
                Ok(list) => Event::Conversations(
                    list.into_iter()
                        .filter(|c| c.key.thread.is_none())
                        .map(|c| ConversationItem {
                            name: c.key.channel.0,
                            model: c.model,
                            messages: c.messages,
                            tokens: c.tokens,
                        })
                        .collect(),
                ),
                Err(e) => Event::Failed(format!("listing conversations failed: {e}")),
            };
            let _ = events.send(event);
        });
    }

    /// Loads an opened conversation's earlier messages and its status.
    fn open(&self, conversation: &str) {
        let engine = self.engine.clone();
        let events = self.events.clone();
        let conversation = conversation.to_string();
        tokio::spawn(async move {
            let event = match engine
                .transcript(&conversation_key(&conversation), TRANSCRIPT_LIMIT)
                .await
            {
                Ok(messages) => Event::Transcript {
                    messages: messages
                        .into_iter()
                        .map(|(role, text)| (role == robit_core::MessageRole::User, text))
                        .collect(),
                    conversation,
                },
                Err(e) => Event::Failed(format!("loading the conversation failed: {e}")),
            };
            let _ = events.send(event);
        });
        self.load_conversations();
    }
}

/// Raw mode and the alternate screen while it lives; the terminal as it was once dropped.
struct Restore;

impl Restore {
    fn enter() -> std::io::Result<Restore> {
        static HOOK: Once = Once::new();
        HOOK.call_once(|| {
            // A panic's message would be lost on the alternate screen, and a shell left in
            // raw mode is unusable: restore first, then report.
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                restore();
                previous(info);
            }));
        });
        enable_raw_mode()?;
        let guard = Restore;
        crossterm::execute!(
            std::io::stdout(),
            EnterAlternateScreen,
            EnableBracketedPaste
        )?;
        Ok(guard)
    }
}

impl Drop for Restore {
    fn drop(&mut self) {
        restore();
    }
}

fn restore() {
    let _ = crossterm::execute!(
        std::io::stdout(),
        DisableBracketedPaste,
        LeaveAlternateScreen,
        crossterm::cursor::Show
    );
    let _ = disable_raw_mode();
}
