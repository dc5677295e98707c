//! Integration tests of robit-store: one conformance suite, every case written once and run
//! against both backends (a temporary SQLite file, and PostgreSQL in a schema of its own).
//!
//! PostgreSQL must be running; its tests fail, not skip, when it is not, so a green run means
//! both backends were exercised. `ROBIT_TEST_POSTGRES_URL` overrides the default URL.

#[macro_use]
mod support;

mod accept;
mod access;
mod answers;
mod batch;
mod buckets;
mod concurrency;
mod connect;
mod history;
mod journal;
mod lease;
mod migrate;
mod retention;
mod usage;
