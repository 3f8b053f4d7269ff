-- Who did what to whom, when, from where: every admin action, kept for the
-- retention period (--audit-retention).
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    actor_id    INTEGER,
    actor_email TEXT,
    action      TEXT    NOT NULL,
    target_id   INTEGER,
    detail      TEXT,
    client      TEXT
);
CREATE INDEX audit_log_by_time ON audit_log (at);
