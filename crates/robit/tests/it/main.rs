//! End-to-end tests of the `robit` binary: the real process, a real SQLite file, the fake
//! LLM server over loopback.

mod chat;
mod chat_tui;
mod doctor;
mod guests;
mod mcp;
mod providers;
mod replicas;
mod run;
mod serve;
mod slack;
mod support;
