-- What sessiond keeps per user of an application's own table
-- (`[source] kind = "app"`). The app source is served on PostgreSQL only
-- (docs/adopting.md); the tables exist here too so both schemas stay the
-- same.

CREATE TABLE source_users (
    user_id            TEXT    PRIMARY KEY,
    version            INTEGER NOT NULL,
    session_epoch      INTEGER NOT NULL DEFAULT 0,
    tokens_valid_after INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE source_revoked_tokens (
    sid        TEXT    PRIMARY KEY,
    user_id    TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX source_revoked_tokens_by_user ON source_revoked_tokens (user_id, expires_at);
