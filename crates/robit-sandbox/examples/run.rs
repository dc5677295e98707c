//! Runs one snippet in the sandbox and prints the result, for poking at the
//! guests by hand: `cargo run -p robit-sandbox --example run -- python 'print(1)' [stdin]`.
//!
//! Guests are looked up in `ROBIT_GUESTS_DIR` or `data/guests`; compiled guests
//! are cached in `data/cache`. Not used by robit itself.

use std::path::PathBuf;

use robit_sandbox::{Language, Limits, Sandbox, SandboxConfig};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(lang), Some(code)) = (args.next(), args.next()) else {
        eprintln!("usage: run <python|js> CODE [STDIN]");
        std::process::exit(2);
    };
    let stdin = args.next().unwrap_or_default();
    let language = Language::parse(&lang).expect("language: python or js");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let guests = std::env::var_os("ROBIT_GUESTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("data/guests"));
    let mut config = SandboxConfig::new(guests, root.join("data/cache"));
    config.python_pool_size = 0;
    let t = std::time::Instant::now();
    let sandbox = Sandbox::new(config).await.expect("sandbox");
    eprintln!("[sandbox ready in {:?}]", t.elapsed());
    let out = sandbox
        .run(language, &code, stdin.as_bytes(), Limits::default())
        .await
        .expect("run");
    println!(
        "--- stdout\n{}\n--- stderr\n{}\n--- exit {:?} outcome {:?} in {:?}",
        out.stdout, out.stderr, out.exit_code, out.outcome, out.duration
    );
}
