-- Operations: account standing, invitations, the notices a running server polls, and a row per
-- node that readiness checks write.
--
-- accounts.status: 0 active, 1 banned, 2 deleted (a deleted account keeps its ocid and its
-- messages; its email, password and sessions are gone).

-- Single-use invitation codes (registration in `invite` mode). Only a hash of the code is kept.
CREATE TABLE invites (
    code_hash  BYTEA   PRIMARY KEY,
    created_at BIGINT  NOT NULL,
    expires_at BIGINT,
    used_by    BIGINT  REFERENCES accounts (ocid),
    used_at    BIGINT
);

-- "The standing of this account changed" (a ban, a deletion, a revoked login): every node polls
-- this table and has the account's live connections check their standing again.
CREATE TABLE account_events (
    id   BIGSERIAL PRIMARY KEY,
    ocid BIGINT    NOT NULL,
    at   BIGINT    NOT NULL
);

-- Written by readiness checks: "the store accepts a write".
CREATE TABLE node_checks (
    node TEXT    PRIMARY KEY,
    at   BIGINT  NOT NULL
);
