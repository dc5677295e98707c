//! Edits of a question (Discord `MESSAGE_UPDATE`, Slack `message_changed`): the one place
//! that decides what an edit does, so both adapters apply the same rule.
//!
//! An edit of a stored question by its author, within `engine.edit_window` of asking, of the
//! latest question of its conversation, has the answer written again from the edited text:
//! the question's text is replaced (history holds the edited text from then on) in the same
//! transaction that journals the regeneration, which then runs like the Regenerate button's
//! (`Engine::regenerate`, over the old answer's messages). An answer still streaming here is
//! stopped first. When a turn answering the question already waits (queued here or on another
//! replica) only the text is replaced: that turn reads the question from history when it
//! starts. Outside the window, or for an earlier question, robit says so once per question
//! (the store's event dedup keeps the notice to one, across replicas and restarts).
//!
//! Everything else is left alone without a word: an edit of a message robit never stored (most
//! edits in a channel), of someone else's question, to the same text (Slack also sends
//! `message_changed` when a link unfurls), to nothing, or to a command.
//!
//! The answer is written where the question was answered: the route journaled with its
//! latest turn, reopened by the adapter's [`SinkOpener`]. An edit does not always say which
//! thread its message is in (Slack's typed `message_changed` does not), so the sink an
//! adapter hands in with the edit is only the fallback.

use crate::access;
use crate::actions::finished;
use crate::error::EngineError;
use crate::journal::reopen_answer;
use crate::outcome::TurnOutcome;
use crate::reply::say;
use crate::shared::Shared;
use robit_store::{Accepted, AskedQuestion, NewEvent};
use robit_types::{Command, EventId, Inbound, ReplySink, SinkOpener};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// What an edit comes to.
pub(crate) enum Edited {
    /// Nothing to do, nothing said.
    Ignored,
    /// Handled here: the author was told what they need to know (the notice, a refusal).
    Done(TurnOutcome),
    /// A turn already waits to answer the question: store the new text only.
    Rewrite(AskedQuestion),
    /// Answer again from the new text (`asked.question.text` is it): the engine journals a
    /// regeneration that stores the text in the same transaction.
    Regenerate {
        asked: AskedQuestion,
        sink: Arc<dyn ReplySink>,
    },
}

/// Decides what `inbound`, an edit of platform message `message` to `text`, does. `opener`
/// reopens the sink of the question's answer (`None`: the adapter's `sink` is used). An error
/// means the store could not be asked: the adapter does not acknowledge the edit, so the
/// platform delivers it again.
pub(crate) async fn decide(
    shared: &Arc<Shared>,
    inbound: &Inbound,
    sink: &Arc<dyn ReplySink>,
    message: &str,
    text: &str,
    opener: Option<Arc<dyn SinkOpener>>,
) -> Result<Edited, EngineError> {
    let window = shared.config.edit_window;
    let text = text.trim();
    if window.is_zero() || text.is_empty() || Command::parse_text(text).is_some() {
        return Ok(Edited::Ignored);
    }
    let key = &inbound.key;
    let Some(mut asked) = shared
        .store
        .question_by_ref(key.platform, &key.workspace, &key.channel, message)
        .await?
    else {
        return Ok(Edited::Ignored);
    };
    if asked.question.author.as_ref() != Some(&inbound.author.id) {
        // Platforms let only the author edit; anything else is not an edit of a question.
        tracing::debug!(
            question = asked.id,
            "an edit by someone other than the asker"
        );
        return Ok(Edited::Ignored);
    }
    if asked.question.text == text {
        return Ok(Edited::Ignored);
    }
    let sink = match (opener, asked.question.answer.as_ref()) {
        (Some(opener), Some(answer)) => {
            reopen_answer(shared.store.as_ref(), opener.as_ref(), answer)
                .await
                .unwrap_or_else(|| sink.clone())
        }
        _ => sink.clone(),
    };
    if let Some(refusal) = access::check(
        &shared.access,
        shared.store.as_ref(),
        &shared.config.access,
        inbound,
    )
    .await
    {
        return Ok(Edited::Done(
            access::refuse(shared.store.as_ref(), inbound, &sink, refusal).await,
        ));
    }
    let age = now_ms().saturating_sub(asked.asked_at_ms);
    if !asked.latest || u128::try_from(age).unwrap_or(0) > window.as_millis() {
        return Ok(Edited::Done(notice(shared, &asked, &sink, window).await?));
    }
    asked.question.text = text.to_string();
    let open = asked
        .question
        .answer
        .as_ref()
        .filter(|a| a.status.is_open())
        .map(|a| a.id);
    let Some(open) = open else {
        return Ok(Edited::Regenerate { asked, sink });
    };
    // Held here but not running: queued, or its answer has just ended and the turn is being
    // closed (the running mark goes first). A closing turn is waited for rather than taken
    // for a queued one: its answer is written already, so only a regeneration answers the
    // edit (an edit sent the moment the answer finished was otherwise lost).
    if !shared.is_running(asked.id)
        && shared.held.contains(open)
        && closed_here(shared, asked.id, open).await
    {
        return Ok(Edited::Regenerate { asked, sink });
    }
    if !shared.is_running(asked.id) {
        // Queued (here or elsewhere), or running on another replica, which keeps its answer
        // to the old text: stopping it from here would race its last writes with the new
        // answer's. The edited text is in history for every turn after it.
        tracing::info!(
            question = asked.id,
            turn = open,
            "an edit of a question whose turn waits"
        );
        return Ok(Edited::Rewrite(asked));
    }
    // Streaming here: stopped as Stop would (recorded first, so a crash now does not bring it
    // back), then written again once it has stored what it showed.
    let by = inbound.author.name.as_str();
    if let Err(e) = shared.store.request_stop(asked.id, by).await {
        tracing::warn!(error = %e, question = asked.id, "recording an edit's stop failed");
    }
    shared.stop_turn(asked.id, by);
    if !finished(shared, asked.id).await {
        tracing::warn!(
            question = asked.id,
            "the stopped answer is still ending; regenerating anyway"
        );
    }
    Ok(Edited::Regenerate { asked, sink })
}

/// How long an edit waits for a turn held here to close or start: closing takes a few
/// writes; a turn still queued after this is taken for queued.
const CLOSING_WAIT: Duration = Duration::from_secs(1);

/// Whether turn `open` (answering `question`), held here and not running, closes before it
/// starts running or [`CLOSING_WAIT`] passes.
async fn closed_here(shared: &Shared, question: i64, open: i64) -> bool {
    let deadline = tokio::time::Instant::now() + CLOSING_WAIT;
    loop {
        if !shared.held.contains(open) {
            return true;
        }
        if shared.is_running(question) || tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Says, once per question, why its edit is not answered.
async fn notice(
    shared: &Shared,
    asked: &AskedQuestion,
    sink: &Arc<dyn ReplySink>,
    window: Duration,
) -> Result<TurnOutcome, EngineError> {
    let key = &asked.question.key;
    let once = shared
        .store
        .accept(NewEvent {
            platform: key.platform,
            event_id: EventId(format!("edit-notice:{}", asked.id)),
            key: key.clone(),
            message: None,
            turn: None,
            edit: None,
        })
        .await?;
    if once == Accepted::Duplicate {
        return Ok(TurnOutcome::Ignored);
    }
    say(
        sink,
        &format!(
            "✏️ I saw the edit, but only the latest question can be answered again within {}; \
             send it as a new message.",
            span(window)
        ),
    )
    .await;
    Ok(TurnOutcome::Failed("edit not answered".into()))
}

/// `10 minutes`, `1 minute`, `45 seconds`.
fn span(window: Duration) -> String {
    let secs = window.as_secs();
    let (n, unit) = if secs >= 60 && secs % 60 == 0 {
        (secs / 60, "minute")
    } else {
        (secs, "second")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_reads_in_whole_minutes_or_seconds() {
        assert_eq!(span(Duration::from_secs(600)), "10 minutes");
        assert_eq!(span(Duration::from_secs(60)), "1 minute");
        assert_eq!(span(Duration::from_secs(90)), "90 seconds");
        assert_eq!(span(Duration::from_secs(1)), "1 second");
    }
}
