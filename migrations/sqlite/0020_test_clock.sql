-- A shift added to this server's clock wherever the lease statements read
-- it (src/store/lease.rs). Always 0 in service; the fault tests and the
-- history checker step it forward and back to play a database host whose
-- clock jumps (NTP stepping it, a VM resumed, a failover to a standby whose
-- clock is ahead).
CREATE TABLE sessiond_test_clock (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    offset_ms INTEGER NOT NULL
);
INSERT INTO sessiond_test_clock (id, offset_ms) VALUES (1, 0);
