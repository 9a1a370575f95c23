-- Profiles, more login identities, search, account security, friends' remarks and blocks,
-- groups that are found and joined, read state, and notices kept for offline accounts.

-- Profiles: what an account shows of itself; `modified_at` is when it last changed (ms).
ALTER TABLE accounts ADD COLUMN signature   TEXT    NOT NULL DEFAULT '';
ALTER TABLE accounts ADD COLUMN description TEXT    NOT NULL DEFAULT '';
-- 0 unknown, 1 male, 2 female (seed 003's values), 3 other.
ALTER TABLE accounts ADD COLUMN sex         BIGINT  NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN status_text TEXT    NOT NULL DEFAULT '';
ALTER TABLE accounts ADD COLUMN modified_at BIGINT  NOT NULL DEFAULT 0;
-- A forgotten password is reset by answering this question; only the answer's hash is kept.
-- Wrong answers are counted; past the limit, answers are refused until `reset_blocked_until`.
ALTER TABLE accounts ADD COLUMN security_question    TEXT;
ALTER TABLE accounts ADD COLUMN security_answer_hash TEXT;
ALTER TABLE accounts ADD COLUMN reset_failures       BIGINT  NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN reset_blocked_until  BIGINT  NOT NULL DEFAULT 0;
-- A deleted account keeps its row (its ocid is never given again; its messages keep their
-- sender) but loses its identities, password, sessions, friends and memberships.
ALTER TABLE accounts ADD COLUMN deleted_at BIGINT ;
CREATE INDEX accounts_by_nickname ON accounts (lower(nickname), ocid);

-- A private name for a friend, seen only by the one who set it.
ALTER TABLE friends ADD COLUMN remark TEXT NOT NULL DEFAULT '';

-- `ocid` blocks `blocked`: no messages, requests or notices from `blocked` reach `ocid`.
CREATE TABLE blocks (
    ocid    BIGINT  NOT NULL REFERENCES accounts (ocid),
    blocked BIGINT  NOT NULL REFERENCES accounts (ocid),
    since   BIGINT  NOT NULL,
    PRIMARY KEY (ocid, blocked)
);

-- Groups: a description, an avatar, how they are joined (0 open, 1 approval), when they were
-- disbanded. Roles in `members`: 0 member, 1 owner, 2 admin.
ALTER TABLE chats ADD COLUMN description  TEXT    NOT NULL DEFAULT '';
ALTER TABLE chats ADD COLUMN avatar       TEXT    NOT NULL DEFAULT '';
ALTER TABLE chats ADD COLUMN join_mode    BIGINT  NOT NULL DEFAULT 1;
ALTER TABLE chats ADD COLUMN disbanded_at BIGINT ;
CREATE INDEX chats_by_name ON chats (lower(name), id) WHERE kind = 1;

-- How far each member has read each chat.
ALTER TABLE members ADD COLUMN read_index BIGINT  NOT NULL DEFAULT 0;

-- Asking to join a group that approves its members.
CREATE TABLE join_requests (
    chat_id    BIGINT  NOT NULL REFERENCES chats (id),
    ocid       BIGINT  NOT NULL REFERENCES accounts (ocid),
    message    TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    PRIMARY KEY (chat_id, ocid)
);
CREATE INDEX join_requests_by_account ON join_requests (ocid);

-- An invitation into a group: the invitee joins by accepting it (whatever the group's mode).
CREATE TABLE invitations (
    chat_id    BIGINT  NOT NULL REFERENCES chats (id),
    ocid       BIGINT  NOT NULL REFERENCES accounts (ocid),
    by_ocid    BIGINT  NOT NULL REFERENCES accounts (ocid),
    created_at BIGINT  NOT NULL,
    PRIMARY KEY (chat_id, ocid)
);
CREATE INDEX invitations_by_account ON invitations (ocid);

-- Notices for an account that must reach it even if it is offline when they happen (an answer
-- to its request to join a group, being removed from a group, a group disbanded): pushed at its
-- next login, then deleted. `body` is the notice as JSON.
CREATE TABLE pending_notices (
    id         BIGSERIAL PRIMARY KEY,
    ocid       BIGINT  NOT NULL REFERENCES accounts (ocid),
    body       TEXT    NOT NULL,
    created_at BIGINT  NOT NULL
);
CREATE INDEX pending_notices_by_account ON pending_notices (ocid, id);
