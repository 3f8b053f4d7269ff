-- A user's version only goes up and a user id names one user for ever.
-- Caches keep a record until an invalidation says it is older than some
-- version, and keep a "no such user" answer until told otherwise (a token
-- names its user by id). A write made by hand that lowered a version, or an
-- insert that gave a new user a deleted user's id, would leave a cached
-- answer that no invalidation ever replaces.

-- Any update that does not raise the version (a forgotten bump, or
-- `SET version = 1` by hand) gets one past the old version.
DROP TRIGGER users_bump_version;
CREATE TRIGGER users_bump_version
AFTER UPDATE ON users
FOR EACH ROW WHEN NEW.version <= OLD.version
BEGIN
    UPDATE users
       SET version = OLD.version + 1,
           updated_at = CAST(strftime('%s', 'now') AS INTEGER) * 1000
     WHERE id = NEW.id;
END;

CREATE TRIGGER users_id_is_fixed
BEFORE UPDATE OF id ON users
FOR EACH ROW WHEN NEW.id IS NOT OLD.id
BEGIN
    SELECT RAISE(ABORT, 'a user id never changes: tokens name users by id');
END;

-- AUTOINCREMENT never hands out an id twice, but an insert that names its
-- id (or an INSERT OR REPLACE) could still take one. `sqlite_sequence`
-- holds the highest id handed out before this statement (it is written
-- back when the statement ends), so any id at or below it was used before.
CREATE TRIGGER users_id_never_reused
AFTER INSERT ON users
FOR EACH ROW WHEN NEW.id <= COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'users'), 0)
BEGIN
    SELECT RAISE(ABORT, 'user ids are generated: this id was used before');
END;
