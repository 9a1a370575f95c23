-- Delivery state per device: one row per login session (its token hash) and chat, holding the
-- highest index written to that device with nothing missing below it. A device that resumes is
-- sent exactly what comes after its own marks, whatever the account's other devices received.
-- members.delivered_index stays the furthest any device of the account got: a brand-new login
-- starts there.
CREATE TABLE device_marks (
    token_hash      BLOB    NOT NULL REFERENCES sessions (token_hash) ON DELETE CASCADE,
    chat_id         INTEGER NOT NULL REFERENCES chats (id),
    delivered_index INTEGER NOT NULL,
    PRIMARY KEY (token_hash, chat_id)
) WITHOUT ROWID;

-- Sessions from before this table start where their account was.
INSERT INTO device_marks (token_hash, chat_id, delivered_index)
SELECT s.token_hash, m.chat_id, m.delivered_index
FROM sessions s JOIN members m ON m.ocid = s.ocid
WHERE s.revoked = 0;
