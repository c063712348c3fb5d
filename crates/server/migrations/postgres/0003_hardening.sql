-- Hardening: credential versions, throttling of every sign-in name, revocation lifetimes.

-- Bumped when the password changes: a sign-in may only open a session for the credential it
-- verified, and sessions remember the credential they were opened with.
ALTER TABLE users ADD COLUMN credential_version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN credential_version BIGINT NOT NULL DEFAULT 0;
-- Where the correct password was given; unlike ip, never overwritten by a refresh.
ALTER TABLE sessions ADD COLUMN signin_ip TEXT;

-- Failed sign-ins per name (a SHA-256 of its canonical form), for existing and unknown names
-- alike, so that backing off says nothing about whether an account exists.
CREATE TABLE signin_throttle (
    name_hash      BYTEA PRIMARY KEY,
    failures       BIGINT NOT NULL,
    locked_until   BIGINT,
    last_failed_at BIGINT NOT NULL
);

-- Facts every node shares: e.g. the longest access-token lifetime any node has used, which
-- revocations must outlive.
CREATE TABLE server_settings (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO server_settings (name, value) VALUES ('max_access_token_ttl', 0), ('health_probe', 0);

-- Audit events older than the retention are purged by time.
CREATE INDEX audit_events_at ON audit_events (at);
