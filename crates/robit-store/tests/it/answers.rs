//! What an answer's buttons store, on both backends: a stop recorded on the journal row (seen
//! by a claim and by the holder), votes with the answer's model, and a regeneration that
//! supersedes the old answer and takes over its messages in the same transaction.

use crate::support::{event, key, starting_now};
use robit_store::{
    Accepted, MessageStatus, NewEvent, NewMessage, NewTurn, Served, Store, TurnStatus, Vote,
};
use robit_types::{EventId, Platform, UserId};
use std::sync::Arc;
use std::time::Duration;

fn turn(holder: &str, answers: Option<i64>) -> NewTurn {
    NewTurn {
        job: "{}".into(),
        route: Some("route".into()),
        holder: holder.into(),
        lease: Duration::from_secs(60),
        answers,
    }
}

/// A question with its journaled turn: `(conversation, question id, turn id)`.
async fn ask(store: &Arc<dyn Store>, id: &str) -> (robit_store::ConversationId, i64, i64) {
    let Accepted::New {
        conversation,
        message_id: Some(question),
        turn_id: Some(turn_id),
    } = store
        .accept(NewEvent {
            turn: Some(turn("a", None)),
            ..event(id, &key(Some("1.1")), "what is it?")
        })
        .await
        .unwrap()
    else {
        panic!("a new question with its turn");
    };
    (conversation.id, question, turn_id)
}

async fn answer(
    store: &Arc<dyn Store>,
    conversation: robit_store::ConversationId,
    q: i64,
    text: &str,
) {
    store
        .append_message(
            conversation,
            NewMessage {
                turn: Some(q),
                served: Some(Served {
                    provider: "openai".into(),
                    model: "gpt-x".into(),
                }),
                ..NewMessage::assistant(text, MessageStatus::Complete)
            },
        )
        .await
        .unwrap();
}

conformance!(a_stop_is_on_the_journal_row_for_the_holder_and_for_a_claim);
async fn a_stop_is_on_the_journal_row_for_the_holder_and_for_a_claim(store: Arc<dyn Store>) {
    let (_, q, turn_id) = ask(&store, "Ev1").await;
    assert!(store.stopped_turns("a").await.unwrap().is_empty());
    assert!(store.request_stop(q, "alice").await.unwrap());
    assert_eq!(
        store.stopped_turns("a").await.unwrap(),
        [(q, "alice".to_string())]
    );
    let claimed = store
        .claim_turns(
            "b",
            Duration::from_secs(60),
            Platform::Slack,
            10,
            starting_now(),
        )
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].stopped_by.as_deref(), Some("alice"));
    assert!(store
        .set_turn_status(turn_id, "b", TurnStatus::Cancelled)
        .await
        .unwrap());
    // A closed turn has nothing left to stop.
    assert!(!store.request_stop(q, "alice").await.unwrap());
}

conformance!(votes_carry_the_answers_model_and_a_second_vote_replaces_the_first);
async fn votes_carry_the_answers_model_and_a_second_vote_replaces_the_first(store: Arc<dyn Store>) {
    let (conversation, q, _) = ask(&store, "Ev1").await;
    let alice = UserId::new("U1");
    assert!(!store.record_feedback(q, &alice, Vote::Up).await.unwrap());
    answer(&store, conversation, q, "It is this.").await;
    let question = store.question(q).await.unwrap().unwrap();
    assert_eq!(question.author, Some(alice.clone()));
    assert_eq!(question.text, "what is it?");
    assert_eq!(question.key, key(Some("1.1")));
    assert!(store.record_feedback(q, &alice, Vote::Down).await.unwrap());
    assert!(store.record_feedback(q, &alice, Vote::Up).await.unwrap());
    assert!(store
        .record_feedback(q, &UserId::new("U2"), Vote::Down)
        .await
        .unwrap());
    let rows = store.feedback_summary(0).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].provider.as_str(), rows[0].model.as_str()),
        ("openai", "gpt-x")
    );
    assert_eq!((rows[0].up, rows[0].down), (1, 1));
    assert_eq!(rows[0].up_rate(), Some(0.5));
    assert!(store.question(q + 100).await.unwrap().is_none());
}

conformance!(a_regeneration_supersedes_the_answer_and_takes_over_its_messages);
async fn a_regeneration_supersedes_the_answer_and_takes_over_its_messages(store: Arc<dyn Store>) {
    let (conversation, q, first) = ask(&store, "Ev1").await;
    answer(&store, conversation, q, "Old answer.").await;
    store.turn_posted(first, 0, "m1").await.unwrap();
    store.turn_posted(first, 1, "m2").await.unwrap();
    let regen = NewEvent {
        platform: Platform::Slack,
        event_id: EventId::new("action:1"),
        key: key(Some("1.1")),
        message: None,
        turn: Some(turn("a", Some(q))),
    };
    let Accepted::New {
        turn_id: Some(second),
        message_id: None,
        ..
    } = store.accept(regen.clone()).await.unwrap()
    else {
        panic!("a new turn without a message");
    };
    assert_eq!(store.accept(regen).await.unwrap(), Accepted::Duplicate);
    assert_eq!(store.posts(second).await.unwrap(), ["m1", "m2"]);
    let history = store.history(conversation, 10).await.unwrap();
    let texts: Vec<&str> = history.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(texts, ["what is it?"], "the old answer is out of history");
    // The new turn answers the same question: a stop names it by the question.
    assert!(store.request_stop(q, "alice").await.unwrap());
    answer(&store, conversation, q, "New answer.").await;
    let history = store.history(conversation, 10).await.unwrap();
    let texts: Vec<&str> = history.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(texts, ["what is it?", "New answer."]);
}
