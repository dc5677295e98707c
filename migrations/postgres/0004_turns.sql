-- The turn journal: every turn an accepted event needs, recorded in the same transaction as
-- the event, so an answer survives a crash, a restart or a replica's death. Kept in step with
-- ../sqlite/0004_turns.sql. Times are unix milliseconds of the database clock.
CREATE TABLE turns (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    conversation_id BIGINT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    platform        TEXT   NOT NULL,
    event_id        TEXT   NOT NULL,
    -- The user message that starts a chat turn (NULL for commands).
    message_id      BIGINT,
    -- What to run: the inbound event and its work, as the engine serialised them.
    job             TEXT   NOT NULL,
    -- Where the answer goes, as the adapter named it (opaque to the store).
    route           TEXT,
    -- pending | running | done | failed | cancelled
    status          TEXT   NOT NULL,
    holder          TEXT   NOT NULL,
    lease_until     BIGINT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

-- Recovery scans only open turns.
CREATE INDEX turns_open ON turns (platform, lease_until) WHERE status IN ('pending', 'running');
CREATE INDEX turns_by_conversation ON turns (conversation_id, id);

-- Every platform message a turn posted for its answer, in order, recorded as soon as the
-- post returned: a resumed turn edits these instead of posting a second answer.
CREATE TABLE turn_posts (
    turn_id BIGINT  NOT NULL REFERENCES turns (id) ON DELETE CASCADE,
    slot    INTEGER NOT NULL,
    ref     TEXT    NOT NULL,
    PRIMARY KEY (turn_id, slot)
);
