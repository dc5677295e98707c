//! `robit emulate discord|slack [--port N]`: runs one platform emulator on loopback, for
//! testing any bot (robit, or your own on serenity, discord.py, slack-morphism, slack_sdk or
//! slack_bolt) without a Discord or Slack account.
//!
//! It prints what to set in each client library, then serves until Ctrl-C or SIGTERM. It
//! binds 127.0.0.1 only and needs no configuration file; the emulators themselves are in
//! `robit-emulators` (`docs/emulators.md` lists what they support).

use crate::cli::{EmulateArgs, EmulatePlatform as Platform};
use anyhow::Context;
use robit_emulators::discord::{DiscordEmulator, EmulatorConfig};
use robit_emulators::slack::{self, SlackEmulator, SlackEmulatorOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

pub async fn run(args: EmulateArgs) -> anyhow::Result<ExitCode> {
    let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    match args.platform {
        Platform::Discord => {
            let emu = DiscordEmulator::bind(addr, EmulatorConfig::default())
                .await
                .with_context(|| format!("binding the Discord emulator to {addr}"))?;
            print_discord(&emu);
            wait_for_stop().await;
        }
        Platform::Slack => {
            // The Slack emulator panics on a bind failure; check the port first for a clean
            // error message.
            drop(
                std::net::TcpListener::bind(addr)
                    .with_context(|| format!("binding the Slack emulator to {addr}"))?,
            );
            let emu = SlackEmulator::bind(addr, SlackEmulatorOptions::default()).await;
            if let Some(url) = args.events_url {
                emu.set_events_url(url);
            }
            print_slack(&emu);
            wait_for_stop().await;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_discord(emu: &DiscordEmulator) {
    let base = emu.base_url();
    let api = format!("{base}/api/v10");
    let gateway = format!("{}/gateway-ws", base.replacen("http://", "ws://", 1));
    let token = emu.token();
    let text = format!(
        "\
Discord emulator listening on {base} (Ctrl-C stops it)

# environment (for your own bot code and the examples in docs/emulators.md)
export DISCORD_TOKEN={token}
export DISCORD_API_BASE={api}
export DISCORD_GATEWAY_URL={gateway}
export DISCORD_EMULATOR={base}
export DISCORD_APPLICATION_ID={app}

# serenity (Rust): its proxy setting only works with its ratelimiter off
#   let http = HttpBuilder::new(token).proxy(\"{base}\").ratelimiter_disabled(true).build();
#   ClientBuilder::new_with_http(http, intents)
# discord.py (Python): two class attributes, before the client starts
#   discord.http.Route.BASE = \"{api}\"
#   discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(\"{gateway}\")
# robit
#   ROBIT_DISCORD__TOKEN={token} ROBIT_DISCORD__API_BASE={base} robit serve

ids: application {app}, bot user {bot}, guild {guild}, #general {channel}, user alice {user}
control API (play the user, read what the bot did):
  GET  {base}/_emulator/info
  POST {base}/_emulator/messages      {{\"content\":\"<@{bot}> hi\"}}
  POST {base}/_emulator/commands      {{\"name\":\"ask\",\"options\":{{\"prompt\":\"hi\"}}}}
  POST {base}/_emulator/components    {{\"message_id\":\"…\",\"custom_id\":\"…\"}}
  POST {base}/_emulator/faults        {{\"method\":\"POST\",\"path_prefix\":\"/channels/\",\"count\":1,\"kind\":\"rate_limit\"}}
  POST {base}/_emulator/gateway/drop  (also /gateway/reconnect, /gateway/invalidate)
  GET  {base}/_emulator/channels/{channel}/messages
  GET  {base}/_emulator/requests
",
        app = emu.application_id(),
        bot = emu.bot_id(),
        guild = emu.guild_id(),
        channel = emu.channel_id(),
        user = emu.user_id(),
    );
    emit(&text);
}

fn print_slack(emu: &SlackEmulator) {
    let base = format!("http://{}", emu.addr());
    let api = emu.api_url();
    let text = format!(
        "\
Slack emulator listening on {base} (Ctrl-C stops it)

# environment (for your own bot code and the examples in docs/emulators.md)
export SLACK_BOT_TOKEN={bot_token}
export SLACK_APP_TOKEN={app_token}
export SLACK_SIGNING_SECRET={secret}
export SLACK_API_URL={api}/
export SLACK_EMULATOR={base}

# slack_sdk / slack_bolt (Python): base_url needs the trailing slash
#   client = WebClient(token=SLACK_BOT_TOKEN, base_url=\"{api}/\")
#   app = App(client=client, signing_secret=SLACK_SIGNING_SECRET)
#   SocketModeHandler(app, SLACK_APP_TOKEN).start()    # Socket Mode, or
#   app.start(port=3000) + `robit emulate slack --events-url http://127.0.0.1:3000/slack/events`
# slack-morphism (Rust): an http-capable connector (SlackClientHyperConnector::new() is https-only)
#   SlackClientHyperConnector::with_connector(..https_or_http()..).with_slack_api_url(\"{api}\")
# robit
#   ROBIT_SLACK__BOT_TOKEN={bot_token} ROBIT_SLACK__APP_TOKEN={app_token} ROBIT_SLACK__API_URL={api} robit serve

team {team}, bot user {bot_user} ({bot_id}), user {user}, channel {general}, DM {dm}
control API (play the user, read what the bot did):
  POST {base}/_control/mention   {{\"text\":\"hi\"}}
  POST {base}/_control/reply     {{\"channel\":\"{general}\",\"thread_ts\":\"…\",\"text\":\"more\"}}
  POST {base}/_control/dm        {{\"text\":\"hi\"}}
  POST {base}/_control/slash     {{\"command\":\"/ask\",\"text\":\"hi\"}}
  POST {base}/_control/button    {{\"channel\":\"{general}\",\"ts\":\"…\",\"action_id\":\"…\"}}
  POST {base}/_control/fault     {{\"rate_limit\":{{\"method\":\"chat.postMessage\",\"count\":1,\"retry_after\":1}}}}
  GET  {base}/_control/messages?channel={general}
  GET  {base}/_control/calls
",
        bot_token = slack::BOT_TOKEN,
        app_token = slack::APP_TOKEN,
        secret = slack::SIGNING_SECRET,
        team = slack::TEAM_ID,
        bot_user = slack::BOT_USER,
        bot_id = slack::BOT_ID,
        user = slack::USER,
        general = slack::GENERAL,
        dm = slack::DM_CHANNEL,
    );
    emit(&text);
}

/// Prints and flushes at once: a test harness reads this from a pipe to learn the port.
fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

async fn wait_for_stop() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
