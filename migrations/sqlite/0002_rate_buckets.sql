-- Token buckets shared by every process using this database: platform API call budgets
-- (so replicas together stay inside a platform's limits) and, later, per-user and
-- per-channel turn limits. Kept in step with ../postgres/0002_rate_buckets.sql.
CREATE TABLE rate_buckets (
    bucket     TEXT    PRIMARY KEY,
    -- Tokens left at `updated_at`; negative while the bucket is blocked after a 429.
    tokens     REAL    NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
