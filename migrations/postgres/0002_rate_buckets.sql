-- Token buckets shared by every replica: platform API call budgets (so replicas together
-- stay inside a platform's limits) and, later, per-user and per-channel turn limits.
-- Kept in step with ../sqlite/0002_rate_buckets.sql. `updated_at` is the database clock in
-- unix milliseconds, so replicas with skewed clocks agree on refills.
CREATE TABLE rate_buckets (
    bucket     TEXT             PRIMARY KEY,
    -- Tokens left at `updated_at`; negative while the bucket is blocked after a 429.
    tokens     DOUBLE PRECISION NOT NULL,
    updated_at BIGINT           NOT NULL
);
