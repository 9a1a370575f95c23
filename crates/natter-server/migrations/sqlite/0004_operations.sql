-- Operations: account standing, invitations, the notices a running server polls, and a row per
-- node that readiness checks write.
--
-- accounts.status: 0 active, 1 banned, 2 deleted (a deleted account keeps its ocid and its
-- messages; its email, password and sessions are gone).

-- Single-use invitation codes (registration in `invite` mode). Only a hash of the code is kept.
CREATE TABLE invites (
    code_hash  BLOB    PRIMARY KEY,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    used_by    INTEGER REFERENCES accounts (ocid),
    used_at    INTEGER
);

-- "The standing of this account changed" (a ban, a deletion, a revoked login): every node polls
-- this table and has the account's live connections check their standing again.
CREATE TABLE account_events (
    id   INTEGER PRIMARY KEY AUTOINCREMENT,
    ocid INTEGER NOT NULL,
    at   INTEGER NOT NULL
);

-- Written by readiness checks: "the store accepts a write".
CREATE TABLE node_checks (
    node TEXT    PRIMARY KEY,
    at   INTEGER NOT NULL
);
