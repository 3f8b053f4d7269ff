-- Freshness leases (docs/freshness.md). Every change to a user is numbered
-- in commit order in a change log; each node's lease records the newest
-- change it has applied (`seen`) and when the lease ends by the database
-- machine's clock. A writer waits for every running lease that has not seen
-- its change to confirm it or to end. SQLite runs one writer at a time, so
-- numbers follow commit order.

CREATE TABLE sessiond_change_head (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    seq    INTEGER NOT NULL,  -- the newest change's number
    pruned INTEGER NOT NULL   -- changes up to here are no longer kept
);
INSERT INTO sessiond_change_head (id, seq, pruned) VALUES (1, 0, 0);

CREATE TABLE sessiond_changes (
    seq     INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL,
    version INTEGER           -- NULL: the version is unknown (row gone, token revoked)
);

CREATE TABLE sessiond_leases (
    instance   INTEGER PRIMARY KEY,  -- one process (a restart is another)
    node       TEXT    NOT NULL,
    seen       INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL      -- unix ms
);

CREATE TRIGGER users_log_insert AFTER INSERT ON users
BEGIN
    UPDATE sessiond_change_head SET seq = seq + 1 WHERE id = 1;
    INSERT INTO sessiond_changes (seq, user_id, version)
        SELECT seq, NEW.id, NEW.version FROM sessiond_change_head WHERE id = 1;
END;

-- With the version bump (itself an UPDATE from a trigger) a change may be
-- logged twice, the bumped version among them: caches keep the highest.
CREATE TRIGGER users_log_update AFTER UPDATE ON users
BEGIN
    UPDATE sessiond_change_head SET seq = seq + 1 WHERE id = 1;
    INSERT INTO sessiond_changes (seq, user_id, version)
        SELECT seq, NEW.id, NEW.version FROM sessiond_change_head WHERE id = 1;
END;

CREATE TRIGGER users_log_delete AFTER DELETE ON users
BEGIN
    UPDATE sessiond_change_head SET seq = seq + 1 WHERE id = 1;
    INSERT INTO sessiond_changes (seq, user_id, version)
        SELECT seq, OLD.id, NULL FROM sessiond_change_head WHERE id = 1;
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
