//! Taking over journaled turns whose holder is gone (a crash, `kill -9`, a dead replica, a
//! graceful stop that left them): claim them from the store, rebuild each one's sink from its
//! route, and queue it like a new turn. A turn that cannot be resumed is failed and counted.
//!
//! A child of `engine.rs`: it queues through the engine's own queues.

use super::{Engine, Job, Work};
use crate::error::EngineError;
use crate::journal::{StoredJob, StoredWork, Ticket, UNRESUMABLE_NOTE};
use crate::metrics as m;
use crate::reply::say;
use robit_store::{ClaimedTurn, TurnStatus};
use robit_types::{AnswerControls, MessageRef, Platform, SinkOpener};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::oneshot;

/// How many times a turn is taken over before robit gives up on it and says so: a turn that
/// crashes its process every time must not crash every replica in turn forever.
const MAX_ATTEMPTS: i64 = 3;

impl Engine {
    /// Takes over journaled turns of `platform` whose holder is gone, now and then every half
    /// lease until shutdown, and runs them through sinks `opener` rebuilds. Adapters call it
    /// once when they start. A single process (no conversation leases configured: SQLite)
    /// takes at its first pass every open turn leased before it started, since its
    /// predecessor can hold nothing; not one leased since, which a live process holds (a
    /// second process on the same SQLite file, as the tests run them, or by mistake).
    pub fn resume_turns(&self, platform: Platform, opener: Arc<dyn SinkOpener>) {
        self.set_sink_opener(platform, opener.clone());
        self.start_journal();
        let engine = self.clone();
        let mut set_before = self
            .inner
            .shared
            .config
            .lease
            .is_none()
            .then_some(self.inner.started);
        let stop = self.inner.journal_stop.clone();
        let every = self.inner.shared.config.journal.lease / 2;
        tokio::spawn(async move {
            loop {
                if engine.inner.stopping.load(Ordering::SeqCst) {
                    return;
                }
                match engine.recover(platform, &opener, set_before).await {
                    Ok(n) if n > 0 => continue,
                    Ok(_) => set_before = None,
                    Err(e) => tracing::warn!(error = %e, "looking for turns to resume failed"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stop.cancelled() => return,
                }
            }
        });
    }

    /// One pass of [`Engine::resume_turns`]; returns how many turns it took over.
    pub async fn recover(
        &self,
        platform: Platform,
        opener: &Arc<dyn SinkOpener>,
        set_before: Option<std::time::SystemTime>,
    ) -> Result<usize, EngineError> {
        let journal = &self.inner.shared.config.journal;
        let claimed = self
            .inner
            .shared
            .store
            .claim_turns(&journal.holder, journal.lease, platform, 64, set_before)
            .await?;
        let n = claimed.len();
        for turn in claimed {
            // Our own turn whose lease ran out during a database outage: still running here.
            if self.inner.shared.held.contains(turn.id) {
                continue;
            }
            self.take_over(turn, opener).await;
        }
        Ok(n)
    }

    /// Marks a turn that cannot be resumed failed, and counts and logs it.
    async fn give_up(&self, id: i64, why: &str) {
        metrics::counter!(m::TURNS_LOST).increment(1);
        tracing::error!(turn = id, why, "a journaled turn cannot be resumed");
        let holder = &self.inner.shared.config.journal.holder;
        if let Err(e) = self
            .inner
            .shared
            .store
            .set_turn_status(id, holder, TurnStatus::Failed)
            .await
        {
            tracing::warn!(error = %e, turn = id, "marking a turn failed did not work; it will be retried");
        }
    }

    /// The last message of a turn stopped just before its holder died still shows Stop: it
    /// gets the buttons of a finished answer instead, its text left as it is (the engine does
    /// not know what it last showed). Best effort: a platform that cannot change buttons
    /// alone keeps the Stop, whose click then says the answer has finished.
    async fn take_stop_away(&self, turn: &ClaimedTurn, opener: &Arc<dyn SinkOpener>) {
        let (Some(question), Some((_, last))) = (turn.message_id, turn.posted.last()) else {
            return;
        };
        let posted: Vec<MessageRef> = turn
            .posted
            .iter()
            .map(|(_, r)| MessageRef(r.clone()))
            .collect();
        let Some(sink) = turn.route.as_deref().and_then(|r| opener.open(r, &posted)) else {
            return;
        };
        if !sink.capabilities().controls {
            return;
        }
        let done = AnswerControls::Done { turn: question };
        if let Err(e) = sink.set_controls(&MessageRef(last.clone()), &done).await {
            tracing::debug!(error = %e, turn = turn.id, "a stopped answer keeps its Stop button");
        }
    }

    async fn take_over(&self, turn: ClaimedTurn, opener: &Arc<dyn SinkOpener>) {
        let id = turn.id;
        let job: StoredJob = match serde_json::from_str(&turn.job) {
            Ok(job) => job,
            Err(e) => {
                self.give_up(id, &format!("unreadable job: {e}")).await;
                return;
            }
        };
        if let Some(by) = &turn.stopped_by {
            // Stopped before its holder could close it (a crash right after the click): the
            // user asked for no more of this answer, so it is closed, never run again.
            tracing::info!(turn = id, by = %by, "closing a stopped turn instead of resuming it");
            let holder = &self.inner.shared.config.journal.holder;
            if let Err(e) = self
                .inner
                .shared
                .store
                .set_turn_status(id, holder, TurnStatus::Cancelled)
                .await
            {
                tracing::warn!(error = %e, turn = id, "closing a stopped turn failed; it will be retried");
            }
            self.take_stop_away(&turn, opener).await;
            return;
        }
        let posted: Vec<robit_types::MessageRef> = turn
            .posted
            .iter()
            .map(|(_, r)| robit_types::MessageRef(r.clone()))
            .collect();
        let Some(sink) = turn.route.as_deref().and_then(|r| opener.open(r, &posted)) else {
            self.give_up(id, "no way back to its thread").await;
            return;
        };
        if turn.attempts > MAX_ATTEMPTS {
            say(&sink, UNRESUMABLE_NOTE).await;
            self.give_up(id, "too many attempts").await;
            return;
        }
        let conversation = match self.inner.shared.store.conversation(&job.inbound.key).await {
            Ok(c) => c,
            Err(e) => {
                // Left claimed: the lease runs out and the next pass tries again.
                tracing::warn!(error = %e, turn = id, "loading a resumed turn's conversation failed");
                return;
            }
        };
        // A regeneration is journaled with the click or the edit that asked for it.
        let regenerated = matches!(
            job.inbound.kind,
            robit_types::InboundKind::Action { .. } | robit_types::InboundKind::Edit { .. }
        );
        let work = match job.work {
            StoredWork::Chat { text } => Work::Chat { text },
            StoredWork::Command(c) => Work::Command(c),
        };
        if matches!(work, Work::Chat { .. }) && turn.message_id.is_none() {
            self.give_up(id, "a chat turn without its message").await;
            return;
        }
        // The takeover continues the trace of the event that started the turn, perhaps on
        // another replica: its span is a child of the stored context (a fresh trace when the
        // turn was stored untraced).
        let trace = tracing::info_span!(
            "resume",
            turn = id,
            attempts = turn.attempts,
            replica = %self.inner.shared.config.journal.holder,
        );
        if let Some(traceparent) = &job.traceparent {
            robit_types::trace::continue_from(&trace, traceparent);
        }
        metrics::counter!(m::TURNS_RESUMED).increment(1);
        trace.in_scope(|| {
            tracing::info!(
                turn = id,
                attempts = turn.attempts,
                posted = turn.posted.len(),
                "resuming a journaled turn"
            )
        });
        let (done, _rx) = oneshot::channel();
        self.enqueue(
            Job {
                inbound: job.inbound,
                work,
                conversation,
                turn: turn.message_id,
                sink,
                done,
                ticket: Some(Ticket {
                    id,
                    lost: self.inner.shared.held.hold(id),
                    resumed: !posted.is_empty(),
                    taken_over: true,
                    posted,
                    regenerated,
                }),
                trace,
            },
            false,
        );
    }
}
