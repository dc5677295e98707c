//! What a run returns: the captured output, the exit code and how the run ended.
//!
//! Only plain data and its formatting live here; nothing in this module touches
//! wasmtime, so callers (the engine, renderers) can depend on it freely.

use std::fmt;
use std::time::Duration;

/// How a run ended. A guest misbehaving is an outcome, never an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The program exited on its own (any exit code) and all its output was kept.
    Finished,
    /// The wall-time limit was reached and the guest was stopped.
    TimedOut,
    /// The guest tried to grow its memory past the limit and was stopped.
    OutOfMemory,
    /// The program exited on its own but wrote more than the output limit;
    /// the kept output ends with a truncation marker.
    OutputTruncated,
    /// The guest tried to write more to its scratch directory than its disk quota (bytes
    /// or files and directories), or than the sandbox's total for concurrent runs, and was
    /// stopped before the write happened.
    DiskLimit,
    /// The guest hit a WebAssembly trap (stack overflow, unreachable, ...).
    Trapped(String),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Finished => f.write_str("finished"),
            Outcome::TimedOut => f.write_str("timed out"),
            Outcome::OutOfMemory => f.write_str("out of memory"),
            Outcome::OutputTruncated => f.write_str("output truncated"),
            Outcome::DiskLimit => f.write_str("disk limit reached"),
            Outcome::Trapped(why) => write!(f, "trapped: {why}"),
        }
    }
}

/// The result of one run.
#[derive(Clone, Debug)]
pub struct RunOutput {
    /// Standard output, decoded lossily as UTF-8, with a truncation marker if cut.
    pub stdout: String,
    /// Standard error, same treatment as `stdout`.
    pub stderr: String,
    /// The guest's exit status, if it exited (not when stopped by a limit or a trap).
    pub exit_code: Option<i32>,
    /// Time from handing the code to the guest until it stopped.
    pub duration: Duration,
    pub outcome: Outcome,
    /// Files the program left in its scratch directory (name relative to it, bytes), sorted
    /// by name, within the run's file limits; input files it did not change are left out.
    pub files: Vec<(String, Vec<u8>)>,
    /// Files the program wrote that are not in `files` because of a limit, described for the
    /// user (`big.bin (9000000 bytes, over the 8388608 byte limit)`).
    pub files_left_out: Vec<String>,
}

/// Turns a capped capture into text: lossy UTF-8, and when bytes were dropped, a
/// visible marker saying how many.
///
/// A cut can land inside a multi-byte character; those trailing bytes are counted
/// as dropped rather than shown as a replacement character.
pub fn render(mut kept: Vec<u8>, dropped: u64) -> String {
    let mut dropped = dropped;
    if dropped > 0 {
        if let Err(e) = std::str::from_utf8(&kept) {
            // `error_len() == None` means the bytes end mid-character.
            if e.error_len().is_none() {
                dropped += (kept.len() - e.valid_up_to()) as u64;
                kept.truncate(e.valid_up_to());
            }
        }
    }
    let mut text = String::from_utf8_lossy(&kept).into_owned();
    if dropped > 0 {
        text.push_str(&format!("\n… [output truncated: {dropped} more bytes]"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untruncated_output_is_unchanged() {
        assert_eq!(render(b"hi\n".to_vec(), 0), "hi\n");
    }

    #[test]
    fn truncated_output_gets_a_marker() {
        assert_eq!(
            render(b"abc".to_vec(), 7),
            "abc\n… [output truncated: 7 more bytes]"
        );
    }

    #[test]
    fn a_cut_inside_a_character_drops_the_partial_bytes() {
        // "é" is two bytes; keep only the first.
        let kept = vec![b'a', 0xc3];
        assert_eq!(render(kept, 1), "a\n… [output truncated: 2 more bytes]");
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        assert_eq!(render(vec![b'a', 0xff, b'b'], 0), "a\u{fffd}b");
    }
}
