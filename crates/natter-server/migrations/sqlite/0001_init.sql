-- natter's SQLite schema. Times are Unix milliseconds.

CREATE TABLE accounts (
    ocid          INTEGER PRIMARY KEY,
    uuid          TEXT    NOT NULL UNIQUE,
    email         TEXT    UNIQUE,
    phone         TEXT    UNIQUE,
    username      TEXT    UNIQUE,
    nickname      TEXT    NOT NULL,
    avatar        TEXT    NOT NULL DEFAULT '',
    status        INTEGER NOT NULL DEFAULT 0,
    password_hash TEXT    NOT NULL,
    created_at    INTEGER NOT NULL
);

-- Login sessions: only a hash of the token is kept.
CREATE TABLE sessions (
    token_hash BLOB    PRIMARY KEY,
    ocid       INTEGER NOT NULL REFERENCES accounts (ocid),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX sessions_by_account ON sessions (ocid);

-- kind 0 = private (pair_lo < pair_hi are its two accounts), 1 = group (owner set).
-- last_index is the index of the newest message: the next one gets last_index + 1.
CREATE TABLE chats (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       INTEGER NOT NULL,
    name       TEXT    NOT NULL DEFAULT '',
    owner      INTEGER REFERENCES accounts (ocid),
    pair_lo    INTEGER REFERENCES accounts (ocid),
    pair_hi    INTEGER REFERENCES accounts (ocid),
    last_index INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    UNIQUE (pair_lo, pair_hi)
);

-- joined_index: the chat's last_index when the account joined (it is sent what follows).
-- delivered_index: the highest index written to any connection of the account.
CREATE TABLE members (
    chat_id         INTEGER NOT NULL REFERENCES chats (id),
    ocid            INTEGER NOT NULL REFERENCES accounts (ocid),
    role            INTEGER NOT NULL DEFAULT 0,
    joined_index    INTEGER NOT NULL DEFAULT 0,
    delivered_index INTEGER NOT NULL DEFAULT 0,
    joined_at       INTEGER NOT NULL,
    PRIMARY KEY (chat_id, ocid)
);
CREATE INDEX members_by_account ON members (ocid, chat_id);

CREATE TABLE messages (
    id         INTEGER PRIMARY KEY,
    chat_id    INTEGER NOT NULL REFERENCES chats (id),
    idx        INTEGER NOT NULL,
    sender     INTEGER NOT NULL REFERENCES accounts (ocid),
    kind       INTEGER NOT NULL,
    parts      TEXT    NOT NULL,
    client_id  TEXT,
    created_at INTEGER NOT NULL,
    UNIQUE (chat_id, idx)
);
CREATE UNIQUE INDEX messages_by_client_id ON messages (sender, client_id) WHERE client_id IS NOT NULL;
