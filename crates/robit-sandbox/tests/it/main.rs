//! Integration tests of robit-sandbox against the real guests and a real wasmtime.
//!
//! One binary with a module per area (see the design notes on link time). The
//! guests come from `ROBIT_GUESTS_DIR` or `<workspace>/data/guests`; when they are
//! missing the tests fail and say to run `scripts/fetch-guests` rather than
//! silently passing.

mod common;
mod concurrency;
mod containment;
mod disk;
mod files;
mod isolation;
mod javascript;
mod python;
mod setup;
mod shutdown;
