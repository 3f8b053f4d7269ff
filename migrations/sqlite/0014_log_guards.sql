-- The head of the change log numbers every change (docs/freshness.md):
-- its one row is never deleted, or numbers would be handed out again.
CREATE TRIGGER sessiond_change_head_no_delete BEFORE DELETE ON sessiond_change_head
BEGIN
    SELECT RAISE(ABORT, 'DELETE FROM sessiond_change_head is refused: its one row numbers every change');
END;
