-- Token signing keys (DESIGN §5): exactly one `active` key signs; keys
-- rotated out are `verifying` until `sessiond keys retire` removes them.
-- The secret stored before key ids existed becomes the key `legacy`, which
-- also checks tokens that name no key. Times are unix milliseconds.
CREATE TABLE signing_keys (
    kid        TEXT   PRIMARY KEY,
    secret     TEXT   NOT NULL,
    state      TEXT   NOT NULL CHECK (state IN ('active', 'verifying')),
    created_at BIGINT NOT NULL,
    rotated_at BIGINT
);
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (state) WHERE state = 'active';

INSERT INTO signing_keys (kid, secret, state, created_at)
SELECT 'legacy', value, 'active', (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT
  FROM settings WHERE key = 'jwt_secret';
DELETE FROM settings WHERE key = 'jwt_secret';
