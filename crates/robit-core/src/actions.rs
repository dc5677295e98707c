//! Clicks on an answer's buttons: Stop, Regenerate and the 👍/👎 votes. The one place that
//! decides who may act on an answer, so both adapters (and every transport of each) apply the
//! same rule: the person who asked, or an admin, may stop or regenerate an answer; anyone with
//! access may vote, once per answer (a second click replaces the vote).
//!
//! An action is decided at intake, not queued: a Stop must not wait behind the very turn it
//! stops. Stop and votes are carried out here; the stop itself is written to the turn's
//! journal row so a takeover after a crash does not run the stopped turn again. A
//! regeneration is a new journaled turn of the same question, which the engine queues
//! ([`Acted::Regenerate`]).

use crate::access::{self, Refusal};
use crate::metrics as m;
use crate::outcome::TurnOutcome;
use crate::reply::whisper;
use crate::shared::Shared;
use robit_store::{Question, Vote};
use robit_types::{AnswerAction, Inbound, ReplySink, UserId};
use std::sync::Arc;

/// Shown when the store cannot be asked who owns the answer.
const UNAVAILABLE: &str = "⚠️ robit can't do that right now; please try again in a moment.";

/// What a click came to.
pub(crate) enum Acted {
    /// Handled (or refused); the user was told what they need to know.
    Done(TurnOutcome),
    /// The answer to `question` is to be written again: the engine queues the turn.
    Regenerate(Question),
}

/// Carries out `action` on the answer to question `turn`, for `inbound`'s author. Everything
/// the user needs to know goes to them alone ([`ReplySink::post_ephemeral`]).
pub(crate) async fn act(
    shared: &Arc<Shared>,
    inbound: &Inbound,
    sink: &Arc<dyn ReplySink>,
    action: AnswerAction,
    turn: i64,
) -> Acted {
    let outcome = match decide(shared, inbound, sink, action, turn).await {
        Ok(question) if action == AnswerAction::Regenerate => {
            if !finished(shared, turn).await {
                decline(
                    sink,
                    &inbound.author.id,
                    "That answer is still being written; stop it first to regenerate it.",
                    "still running",
                )
                .await
            } else {
                return Acted::Regenerate(question);
            }
        }
        Ok(_) if action == AnswerAction::Stop => {
            carry_out(shared, inbound, sink, action, turn).await
        }
        // A vote is on the stored answer: give a turn in its last moment time to store it.
        Ok(_) => {
            finished(shared, turn).await;
            carry_out(shared, inbound, sink, action, turn).await
        }
        Err(outcome) => outcome,
    };
    if outcome == TurnOutcome::Command {
        metrics::counter!(m::ANSWER_ACTIONS, "platform" => inbound.key.platform.as_str(), "action" => action.as_str())
            .increment(1);
    }
    Acted::Done(outcome)
}

/// The most a Regenerate or a vote waits for the answer it is about to end here. Their buttons
/// are drawn with the answer's last edit, a moment before the turn stores the answer and
/// ends; a click in that moment must neither supersede nor miss an answer not stored yet. Short: Slack waits for the
/// click's acknowledgement (3 s), which comes after this.
const TAIL_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Tells the clicker, privately, why nothing was done; the outcome gives the short reason.
pub(crate) async fn decline(
    sink: &Arc<dyn ReplySink>,
    user: &UserId,
    text: &str,
    reason: &str,
) -> TurnOutcome {
    whisper(sink, user, text, "an action's reply").await;
    TurnOutcome::Failed(reason.into())
}

/// Whether no turn answering `turn` runs here, waiting up to [`TAIL_WAIT`] for one to end.
/// Also the wait of an edit for the answer it stopped (`edits.rs`).
pub(crate) async fn finished(shared: &Shared, turn: i64) -> bool {
    let deadline = tokio::time::Instant::now() + TAIL_WAIT;
    while shared.is_running(turn) {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    true
}

/// Whether `inbound`'s author may do `action` on the answer to `turn`: the question when
/// they may; the outcome (they were told why not) when not.
async fn decide(
    shared: &Arc<Shared>,
    inbound: &Inbound,
    sink: &Arc<dyn ReplySink>,
    action: AnswerAction,
    turn: i64,
) -> Result<Question, TurnOutcome> {
    let user = &inbound.author.id;
    if let Some(refusal) = access::check(
        &shared.access,
        shared.store.as_ref(),
        &shared.config.access,
        inbound,
    )
    .await
    {
        return Err(access::refuse(shared.store.as_ref(), inbound, sink, refusal).await);
    }
    let question = match shared.store.question(turn).await {
        // A button id names a question of this platform and workspace, or it is not ours
        // (a forged or stale id): never act across workspaces.
        Ok(Some(q))
            if q.key.platform == inbound.key.platform
                && q.key.workspace == inbound.key.workspace =>
        {
            q
        }
        Ok(_) => {
            return Err(decline(
                sink,
                user,
                "⚠️ I can't find the question this answer belongs to.",
                "unknown answer",
            )
            .await);
        }
        Err(e) => {
            tracing::error!(error = %e, "looking up an answer's question failed");
            return Err(decline(sink, user, UNAVAILABLE, "store unavailable").await);
        }
    };
    let asker = question.author.as_ref() == Some(user);
    if action.needs_owner() && !asker && !shared.config.access.is_admin(inbound) {
        let refusal = Refusal {
            reason: "not_asker",
            text: "🚫 Only the person who asked (or an admin) can stop or regenerate this \
                   answer."
                .to_string(),
        };
        return Err(access::refuse(shared.store.as_ref(), inbound, sink, refusal).await);
    }
    Ok(question)
}

/// Stop and the votes, which take effect here and now.
async fn carry_out(
    shared: &Arc<Shared>,
    inbound: &Inbound,
    sink: &Arc<dyn ReplySink>,
    action: AnswerAction,
    turn: i64,
) -> TurnOutcome {
    match action {
        AnswerAction::Stop => stop(shared, inbound, sink, turn).await,
        AnswerAction::Up => vote_on(shared, inbound, sink, turn, Vote::Up).await,
        AnswerAction::Down => vote_on(shared, inbound, sink, turn, Vote::Down).await,
        AnswerAction::Regenerate => unreachable!("the engine queues regenerations"),
    }
}

/// Stops the turn answering `turn`: recorded in its journal row first (whichever replica
/// holds it, a takeover will not run it again), then cancelled here if it runs here.
async fn stop(
    shared: &Arc<Shared>,
    inbound: &Inbound,
    sink: &Arc<dyn ReplySink>,
    turn: i64,
) -> TurnOutcome {
    let by = inbound.author.name.as_str();
    let recorded = match shared.store.request_stop(turn, by).await {
        Ok(open) => open,
        Err(e) => {
            // The turn still stops here at once; only a crash before it closes could bring
            // it back.
            tracing::warn!(error = %e, turn, "recording a stop failed");
            false
        }
    };
    let here = shared.stop_turn(turn, by);
    if !recorded && !here {
        return decline(
            sink,
            &inbound.author.id,
            "That answer has already finished.",
            "nothing to stop",
        )
        .await;
    }
    if !here {
        // Another replica holds it: it sees the stop when it next renews its leases.
        tracing::info!(turn, "stop recorded for a turn running elsewhere");
    }
    access::audit(
        shared.store.as_ref(),
        inbound,
        "answer.stop",
        format!("stopped the answer to message {turn}"),
    )
    .await;
    TurnOutcome::Command
}

async fn vote_on(
    shared: &Arc<Shared>,
    inbound: &Inbound,
    sink: &Arc<dyn ReplySink>,
    turn: i64,
    vote: Vote,
) -> TurnOutcome {
    match shared
        .store
        .record_feedback(turn, &inbound.author.id, vote)
        .await
    {
        Ok(true) => TurnOutcome::Command,
        Ok(false) => {
            decline(
                sink,
                &inbound.author.id,
                "There is no finished answer to vote on yet.",
                "no answer",
            )
            .await
        }
        Err(e) => {
            tracing::error!(error = %e, "recording feedback failed");
            decline(sink, &inbound.author.id, UNAVAILABLE, "store unavailable").await
        }
    }
}
