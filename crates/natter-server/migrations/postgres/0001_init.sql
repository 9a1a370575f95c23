-- natter's PostgreSQL schema: the same tables as the SQLite one. Times are Unix milliseconds.

CREATE SEQUENCE accounts_ocid_seq START WITH 10001;

CREATE TABLE accounts (
    ocid          BIGINT  PRIMARY KEY DEFAULT nextval('accounts_ocid_seq'),
    uuid          TEXT    NOT NULL UNIQUE,
    email         TEXT    UNIQUE,
    phone         TEXT    UNIQUE,
    username      TEXT    UNIQUE,
    nickname      TEXT    NOT NULL,
    avatar        TEXT    NOT NULL DEFAULT '',
    status        BIGINT  NOT NULL DEFAULT 0,
    password_hash TEXT    NOT NULL,
    created_at    BIGINT  NOT NULL
);
ALTER SEQUENCE accounts_ocid_seq OWNED BY accounts.ocid;

-- Login sessions: only a hash of the token is kept.
CREATE TABLE sessions (
    token_hash BYTEA   PRIMARY KEY,
    ocid       BIGINT  NOT NULL REFERENCES accounts (ocid),
    created_at BIGINT  NOT NULL,
    expires_at BIGINT  NOT NULL,
    revoked    BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX sessions_by_account ON sessions (ocid);

-- kind 0 = private (pair_lo < pair_hi are its two accounts), 1 = group (owner set).
-- last_index is the index of the newest message: the next one gets last_index + 1, assigned
-- under this row's lock, so indexes are gapless and unique whichever node appends.
CREATE TABLE chats (
    id         BIGSERIAL PRIMARY KEY,
    kind       BIGINT   NOT NULL,
    name       TEXT     NOT NULL DEFAULT '',
    owner      BIGINT   REFERENCES accounts (ocid),
    pair_lo    BIGINT   REFERENCES accounts (ocid),
    pair_hi    BIGINT   REFERENCES accounts (ocid),
    last_index BIGINT   NOT NULL DEFAULT 0,
    created_at BIGINT   NOT NULL,
    UNIQUE (pair_lo, pair_hi)
);

-- joined_index: the chat's last_index when the account joined (it is sent what follows).
-- delivered_index: the highest index written to any connection of the account.
CREATE TABLE members (
    chat_id         BIGINT   NOT NULL REFERENCES chats (id),
    ocid            BIGINT   NOT NULL REFERENCES accounts (ocid),
    role            BIGINT   NOT NULL DEFAULT 0,
    joined_index    BIGINT   NOT NULL DEFAULT 0,
    delivered_index BIGINT   NOT NULL DEFAULT 0,
    joined_at       BIGINT   NOT NULL,
    PRIMARY KEY (chat_id, ocid)
);
CREATE INDEX members_by_account ON members (ocid, chat_id);

CREATE TABLE messages (
    id         BIGSERIAL PRIMARY KEY,
    chat_id    BIGINT   NOT NULL REFERENCES chats (id),
    idx        BIGINT   NOT NULL,
    sender     BIGINT   NOT NULL REFERENCES accounts (ocid),
    kind       BIGINT   NOT NULL,
    parts      TEXT     NOT NULL,
    client_id  TEXT,
    created_at BIGINT   NOT NULL,
    UNIQUE (chat_id, idx)
);
CREATE UNIQUE INDEX messages_by_client_id ON messages (sender, client_id) WHERE client_id IS NOT NULL;
