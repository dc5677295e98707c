-- The buttons on an answer (issue 21): who stopped a turn, which model and provider wrote each
-- answer, and the votes users gave answers. Kept in step with ../postgres/0006_answer_actions.sql.

-- Set when the asker (or an admin) pressed Stop: a turn with a stop recorded is never run
-- again by a takeover, whatever its status says (the stop may come just before a crash).
ALTER TABLE turns ADD COLUMN stopped_by TEXT;

-- The provider and upstream model that wrote an assistant message (NULL for older rows and
-- for other roles), so feedback is counted per model.
ALTER TABLE messages ADD COLUMN provider TEXT;
ALTER TABLE messages ADD COLUMN model TEXT;

-- One vote per user and answer; a second click changes it. `turn_id` is the question's
-- message id (the answer's turn); provider and model are copied from the answer when the vote
-- is cast, so a later change of the default model does not move old votes.
CREATE TABLE feedback (
    turn_id    INTEGER NOT NULL,
    user_id    TEXT    NOT NULL,
    vote       TEXT    NOT NULL,
    platform   TEXT    NOT NULL,
    workspace  TEXT    NOT NULL,
    provider   TEXT    NOT NULL,
    model      TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (turn_id, user_id)
) WITHOUT ROWID;

CREATE INDEX feedback_by_time ON feedback (created_at);
