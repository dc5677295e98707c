-- robit schema, PostgreSQL dialect. Kept in step with ../sqlite/0001_init.sql: same tables,
-- same columns, same meaning. Times are unix milliseconds, except lease expiry, which is
-- compared with the database clock so that replicas with skewed clocks agree.

-- One row per (platform, workspace, channel, thread). `thread` is '' for a conversation
-- without a thread, because NULLs never collide in a UNIQUE constraint and find-or-create
-- relies on that constraint to stay race-free.
CREATE TABLE conversations (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    platform     TEXT   NOT NULL,
    workspace    TEXT   NOT NULL,
    channel      TEXT   NOT NULL,
    thread       TEXT   NOT NULL DEFAULT '',
    model        TEXT,
    -- History is the messages with id > history_from; `/reset` moves it forward.
    history_from BIGINT NOT NULL DEFAULT 0,
    created_at   BIGINT NOT NULL,
    UNIQUE (platform, workspace, channel, thread)
);

CREATE TABLE messages (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    conversation_id BIGINT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    role            TEXT   NOT NULL,
    content         TEXT   NOT NULL,
    tool_calls      TEXT,
    tool_call_id    TEXT,
    status          TEXT   NOT NULL,
    author          TEXT,
    -- The user message that started this message's turn (NULL: it starts its own turn);
    -- history is ordered by COALESCE(turn_id, id). See ../sqlite/0001_init.sql.
    turn_id         BIGINT,
    created_at      BIGINT NOT NULL
);

CREATE INDEX messages_by_conversation ON messages (conversation_id, id);

-- Dedup of platform deliveries: a retried event hits the primary key.
CREATE TABLE processed_events (
    platform    TEXT   NOT NULL,
    event_id    TEXT   NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (platform, event_id)
);

-- For pruning old event ids.
CREATE INDEX processed_events_by_time ON processed_events (received_at);

CREATE TABLE usage (
    id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    conversation_id   BIGINT  NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    platform          TEXT    NOT NULL,
    workspace         TEXT    NOT NULL,
    channel           TEXT    NOT NULL,
    user_id           TEXT,
    provider          TEXT    NOT NULL,
    model             TEXT    NOT NULL,
    prompt_tokens     BIGINT  NOT NULL,
    completion_tokens BIGINT  NOT NULL,
    estimated         BOOLEAN NOT NULL,
    created_at        BIGINT  NOT NULL
);

CREATE INDEX usage_by_conversation ON usage (conversation_id);
CREATE INDEX usage_by_workspace_time ON usage (platform, workspace, created_at);

-- Who runs a conversation's turns right now, so that with several replicas only one does.
CREATE TABLE conversation_leases (
    conversation_id BIGINT      PRIMARY KEY REFERENCES conversations (id) ON DELETE CASCADE,
    holder          TEXT        NOT NULL,
    expires_at      TIMESTAMPTZ NOT NULL
);
