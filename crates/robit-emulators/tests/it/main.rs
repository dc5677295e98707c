//! Integration tests of the emulators, checked on the raw wire so that an emulator that
//! drifts from the real protocol is caught here rather than hidden behind our own clients.

mod discord;
mod slack;
