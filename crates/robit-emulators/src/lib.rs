//! Loopback emulators of Discord and Slack, for testing a chat bot without an account.
//!
//! Each emulator is a real HTTP (and WebSocket) server on `127.0.0.1` that speaks the
//! platform's wire format closely enough that unmodified client libraries run against it:
//! serenity and discord.py for Discord; slack-morphism, slack_sdk and slack_bolt for Slack.
//! Tests drive the user's side through a scenario API (Rust methods, or the HTTP control API
//! of `robit emulate`), inject faults, and read back what the bot did.
//!
//! This crate must never reach the network (it binds and calls loopback addresses only) and
//! knows nothing about robit: it depends on none of our crates, so any crate's tests, and any
//! bot in any language, can use it. What is emulated and where it differs from the real
//! platforms is listed in `docs/emulators.md`.

pub mod discord;
pub mod slack;
