-- Settings an account changes from their defaults: one row per account that changed one.
-- group_adds: who may put the account into a group without asking (0 everyone, 1 its friends,
-- 2 nobody); the others' groups invite it instead. No row: 1.
CREATE TABLE account_settings (
    ocid       INTEGER PRIMARY KEY REFERENCES accounts (ocid),
    group_adds INTEGER NOT NULL DEFAULT 1
);
