-- App credentials (`sessiond appkey`): keys an application's server uses to
-- mint sessions for users it signed in itself, or to call the admin routes.
-- A key is `sdk_<id>_<secret>`; only a keyed SHA-256 hash of the secret is
-- kept. After a rotation the previous secret's hash is accepted until
-- `previous_until`; a revoked key is refused from its next use. Times are
-- unix milliseconds.
CREATE TABLE app_keys (
    id             TEXT   PRIMARY KEY,
    name           TEXT   NOT NULL,
    scopes         TEXT   NOT NULL,   -- comma-separated: mint, admin
    secret_hash    TEXT   NOT NULL,
    previous_hash  TEXT,
    previous_until BIGINT,
    created_at     BIGINT NOT NULL,
    rotated_at     BIGINT,
    revoked_at     BIGINT
);
