-- robit schema, SQLite dialect. Kept in step with ../postgres/0001_init.sql: same tables,
-- same columns, same meaning. Times are unix milliseconds.

-- One row per (platform, workspace, channel, thread). `thread` is '' for a conversation
-- without a thread, because NULLs never collide in a UNIQUE constraint and find-or-create
-- relies on that constraint to stay race-free.
CREATE TABLE conversations (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    platform     TEXT    NOT NULL,
    workspace    TEXT    NOT NULL,
    channel      TEXT    NOT NULL,
    thread       TEXT    NOT NULL DEFAULT '',
    model        TEXT,
    -- History is the messages with id > history_from; `/reset` moves it forward.
    history_from INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL,
    UNIQUE (platform, workspace, channel, thread)
);

-- AUTOINCREMENT, not plain rowid: ids must never be reused, or a pruned message's id could
-- come back below some conversation's history_from and hide a new message.
CREATE TABLE messages (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    role            TEXT    NOT NULL,
    content         TEXT    NOT NULL,
    tool_calls      TEXT,
    tool_call_id    TEXT,
    status          TEXT    NOT NULL,
    author          TEXT,
    -- The user message that started the turn this message belongs to (NULL: the message
    -- starts its own turn). History is ordered by COALESCE(turn_id, id), so a reply sorts
    -- right after its question even when later questions were stored while it streamed.
    turn_id         INTEGER,
    created_at      INTEGER NOT NULL
);

CREATE INDEX messages_by_conversation ON messages (conversation_id, id);

-- Dedup of platform deliveries: a retried event hits the primary key.
CREATE TABLE processed_events (
    platform    TEXT    NOT NULL,
    event_id    TEXT    NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (platform, event_id)
) WITHOUT ROWID;

-- For pruning old event ids.
CREATE INDEX processed_events_by_time ON processed_events (received_at);

CREATE TABLE usage (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id   INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    platform          TEXT    NOT NULL,
    workspace         TEXT    NOT NULL,
    channel           TEXT    NOT NULL,
    user_id           TEXT,
    provider          TEXT    NOT NULL,
    model             TEXT    NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    estimated         INTEGER NOT NULL,
    created_at        INTEGER NOT NULL
);

CREATE INDEX usage_by_conversation ON usage (conversation_id);
CREATE INDEX usage_by_workspace_time ON usage (platform, workspace, created_at);

-- Who runs a conversation's turns right now, so that with several replicas only one does.
CREATE TABLE conversation_leases (
    conversation_id INTEGER PRIMARY KEY REFERENCES conversations (id) ON DELETE CASCADE,
    holder          TEXT    NOT NULL,
    expires_at      INTEGER NOT NULL
);
