//! The turn journal's SQL, written once for both backends.
//!
//! The statements differ between SQLite and PostgreSQL only in how they read the clock and in
//! row locking, so each is built by `concat!` from one text with the dialect's pieces: the
//! two backends cannot drift in what a claim or a renewal means. Time is the database's clock
//! (milliseconds), so replicas with skewed clocks agree on when a lease expired.
//!
//! SQLite claims go through an ordinary pooled connection rather than the group-commit writer:
//! a claim is one `UPDATE … RETURNING` statement, which SQLite runs under its single write
//! lock, so two claimers can never take the same row.

// Each backend passes its clock expression (unix milliseconds) as `$now` (its `…_now!()`
// macro, a string literal `concat!` can take), and its row lock for claims as `$lock`
// (PostgreSQL: `FOR UPDATE SKIP LOCKED`; SQLite: nothing).

/// The insert of an accepted event's turn (binds: conversation, platform, event id, message,
/// job, route, holder, lease in ms), `RETURNING id`; SQLite's group-commit writer runs it too.
macro_rules! insert_turn_sql {
    ($now:expr) => {
        concat!(
            "INSERT INTO turns (conversation_id, platform, event_id, message_id, job, route,
                                status, holder, lease_until, attempts, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, ",
            $now,
            " + $8, 0, ",
            $now,
            ", ",
            $now,
            ") RETURNING id"
        )
    };
}
pub(crate) use insert_turn_sql;

/// One chunk of a lease renewal (binds: holder, lease in ms, after id, limit), `RETURNING id`.
/// The holder and status are checked again outside the subquery: on PostgreSQL a row another
/// replica claimed meanwhile is re-read against them and skipped, rather than renewed for its
/// new holder while this one thinks it still has it.
macro_rules! renew_turns_sql {
    ($now:expr) => {
        concat!(
            "UPDATE turns SET lease_until = ",
            $now,
            " + $2
             WHERE holder = $1 AND status IN ('pending', 'running')
               AND id IN (SELECT id FROM turns
                          WHERE holder = $1 AND status IN ('pending', 'running')
                            AND id > $3
                          ORDER BY id LIMIT $4)
             RETURNING id"
        )
    };
}
pub(crate) use renew_turns_sql;

/// A turn's new status (binds: turn, holder, status), only while `holder` holds it open; a
/// turn starts running and closes with it, so SQLite sends it through its writer.
macro_rules! set_turn_status_sql {
    ($now:expr) => {
        concat!(
            "UPDATE turns SET status = $3, updated_at = ",
            $now,
            " WHERE id = $1 AND holder = $2 AND status IN ('pending', 'running')"
        )
    };
}
pub(crate) use set_turn_status_sql;

/// Regenerate's first half: the question's current answer is superseded (bind: question).
pub(crate) const SUPERSEDE_ANSWER: &str = "UPDATE messages SET status = 'superseded' \
     WHERE turn_id = $1 AND role IN ('assistant', 'tool') AND status <> 'superseded'";

/// Regenerate's second half: the platform messages of the question's latest earlier turn
/// become the new turn's slots (binds: question, new turn).
pub(crate) const HAND_OVER_POSTS: &str = "INSERT INTO turn_posts (turn_id, slot, ref) \
     SELECT $2, slot, ref FROM turn_posts \
     WHERE turn_id = (SELECT MAX(id) FROM turns WHERE message_id = $1 AND id <> $2)";

/// Records the turn an accepted event needs, inside the caller's transaction.
macro_rules! insert_turn {
    ($now:expr, $conn:expr, $event:expr, $turn:expr, $conversation:expr, $message:expr) => {{
        let id: i64 = sqlx::query_scalar(crate::journal::insert_turn_sql!($now))
            .bind($conversation)
            .bind($event.platform.as_str())
            .bind($event.event_id.as_str())
            .bind($message)
            .bind($turn.job.as_str())
            .bind($turn.route.as_deref())
            .bind($turn.holder.as_str())
            .bind(crate::rows::millis($turn.lease))
            .fetch_one(&mut *$conn)
            .await?;
        id
    }};
}
pub(crate) use insert_turn;

/// For a turn that answers `question` again (Regenerate), inside the caller's transaction:
/// the question's current answer (assistant and tool messages) is marked superseded, and the
/// platform messages its latest earlier turn posted become this turn's slots, so the new
/// answer is written over them.
macro_rules! hand_over_answer {
    ($conn:expr, $question:expr, $turn:expr) => {{
        sqlx::query(crate::journal::SUPERSEDE_ANSWER)
            .bind($question)
            .execute(&mut *$conn)
            .await?;
        sqlx::query(crate::journal::HAND_OVER_POSTS)
            .bind($question)
            .bind($turn)
            .execute(&mut *$conn)
            .await?;
    }};
}
pub(crate) use hand_over_answer;

/// `TurnJournal` for a backend type whose pool is `self.pool`.
// `$own` are the methods the backend writes its own way, passed in by `queries.rs`'s
// `sql_store!` (renewal: SQLite's goes through its group-commit writer).
macro_rules! journal_impl {
    ($store:ty, $now:expr, $lock:literal, $($own:item)*) => {
        #[async_trait::async_trait]
        impl crate::TurnJournal for $store {
        $($own)*

        async fn claim_turns(
            &self,
            holder: &str,
            lease: std::time::Duration,
            platform: robit_types::Platform,
            limit: u32,
            set_before: Option<std::time::SystemTime>,
        ) -> crate::Result<Vec<crate::model::ClaimedTurn>> {
            // A lease set at `t` runs until `t + lease`, so "set before `set_before`" is "runs
            // until before `set_before + lease`"; 0 (no lease ends that early) without it.
            let live_cutoff = set_before.map_or(0, |at| {
                crate::rows::system_ms(at).saturating_add(crate::rows::millis(lease))
            });
            #[allow(clippy::type_complexity)]
            let rows: Vec<(i64, i64, String, Option<i64>, String, Option<String>, String, i64, Option<String>)> =
                sqlx::query_as(concat!(
                    "UPDATE turns SET holder = $1, lease_until = ",
                    $now,
                    " + $2, attempts = attempts + 1, updated_at = ",
                    $now,
                    " WHERE id IN (
                        SELECT id FROM turns
                        WHERE platform = $3 AND status IN ('pending', 'running')
                          AND (lease_until <= ",
                    $now,
                    " OR (holder <> $1 AND lease_until < $4))
                        ORDER BY id LIMIT $5",
                    $lock,
                    ") RETURNING id, conversation_id, event_id, message_id, job, route, status,
                                 CAST(attempts AS BIGINT), stopped_by"
                ))
                .bind(holder)
                .bind(crate::rows::millis(lease))
                .bind(platform.as_str())
                .bind(live_cutoff)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
            let mut claimed = Vec::with_capacity(rows.len());
            for (id, conversation, event_id, message_id, job, route, status, attempts, stopped_by) in rows {
                let posted: Vec<(i64, String)> = sqlx::query_as(
                    "SELECT CAST(slot AS BIGINT), ref FROM turn_posts WHERE turn_id = $1 ORDER BY slot",
                )
                .bind(id)
                .fetch_all(&self.pool)
                .await?;
                claimed.push(crate::model::ClaimedTurn {
                    id,
                    conversation: crate::model::ConversationId(conversation),
                    event_id,
                    message_id,
                    job,
                    route,
                    status: crate::model::TurnStatus::parse(&status).ok_or_else(|| {
                        crate::StoreError::Corrupt(format!("turn {id} has status `{status}`"))
                    })?,
                    attempts,
                    posted,
                    stopped_by,
                });
            }
            claimed.sort_by_key(|t| t.id);
            Ok(claimed)
        }

        async fn release_turns(&self, holder: &str) -> crate::Result<u64> {
            let released = sqlx::query(
                "UPDATE turns SET lease_until = 0
                 WHERE holder = $1 AND status IN ('pending', 'running')",
            )
            .bind(holder)
            .execute(&self.pool)
            .await?
            .rows_affected();
            Ok(released)
        }

        async fn turn_posted(&self, turn: i64, slot: i64, message: &str) -> crate::Result<()> {
            sqlx::query(
                "INSERT INTO turn_posts (turn_id, slot, ref) VALUES ($1, $2, $3)
                 ON CONFLICT (turn_id, slot) DO UPDATE SET ref = excluded.ref",
            )
            .bind(turn)
            .bind(slot)
            .bind(message)
            .execute(&self.pool)
            .await?;
            Ok(())
        }

        async fn turns(
            &self,
            conversation: crate::model::ConversationId,
        ) -> crate::Result<Vec<crate::model::TurnRow>> {
            let rows: Vec<(i64, String, String, String, i64, i64)> = sqlx::query_as(
                "SELECT t.id, t.event_id, t.status, t.holder, CAST(t.attempts AS BIGINT),
                        (SELECT COUNT(*) FROM turn_posts p WHERE p.turn_id = t.id)
                 FROM turns t WHERE t.conversation_id = $1 ORDER BY t.id",
            )
            .bind(conversation.0)
            .fetch_all(&self.pool)
            .await?;
            rows.into_iter()
                .map(|(id, event_id, status, holder, attempts, posted)| {
                    Ok(crate::model::TurnRow {
                        id,
                        event_id,
                        status: crate::model::TurnStatus::parse(&status).ok_or_else(|| {
                            crate::StoreError::Corrupt(format!("turn {id} has status `{status}`"))
                        })?,
                        holder,
                        attempts,
                        posted,
                    })
                })
                .collect()
        }

        async fn request_stop(&self, question: i64, by: &str) -> crate::Result<bool> {
            let n = sqlx::query(
                "UPDATE turns SET stopped_by = $2
                 WHERE message_id = $1 AND status IN ('pending', 'running')",
            )
            .bind(question)
            .bind(by)
            .execute(&self.pool)
            .await?
            .rows_affected();
            Ok(n > 0)
        }

        async fn posts(&self, turn: i64) -> crate::Result<Vec<String>> {
            let refs: Vec<String> =
                sqlx::query_scalar("SELECT ref FROM turn_posts WHERE turn_id = $1 ORDER BY slot")
                    .bind(turn)
                    .fetch_all(&self.pool)
                    .await?;
            Ok(refs)
        }

        async fn stopped_turns(&self, holder: &str) -> crate::Result<Vec<(i64, String)>> {
            let rows: Vec<(i64, String)> = sqlx::query_as(
                "SELECT message_id, stopped_by FROM turns
                 WHERE holder = $1 AND status IN ('pending', 'running')
                   AND stopped_by IS NOT NULL AND message_id IS NOT NULL",
            )
            .bind(holder)
            .fetch_all(&self.pool)
            .await?;
            Ok(rows)
        }
        }
    };
}
pub(crate) use journal_impl;
