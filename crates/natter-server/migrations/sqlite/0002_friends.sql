-- Friends (seed 003 and 004): a pending request per (from, to), and accepted friendships
-- stored once per direction so either side reads its list with one index scan.

CREATE TABLE friend_requests (
    from_ocid  INTEGER NOT NULL REFERENCES accounts (ocid),
    to_ocid    INTEGER NOT NULL REFERENCES accounts (ocid),
    message    TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (from_ocid, to_ocid)
);
CREATE INDEX friend_requests_to ON friend_requests (to_ocid);

CREATE TABLE friends (
    ocid   INTEGER NOT NULL REFERENCES accounts (ocid),
    friend INTEGER NOT NULL REFERENCES accounts (ocid),
    since  INTEGER NOT NULL,
    PRIMARY KEY (ocid, friend)
);
