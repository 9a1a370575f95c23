-- Files: uploads being received, finished files, the chats each file was sent in, and the
-- installation's own secrets (the key that signs file links). The bytes live in the blob store
-- (see docs/protocol/files.md), named by their SHA-256: the same bytes are kept once.

-- An upload in progress (tus); its bytes so far are in the staging area under its id.
CREATE TABLE uploads (
    id         TEXT    PRIMARY KEY,
    owner      INTEGER NOT NULL REFERENCES accounts (ocid),
    name       TEXT    NOT NULL,
    mime       TEXT    NOT NULL,
    length     INTEGER NOT NULL,
    metadata   TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX uploads_by_owner ON uploads (owner);
CREATE INDEX uploads_by_expiry ON uploads (expires_at);

-- A finished upload. `public`: readable by anyone (it is or was an avatar).
CREATE TABLE files (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT    NOT NULL UNIQUE,
    owner      INTEGER NOT NULL REFERENCES accounts (ocid),
    name       TEXT    NOT NULL,
    size       INTEGER NOT NULL,
    mime       TEXT    NOT NULL,
    sha256     TEXT    NOT NULL,
    width      INTEGER,
    height     INTEGER,
    public     INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
CREATE INDEX files_by_owner ON files (owner);
CREATE INDEX files_by_hash ON files (sha256);
CREATE INDEX files_by_created ON files (created_at);

-- The chats a file was sent in: their members may read it.
CREATE TABLE file_refs (
    file_seq INTEGER NOT NULL REFERENCES files (seq),
    chat_id  INTEGER NOT NULL REFERENCES chats (id),
    PRIMARY KEY (file_seq, chat_id)
);

CREATE TABLE server_keys (
    name   TEXT PRIMARY KEY,
    secret BLOB NOT NULL
);
