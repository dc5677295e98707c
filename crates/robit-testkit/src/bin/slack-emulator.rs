//! The Slack emulator as a program, for trying robit by hand or from other tools' tests:
//! `slack-emulator --port 3001` prints the Web API URL, tokens and signing secret, then
//! serves until Ctrl-C. Play the user through the control API, for example
//! `curl -d '{"text":"hi"}' -H 'content-type: application/json' localhost:3001/_control/mention`.
//! It only ever listens on 127.0.0.1.

use robit_testkit::slack::{self, SlackEmulator, SlackEmulatorOptions};

#[tokio::main]
async fn main() {
    let mut port: u16 = 0;
    let mut events_url: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--port" => {
                port = args
                    .next()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or_else(|| usage("--port needs a number"))
            }
            "--events-url" => events_url = args.next(),
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let emulator = SlackEmulator::bind(addr, SlackEmulatorOptions::default()).await;
    if let Some(url) = events_url {
        emulator.set_events_url(url);
    }
    println!("slack emulator on http://{}", emulator.addr());
    println!("api_url        = {}", emulator.api_url());
    println!("bot_token      = {}", slack::BOT_TOKEN);
    println!("app_token      = {}", slack::APP_TOKEN);
    println!("signing_secret = {}", slack::SIGNING_SECRET);
    println!(
        "bot user {} in team {}; user {}; channels {} and DM {}",
        slack::BOT_USER,
        slack::TEAM_ID,
        slack::USER,
        slack::GENERAL,
        slack::DM_CHANNEL
    );
    println!("control: POST /_control/{{mention,reply,dm,slash,fault,events_url}}, GET /_control/{{messages,calls}}");
    let _ = tokio::signal::ctrl_c().await;
}

fn usage(err: &str) -> ! {
    if !err.is_empty() {
        eprintln!("slack-emulator: {err}");
    }
    eprintln!("usage: slack-emulator [--port N] [--events-url URL]");
    std::process::exit(if err.is_empty() { 0 } else { 2 })
}
