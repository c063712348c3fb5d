-- Signing-key rotation: a key is published (JWKS) and verifies from the moment it is stored,
-- and signs from activates_at (unix seconds). Keys stored before rotation existed are active.
ALTER TABLE signing_keys ADD COLUMN activates_at BIGINT NOT NULL DEFAULT 0;
