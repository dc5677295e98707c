-- Two indexes that every accepted event paid for and no hot query reads (issue 20). Kept in
-- step with ../postgres/0008_lean_indexes.sql.
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

-- PostgreSQL's migration also drops the foreign keys of messages and turns, whose check there
-- locks the conversation's row; SQLite's check is a lookup by rowid that takes no lock, so
-- they stay here.
