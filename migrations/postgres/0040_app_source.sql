-- Users that live in the application's own table (`[source] kind = "app"`,
-- docs/adopting.md). sessiond adds no column to that table: what it keeps
-- per user (the version caches compare, the session epoch, the
-- revoke-all watermark, logged-out token ids) lives here, keyed by the
-- user id in its text form. A user with no row here has version 0 and has
-- never had its sessions revoked.

CREATE TABLE source_users (
    user_id            TEXT   PRIMARY KEY,
    version            BIGINT NOT NULL,
    session_epoch      BIGINT NOT NULL DEFAULT 0,
    tokens_valid_after BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE source_revoked_tokens (
    sid        TEXT   PRIMARY KEY,
    user_id    TEXT   NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX source_revoked_tokens_by_user ON source_revoked_tokens (user_id, expires_at);

-- One change to the app's user `uid`: its version rises (a row is made
-- at 1), the change is numbered into the change log and announced on
-- `sessiond_users`, as the own users' triggers do. `gone`: the row was
-- deleted (or its id changed away): the change carries no version, so
-- every node drops whatever it cached. The triggers that
-- `sessiond source install` puts on the app's table call this.
CREATE FUNCTION source_changed(uid TEXT, gone BOOLEAN) RETURNS BIGINT AS $$
DECLARE
    v BIGINT;
BEGIN
    INSERT INTO source_users (user_id, version) VALUES (uid, 1)
    ON CONFLICT (user_id) DO UPDATE SET version = source_users.version + 1
    RETURNING version INTO v;
    IF gone THEN
        v := NULL;
    END IF;
    PERFORM sessiond_log_change(uid::BIGINT, v);
    PERFORM pg_notify('sessiond_users', uid || ':' || COALESCE(v::TEXT, ''));
    RETURN v;
END;
$$ LANGUAGE plpgsql;

-- TRUNCATE fires no row trigger: the nodes would go on serving the users
-- they cached. Installed on the app's table as on sessiond's own.
CREATE FUNCTION source_no_truncate() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'TRUNCATE % is refused while sessiond serves its users: DELETE the rows, so that every node hears of it (or run `sessiond source uninstall` first)', TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;
