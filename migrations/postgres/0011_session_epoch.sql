-- "Revoke all sessions" and deactivation raise the user's session epoch;
-- a token carries the epoch it was issued under and is revoked once the
-- user's is higher. A counter, so no node's clock is compared with another
-- node's (a node whose clock ran ahead issued tokens that outlived a
-- revoke-all under the old wall-clock watermark).
ALTER TABLE users ADD COLUMN session_epoch BIGINT NOT NULL DEFAULT 0;
