-- User ids as the application spells them: an integer, a UUID, a cuid, a
-- nanoid... sessiond's own tables keep a user id as its text form (the
-- decimal of an integer id), so they can name any user; the `users` table
-- keeps its INTEGER ids, named here as text. SQLite cannot change a
-- column's type: each table is rebuilt, every row kept.

-- The triggers that write the change log go first (a rename checks every
-- trigger, and theirs would name a table that is gone for a moment); they
-- come back below, writing the id's text.
DROP TRIGGER users_log_insert;
DROP TRIGGER users_log_update;
DROP TRIGGER users_log_delete;
DROP TRIGGER revoked_tokens_log_insert;
DROP TRIGGER revoked_tokens_log_delete;

-- The change log.
CREATE TABLE sessiond_changes_new (
    seq     INTEGER PRIMARY KEY,
    user_id TEXT    NOT NULL,
    version INTEGER           -- NULL: the version is unknown (row gone, token revoked)
);
INSERT INTO sessiond_changes_new (seq, user_id, version)
    SELECT seq, CAST(user_id AS TEXT), version FROM sessiond_changes;
DROP TABLE sessiond_changes;
ALTER TABLE sessiond_changes_new RENAME TO sessiond_changes;

-- Revoked tokens may name a user no `users` row holds: no foreign key. A
-- deleted user's revoked tokens still go with it, by a trigger.
CREATE TABLE revoked_tokens_new (
    sid        TEXT    PRIMARY KEY,
    user_id    TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
);
INSERT INTO revoked_tokens_new (sid, user_id, expires_at)
    SELECT sid, CAST(user_id AS TEXT), expires_at FROM revoked_tokens;
DROP TABLE revoked_tokens;
ALTER TABLE revoked_tokens_new RENAME TO revoked_tokens;
CREATE INDEX revoked_tokens_by_user ON revoked_tokens (user_id, expires_at);

-- The audit trail.
CREATE TABLE audit_log_new (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    actor_id    TEXT,
    actor_email TEXT,
    action      TEXT    NOT NULL,
    target_id   TEXT,
    detail      TEXT,
    client      TEXT,
    request_id  TEXT
);
INSERT INTO audit_log_new (id, at, actor_id, actor_email, action, target_id, detail, client,
                           request_id)
    SELECT id, at, CAST(actor_id AS TEXT), actor_email, action, CAST(target_id AS TEXT), detail,
           client, request_id
      FROM audit_log;
DROP TABLE audit_log;
ALTER TABLE audit_log_new RENAME TO audit_log;
CREATE INDEX audit_log_by_time ON audit_log (at);

-- The change log's triggers, as before but for the id's text.
CREATE TRIGGER users_log_insert AFTER INSERT ON users
BEGIN
    UPDATE sessiond_change_head SET seq = seq + 1 WHERE id = 1;
    INSERT INTO sessiond_changes (seq, user_id, version)
        SELECT seq, CAST(NEW.id AS TEXT), NEW.version FROM sessiond_change_head WHERE id = 1;
END;

-- With the version bump (itself an UPDATE from a trigger) a change may be
-- logged twice, the bumped version among them: caches keep the highest.
CREATE TRIGGER users_log_update AFTER UPDATE ON users
BEGIN
    UPDATE sessiond_change_head SET seq = seq + 1 WHERE id = 1;
    INSERT INTO sessiond_changes (seq, user_id, version)
        SELECT seq, CAST(NEW.id AS TEXT), NEW.version FROM sessiond_change_head WHERE id = 1;
END;

CREATE TRIGGER users_log_delete AFTER DELETE ON users
BEGIN
    UPDATE sessiond_change_head SET seq = seq + 1 WHERE id = 1;
    INSERT INTO sessiond_changes (seq, user_id, version)
        SELECT seq, CAST(OLD.id AS TEXT), NULL FROM sessiond_change_head WHERE id = 1;
END;

CREATE TRIGGER revoked_tokens_log_insert AFTER INSERT ON revoked_tokens
BEGIN
    UPDATE sessiond_change_head SET seq = seq + 1 WHERE id = 1;
    INSERT INTO sessiond_changes (seq, user_id, version)
        SELECT seq, NEW.user_id, NULL FROM sessiond_change_head WHERE id = 1;
END;

CREATE TRIGGER revoked_tokens_log_delete AFTER DELETE ON revoked_tokens
BEGIN
    UPDATE sessiond_change_head SET seq = seq + 1 WHERE id = 1;
    INSERT INTO sessiond_changes (seq, user_id, version)
        SELECT seq, OLD.user_id, NULL FROM sessiond_change_head WHERE id = 1;
END;

-- A deleted user's revoked tokens go with it (the foreign key did this).
CREATE TRIGGER users_drop_revoked AFTER DELETE ON users
BEGIN
    DELETE FROM revoked_tokens WHERE user_id = CAST(OLD.id AS TEXT);
END;
