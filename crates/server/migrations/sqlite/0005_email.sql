-- Email: verification, password reset, email change. Times are unix seconds.

-- When the current address was proven to be the user's (NULL: never).
ALTER TABLE users ADD COLUMN email_verified_at BIGINT;
ALTER TABLE users ADD COLUMN last_signin_at BIGINT;

-- The one-time codes and links sent by mail: at most one live per user and purpose, so a new
-- one voids the one before. Neither is stored: the code as an HMAC under a server secret
-- (8 digits would fall to a plain hash), the 256-bit link token as its SHA-256. A row is
-- deleted when used or when its attempts run out.
CREATE TABLE email_tokens (
    user_id           BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose           TEXT NOT NULL,
    -- Where the mail went (a change's new address; a report's address to go back to).
    email             TEXT NOT NULL,
    code_hash         BLOB,
    link_hash         BLOB NOT NULL UNIQUE,
    attempts          BIGINT NOT NULL DEFAULT 0,
    created_at        BIGINT NOT NULL,
    expires_at        BIGINT NOT NULL,
    -- Mails of this purpose sent to the user in the hour from window_started_at.
    sends             BIGINT NOT NULL DEFAULT 1,
    window_started_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, purpose)
);
