-- Freshness leases (docs/freshness.md). Every change to a user is numbered
-- in commit order in a change log; each node's lease records the newest
-- change it has applied (`seen`) and when the lease ends by this server's
-- clock. A writer waits for every running lease that has not seen its
-- change to confirm it or to end.

CREATE TABLE sessiond_change_head (
    id     INT    PRIMARY KEY CHECK (id = 1),
    seq    BIGINT NOT NULL,  -- the newest change's number
    pruned BIGINT NOT NULL   -- changes up to here are no longer kept
);
INSERT INTO sessiond_change_head (id, seq, pruned) VALUES (1, 0, 0);

CREATE TABLE sessiond_changes (
    seq     BIGINT PRIMARY KEY,
    user_id BIGINT NOT NULL,
    version BIGINT           -- NULL: the version is unknown (row gone, token revoked)
);

CREATE TABLE sessiond_leases (
    instance   BIGINT PRIMARY KEY,  -- one process (a restart is another)
    node       TEXT   NOT NULL,
    seen       BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL      -- unix ms, this server's clock
);

-- Numbering takes the head row's lock until commit, so numbers follow
-- commit order and a lease granted at head N has seen every change up to N.
CREATE FUNCTION sessiond_log_change(uid BIGINT, ver BIGINT) RETURNS void AS $$
DECLARE
    s BIGINT;
BEGIN
    UPDATE sessiond_change_head SET seq = seq + 1 WHERE id = 1 RETURNING seq INTO s;
    INSERT INTO sessiond_changes (seq, user_id, version) VALUES (s, uid, ver);
END;
$$ LANGUAGE plpgsql;

CREATE FUNCTION sessiond_users_log() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM sessiond_log_change(OLD.id, NULL);
    ELSE
        PERFORM sessiond_log_change(NEW.id, NEW.version);
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER users_log
AFTER INSERT OR UPDATE OR DELETE ON users
FOR EACH ROW EXECUTE FUNCTION sessiond_users_log();

CREATE FUNCTION sessiond_revoked_log() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM sessiond_log_change(OLD.user_id, NULL);
    ELSE
        PERFORM sessiond_log_change(NEW.user_id, NULL);
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER revoked_tokens_log
AFTER INSERT OR DELETE ON revoked_tokens
FOR EACH ROW EXECUTE FUNCTION sessiond_revoked_log();
