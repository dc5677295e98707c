//! The turn journal's side in the engine: leases on this replica's turns, their renewal,
//! taking over turns whose holder died, and the sink wrapper that records every message a
//! turn posts so a resumed turn edits them instead of answering twice.
//!
//! Invariants (see ARCHITECTURE.md, "The life of a turn"):
//! - a turn is in the journal before its event is acknowledged (the store's `accept` records
//!   both in one transaction);
//! - only the lease holder runs a turn, and a holder that finds its lease gone stops the turn
//!   at once (no second answer streams next to the new holder's);
//! - a message posted for an answer is recorded as soon as the post returns, so a takeover
//!   continues in it.
//!
//! It must not know platforms: where an answer goes is an opaque route the adapter gave.

use async_trait::async_trait;
use robit_store::{AnswerTurn, Store, StoreError};
use robit_types::{
    AnswerControls, Attachment, Capabilities, Command, Inbound, MessageRef, ReplySink, SinkError,
    SinkOpener, UserId,
};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How this replica journals its turns.
#[derive(Debug, Clone)]
pub struct JournalConfig {
    /// Unique per process: a restarted process is a new holder.
    pub holder: String,
    /// How long a turn's lease lives without renewal: how long a dead replica's turns wait
    /// before another replica takes them over. Renewed every third of it.
    pub lease: Duration,
    /// Most turns one conversation may have queued or running; past it the user is told.
    pub max_pending_per_conversation: usize,
    /// Most turns this replica may have queued or running in all.
    pub max_pending_total: usize,
}

impl Default for JournalConfig {
    fn default() -> Self {
        Self {
            holder: default_holder(),
            lease: Duration::from_secs(30),
            max_pending_per_conversation: 20,
            max_pending_total: 2000,
        }
    }
}

/// The sink `answer`'s turn wrote in, reopened from its route with the messages it posted:
/// an answer written again (a Regenerate click, an edit of the question) is written where it
/// was written, whatever sink the request came with (a click's, an edit that does not name
/// its thread). `None` when the turn has no route or the adapter cannot open it any more (a
/// Discord interaction token is good for 15 minutes).
pub(crate) async fn reopen_answer(
    store: &dyn Store,
    opener: &dyn SinkOpener,
    answer: &AnswerTurn,
) -> Option<Arc<dyn ReplySink>> {
    let route = answer.route.as_deref()?;
    let posted: Vec<MessageRef> = match store.posts(answer.id).await {
        Ok(refs) => refs.into_iter().map(MessageRef).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "reading an answer's messages failed");
            Vec::new()
        }
    };
    opener.open(route, &posted)
}

/// A holder name unique to this process: host, pid and start time.
pub fn default_holder() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "robit".into());
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{host}-{}-{started:x}", std::process::id())
}

/// What the journal keeps of a job: enough to run it again in another process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredJob {
    pub inbound: Inbound,
    pub work: StoredWork,
    /// The W3C `traceparent` of the span that accepted the event, so a replica that takes
    /// the turn over continues the same trace. In the job rather than a column of its own:
    /// only the engine reads it, and jobs written before it existed still load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

/// The journaled kinds of work. Replies decided at intake (refusals, a parse error, a reset's
/// confirmation) are not journaled: they are one short post, and a reset must not be applied
/// twice.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum StoredWork {
    Chat { text: String },
    Command(Command),
}

/// A journaled turn as the worker sees it.
pub(crate) struct Ticket {
    pub id: i64,
    /// Fires when another replica took the turn over: stop at once.
    pub lost: CancellationToken,
    /// The messages an earlier attempt posted, by slot.
    pub posted: Vec<MessageRef>,
    /// An earlier attempt showed part of the answer: the first message says it resumed.
    pub resumed: bool,
    /// Taken over from an earlier attempt (a crash, a restart, a dead replica), whether or
    /// not it recorded a post.
    pub taken_over: bool,
    /// Writes a question's answer again (Regenerate) over the messages `posted` names.
    pub regenerated: bool,
}

/// Most entries the maps of queued turns are sized for up front (see [`presized`]).
const PRESIZED_AT_MOST: usize = 1 << 20;

/// The capacity the maps with one entry per queued turn or busy conversation start with (the
/// engine's conversations, this module's held turns): the pending-turn cap, so they never
/// grow while intakes wait on them. A hash map doubles by rehashing every entry into a fresh
/// table under its lock: with 229,376 conversations queued (the Slack side-by-side benchmark,
/// every event its own conversation), the doubling of these maps stalled intake long enough
/// to take robit's p99 ack from 6.5-7.5 ms to 31-36 ms in every 10 s round that crossed that
/// size and in none that stayed under it (issue 20). The price is memory held from the
/// start: the two tables, rounded up to a power of two, take 130-260 bytes per slot of the
/// cap (0.5 MB at the default cap of 2,000), against the ~5 kB each queued turn holds.
/// Beyond [`PRESIZED_AT_MOST`] the maps grow as needed.
pub(crate) fn presized(max_pending_total: usize) -> usize {
    max_pending_total.min(PRESIZED_AT_MOST)
}

/// The turns this replica holds (queued or running), for renewal.
#[derive(Default)]
pub(crate) struct Held {
    turns: Mutex<HashMap<i64, (CancellationToken, Instant)>>,
}

impl Held {
    pub fn with_capacity(turns: usize) -> Self {
        Self {
            turns: Mutex::new(HashMap::with_capacity(turns)),
        }
    }

    pub fn hold(&self, id: i64) -> CancellationToken {
        let token = CancellationToken::new();
        self.turns
            .lock()
            .expect("held poisoned")
            .insert(id, (token.clone(), Instant::now()));
        token
    }

    pub fn contains(&self, id: i64) -> bool {
        self.turns.lock().expect("held poisoned").contains_key(&id)
    }

    pub fn release(&self, id: i64) {
        self.turns.lock().expect("held poisoned").remove(&id);
    }

    /// After a renewal that started at `since` kept only `renewed`: every turn held from
    /// before then and not renewed was taken over; stop it.
    fn lose_all_but(&self, renewed: &[i64], since: Instant) -> usize {
        // A set, built before the lock: with 100,000 turns queued, a scan of the slice per
        // held turn took seconds under the lock every intake's `hold` needs (a 0.9 s ack p99
        // in the Slack ingest benchmark).
        let renewed: HashSet<i64> = renewed.iter().copied().collect();
        let mut turns = self.turns.lock().expect("held poisoned");
        let lost: Vec<i64> = turns
            .iter()
            .filter(|(id, (_, at))| *at < since && !renewed.contains(id))
            .map(|(id, _)| *id)
            .collect();
        for id in &lost {
            if let Some((token, _)) = turns.remove(id) {
                tracing::warn!(
                    turn = id,
                    "another replica took this turn over; stopping it"
                );
                token.cancel();
            }
        }
        lost.len()
    }
}

/// Stops the running turn answering a question, on behalf of who clicked Stop: how the
/// heartbeat hands over a stop recorded on another replica.
pub(crate) type StopTurn = Arc<dyn Fn(i64, &str) -> bool + Send + Sync>;

/// Renews this replica's leases every third of the lease until `stop`; stops turns whose
/// lease another replica took, and turns whose Stop button was clicked on another replica
/// (`stop_turn`). A database error keeps everything running: nobody else can claim a turn
/// while the database is unreachable either.
pub(crate) async fn heartbeat(
    store: Arc<dyn Store>,
    held: Arc<Held>,
    config: JournalConfig,
    stop: CancellationToken,
    stop_turn: StopTurn,
) {
    let every = config.lease / 3;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.cancelled() => return,
        }
        let since = Instant::now();
        match renew_all(store.as_ref(), &config).await {
            Ok(renewed) => {
                let lost = held.lose_all_but(&renewed, since);
                if lost > 0 {
                    metrics::counter!(crate::metrics::TURNS_LOST).increment(lost as u64);
                }
            }
            Err(e) => tracing::warn!(error = %e, "renewing turn leases failed; retrying"),
        }
        match store.stopped_turns(&config.holder).await {
            Ok(stopped) => {
                for (question, by) in stopped {
                    if stop_turn(question, &by) {
                        tracing::info!(
                            question,
                            "stopping a turn whose Stop was clicked elsewhere"
                        );
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading stopped turns failed; retrying"),
        }
    }
}

/// Turns renewed per statement: a short write each, so with 100,000 turns queued the intake's
/// accepts (SQLite: one writer at a time) wait for a slice of the renewal, not all of it.
const RENEW_CHUNK: u32 = 256;

/// The pause between two chunks of a renewal, so a renewal of 100,000 queued turns is spread
/// out rather than run back to back against the intake's writes (back to back it showed as
/// 70 ms ack p99s in the Slack ingest benchmark; SQLite now also queues each chunk behind the
/// accepts in its writer). 400 chunks take under a second more, well inside the third of a
/// lease the heartbeat has.
const RENEW_PAUSE: Duration = Duration::from_millis(1);

/// Renews every lease this replica holds, a chunk at a time; the ids renewed.
async fn renew_all(store: &dyn Store, config: &JournalConfig) -> Result<Vec<i64>, StoreError> {
    let mut renewed = Vec::new();
    let mut after = 0;
    loop {
        let chunk = store
            .renew_turns(&config.holder, config.lease, after, RENEW_CHUNK)
            .await?;
        let full = chunk.len() >= RENEW_CHUNK as usize;
        match chunk.iter().max() {
            Some(&last) => after = last,
            None => break,
        }
        renewed.extend(chunk);
        if !full {
            break;
        }
        tokio::time::sleep(RENEW_PAUSE).await;
    }
    Ok(renewed)
}

/// The first line of a resumed answer.
pub(crate) const RESUMED_NOTE: &str = "↻ _robit restarted while answering; resumed._\n\n";

/// Shown when a graceful stop interrupts a journaled answer.
pub(crate) const PAUSED_NOTE: &str =
    "⏸️ robit is restarting; this answer will continue when it is back.";

/// Shown when an interrupted turn cannot be run again.
pub(crate) const UNRESUMABLE_NOTE: &str =
    "⚠️ robit restarted while answering this and could not resume it. Please ask again.";

/// A sink that records each message a turn posts, by slot, and on a resumed turn edits the
/// earlier attempt's messages from the start instead of posting new ones.
pub(crate) struct JournalSink {
    inner: Arc<dyn ReplySink>,
    store: Arc<dyn Store>,
    turn: i64,
    resumed: bool,
    taken_over: bool,
    /// How many slots earlier attempts recorded: on a resumed turn, the next slot is the one
    /// an earlier attempt may have posted without living to record it.
    recorded: usize,
    state: Mutex<Slots>,
}

struct Slots {
    /// Messages posted by this turn (any attempt), by slot.
    posted: Vec<MessageRef>,
    /// Slots this attempt has used.
    used: usize,
}

impl JournalSink {
    pub fn new(inner: Arc<dyn ReplySink>, store: Arc<dyn Store>, ticket: &Ticket) -> Self {
        Self {
            inner,
            store,
            turn: ticket.id,
            resumed: ticket.resumed,
            taken_over: ticket.taken_over,
            recorded: ticket.posted.len(),
            state: Mutex::new(Slots {
                posted: ticket.posted.clone(),
                used: 0,
            }),
        }
    }

    /// The next slot, and the message an earlier attempt posted in it if any.
    fn take_slot(&self) -> (usize, Option<MessageRef>) {
        let mut s = self.state.lock().expect("slots poisoned");
        let slot = s.used;
        s.used += 1;
        (slot, s.posted.get(slot).cloned())
    }

    fn is_first(&self, message: &MessageRef) -> bool {
        let s = self.state.lock().expect("slots poisoned");
        s.posted.first() == Some(message)
    }

    fn decorate(&self, first: bool, text: &str) -> String {
        if self.resumed && first {
            format!("{RESUMED_NOTE}{text}")
        } else {
            text.to_string()
        }
    }

    async fn record(&self, slot: usize, message: &MessageRef) {
        {
            let mut s = self.state.lock().expect("slots poisoned");
            if s.posted.len() == slot {
                s.posted.push(message.clone());
            }
        }
        if let Err(e) = self
            .store
            .turn_posted(self.turn, slot as i64, &message.0)
            .await
        {
            // The answer still reaches the user; only a takeover after a crash would post a
            // second message instead of editing this one.
            tracing::error!(error = %e, turn = self.turn, "recording a posted message failed");
        }
    }

    /// Messages an earlier attempt (or the answer a regeneration replaced) posted that this
    /// one did not reach: their text belongs to an answer that was replaced, so they say so,
    /// without buttons.
    pub async fn retire_leftovers(&self) {
        let leftovers: Vec<MessageRef> = {
            let s = self.state.lock().expect("slots poisoned");
            s.posted.iter().skip(s.used).cloned().collect()
        };
        let controls = self.inner.capabilities().controls;
        for message in leftovers {
            let text = "↑ _(replaced by the answer above)_";
            let retired = if controls {
                self.inner
                    .edit_controls(&message, text, &AnswerControls::None)
                    .await
            } else {
                self.inner.edit(&message, text).await
            };
            if let Err(e) = retired {
                tracing::warn!(error = %e, "retiring a message of an earlier attempt failed");
            }
        }
    }
}

#[async_trait]
impl ReplySink for JournalSink {
    fn capabilities(&self) -> Capabilities {
        let mut caps = self.inner.capabilities();
        if self.resumed {
            caps.max_message_len = caps
                .max_message_len
                .saturating_sub(RESUMED_NOTE.chars().count())
                .max(crate::render::MIN_LIMIT);
        }
        caps
    }

    fn route(&self) -> Option<String> {
        self.inner.route()
    }

    async fn post(&self, text: &str) -> Result<MessageRef, SinkError> {
        let (slot, earlier) = self.take_slot();
        let text = self.decorate(slot == 0, text);
        match earlier {
            Some(message) => {
                self.inner.edit(&message, &text).await?;
                Ok(message)
            }
            None => {
                // Keyed by turn and slot, so a post whose reference a crash kept from the
                // journal comes back as the same message where the platform deduplicates.
                // Unique per database; a second deployment on the same bot token could only
                // meet it in the same channel within the platform's few-minute window.
                let key = format!("t{}.{slot}", self.turn);
                let message = self.inner.post_once(&key, &text).await?;
                if self.taken_over && slot == self.recorded {
                    // It may be the earlier attempt's message, still showing that text.
                    self.inner.edit(&message, &text).await?;
                }
                self.record(slot, &message).await;
                Ok(message)
            }
        }
    }

    async fn edit(&self, message: &MessageRef, text: &str) -> Result<(), SinkError> {
        let text = self.decorate(self.is_first(message), text);
        self.inner.edit(message, &text).await
    }

    async fn edit_controls(
        &self,
        message: &MessageRef,
        text: &str,
        controls: &AnswerControls,
    ) -> Result<(), SinkError> {
        let text = self.decorate(self.is_first(message), text);
        self.inner.edit_controls(message, &text, controls).await
    }

    async fn set_controls(
        &self,
        message: &MessageRef,
        controls: &AnswerControls,
    ) -> Result<(), SinkError> {
        self.inner.set_controls(message, controls).await
    }

    async fn upload(
        &self,
        file_name: &str,
        bytes: &[u8],
        comment: &str,
    ) -> Result<MessageRef, SinkError> {
        let (slot, earlier) = self.take_slot();
        if let Some(message) = earlier {
            // The file is already in the thread; uploading it again would show it twice.
            return Ok(message);
        }
        let message = self.inner.upload(file_name, bytes, comment).await?;
        self.record(slot, &message).await;
        Ok(message)
    }

    async fn fetch_attachment(
        &self,
        attachment: &Attachment,
        max_bytes: u64,
    ) -> Result<Vec<u8>, SinkError> {
        self.inner.fetch_attachment(attachment, max_bytes).await
    }

    async fn post_ephemeral(&self, user: &UserId, text: &str) -> Result<MessageRef, SinkError> {
        self.inner.post_ephemeral(user, text).await
    }

    async fn typing(&self) -> Result<(), SinkError> {
        self.inner.typing().await
    }
}
