-- The length of the lease a row grants, as its holder counts it (on its
-- own monotonic clock, from before it asked). A writer that reads the row
-- waits at most this long, on its own monotonic clock, for the holder to
-- confirm: the database's clock, which may step, no longer decides when a
-- lease is over (docs/freshness.md, "The database's clock"). NULL in rows
-- written before this column: the writer then reads `expires_ms`.
ALTER TABLE sessiond_leases ADD COLUMN lease_ms BIGINT;
