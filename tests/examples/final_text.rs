//! How long after the model's stream ends the user sees the whole answer, measured from
//! outside: the real `robit serve` (default edit interval, 1 s), the loopback Discord and
//! Slack emulators, and a fake model that streams its answer in about 200 ms.
//!
//! `cargo build -p robit && cargo run -p robit-system-tests --example final_text [rounds]
//! [conversations]`
//!
//! For each round it mentions the bot, notes when the model received the request (the fake's
//! request log, polled), and polls the emulator until the thread shows the complete answer.
//! Model end = request seen + the stream's scheduled length. Printed per setup: p50 and max
//! of "final text after the model's end" and of "final text after the question". Last,
//! `conversations` (default 1,000) users write to the bot in their own Discord DMs at once,
//! and it prints when they saw their answers and how many 429s the emulator gave.

use robit_system_tests::platform::Platform;
use robit_system_tests::{Db, Robit};
use robit_testkit::llm::{FakeLlm, Reply};
use std::time::{Duration, Instant};

const WORDS: usize = 40;
const CHUNKS: usize = 10;
const CHUNK_DELAY: Duration = Duration::from_millis(20);
const POLL: Duration = Duration::from_millis(2);

fn answer() -> String {
    (0..WORDS)
        .map(|i| format!("word{i}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The fake model, streaming `full` in [`CHUNKS`] chunks [`CHUNK_DELAY`] apart.
async fn streaming_model(full: &str) -> FakeLlm {
    let llm = FakeLlm::start().await;
    llm.set_default(
        Reply::text(full.to_string())
            .chunk_words(WORDS / CHUNKS)
            .delay(CHUNK_DELAY),
    );
    llm
}

async fn measure(name: &str, platform: Platform, db: Db, rounds: usize) {
    let full = answer();
    let llm = streaming_model(&full).await;
    let mut env = platform.env();
    // The default interval, not the chaos suite's 50 ms: what a deployment runs with.
    env.retain(|(k, _)| !k.ends_with("EDIT_INTERVAL_MS"));
    env.push(("ROBIT_LLM__BASE_URL".into(), llm.base_url()));
    let robit = Robit::start(&db, &env).await;
    platform.attach(&robit).await;
    let stream = CHUNK_DELAY * CHUNKS as u32;
    let (mut after_end, mut after_ask) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let seen = llm.chat_requests().len();
        let asked_at = Instant::now();
        let asked = platform.ask(&format!("question {round}"));
        // Discord's DM is one channel for every round: only messages after the earlier
        // rounds' answers count (robit cannot have answered yet).
        let before = platform.answers(&asked).len();
        let mut requested = None;
        let deadline = asked_at + Duration::from_secs(20);
        let shown = loop {
            if requested.is_none() && llm.chat_requests().len() > seen {
                requested = Some(Instant::now());
            }
            if platform.answers(&asked)[before..]
                .iter()
                .any(|a| a.contains(&full))
            {
                break Instant::now();
            }
            assert!(Instant::now() < deadline, "no answer: {}", robit.log());
            tokio::time::sleep(POLL).await;
        };
        let model_end = requested.expect("the model was asked") + stream;
        after_end.push(shown.saturating_duration_since(model_end));
        after_ask.push(shown - asked_at);
        // Let the channel's budget refill, as between two questions in a real thread:
        // Discord allows 5 creates/edits per 5 s in a channel (and every round asks in the
        // same DM), Slack about one post per second.
        let gap = match platform {
            Platform::Discord(_) => 5_300,
            Platform::Slack(_) => 1_200,
        };
        tokio::time::sleep(Duration::from_millis(gap)).await;
    }
    after_end.sort();
    after_ask.sort();
    println!(
        "{name:<28} rounds {rounds:>3}  final after model end: p50 {:>5} ms max {:>5} ms   after question: p50 {:>5} ms max {:>5} ms",
        pct(&after_end, 0.5).as_millis(),
        after_end.last().unwrap().as_millis(),
        pct(&after_ask, 0.5).as_millis(),
        after_ask.last().unwrap().as_millis(),
    );
    drop(robit.stop());
    db.drop().await;
}

/// `conversations` users each write to the bot in their own DM at the same moment, so every
/// answer streams (and its final edit goes out at once) together. Prints when each user saw
/// the complete answer and how many requests the emulator answered with 429. Discord only:
/// every DM is a channel with its own budget, as 1,000 conversations are; Slack's emulator
/// has a handful of channels, whose one-post-a-second budget would pace 1,000 threads in one
/// channel for a quarter of an hour.
async fn flood(conversations: usize) {
    let full = answer();
    let llm = streaming_model(&full).await;
    let platform = Platform::discord().await;
    let Platform::Discord(emu) = &platform else {
        unreachable!("a Discord platform")
    };
    let mut env = platform.env();
    env.retain(|(k, _)| !k.ends_with("EDIT_INTERVAL_MS"));
    env.push(("ROBIT_LLM__BASE_URL".into(), llm.base_url()));
    let db = Db::sqlite();
    let robit = Robit::start(&db, &env).await;
    platform.attach(&robit).await;
    let dms: Vec<(u64, u64)> = (0..conversations)
        .map(|i| {
            let user = emu.add_user(&format!("user{i}"), false);
            (user, emu.dm_channel(user))
        })
        .collect();
    let asked_at = Instant::now();
    for (user, dm) in &dms {
        emu.says(*user, *dm, &format!("question from {user}"));
    }
    let mut shown: Vec<Option<Duration>> = vec![None; conversations];
    let deadline = asked_at + Duration::from_secs(300);
    while shown.iter().any(Option::is_none) {
        for (i, (_, dm)) in dms.iter().enumerate() {
            if shown[i].is_none()
                && emu
                    .bot_messages(*dm)
                    .iter()
                    .any(|m| m.content.contains(&full))
            {
                shown[i] = Some(asked_at.elapsed());
            }
        }
        let left = shown.iter().filter(|s| s.is_none()).count();
        assert!(
            Instant::now() < deadline,
            "{left} answers never completed: {}",
            robit.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut shown: Vec<Duration> = shown.into_iter().flatten().collect();
    shown.sort();
    let requests = emu.requests();
    let limited = requests.iter().filter(|r| r.status == 429).count();
    println!(
        "discord, sqlite, {conversations} DMs at once: complete answer after the question p50 {} ms p99 {} ms max {} ms; {} requests to the emulator, {limited} answered 429",
        pct(&shown, 0.5).as_millis(),
        pct(&shown, 0.99).as_millis(),
        shown.last().unwrap().as_millis(),
        requests.len(),
    );
    drop(robit.stop());
    db.drop().await;
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("rounds"))
        .unwrap_or(20);
    println!(
        "model streams {WORDS} words in {CHUNKS} chunks {} ms apart; edit interval 1,000 ms",
        CHUNK_DELAY.as_millis()
    );
    measure(
        "discord, sqlite",
        Platform::discord().await,
        Db::sqlite(),
        rounds,
    )
    .await;
    measure(
        "slack, sqlite (own budget)",
        Platform::slack().await,
        Db::sqlite(),
        rounds,
    )
    .await;
    measure(
        "slack, postgres (shared)",
        Platform::slack().await,
        Db::postgres(),
        rounds,
    )
    .await;
    let conversations: usize = std::env::args()
        .nth(2)
        .map(|a| a.parse().expect("conversations"))
        .unwrap_or(1_000);
    flood(conversations).await;
}
