-- The service-code dialect's credentials: each account may have one service token, a secret its
-- owner chose, kept only as a keyed BLAKE2b-256 hash (hex) so that requests presenting the token
-- alone find their account by it.
CREATE TABLE service_tokens (
    ocid       INTEGER PRIMARY KEY REFERENCES accounts (ocid),
    hash       TEXT    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

-- Keys the server draws once and every node shares (hex). Id 1: the key of service token hashes.
CREATE TABLE server_keys (
    id    INTEGER PRIMARY KEY,
    value TEXT    NOT NULL
);
