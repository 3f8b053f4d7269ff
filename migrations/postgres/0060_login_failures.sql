-- Failed logins of strangers, per account, counted in the one place every
-- node shares: however many nodes serve logins, an account gets no more
-- guesses per window than one node would allow. `account` is the email
-- tried (lower-cased); rows older than the login window are deleted as
-- new ones are written.
CREATE TABLE login_failures (
    id BIGSERIAL PRIMARY KEY,
    account TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX login_failures_account_at ON login_failures (account, at);
CREATE INDEX login_failures_at ON login_failures (at);
