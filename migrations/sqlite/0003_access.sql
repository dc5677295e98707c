-- Who may use robit and how, changed at run time by admins: per-channel and per-workspace
-- settings, access rules, the audit log and admin API keys. Kept in step with
-- ../postgres/0003_access.sql. Times are unix milliseconds.

-- One row per changed setting. `channel` is '' for a workspace-wide setting, so the primary
-- key (and its upsert) covers both scopes.
CREATE TABLE settings (
    platform   TEXT    NOT NULL,
    workspace  TEXT    NOT NULL,
    channel    TEXT    NOT NULL DEFAULT '',
    key        TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    updated_by TEXT    NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (platform, workspace, channel, key)
) WITHOUT ROWID;

-- Allow and deny rules for one workspace, on a user, a role or a channel.
CREATE TABLE access_rules (
    platform     TEXT    NOT NULL,
    workspace    TEXT    NOT NULL,
    subject_kind TEXT    NOT NULL,
    subject      TEXT    NOT NULL,
    effect       TEXT    NOT NULL,
    updated_by   TEXT    NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (platform, workspace, subject_kind, subject)
) WITHOUT ROWID;

-- Admin changes and refusals: who, what, when. Append only.
CREATE TABLE audit_log (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at        INTEGER NOT NULL,
    platform  TEXT    NOT NULL,
    workspace TEXT    NOT NULL,
    channel   TEXT    NOT NULL,
    actor     TEXT    NOT NULL,
    action    TEXT    NOT NULL,
    detail    TEXT    NOT NULL
);

CREATE INDEX audit_log_by_time ON audit_log (at);

-- Admin API keys: only an argon2 hash of the secret is kept.
CREATE TABLE api_keys (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT    NOT NULL,
    hash       TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);
