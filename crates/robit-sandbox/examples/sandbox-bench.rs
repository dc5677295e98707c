//! Runs the sandbox benchmark (the same one as `robit bench sandbox`):
//! `cargo run -p robit-sandbox --example sandbox-bench -- [ITERATIONS]`.
//!
//! Guests are looked up in `ROBIT_GUESTS_DIR` or `data/guests`; compiled guests
//! are cached in `data/cache`. Not used by robit itself.

use std::path::PathBuf;

use robit_sandbox::SandboxConfig;

#[tokio::main]
async fn main() {
    let iterations = std::env::args()
        .nth(1)
        .map(|n| n.parse().expect("ITERATIONS is a number"))
        .unwrap_or(100);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let guests = std::env::var_os("ROBIT_GUESTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("data/guests"));
    let config = SandboxConfig::new(guests, root.join("data/cache"));
    match robit_sandbox::bench::run(config, iterations).await {
        Ok(report) => print!("{report}"),
        Err(e) => {
            eprintln!("benchmark failed: {e}");
            std::process::exit(1);
        }
    }
}
