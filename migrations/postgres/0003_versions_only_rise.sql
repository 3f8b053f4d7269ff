-- A user's version only goes up and a user id names one user for ever.
-- Caches keep a record until an invalidation says it is older than some
-- version, and keep a "no such user" answer until told otherwise (a token
-- names its user by id). A write made by hand that lowered a version, or an
-- insert that gave a new user a deleted user's id, would leave a cached
-- answer that no invalidation ever replaces.

-- Any update that does not raise the version (a forgotten bump, or
-- `SET version = 1` by hand) gets one past the old version; the NOTIFY
-- trigger (AFTER) announces that one.
CREATE OR REPLACE FUNCTION sessiond_users_bump_version() RETURNS trigger AS $$
BEGIN
    IF NEW.id <> OLD.id THEN
        RAISE EXCEPTION 'a user id never changes: tokens name users by id'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF NEW.version <= OLD.version THEN
        NEW.version := OLD.version + 1;
        NEW.updated_at := (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

-- Ids come from the identity sequence, which never hands one out twice; an
-- INSERT that names its id is refused.
ALTER TABLE users ALTER COLUMN id SET GENERATED ALWAYS;

-- `OVERRIDING SYSTEM VALUE` still names an id: it must not be one a user
-- ever had. Every id that left the table is remembered (a few bytes per
-- deleted user), starting with those the sequence handed out before this
-- migration and that no user holds now.
CREATE TABLE retired_user_ids (
    id BIGINT PRIMARY KEY
);
INSERT INTO retired_user_ids (id)
SELECT g
  FROM generate_series(
           1,
           (SELECT CASE WHEN is_called THEN last_value ELSE 0 END
              FROM users_id_seq)) AS g
 WHERE NOT EXISTS (SELECT 1 FROM users WHERE users.id = g);

CREATE FUNCTION sessiond_users_retire_id() RETURNS trigger AS $$
BEGIN
    INSERT INTO retired_user_ids (id) VALUES (OLD.id) ON CONFLICT DO NOTHING;
    RETURN OLD;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER users_retire_id
AFTER DELETE ON users
FOR EACH ROW EXECUTE FUNCTION sessiond_users_retire_id();

CREATE FUNCTION sessiond_users_id_never_reused() RETURNS trigger AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM retired_user_ids WHERE id = NEW.id) THEN
        RAISE EXCEPTION 'user ids are generated: id % was used before', NEW.id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER users_id_never_reused
BEFORE INSERT ON users
FOR EACH ROW EXECUTE FUNCTION sessiond_users_id_never_reused();

-- TRUNCATE fires no row trigger: no NOTIFY, so every node would go on
-- serving the users it cached. Delete the rows instead.
CREATE FUNCTION sessiond_users_no_truncate() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'TRUNCATE users is refused: DELETE the rows, so that every node hears of it'
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER users_no_truncate
BEFORE TRUNCATE ON users
FOR EACH STATEMENT EXECUTE FUNCTION sessiond_users_no_truncate();
