-- Sessions and hardening. Times used in comparisons are unix seconds (BIGINT).

ALTER TABLE users ADD COLUMN disabled BOOLEAN NOT NULL DEFAULT FALSE;
-- Bumped when the user's access tokens must stop working (role change, disable, delete).
ALTER TABLE users ADD COLUMN token_version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN failed_signins BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN locked_until BIGINT;

-- A session is one refresh-token family.
CREATE TABLE sessions (
    id                  TEXT PRIMARY KEY,
    user_id             INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at          BIGINT NOT NULL,
    last_used_at        BIGINT NOT NULL,
    idle_expires_at     BIGINT NOT NULL,
    absolute_expires_at BIGINT NOT NULL,
    user_agent          TEXT,
    ip                  TEXT,
    revoked_at          BIGINT,
    revoked_reason      TEXT
);
CREATE INDEX sessions_user ON sessions (user_id);

-- Every refresh token ever issued, as a SHA-256 hash only. rotated_at is set when it is used.
CREATE TABLE refresh_tokens (
    hash       BLOB PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    rotated_at BIGINT
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

-- Access-token revocations still in force (each lasts as long as an access token can).
CREATE TABLE revocations (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT NOT NULL,
    subject     TEXT NOT NULL,
    min_version BIGINT,
    expires_at  BIGINT NOT NULL
);

CREATE TABLE audit_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    user_id    BIGINT,
    actor_id   BIGINT,
    session_id TEXT,
    ip         TEXT,
    detail     TEXT
);
CREATE INDEX audit_events_user ON audit_events (user_id, id);
CREATE INDEX audit_events_kind ON audit_events (kind, id);

-- Server-wide secrets shared by every node (e.g. the refresh-token derivation key).
CREATE TABLE server_secrets (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
