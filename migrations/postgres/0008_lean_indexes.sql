-- What every accepted event paid for and no hot query needs (issue 20). Kept in
-- step with ../sqlite/0008_lean_indexes.sql.
--
-- messages_by_conversation (conversation_id, id): messages_by_turn (0005) starts with the
-- same column, so what still looks messages up by conversation (`/reset`'s newest id, an
-- edit's "is this the latest question", the admin listing's counts) reads that index's
-- entries of the one conversation instead. Each insert no longer touches a third index leaf
-- of its conversation, a page per event in the write-ahead log.
DROP INDEX messages_by_conversation;

-- turns_by_conversation (conversation_id, id): read only by the journal's inspection query
-- (`turns`, used by tests) and by ON DELETE CASCADE from conversations, which robit never
-- deletes; a manual delete of a conversation scans the journal instead.
DROP INDEX turns_by_conversation;

-- The foreign keys of the two rows every chat event inserts. PostgreSQL checks each new row's
-- key with a query that locks the conversation's row (FOR KEY SHARE), which writes the row's
-- lock to the heap and the WAL: on a batch of 256 events in 256 conversations, 40 % of the
-- batched accept's time (EXPLAIN ANALYZE of `ACCEPT_BATCH`, 9.0 -> 5.4 ms). The rows still
-- always name a real conversation: the statement that inserts them finds or creates it, and
-- robit never deletes conversations. What is lost is the cascade: a conversation deleted by
-- hand leaves its messages and turns behind, to be deleted with it explicitly. SQLite keeps
-- its keys: its check is a lookup by rowid that takes no lock.
ALTER TABLE messages DROP CONSTRAINT messages_conversation_id_fkey;
ALTER TABLE turns DROP CONSTRAINT turns_conversation_id_fkey;
