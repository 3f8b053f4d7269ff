-- The change log and the leases are what a write's confirmation relies on
-- (docs/freshness.md). TRUNCATE fires no row trigger: emptying the log or
-- the head would hand change numbers out again, and emptying the leases
-- would make writers stop waiting for nodes that still answer from their
-- caches. The head row is never deleted.
CREATE FUNCTION sessiond_lease_tables_no_truncate() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'TRUNCATE % is refused: the freshness protocol relies on it (sessiond prunes it itself)', TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER sessiond_changes_no_truncate
BEFORE TRUNCATE ON sessiond_changes
FOR EACH STATEMENT EXECUTE FUNCTION sessiond_lease_tables_no_truncate();

CREATE TRIGGER sessiond_change_head_no_truncate
BEFORE TRUNCATE ON sessiond_change_head
FOR EACH STATEMENT EXECUTE FUNCTION sessiond_lease_tables_no_truncate();

CREATE TRIGGER sessiond_leases_no_truncate
BEFORE TRUNCATE ON sessiond_leases
FOR EACH STATEMENT EXECUTE FUNCTION sessiond_lease_tables_no_truncate();

CREATE FUNCTION sessiond_change_head_no_delete() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'DELETE FROM sessiond_change_head is refused: its one row numbers every change'
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER sessiond_change_head_no_delete
BEFORE DELETE ON sessiond_change_head
FOR EACH ROW EXECUTE FUNCTION sessiond_change_head_no_delete();
