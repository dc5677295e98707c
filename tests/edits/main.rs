//! Edit to regenerate, end to end on both emulators with the real `robit serve`: the asker
//! edits their question (Discord MESSAGE_UPDATE over the gateway, Slack `message_changed`
//! over the Events API) and the answer is written again from the edited text, in place, in
//! the question's thread; an edit of an earlier question gets one notice however often it is
//! edited, while an edit of the latest one (a reply in the thread, whose thread Slack's edit
//! event does not name) is answered; and a regeneration cut by `kill -9` is finished once by
//! the next process.

use robit_system_tests::platform::{Asked, BotMessage, Platform};
use robit_system_tests::{eventually, Db, Robit, WAIT};
use robit_testkit::llm::{FakeLlm, Reply};
use std::time::{Duration, Instant};

async fn start(db: &Db, platform: &Platform, llm: &FakeLlm) -> Robit {
    let mut env = platform.env();
    env.push(("ROBIT_LLM__BASE_URL".into(), llm.base_url()));
    let robit = Robit::start(db, &env).await;
    platform.attach(&robit).await;
    robit
}

/// The bot's messages where `asked` was asked, once `done` holds for them.
async fn bot_messages_once(
    platform: &Platform,
    asked: &Asked,
    robit: &Robit,
    done: impl Fn(&[BotMessage]) -> bool,
) -> Vec<BotMessage> {
    let ok = eventually(|| done(&platform.bot_messages(asked))).await;
    let messages = platform.bot_messages(asked);
    assert!(ok, "not as expected: {messages:?}\n{}", robit.log());
    messages
}

/// Rows of `sql` once there are `n` of them.
async fn rows_once(db: &Db, sql: &str, n: usize) -> Vec<Vec<String>> {
    let started = Instant::now();
    loop {
        let rows = db.rows(sql).await;
        if rows.len() == n || started.elapsed() > WAIT {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The question edited within the window: its answer is written again, in place, from the
/// edited text; the store keeps the edited question, the old answer superseded and the new one.
async fn edit_regenerates(platform: Platform) {
    let db = Db::sqlite();
    let llm = FakeLlm::start().await;
    llm.push(Reply::text("Paris is the capital of France."));
    llm.push(Reply::text("Rome is the capital of Italy."));
    let robit = start(&db, &platform, &llm).await;
    let question = platform.ask_in_channel("what is the capital of France?");
    let answered = bot_messages_once(&platform, &question.asked, &robit, |m| {
        m.last()
            .is_some_and(|m| m.text.contains("Paris") && !m.buttons.is_empty())
    })
    .await;
    let answer = answered.last().unwrap().clone();
    platform.edit(&question, "what is the capital of Italy?");
    let rewritten = bot_messages_once(&platform, &question.asked, &robit, |m| {
        m.last()
            .is_some_and(|m| m.text.contains("Rome") && !m.buttons.is_empty())
    })
    .await;
    assert_eq!(rewritten.len(), answered.len(), "in place: {rewritten:?}");
    assert_eq!(rewritten.last().unwrap().id, answer.id);
    assert!(
        !rewritten.iter().any(|m| m.text.contains("Paris")),
        "{rewritten:?}"
    );
    let asked = llm.chat_requests();
    assert_eq!(asked.len(), 2);
    let second = asked[1].body["messages"].to_string();
    assert!(
        second.contains("capital of Italy") && !second.contains("France"),
        "{second}"
    );
    let stored = rows_once(
        &db,
        "SELECT role, content, status FROM messages ORDER BY id",
        3,
    )
    .await;
    assert_eq!(
        stored,
        [
            ["user", "what is the capital of Italy?", "complete"],
            ["assistant", "Paris is the capital of France.", "superseded"],
            ["assistant", "Rome is the capital of Italy.", "complete"],
        ]
        .map(|r| r.map(String::from).to_vec())
    );
    robit.stop();
    db.drop().await;
}

/// Two questions in one thread: editing the first (twice) gets one notice and no answer;
/// editing the second, a reply in the thread, has its answer written again in place.
async fn only_the_latest_question(platform: Platform) {
    let db = Db::sqlite();
    let llm = FakeLlm::start().await;
    llm.push(Reply::text("The first answer."));
    llm.push(Reply::text("The second answer."));
    llm.push(Reply::text("The second answer, again."));
    let robit = start(&db, &platform, &llm).await;
    let first = platform.ask_in_channel("the first question");
    bot_messages_once(&platform, &first.asked, &robit, |m| {
        m.iter()
            .any(|m| m.text.contains("first answer") && !m.buttons.is_empty())
    })
    .await;
    let second = platform.follow_up(&first.asked, "the second question");
    let before = bot_messages_once(&platform, &first.asked, &robit, |m| {
        m.iter()
            .any(|m| m.text.contains("second answer") && !m.buttons.is_empty())
    })
    .await;

    platform.edit(&first, "the first question, edited");
    let noted = bot_messages_once(&platform, &first.asked, &robit, |m| {
        m.iter().any(|m| m.text.contains("I saw the edit"))
    })
    .await;
    assert_eq!(noted.len(), before.len() + 1, "{noted:?}");
    assert!(
        noted
            .last()
            .unwrap()
            .text
            .contains("only the latest question"),
        "{noted:?}"
    );
    // Once per question: a second edit of the first one is silent, whenever it is handled.
    platform.edit(&first, "the first question, edited again");
    platform.edit(&second, "the second question, edited");
    let after = bot_messages_once(&platform, &first.asked, &robit, |m| {
        m.iter().any(|m| m.text.contains("second answer, again"))
    })
    .await;
    assert_eq!(
        after.len(),
        noted.len(),
        "one notice, the rest in place: {after:?}"
    );
    let second_answer = before
        .iter()
        .find(|m| m.text.contains("second answer"))
        .unwrap();
    assert!(
        after
            .iter()
            .any(|m| m.id == second_answer.id && m.text.contains("second answer, again")),
        "{after:?}"
    );
    assert_eq!(llm.chat_requests().len(), 3);
    let questions = db
        .rows("SELECT content FROM messages WHERE role = 'user' ORDER BY id")
        .await;
    assert_eq!(
        questions,
        [["the first question"], ["the second question, edited"]]
            .map(|r| r.map(String::from).to_vec())
    );
    robit.stop();
    db.drop().await;
}

/// `kill -9` while the edited question's new answer streams: the next process finishes it
/// once, in the same message, from the edited text.
async fn regeneration_survives_kill9(platform: Platform) {
    let db = Db::sqlite();
    let llm = FakeLlm::start().await;
    llm.push(Reply::text("The old answer."));
    llm.push(Reply::stall_after("The new answer begins"));
    let robit = start(&db, &platform, &llm).await;
    let question = platform.ask_in_channel("the old question");
    let answered = bot_messages_once(&platform, &question.asked, &robit, |m| {
        m.iter()
            .any(|m| m.text.contains("old answer") && !m.buttons.is_empty())
    })
    .await;
    platform.edit(&question, "the new question");
    bot_messages_once(&platform, &question.asked, &robit, |m| {
        m.iter().any(|m| m.text.contains("new answer begins"))
    })
    .await;
    robit.kill9();

    let llm = FakeLlm::start().await;
    llm.push(Reply::text("The new answer, whole."));
    let robit = start(&db, &platform, &llm).await;
    let finished = bot_messages_once(&platform, &question.asked, &robit, |m| {
        m.iter()
            .any(|m| m.text.contains("The new answer, whole.") && !m.buttons.is_empty())
    })
    .await;
    assert_eq!(finished.len(), answered.len(), "in place: {finished:?}");
    assert!(
        !finished.iter().any(|m| m.text.contains("old answer")),
        "{finished:?}"
    );
    let asked = llm.chat_requests();
    assert_eq!(asked.len(), 1, "finished once");
    assert!(asked[0].body["messages"]
        .to_string()
        .contains("the new question"));
    let turns = rows_once(
        &db,
        "SELECT status FROM turns WHERE status IN ('done') ORDER BY id",
        2,
    )
    .await;
    assert_eq!(turns.len(), 2, "{turns:?}\n{}", robit.log());
    robit.stop();
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn slack_edit_regenerates_the_answer_in_place() {
    edit_regenerates(Platform::slack().await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn discord_edit_regenerates_the_answer_in_place() {
    edit_regenerates(Platform::discord().await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn slack_only_the_latest_question_is_answered_again() {
    only_the_latest_question(Platform::slack().await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn discord_only_the_latest_question_is_answered_again() {
    only_the_latest_question(Platform::discord().await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn slack_regeneration_by_edit_survives_kill9() {
    regeneration_survives_kill9(Platform::slack().await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn discord_regeneration_by_edit_survives_kill9() {
    regeneration_survives_kill9(Platform::discord().await).await;
}
