-- Operations: account standing, invitations, the notices a running server polls, and a row per
-- node that readiness checks write.
--
-- accounts.status: 0 active, 1 banned (a deleted account is marked by accounts.deleted_at).

-- Single-use invitation codes for registration (`--registration invite`); only a hash of each
-- code is kept. (Invitations into a group are the table `invitations`.)
CREATE TABLE invite_codes (
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
