-- Friends (seed 003 and 004): a pending request per (from, to), and accepted friendships
-- stored once per direction so either side reads its list with one index scan.

CREATE TABLE friend_requests (
    from_ocid  BIGINT  NOT NULL REFERENCES accounts (ocid),
    to_ocid    BIGINT  NOT NULL REFERENCES accounts (ocid),
    message    TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    PRIMARY KEY (from_ocid, to_ocid)
);
CREATE INDEX friend_requests_to ON friend_requests (to_ocid);

CREATE TABLE friends (
    ocid   BIGINT  NOT NULL REFERENCES accounts (ocid),
    friend BIGINT  NOT NULL REFERENCES accounts (ocid),
    since  BIGINT  NOT NULL,
    PRIMARY KEY (ocid, friend)
);
