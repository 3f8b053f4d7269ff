-- User ids as the application spells them: an integer, a UUID, a cuid, a
-- nanoid... sessiond's own tables keep a user id as its text form (the
-- decimal of an integer id), so they can name any user; the `users` table
-- of the embedded mode keeps its BIGINT ids, named here as text.
-- Every row is kept.

-- The change log.
ALTER TABLE sessiond_changes ALTER COLUMN user_id TYPE TEXT USING user_id::text;

DROP FUNCTION sessiond_log_change(BIGINT, BIGINT);
CREATE FUNCTION sessiond_log_change(uid TEXT, ver BIGINT) RETURNS void AS $$
DECLARE
    s BIGINT;
BEGIN
    UPDATE sessiond_change_head SET seq = seq + 1 WHERE id = 1 RETURNING seq INTO s;
    INSERT INTO sessiond_changes (seq, user_id, version) VALUES (s, uid, ver);
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION sessiond_users_log() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM sessiond_log_change(OLD.id::text, NULL);
    ELSE
        PERFORM sessiond_log_change(NEW.id::text, NEW.version);
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

-- Revoked tokens may name a user no `users` row holds: no foreign key. A
-- deleted user's revoked tokens still go with it, by a trigger.
ALTER TABLE revoked_tokens DROP CONSTRAINT IF EXISTS revoked_tokens_user_id_fkey;
ALTER TABLE revoked_tokens ALTER COLUMN user_id TYPE TEXT USING user_id::text;

CREATE FUNCTION sessiond_users_drop_revoked() RETURNS trigger AS $$
BEGIN
    DELETE FROM revoked_tokens WHERE user_id = OLD.id::text;
    RETURN OLD;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER users_drop_revoked
AFTER DELETE ON users
FOR EACH ROW EXECUTE FUNCTION sessiond_users_drop_revoked();

-- The audit trail.
ALTER TABLE audit_log ALTER COLUMN actor_id TYPE TEXT USING actor_id::text;
ALTER TABLE audit_log ALTER COLUMN target_id TYPE TEXT USING target_id::text;
