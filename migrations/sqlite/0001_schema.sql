-- Users, their revoked tokens, and service settings (the JWT secret).
-- Times are unix milliseconds.

CREATE TABLE users (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused: tokens name users by id
    email              TEXT    NOT NULL UNIQUE,
    password_hash      TEXT    NOT NULL,
    role               TEXT    NOT NULL DEFAULT 'user',
    status             TEXT    NOT NULL DEFAULT 'active'
                               CHECK (status IN ('active', 'deactivated')),
    version            INTEGER NOT NULL DEFAULT 1,
    tokens_valid_after INTEGER NOT NULL DEFAULT 0,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);

-- Every write bumps `version`, including one made by hand that forgets to:
-- caches compare versions to tell a stale record from a fresh one.
CREATE TRIGGER users_bump_version
AFTER UPDATE ON users
FOR EACH ROW WHEN NEW.version = OLD.version
BEGIN
    UPDATE users
       SET version = OLD.version + 1,
           updated_at = CAST(strftime('%s', 'now') AS INTEGER) * 1000
     WHERE id = NEW.id;
END;

-- Logged-out tokens, until they would have expired anyway.
CREATE TABLE revoked_tokens (
    sid        TEXT    PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL
);
CREATE INDEX revoked_tokens_by_user ON revoked_tokens (user_id, expires_at);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
