-- Passkeys and security keys (WebAuthn). Times are unix seconds.

-- The user handle authenticators keep with a discoverable credential: random, 16 bytes, made
-- at the first registration (it names no one by itself).
ALTER TABLE users ADD COLUMN webauthn_handle BLOB;
CREATE UNIQUE INDEX users_webauthn_handle ON users (webauthn_handle);

CREATE TABLE passkeys (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id       BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id BLOB NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    -- webauthn-rs's credential (public key, counter, flags) as JSON.
    credential    TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT
);
CREATE INDEX passkeys_user ON passkeys (user_id);

-- A registration or an authentication under way: the server's half of the ceremony, between
-- the request that asks the browser and the one that brings its answer. Kept here, not in
-- memory, so the answer may reach another node. Single use, short-lived. The token is the
-- SHA-256 of what the client holds. user_id is NULL for a sign-in with no username typed.
CREATE TABLE webauthn_ceremonies (
    token_hash BLOB PRIMARY KEY,
    user_id    BIGINT REFERENCES users (id) ON DELETE CASCADE,
    purpose    TEXT NOT NULL,
    state      TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX webauthn_ceremonies_expiry ON webauthn_ceremonies (expires_at);
