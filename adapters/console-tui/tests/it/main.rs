//! The terminal UI's screens, drawn from its state on ratatui's test backend: the reducer is
//! driven with the events the runtime feeds it, then the screen is snapshotted (insta) and
//! the parts that matter are asserted.

mod screens;
