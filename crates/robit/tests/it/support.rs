//! Runs the built `robit` binary with a clean environment pointed at test resources.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// `robit <args>` with `stdin` piped in, configured only through the variables given (the
/// caller's ROBIT_* variables are removed so the developer's setup cannot leak in).
pub fn robit(dir: &Path, args: &[&str], env: &[(&str, String)], stdin: &str) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_robit"));
    cmd.args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, _) in std::env::vars() {
        if k.starts_with("ROBIT_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("robit starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().expect("robit runs")
}

pub fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}
