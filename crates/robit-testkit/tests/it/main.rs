//! Integration tests of the testkit's fakes, checked on the raw wire so that a fake that
//! drifts from the real protocol is caught here rather than hidden behind our own clients.

mod anthropic;
mod llm;
