-- Who may use robit and how, changed at run time by admins: per-channel and per-workspace
-- settings, access rules, the audit log and admin API keys. Kept in step with
-- ../sqlite/0003_access.sql. Times are unix milliseconds.

-- One row per changed setting. `channel` is '' for a workspace-wide setting, so the primary
-- key (and its upsert) covers both scopes.
CREATE TABLE settings (
    platform   TEXT   NOT NULL,
    workspace  TEXT   NOT NULL,
    channel    TEXT   NOT NULL DEFAULT '',
    key        TEXT   NOT NULL,
    value      TEXT   NOT NULL,
    updated_by TEXT   NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (platform, workspace, channel, key)
);

-- Allow and deny rules for one workspace, on a user, a role or a channel.
CREATE TABLE access_rules (
    platform     TEXT   NOT NULL,
    workspace    TEXT   NOT NULL,
    subject_kind TEXT   NOT NULL,
    subject      TEXT   NOT NULL,
    effect       TEXT   NOT NULL,
    updated_by   TEXT   NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (platform, workspace, subject_kind, subject)
);

-- Admin changes and refusals: who, what, when. Append only.
CREATE TABLE audit_log (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at        BIGINT NOT NULL,
    platform  TEXT   NOT NULL,
    workspace TEXT   NOT NULL,
    channel   TEXT   NOT NULL,
    actor     TEXT   NOT NULL,
    action    TEXT   NOT NULL,
    detail    TEXT   NOT NULL
);

CREATE INDEX audit_log_by_time ON audit_log (at);

-- Admin API keys: only an argon2 hash of the secret is kept.
CREATE TABLE api_keys (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       TEXT   NOT NULL,
    hash       TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);
