-- Edit to regenerate (issue 21): the platform's id of each question, so an edit of the
-- message finds the question it asked, and a way to find the turns answering a question.
-- Kept in step with ../postgres/0007_edits.sql.

-- The platform's id of a user message (Discord message id, Slack ts); NULL for older rows,
-- for messages robit wrote, and where a message cannot be edited (the console, slash
-- commands). Old rows keep working: an edit of such a message is simply not found.
ALTER TABLE messages ADD COLUMN platform_ref TEXT;

-- An edit names a message, not its conversation: Slack's message_changed does not say which
-- thread the message is in, and a Discord message that started a thread is in the parent
-- channel. So the lookup is by the id alone (then checked against the platform, workspace
-- and channel), which an index on (conversation_id, platform_ref) could not serve without
-- first listing every conversation of the channel. Partial: only questions have one.
CREATE INDEX messages_by_platform_ref ON messages (platform_ref) WHERE platform_ref IS NOT NULL;

-- The turns answering a question: the latest one's route and state for an edit, and the
-- answer a regeneration supersedes (`hand_over_answer!`) and a Stop records on, which until
-- now scanned the journal.
CREATE INDEX turns_by_question ON turns (message_id, id) WHERE message_id IS NOT NULL;
