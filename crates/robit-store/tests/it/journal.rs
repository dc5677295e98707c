//! The turn journal: a turn is recorded with its event, leased, renewed, taken over when its
//! holder dies, and closed exactly once.

use crate::support::{clock_past, event, key, starting_now};
use robit_store::{Accepted, NewEvent, NewTurn, Store, TurnStatus};
use robit_types::Platform;
use std::sync::Arc;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

fn with_turn(id: &str, holder: &str, lease: Duration) -> NewEvent {
    NewEvent {
        turn: Some(NewTurn {
            answers: None,
            job: format!("{{\"job\":\"{id}\"}}"),
            route: Some(format!("route-{id}")),
            holder: holder.to_string(),
            lease,
        }),
        ..event(id, &key(Some("1.1")), "hello")
    }
}

async fn accept_turn(store: &Arc<dyn Store>, id: &str, holder: &str, lease: Duration) -> i64 {
    match store.accept(with_turn(id, holder, lease)).await.unwrap() {
        Accepted::New {
            turn_id: Some(turn),
            ..
        } => turn,
        other => panic!("expected a new turn, got {other:?}"),
    }
}

conformance!(accept_records_the_turn_once);
async fn accept_records_the_turn_once(store: Arc<dyn Store>) {
    let Accepted::New {
        conversation,
        message_id,
        turn_id: Some(turn),
    } = store.accept(with_turn("Ev1", "a", LONG)).await.unwrap()
    else {
        panic!("first delivery is new and has a turn");
    };
    assert!(message_id.is_some());
    // A redelivery after a crash creates no second turn.
    assert_eq!(
        store.accept(with_turn("Ev1", "b", LONG)).await.unwrap(),
        Accepted::Duplicate
    );
    let turns = store.turns(conversation.id).await.unwrap();
    assert_eq!(turns.len(), 1);
    assert_eq!(turns[0].id, turn);
    assert_eq!(turns[0].status, TurnStatus::Pending);
    assert_eq!(turns[0].holder, "a");
    assert_eq!(turns[0].event_id, "Ev1");
}

conformance!(live_leases_are_not_claimed_expired_ones_are);
async fn live_leases_are_not_claimed_expired_ones_are(store: Arc<dyn Store>) {
    let live = accept_turn(&store, "Ev1", "a", LONG).await;
    let dead = accept_turn(&store, "Ev2", "a", Duration::ZERO).await;
    store.turn_posted(dead, 0, "m1").await.unwrap();
    store.turn_posted(dead, 1, "m2").await.unwrap();
    store.turn_posted(dead, 1, "m2").await.unwrap();

    let claimed = store
        .claim_turns("b", LONG, Platform::Slack, 10, None)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1, "only the expired lease is taken over");
    let turn = &claimed[0];
    assert_eq!(turn.id, dead);
    assert_eq!(turn.attempts, 1);
    assert_eq!(turn.route.as_deref(), Some("route-Ev2"));
    assert_eq!(turn.job, "{\"job\":\"Ev2\"}");
    assert_eq!(
        turn.posted,
        vec![(0, "m1".to_string()), (1, "m2".to_string())]
    );
    // Other platforms' turns are not this adapter's to resume.
    assert!(store
        .claim_turns("c", LONG, Platform::Discord, 10, starting_now())
        .await
        .unwrap()
        .is_empty());

    // The old holder lost it: renewing does not bring it back, closing it is refused.
    assert_eq!(
        store.renew_turns("a", LONG, 0, 100).await.unwrap(),
        vec![live]
    );
    assert!(store
        .renew_turns("a", LONG, live, 100)
        .await
        .unwrap()
        .is_empty());
    assert!(!store
        .set_turn_status(dead, "a", TurnStatus::Done)
        .await
        .unwrap());
    assert!(store
        .set_turn_status(dead, "b", TurnStatus::Running)
        .await
        .unwrap());
    assert!(store
        .set_turn_status(dead, "b", TurnStatus::Done)
        .await
        .unwrap());
    assert!(
        !store
            .set_turn_status(dead, "b", TurnStatus::Failed)
            .await
            .unwrap(),
        "a closed turn stays closed"
    );
}

conformance!(a_restarted_process_takes_its_predecessors_turns_at_once);
async fn a_restarted_process_takes_its_predecessors_turns_at_once(store: Arc<dyn Store>) {
    let turn = accept_turn(&store, "Ev1", "old", LONG).await;
    let started = starting_now();
    clock_past(started).await;
    let mine = accept_turn(&store, "Ev2", "new", LONG).await;
    // Another live process on the same database took this one after "new" started.
    let live = accept_turn(&store, "Ev3", "other", LONG).await;
    let claimed = store
        .claim_turns("new", LONG, Platform::Slack, 10, started)
        .await
        .unwrap();
    let ids: Vec<i64> = claimed.iter().map(|t| t.id).collect();
    assert_eq!(
        ids,
        vec![turn],
        "neither its own live turn {mine} nor a live process's {live} is claimed"
    );
}

conformance!(a_graceful_stop_hands_open_turns_on);
async fn a_graceful_stop_hands_open_turns_on(store: Arc<dyn Store>) {
    let pending = accept_turn(&store, "Ev1", "a", LONG).await;
    let running = accept_turn(&store, "Ev2", "a", LONG).await;
    let done = accept_turn(&store, "Ev3", "a", LONG).await;
    store
        .set_turn_status(running, "a", TurnStatus::Running)
        .await
        .unwrap();
    store
        .set_turn_status(done, "a", TurnStatus::Done)
        .await
        .unwrap();
    assert_eq!(store.release_turns("a").await.unwrap(), 2);
    let claimed = store
        .claim_turns("b", LONG, Platform::Slack, 10, None)
        .await
        .unwrap();
    let got: Vec<(i64, TurnStatus)> = claimed.iter().map(|t| (t.id, t.status)).collect();
    assert_eq!(
        got,
        vec![
            (pending, TurnStatus::Pending),
            (running, TurnStatus::Running)
        ]
    );
}

conformance!(racing_claimers_never_share_a_turn);
async fn racing_claimers_never_share_a_turn(store: Arc<dyn Store>) {
    let mut all = Vec::new();
    for i in 0..40 {
        all.push(accept_turn(&store, &format!("Ev{i}"), "dead", Duration::ZERO).await);
    }
    let mut tasks = Vec::new();
    for c in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = store
                    .claim_turns(&format!("c{c}"), LONG, Platform::Slack, 3, None)
                    .await
                    .unwrap();
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|t| t.id));
            }
        }));
    }
    let mut claimed = Vec::new();
    for t in tasks {
        claimed.extend(t.await.unwrap());
    }
    claimed.sort();
    assert_eq!(claimed, all, "every turn claimed exactly once");
}
