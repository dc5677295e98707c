//! `discord-emulator --port N`: runs the loopback Discord emulator on its own, for trying robit
//! (or any serenity bot) by hand without a Discord account.
//!
//! Prints the base URL and credentials, then serves until Ctrl-C. Drive it with the control API
//! under `/_emulator` (see `robit_testkit::discord`). It binds 127.0.0.1 only.

use robit_testkit::discord::{DiscordEmulator, EmulatorConfig};
use std::net::SocketAddr;

#[tokio::main]
async fn main() {
    let mut port: u16 = 0;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => {
                port = match args.next().and_then(|p| p.parse().ok()) {
                    Some(p) => p,
                    None => usage("--port needs a number"),
                }
            }
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument `{other}`")),
        }
    }
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let emulator = match DiscordEmulator::bind(addr, EmulatorConfig::default()).await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("discord-emulator: cannot bind {addr}: {e}");
            std::process::exit(1);
        }
    };
    let base = emulator.base_url();
    println!("discord emulator listening on {base}");
    println!("  api base (serenity proxy): {base}");
    println!("  bot token:                 {}", emulator.token());
    println!("  application id:            {}", emulator.application_id());
    println!("  bot user id:               {}", emulator.bot_id());
    println!("  guild id:                  {}", emulator.guild_id());
    println!("  channel id (#general):     {}", emulator.channel_id());
    println!("  user id (alice):           {}", emulator.user_id());
    println!("control API:");
    println!("  GET  {base}/_emulator/info");
    println!(
        "  POST {base}/_emulator/messages  {{\"content\":\"<@{}> hi\"}}",
        emulator.bot_id()
    );
    println!(
        "  POST {base}/_emulator/commands  {{\"name\":\"ask\",\"options\":{{\"prompt\":\"hi\"}}}}"
    );
    println!("  POST {base}/_emulator/faults    {{\"method\":\"PATCH\",\"path_prefix\":\"/webhooks/\",\"count\":3,\"kind\":\"rate_limit\"}}");
    println!("  POST {base}/_emulator/gateway/drop");
    println!(
        "  GET  {base}/_emulator/channels/{}/messages",
        emulator.channel_id()
    );
    println!("  GET  {base}/_emulator/requests");
    let _ = tokio::signal::ctrl_c().await;
}

fn usage(problem: &str) -> ! {
    if !problem.is_empty() {
        eprintln!("discord-emulator: {problem}");
    }
    eprintln!("usage: discord-emulator [--port N]");
    std::process::exit(if problem.is_empty() { 0 } else { 2 });
}
