-- History is read in turn order, newest first: ORDER BY COALESCE(turn_id, id) DESC, id DESC
-- with a LIMIT (see `turn_history` in crates/robit-store/src/queries.rs). Without an index on
-- that order every turn sorted its conversation's whole history, so loading history grew
-- with the conversation's length; with it, a turn reads only the rows it keeps. Kept in step
-- with ../sqlite/0005_history_index.sql.
CREATE INDEX messages_by_turn ON messages (conversation_id, (COALESCE(turn_id, id)), id);
