//! `robit chat` in a terminal: a full-screen UI (ratatui on crossterm) over the console
//! adapter. The answer streams in place as rendered Markdown, sandbox runs show as panels,
//! files runs return are saved and their paths shown; an input line with history and
//! slash-command completion, scrollback, a list of stored console conversations, a model
//! picker and a status line. Ctrl-C stops the running answer; a second one quits.
//!
//! It is a presentation of the console adapter and nothing more: typed lines become
//! [`robit_types::Inbound`]s through [`robit_console::line_to_inbound`], replies arrive
//! through a [`robit_types::ReplySink`] ([`sink::TuiSink`]), and what it shows of stored
//! conversations comes from the engine's queries. It must not touch the store or the
//! provider, and must print nothing untrusted that has not passed
//! [`robit_console::strip_terminal_escapes`]. When stdout is not a terminal, the binary uses
//! `robit-console`'s plain mode instead.
//!
//! Layers, from the bottom: `markdown` and `panel` (pure text → lines) <- `state` (the
//! reducer: events in, state and effects out; no terminal, no clock) <- `draw` (a pure
//! function of the state), `sink` <- `terminal` (the runtime: raw mode, the event loop, the
//! effects carried out on the engine).

mod draw;
mod error;
mod markdown;
mod panel;
mod sink;
mod state;
mod terminal;

pub use draw::{draw, transcript_height};
pub use error::TuiError;
pub use sink::TuiSink;
pub use state::{App, ConversationItem, Effect, Entry, Event, Overlay, COMMANDS};
pub use terminal::{run, TuiOptions};
