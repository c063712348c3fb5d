-- Service clients: the services allowed to introspect tokens (RFC 7662). Their secrets are
-- 256-bit random values, so a SHA-256 of the secret is enough to store (no password hashing).
CREATE TABLE service_clients (
    name         TEXT PRIMARY KEY,
    secret_hash  BLOB NOT NULL,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT
);
