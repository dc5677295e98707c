//! Durable state: conversations, their messages, processed platform event ids and token usage.
//!
//! One [`Store`] trait, implemented on SQLite (the embedded default) and PostgreSQL
//! (production, several replicas), chosen by the database URL. The engine holds it as
//! `Arc<dyn Store>`. This crate knows nothing about chat platforms' wire formats or LLM
//! providers: it stores what the engine gives it, and never reads the environment.
//!
//! Start with [`connect`], then [`Store::migrate`]. The SQL schema lives in `migrations/` at
//! the workspace root and is compiled in (see `migrations.rs`).

mod access;
pub mod bench;
mod error;
mod journal;
mod migrations;
mod model;
mod postgres;
mod postgres_writer;
mod queries;
mod rows;
mod sqlite;
mod sqlite_reader;
mod sqlite_writer;

pub use access::{AccessRule, ApiKeyRow, AuditEntry, NewAuditEntry, SettingPlace, SettingRow};
pub use error::StoreError;
pub use model::{
    Accepted, AnswerTurn, AskedQuestion, ClaimedTurn, Conversation, ConversationId,
    ConversationSummary, FeedbackRow, MessageRole, MessageStatus, MigrationStatus, NewEvent,
    NewMessage, NewTurn, Question, QuestionEdit, Served, StoredMessage, Take, TurnRow, TurnStatus,
    UsageGroup, UsageRecord, UsageRow, Vote,
};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

use async_trait::async_trait;
use robit_types::{
    ChannelId, ConversationKey, Platform, Rate, RuleEffect, SubjectKind, UserId, WorkspaceId,
};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Rows one pruning statement deletes at most.
const PRUNE_BATCH: i64 = 5_000;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// How many connections a store keeps and how long a caller waits for one. Configuration,
/// not constants: the binary maps its config onto this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolOptions {
    /// Upper bound on open connections. On SQLite writers still take turns; extra
    /// connections serve concurrent reads. PostgreSQL's group-commit writer keeps up to two
    /// connections of its own on top of these.
    pub max_connections: u32,
    /// How long to wait for a free connection before failing with a pool timeout.
    pub acquire_timeout: Duration,
    /// SQLite only: `PRAGMA synchronous = FULL` (fsync at every commit) instead of `NORMAL`.
    /// Under WAL, `NORMAL` is safe against a crash of the process but a power loss or kernel
    /// crash can lose the last commits: an event already acknowledged to the platform, and
    /// its dedup record, so a redelivery could run a second time. `FULL` closes that at the
    /// cost of an fsync per commit (group commit shares it between events).
    pub sqlite_full_sync: bool,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(30),
            sqlite_full_sync: false,
        }
    }
}

/// Opens the store a URL names: `sqlite:` for [`SqliteStore`] (the file is created if
/// missing), `postgres:` or `postgresql:` for [`PostgresStore`]. Does not migrate; call
/// [`Store::migrate`] next.
pub async fn connect(url: &str, options: PoolOptions) -> Result<Arc<dyn Store>> {
    let scheme = url
        .split_once(':')
        .map(|(scheme, _)| scheme.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("sqlite") => Ok(Arc::new(SqliteStore::connect_url(url, options).await?)),
        Some("postgres" | "postgresql") => {
            Ok(Arc::new(PostgresStore::connect(url, options).await?))
        }
        _ => Err(StoreError::UnsupportedUrl(redact_url(url))),
    }
}

/// Opens (creating if missing) the SQLite file at `path` with default pool options.
pub async fn connect_sqlite(path: impl AsRef<Path>) -> Result<Arc<dyn Store>> {
    Ok(Arc::new(
        SqliteStore::connect(path, PoolOptions::default()).await?,
    ))
}

/// The URL with any password replaced, because error messages end up in logs and in
/// `robit doctor`: the one in the user-info part (`postgres://u:pw@h/db`) and the ones in
/// query parameters (`?password=…`, `sslpassword=…`), which libpq and sqlx accept too.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let (query, fragment) = match query.split_once('#') {
                Some((q, f)) => (q, Some(f)),
                None => (query, None),
            };
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _)) if k.to_ascii_lowercase().contains("password") => {
                        format!("{k}=***")
                    }
                    _ => pair.to_string(),
                })
                .collect();
            let fragment = fragment.map(|f| format!("#{f}")).unwrap_or_default();
            format!("{path}?{}{fragment}", query.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// The engine's port to durable state. Object safe; held as `Arc<dyn Store>`.
#[async_trait]
pub trait Store: TurnJournal + Send + Sync {
    /// Applies pending migrations. Idempotent.
    async fn migrate(&self) -> Result<()>;

    /// Checks the database answers (readiness, `robit doctor`).
    async fn ping(&self) -> Result<()>;

    /// Records an inbound event atomically: marks `(platform, event_id)` processed, finds or
    /// creates the conversation, stores the user's message if there is one, its turn, and the
    /// question's new text for an edit ([`NewEvent::edit`]) — all in one transaction, so an event is either fully persisted or not at all. Returns
    /// [`Accepted::Duplicate`] when the event id was seen before (nothing is written then).
    async fn accept(&self, event: NewEvent) -> Result<Accepted>;

    /// Finds or creates the conversation for `key`.
    async fn conversation(&self, key: &ConversationKey) -> Result<Conversation>;

    /// Appends a message to a conversation; returns its id.
    async fn append_message(
        &self,
        conversation: ConversationId,
        message: NewMessage,
    ) -> Result<i64>;

    /// The conversation's messages since its last reset, oldest first; at most the newest
    /// `limit` of them.
    async fn history(&self, conversation: ConversationId, limit: u32)
        -> Result<Vec<StoredMessage>>;

    /// The history one turn sees: messages of turns up to and including `turn` (the id of
    /// the user message that started it), so questions queued behind it stay out, and the
    /// turn's own question is in even if a `/reset` came after it was stored.
    async fn turn_history(
        &self,
        conversation: ConversationId,
        turn: i64,
        limit: u32,
    ) -> Result<Vec<StoredMessage>>;

    /// Forgets the history (messages are kept for audit but no longer loaded).
    async fn reset(&self, conversation: ConversationId) -> Result<()>;

    /// Sets or clears the conversation's model override.
    async fn set_model(&self, conversation: ConversationId, model: Option<&str>) -> Result<()>;

    /// Records token usage for one turn.
    async fn record_usage(&self, usage: UsageRecord) -> Result<()>;

    /// Takes the conversation's lease for `holder` until `ttl` from now, atomically: succeeds
    /// when no one holds it, when it has expired, or when `holder` already holds it (then it
    /// is renewed). Returns `false` when another holder's lease is still live. With several
    /// replicas, only the lease holder runs the conversation's turns. Expiry is judged by the
    /// database clock on PostgreSQL and by this process's clock on SQLite.
    async fn try_lease(
        &self,
        conversation: ConversationId,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool>;

    /// Gives up `holder`'s lease so another holder need not wait for it to expire. Does
    /// nothing when the lease is someone else's or there is none.
    async fn release_lease(&self, conversation: ConversationId, holder: &str) -> Result<()>;

    /// Which migrations are applied and pending, and the server version, for `robit doctor`.
    /// Reads only: it works on a database that was never migrated.
    async fn migration_status(&self) -> Result<MigrationStatus>;

    /// Token usage grouped by `group`, for records at or after `since_ms` (unix ms), largest
    /// total first.
    async fn usage_summary(&self, group: UsageGroup, since_ms: i64) -> Result<Vec<UsageRow>>;

    /// Takes `cost` tokens from the token bucket named `bucket` (created full on first use),
    /// atomically across every process using this database; or says how long until they will
    /// be there, taking nothing. Time is the database clock on PostgreSQL and this process's
    /// clock on SQLite.
    async fn take_tokens(&self, bucket: &str, rate: Rate, cost: f64) -> Result<Take>;

    /// Empties the bucket so that its next one-token take waits `pause` (a platform's
    /// `Retry-After`); never shortens a longer block already in place.
    async fn block_bucket(&self, bucket: &str, rate: Rate, pause: Duration) -> Result<()>;

    /// The settings stored for `channel` and for its whole workspace (rows of both scopes;
    /// a workspace row has `channel: None`).
    async fn settings(
        &self,
        platform: Platform,
        workspace: &WorkspaceId,
        channel: &ChannelId,
    ) -> Result<Vec<SettingRow>>;

    /// Stores a setting at `place` (`value: None` removes it), recording who changed it.
    async fn put_setting(
        &self,
        place: &SettingPlace,
        key: &str,
        value: Option<&str>,
        actor: &str,
    ) -> Result<()>;

    /// The access rules stored for a workspace.
    async fn access_rules(
        &self,
        platform: Platform,
        workspace: &WorkspaceId,
    ) -> Result<Vec<AccessRule>>;

    /// Stores the workspace's rule on one subject (`effect: None` removes it).
    async fn put_access_rule(
        &self,
        platform: Platform,
        workspace: &WorkspaceId,
        kind: SubjectKind,
        subject: &str,
        effect: Option<RuleEffect>,
        actor: &str,
    ) -> Result<()>;

    /// Prompt plus completion tokens a workspace used at or after `since_ms` (unix ms), for
    /// daily quotas.
    async fn tokens_used_since(
        &self,
        platform: Platform,
        workspace: &WorkspaceId,
        since_ms: i64,
    ) -> Result<u64>;

    /// Appends a line to the audit log.
    async fn record_audit(&self, entry: NewAuditEntry) -> Result<()>;

    /// Audit log lines at or after `since_ms`, newest first, at most `limit`.
    async fn audit_log(&self, since_ms: i64, limit: u32) -> Result<Vec<AuditEntry>>;

    /// Stores an admin API key's hash under `name`; returns its id.
    async fn add_api_key(&self, name: &str, hash: &str) -> Result<i64>;

    /// The admin API key with this id, if any.
    async fn api_key(&self, id: i64) -> Result<Option<ApiKeyRow>>;

    /// Every admin API key, oldest first (hashes included; callers show only the scheme).
    async fn api_keys(&self) -> Result<Vec<ApiKeyRow>>;

    /// Deletes the admin API key `id`; `false` when there was none.
    async fn delete_api_key(&self, id: i64) -> Result<bool>;

    /// The conversation for `key` if it exists (never creates one).
    async fn find_conversation(&self, key: &ConversationKey) -> Result<Option<Conversation>>;

    /// The conversations of one workspace, most recently active first, at most `limit`:
    /// what a picker of conversations lists (the console's). Counts cover the history since
    /// the last `/reset`; tokens, the whole conversation.
    async fn conversations(
        &self,
        platform: Platform,
        workspace: &WorkspaceId,
        limit: u32,
    ) -> Result<Vec<ConversationSummary>>;

    /// Deletes dedup records of events received before `before_ms`; returns how many. Only
    /// safe for ids no platform redelivers any more (see `store.event_retention_hours`).
    async fn prune_processed_events(&self, before_ms: i64) -> Result<u64>;

    /// The question stored as message `turn` (a user message): whose it is and where, so the
    /// engine can decide who may act on its answer. `None` for any other id.
    async fn question(&self, turn: i64) -> Result<Option<Question>>;

    /// The question whose platform message (Discord message id, Slack `ts`) is
    /// `platform_ref`, asked in `channel` of a platform's workspace (in any conversation of
    /// it: an edit does not always say which thread it is in), with when it was asked,
    /// whether it is its conversation's latest, and the turn answering it. `None` when robit
    /// stored no such question (most edits in a channel are of messages not for robit).
    async fn question_by_ref(
        &self,
        platform: Platform,
        workspace: &WorkspaceId,
        channel: &ChannelId,
        platform_ref: &str,
    ) -> Result<Option<AskedQuestion>>;

    /// Records `user`'s vote on the answer to question `turn` (a second vote replaces the
    /// first), with the provider and model that wrote the answer; `false` when the turn has
    /// no stored answer to vote on.
    async fn record_feedback(&self, turn: i64, user: &UserId, vote: Vote) -> Result<bool>;

    /// Votes cast since `since_ms`, per provider and model, most voted first.
    async fn feedback_summary(&self, since_ms: i64) -> Result<Vec<FeedbackRow>>;
}

/// The turn journal, part of every [`Store`]. A turn is recorded by [`Store::accept`] (see
/// [`NewEvent::turn`]), pending and leased to the replica that queued it; that replica renews
/// its leases while it lives. Leases are judged by the database clock.
#[async_trait]
pub trait TurnJournal: Send + Sync {
    /// Extends up to `limit` of the open turns `holder` holds, those with ids above `after`
    /// (the lowest first), to `lease` from now; returns their ids. Renewing every turn takes
    /// calls from `after = 0` until one returns fewer than `limit` (each call a short write,
    /// so accepts are not held up behind one long one). A turn missing from all the answers
    /// was taken over by another replica: stop it at once.
    async fn renew_turns(
        &self,
        holder: &str,
        lease: Duration,
        after: i64,
        limit: u32,
    ) -> Result<Vec<i64>>;

    /// Takes over up to `limit` open turns of `platform` whose lease expired, oldest first;
    /// each claim counts an attempt. On PostgreSQL rows another claimer is taking are
    /// skipped, never waited for.
    ///
    /// With `set_before`, also live leases of other holders that were last set (taken or
    /// renewed, with a lease as long as `lease`) before that instant: a single process
    /// starting up passes its start, since what was leased before it started was its earlier
    /// self's, which can no longer hold anything. A lease set after it started belongs to a
    /// live process (two processes on one SQLite file, say) and is left alone.
    async fn claim_turns(
        &self,
        holder: &str,
        lease: Duration,
        platform: Platform,
        limit: u32,
        set_before: Option<std::time::SystemTime>,
    ) -> Result<Vec<ClaimedTurn>>;

    /// Moves an open turn `holder` holds to `status`; `false` when the turn is not open or not
    /// held by `holder` (another replica took it over), and nothing changed.
    async fn set_turn_status(&self, turn: i64, holder: &str, status: TurnStatus) -> Result<bool>;

    /// Ends `holder`'s leases on its open turns now (graceful stop), so the next process takes
    /// them over without waiting; returns how many.
    async fn release_turns(&self, holder: &str) -> Result<u64>;

    /// Records the platform reference of the `slot`-th message a turn posted (idempotent).
    async fn turn_posted(&self, turn: i64, slot: i64, message: &str) -> Result<()>;

    /// Every journaled turn of a conversation, oldest first.
    async fn turns(&self, conversation: ConversationId) -> Result<Vec<TurnRow>>;

    /// Records that `by` stopped the open turn answering question `question` (whoever holds
    /// it): a takeover closes such a turn instead of running it again. `false` when no open
    /// turn answers that question.
    async fn request_stop(&self, question: i64, by: &str) -> Result<bool>;

    /// The platform references of the messages turn `turn` posted (or was handed), by slot.
    async fn posts(&self, turn: i64) -> Result<Vec<String>>;

    /// The open turns `holder` holds that someone stopped (see [`TurnJournal::request_stop`]):
    /// `(question, who)`, so the holder stops a turn whose Stop was clicked on another
    /// replica.
    async fn stopped_turns(&self, holder: &str) -> Result<Vec<(i64, String)>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_in_urls() {
        assert_eq!(
            redact_url("mysql://robit:hunter2@db:3306/robit"),
            "mysql://robit:***@db:3306/robit"
        );
        assert_eq!(redact_url("mysql://db/robit"), "mysql://db/robit");
        assert_eq!(redact_url("robit.db"), "robit.db");
        assert_eq!(
            redact_url("postgres://u@h/db?password=x"),
            "postgres://u@h/db?password=***"
        );
        assert_eq!(
            redact_url("postgres://u:pw@h:5432/db?sslmode=require&sslpassword=k&x=1#f"),
            "postgres://u:***@h:5432/db?sslmode=require&sslpassword=***&x=1#f"
        );
        assert_eq!(
            redact_url("postgres://u:p@ss@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(
            redact_url("sqlite:///var/lib/robit/robit.db"),
            "sqlite:///var/lib/robit/robit.db"
        );
    }

    #[tokio::test]
    async fn rejects_unknown_schemes() {
        for url in ["mysql://db/robit", "robit.db", "http://x"] {
            assert!(
                matches!(
                    connect(url, PoolOptions::default()).await,
                    Err(StoreError::UnsupportedUrl(_))
                ),
                "{url}"
            );
        }
    }
}
