//! How long after the model's stream ends the user sees the whole answer, measured from
//! outside: the real `robit serve` (default edit interval, 1 s), the loopback Discord and
//! Slack emulators, and a fake model that streams its answer in about 200 ms.
//!
//! `cargo build -p robit && cargo run -p robit-system-tests --example final_text [rounds]`
//!
//! For each round it mentions the bot, notes when the model received the request (the fake's
//! request log, polled), and polls the emulator until the thread shows the complete answer.
//! Model end = request seen + the stream's scheduled length. Printed per setup: p50 and max
//! of "final text after the model's end" and of "final text after the question".

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

async fn measure(name: &str, platform: Platform, db: Db, rounds: usize) {
    let llm = FakeLlm::start().await;
    let full = answer();
    llm.set_default(
        Reply::text(full.clone())
            .chunk_words(WORDS / CHUNKS)
            .delay(CHUNK_DELAY),
    );
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
}
