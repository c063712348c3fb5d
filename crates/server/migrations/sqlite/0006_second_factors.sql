-- Second factors: TOTP, recovery codes, and the challenge between password and factor.
-- Times are unix seconds.

-- One authenticator app per user. Unconfirmed (confirmed_at NULL) while enrolling.
CREATE TABLE totp_factors (
    user_id        BIGINT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret         BLOB NOT NULL,
    confirmed_at   BIGINT,
    -- The last 30-second step whose code was accepted: a code works once.
    last_used_step BIGINT,
    created_at     BIGINT NOT NULL
);

-- Single-use recovery codes, as HMAC-SHA256 under a server secret.
CREATE TABLE recovery_codes (
    user_id   BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash BLOB NOT NULL,
    used_at   BIGINT,
    PRIMARY KEY (user_id, code_hash)
);

-- A password proven, a factor still to prove: the challenge token (its SHA-256) that
-- /api/auth/mfa/verify takes. Single use, short-lived, limited attempts.
CREATE TABLE mfa_challenges (
    token_hash         BLOB PRIMARY KEY,
    user_id            BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_version BIGINT NOT NULL,
    attempts           BIGINT NOT NULL DEFAULT 0,
    -- Started at /api/auth/login: the second step answers in that route's shape.
    via_login          BOOLEAN NOT NULL DEFAULT FALSE,
    created_at         BIGINT NOT NULL,
    expires_at         BIGINT NOT NULL
);
CREATE INDEX mfa_challenges_expiry ON mfa_challenges (expires_at);

-- How the session's user proved who they are (e.g. "pwd,otp"), and when a second factor was
-- last proven in it (step-up).
ALTER TABLE sessions ADD COLUMN amr TEXT NOT NULL DEFAULT 'pwd';
ALTER TABLE sessions ADD COLUMN factor_proven_at BIGINT;
