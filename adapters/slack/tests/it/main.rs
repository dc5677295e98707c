//! End-to-end tests: the real slack-morphism client (inside robit-slack) against the Slack
//! emulator, through the real engine on a temp-file SQLite store, with the real OpenAI client
//! talking to the fake LLM. One binary, a module per feature.

mod access;
mod attachments;
mod commands;
mod exactly_once;
mod faults;
mod http_events;
mod socket_mode;
mod support;
