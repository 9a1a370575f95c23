//! `Store` on an embedded SQLite database (WAL, `synchronous=FULL`).
//!
//! Three ways in, each for its job: a small sqlx pool for ordinary reads and writes
//! (accounts, sessions, chats, friends); read-only `rusqlite` connections used inline for the
//! point reads of the login and delivery paths (`reads.rs`); and one writer thread with its own
//! connection that commits every queued append and delivery mark in ONE transaction (group
//! commit, `writer.rs`): each message's index is assigned in that transaction, and no caller
//! hears back before the commit that made its message durable.

pub mod backup;
mod files;
mod reads;
mod service;
mod social;
mod writer;

use super::rows::{self, ACCOUNT_COLUMNS, AsSql, CHAT_COLUMNS, MESSAGE_COLUMNS, backend};
use super::{
    Account, Befriend, Chat, ChatId, Device, Friend, FriendRequest, Index, Invite, Membership,
    Message, NewAccount, NewMessage, Ocid, OnDurable, Range, Receipt, Result, Role, Row,
    SessionRow, Statistics, Store, StoreError, TableSpec,
};
use async_trait::async_trait;
use reads::{LiteRow, MEMBERSHIP_ONE_SQL, MEMBERSHIP_SQL, Readers, SESSION_SQL, decoded};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::path::Path;
use std::time::Duration;
use writer::{WriteJob, Writer};

pub struct SqliteStore {
    pool: SqlitePool,
    /// Connections for the short reads on the login and delivery paths, run inline.
    readers: Readers,
    /// Appends and delivery marks go to the writer thread. Marks ride the writer's
    /// transactions too: no second writer contends for SQLite's write lock, and no extra
    /// fsync is spent on them.
    writer: Writer,
    /// Taken by every write through the pool: they queue here, in order, rather than in
    /// SQLite's busy handler, whose sleeps (up to 100 ms each) would stall a burst of logins or
    /// new chats. Only the writer thread then competes with them for the file's write lock.
    writes: tokio::sync::Mutex<()>,
}

impl SqliteStore {
    /// Open (creating if missing) the database file and run the embedded migrations.
    ///
    /// # Errors
    /// The file cannot be opened or a migration fails.
    pub async fn open(path: &Path) -> Result<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.clone())
            .await
            .map_err(backend)?;
        // Another process (a server starting, `natter admin`) may be applying the same
        // migrations: SQLite has no migration lock, so the loser of that race tries again and
        // finds them applied.
        let mut attempt = 0;
        loop {
            match sqlx::migrate!("./migrations/sqlite").run(&pool).await {
                Ok(()) => break,
                Err(e) if attempt < 3 => {
                    attempt += 1;
                    tracing::debug!(error = %e, attempt, "migration failed; trying again");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(StoreError::Backend(format!("migration failed: {e}"))),
            }
        }
        Ok(Self {
            pool,
            readers: Readers::new(path),
            writer: Writer::start(path)?,
            writes: tokio::sync::Mutex::new(()),
        })
    }
}

impl SqliteStore {
    /// A chat's members with their roles, ascending.
    async fn chat_members(&self, id: ChatId) -> Result<Vec<(Ocid, Role)>> {
        let rows: Vec<(i64, i64)> =
            sqlx::query_as("SELECT ocid, role FROM members WHERE chat_id = ? ORDER BY ocid")
                .bind(id.sql())
                .fetch_all(&self.pool)
                .await
                .map_err(backend)?;
        Ok(rows
            .into_iter()
            .map(|(o, r)| (Ocid(o as u64), Role::from_code(r)))
            .collect())
    }

    /// A chat just written, read back whole.
    async fn written_chat(&self, id: i64) -> Result<Chat> {
        self.chat(ChatId(id as u64))
            .await?
            .ok_or_else(|| StoreError::Backend("a chat vanished right after it was written".into()))
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_account(&self, new: NewAccount) -> Result<Account> {
        let _turn = self.writes.lock().await;
        insert_account(&self.pool, &new).await
    }

    async fn account(&self, ocid: Ocid) -> Result<Option<Account>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE ocid = ?"
        ));
        let row = sqlx::query(sql)
            .bind(ocid.sql())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.as_ref().map(rows::account).transpose().map_err(backend)
    }

    async fn account_by_email(&self, email: &str) -> Result<Option<Account>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE email = ?"
        ));
        let row = sqlx::query(sql)
            .bind(email)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.as_ref().map(rows::account).transpose().map_err(backend)
    }

    async fn create_session(
        &self,
        ocid: Ocid,
        token_hash: &[u8],
        now: i64,
        expires_at: i64,
    ) -> Result<()> {
        let _turn = self.writes.lock().await;
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)?;
        sqlx::query(
            "INSERT INTO sessions (token_hash, ocid, created_at, expires_at) VALUES (?, ?, ?, ?)",
        )
        .bind(token_hash)
        .bind(ocid.sql())
        .bind(now)
        .bind(expires_at)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        sqlx::query(
            "INSERT INTO device_marks (token_hash, chat_id, delivered_index)
             SELECT ?, chat_id, delivered_index FROM members WHERE ocid = ?",
        )
        .bind(token_hash)
        .bind(ocid.sql())
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    async fn session(&self, token_hash: &[u8]) -> Result<Option<(SessionRow, Account)>> {
        self.readers.with(|c| {
            let mut st = c.prepare_cached(SESSION_SQL)?;
            let mut rows = st.query([token_hash])?;
            let Some(r) = rows.next()? else {
                return Ok(None);
            };
            let row = LiteRow(r);
            let session = decoded(rows::session(&row))?;
            let account = decoded(rows::account(&row))?;
            Ok(Some((session, account)))
        })
    }

    async fn revoke_session(&self, token_hash: &[u8]) -> Result<()> {
        let _turn = self.writes.lock().await;
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)?;
        sqlx::query("UPDATE sessions SET revoked = 1 WHERE token_hash = ?")
            .bind(token_hash)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        // A revoked login is never resumed: its delivery marks have no use any more.
        sqlx::query("DELETE FROM device_marks WHERE token_hash = ?")
            .bind(token_hash)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    async fn chat(&self, id: ChatId) -> Result<Option<Chat>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CHAT_COLUMNS} FROM chats WHERE id = ?"
        )))
        .bind(id.sql())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        let Some(row) = row else { return Ok(None) };
        let members = self.chat_members(id).await?;
        rows::chat(&row, id, members).map(Some).map_err(backend)
    }

    async fn find_private_chat(&self, a: Ocid, b: Ocid) -> Result<Option<ChatId>> {
        let (lo, hi) = (a.min(b), a.max(b));
        let id: Option<i64> =
            sqlx::query_scalar("SELECT id FROM chats WHERE pair_lo = ? AND pair_hi = ?")
                .bind(lo.sql())
                .bind(hi.sql())
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
        Ok(id.map(|i| ChatId(i as u64)))
    }

    async fn private_chat(&self, a: Ocid, b: Ocid, now: i64) -> Result<Chat> {
        let _turn = self.writes.lock().await;
        let (lo, hi) = (a.min(b), a.max(b));
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)?;
        let existing: Option<i64> =
            sqlx::query_scalar("SELECT id FROM chats WHERE pair_lo = ? AND pair_hi = ?")
                .bind(lo.sql())
                .bind(hi.sql())
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
        let id = match existing {
            Some(id) => id,
            None => {
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO chats (kind, pair_lo, pair_hi, created_at) VALUES (0, ?, ?, ?) RETURNING id",
                )
                .bind(lo.sql())
                .bind(hi.sql())
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(backend)?;
                for m in [lo, hi] {
                    sqlx::query("INSERT INTO members (chat_id, ocid, joined_at) VALUES (?, ?, ?)")
                        .bind(id)
                        .bind(m.sql())
                        .bind(now)
                        .execute(&mut *tx)
                        .await
                        .map_err(backend)?;
                }
                id
            }
        };
        tx.commit().await.map_err(backend)?;
        drop(_turn);
        self.written_chat(id).await
    }

    async fn create_group(
        &self,
        owner: Ocid,
        name: &str,
        members: &[Ocid],
        now: i64,
    ) -> Result<Chat> {
        let _turn = self.writes.lock().await;
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO chats (kind, name, owner, created_at) VALUES (1, ?, ?, ?) RETURNING id",
        )
        .bind(name)
        .bind(owner.sql())
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        let mut sorted = members.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        for m in &sorted {
            let role = i64::from(*m == owner);
            sqlx::query("INSERT INTO members (chat_id, ocid, role, joined_at) VALUES (?, ?, ?, ?)")
                .bind(id)
                .bind(m.sql())
                .bind(role)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)?;
        drop(_turn);
        self.written_chat(id).await
    }

    async fn queue_append(
        &self,
        new: NewMessage,
        on_durable: Option<OnDurable>,
    ) -> Result<Receipt> {
        self.writer
            .queue(|reply| {
                WriteJob::Append(rows::AppendJob {
                    new,
                    on_durable,
                    reply,
                })
            })
            .await
            .map(Receipt::new)
    }

    async fn messages(&self, chat: ChatId, range: Range, limit: u32) -> Result<Vec<Message>> {
        let query = match range {
            Range::Latest => sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE chat_id = ? ORDER BY idx DESC LIMIT ?"
            )))
            .bind(chat.sql())
            .bind(i64::from(limit)),
            Range::Before(i) => sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE chat_id = ? AND idx < ? ORDER BY idx DESC LIMIT ?"
            )))
            .bind(chat.sql())
            .bind(i.sql())
            .bind(i64::from(limit)),
            Range::After(i) => sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE chat_id = ? AND idx > ? ORDER BY idx ASC LIMIT ?"
            )))
            .bind(chat.sql())
            .bind(i.sql())
            .bind(i64::from(limit)),
        };
        let rows = query.fetch_all(&self.pool).await.map_err(backend)?;
        let mut out: Vec<Message> = rows
            .iter()
            .map(rows::message)
            .collect::<Result<_, _>>()
            .map_err(backend)?;
        if !matches!(range, Range::After(_)) {
            out.reverse();
        }
        Ok(out)
    }

    async fn memberships(&self, ocid: Ocid, device: &Device) -> Result<Vec<Membership>> {
        self.readers.with(|c| {
            let mut st = c.prepare_cached(MEMBERSHIP_SQL)?;
            let mut rows = st.query((ocid.sql(), &device.0[..]))?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(decoded(rows::membership(&LiteRow(r), true))?);
            }
            Ok(out)
        })
    }

    async fn membership(&self, ocid: Ocid, chat: ChatId) -> Result<Option<Membership>> {
        self.readers.with(|c| {
            let mut st = c.prepare_cached(MEMBERSHIP_ONE_SQL)?;
            let mut rows = st.query([ocid.sql(), chat.sql()])?;
            match rows.next()? {
                Some(r) => decoded(rows::membership(&LiteRow(r), false)).map(Some),
                None => Ok(None),
            }
        })
    }

    async fn mark_delivered(
        &self,
        ocid: Ocid,
        device: &Device,
        marks: &[(ChatId, Index)],
    ) -> Result<()> {
        if marks.is_empty() {
            return Ok(());
        }
        self.writer
            .request(|reply| WriteJob::Marks((ocid, *device, marks.to_vec(), reply)))
            .await
    }

    async fn request_friend(
        &self,
        from: Ocid,
        to: Ocid,
        message: &str,
        now: i64,
    ) -> Result<Befriend> {
        let _turn = self.writes.lock().await;
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)?;
        let (from, to) = (from.sql(), to.sql());
        let friends: Option<i64> =
            sqlx::query_scalar("SELECT since FROM friends WHERE ocid = ? AND friend = ?")
                .bind(from)
                .bind(to)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
        if friends.is_some() {
            return Ok(Befriend::AlreadyFriends);
        }
        let asked = sqlx::query("DELETE FROM friend_requests WHERE from_ocid = ? AND to_ocid = ?")
            .bind(to)
            .bind(from)
            .execute(&mut *tx)
            .await
            .map_err(backend)?
            .rows_affected();
        let outcome = if asked > 0 {
            befriend(&mut tx, from, to, now).await?;
            Befriend::Accepted
        } else {
            sqlx::query(
                "INSERT INTO friend_requests (from_ocid, to_ocid, message, created_at) VALUES (?, ?, ?, ?)
                 ON CONFLICT (from_ocid, to_ocid) DO UPDATE SET message = excluded.message, created_at = excluded.created_at",
            )
            .bind(from)
            .bind(to)
            .bind(message)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
            Befriend::Requested
        };
        tx.commit().await.map_err(backend)?;
        Ok(outcome)
    }

    async fn answer_friend_request(
        &self,
        to: Ocid,
        from: Ocid,
        accept: bool,
        now: i64,
    ) -> Result<bool> {
        let _turn = self.writes.lock().await;
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)?;
        let (from, to) = (from.sql(), to.sql());
        let found = sqlx::query("DELETE FROM friend_requests WHERE from_ocid = ? AND to_ocid = ?")
            .bind(from)
            .bind(to)
            .execute(&mut *tx)
            .await
            .map_err(backend)?
            .rows_affected()
            > 0;
        if found && accept {
            befriend(&mut tx, from, to, now).await?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(found)
    }

    async fn remove_friend(&self, a: Ocid, b: Ocid) -> Result<bool> {
        let _turn = self.writes.lock().await;
        let removed = sqlx::query(
            "DELETE FROM friends WHERE (ocid = ? AND friend = ?) OR (ocid = ? AND friend = ?)",
        )
        .bind(a.sql())
        .bind(b.sql())
        .bind(b.sql())
        .bind(a.sql())
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(removed.rows_affected() > 0)
    }

    async fn friends(&self, ocid: Ocid) -> Result<Vec<Friend>> {
        self.readers.with(|c| {
            let mut st = c.prepare_cached(
                "SELECT friend, since, remark FROM friends WHERE ocid = ?1 ORDER BY friend",
            )?;
            let rows = st.query_map([ocid.sql()], |r| {
                Ok(Friend {
                    ocid: Ocid(r.get::<_, i64>(0)? as u64),
                    since: r.get(1)?,
                    remark: r.get(2)?,
                })
            })?;
            rows.collect()
        })
    }

    async fn friend_requests(&self, to: Ocid) -> Result<Vec<FriendRequest>> {
        let rows = sqlx::query(
            "SELECT from_ocid, message, created_at FROM friend_requests WHERE to_ocid = ? ORDER BY created_at, from_ocid",
        )
        .bind(to.sql())
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|r| rows::friend_request(r, to))
            .collect::<Result<_, _>>()
            .map_err(backend)
    }

    async fn accounts(&self, after: Ocid, limit: u32) -> Result<Vec<Account>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE ocid > ? ORDER BY ocid LIMIT ?"
        ));
        let rows = sqlx::query(sql)
            .bind(after.sql())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter()
            .map(rows::account)
            .collect::<Result<_, _>>()
            .map_err(backend)
    }

    async fn set_account_status(&self, ocid: Ocid, status: i64) -> Result<bool> {
        let _turn = self.writes.lock().await;
        let done = sqlx::query("UPDATE accounts SET status = ? WHERE ocid = ?")
            .bind(status)
            .bind(ocid.sql())
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }

    async fn statistics(&self, now: i64) -> Result<Statistics> {
        let row = sqlx::query(STATISTICS_SQL)
            .bind(now)
            .fetch_one(&self.pool)
            .await
            .map_err(backend)?;
        rows::statistics(&row).map_err(backend)
    }

    async fn create_invite(
        &self,
        code_hash: &[u8],
        now: i64,
        expires_at: Option<i64>,
    ) -> Result<()> {
        let _turn = self.writes.lock().await;
        sqlx::query(
            "INSERT INTO invite_codes (code_hash, created_at, expires_at) VALUES (?, ?, ?)",
        )
        .bind(code_hash)
        .bind(now)
        .bind(expires_at)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn invites(&self) -> Result<Vec<Invite>> {
        let rows = sqlx::query(
            "SELECT code_hash, created_at, expires_at, used_by, used_at FROM invite_codes
             ORDER BY created_at DESC, code_hash",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|r| {
                use sqlx::Row;
                Ok(Invite {
                    code_hash: r.try_get("code_hash")?,
                    created_at: r.try_get("created_at")?,
                    expires_at: r.try_get("expires_at")?,
                    used_by: r
                        .try_get::<Option<i64>, _>("used_by")?
                        .map(|o| Ocid(o as u64)),
                    used_at: r.try_get("used_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(backend)
    }

    async fn create_account_invited(
        &self,
        new: NewAccount,
        code_hash: &[u8],
        now: i64,
    ) -> Result<Account> {
        let _turn = self.writes.lock().await;
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)?;
        check_invite(&mut tx, code_hash, now).await?;
        let account = insert_account(&mut *tx, &new).await?;
        use_invite(&mut tx, code_hash, account.ocid, now).await?;
        tx.commit().await.map_err(backend)?;
        Ok(account)
    }

    async fn post_account_event(&self, ocid: Ocid, now: i64) -> Result<()> {
        let _turn = self.writes.lock().await;
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)?;
        sqlx::query("INSERT INTO account_events (ocid, at) VALUES (?, ?)")
            .bind(ocid.sql())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        // Polled within a second or so: a day's worth is plenty.
        sqlx::query("DELETE FROM account_events WHERE at < ?")
            .bind(now - EVENT_KEEP_MS)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    async fn account_events(&self, after: i64, limit: u32) -> Result<Vec<(i64, Ocid)>> {
        self.readers.with(|c| {
            let mut st = c.prepare_cached(
                "SELECT id, ocid FROM account_events WHERE id > ?1 ORDER BY id LIMIT ?2",
            )?;
            let rows = st.query_map((after, i64::from(limit)), |r| {
                Ok((r.get::<_, i64>(0)?, Ocid(r.get::<_, i64>(1)? as u64)))
            })?;
            rows.collect()
        })
    }

    async fn last_account_event(&self) -> Result<i64> {
        self.readers.with(|c| {
            c.query_row("SELECT COALESCE(MAX(id), 0) FROM account_events", [], |r| {
                r.get(0)
            })
        })
    }

    async fn check_write(&self, node: &str, now: i64) -> Result<()> {
        let node = node.to_owned();
        self.writer
            .request(|reply| WriteJob::Check((node, now, reply)))
            .await
    }

    async fn export(&self, table: &TableSpec, after: (i64, i64), limit: u32) -> Result<Vec<Row>> {
        let sql = sqlx::AssertSqlSafe(rows::export_sql(table, false));
        let found = sqlx::query(sql)
            .bind(after.0)
            .bind(after.1)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        found
            .iter()
            .map(|r| rows::export_row(table, r))
            .collect::<Result<_, _>>()
            .map_err(backend)
    }

    async fn import(&self, table: &TableSpec, imported: &[Row]) -> Result<()> {
        let _turn = self.writes.lock().await;
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)?;
        let sql = rows::import_sql(table, false);
        for row in imported {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
            for value in rows::import_values(table, row)? {
                query = match value {
                    rows::Value::Int(v) => query.bind(v),
                    rows::Value::Text(v) => query.bind(v),
                };
            }
            query.execute(&mut *tx).await.map_err(backend)?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn finish_import(&self) -> Result<()> {
        // Ids come from MAX(...) + 1 and AUTOINCREMENT, which the inserts moved already.
        Ok(())
    }

    fn observe(&self, metrics: crate::metrics::StoreMetrics) {
        self.writer.observe(metrics);
    }

    async fn close(&self) {
        // Called after every session has ended: the writer commits what is queued and stops,
        // then the pool closes (for SQLite that checkpoints the WAL).
        self.writer.stop().await;
        self.pool.close().await;
    }
}

/// How long account events are kept (nodes poll them every fraction of a second).
const EVENT_KEEP_MS: i64 = 24 * 3600 * 1000;

/// Every count of [`Statistics`] in one query (`?1`: now, for session expiry).
const STATISTICS_SQL: &str = "SELECT
    (SELECT COUNT(*) FROM accounts WHERE status = 0 AND deleted_at IS NULL) AS accounts_active,
    (SELECT COUNT(*) FROM accounts WHERE status = 1 AND deleted_at IS NULL) AS accounts_banned,
    (SELECT COUNT(*) FROM accounts WHERE deleted_at IS NOT NULL) AS accounts_deleted,
    (SELECT COUNT(*) FROM sessions WHERE revoked = 0 AND expires_at > ?1) AS sessions_live,
    (SELECT COUNT(*) FROM chats WHERE kind = 0) AS private_chats,
    (SELECT COUNT(*) FROM chats WHERE kind = 1 AND disbanded_at IS NULL) AS groups,
    (SELECT COUNT(*) FROM messages) AS messages,
    (SELECT COUNT(*) FROM friends) / 2 AS friendships,
    (SELECT COUNT(*) FROM invite_codes WHERE used_by IS NULL AND (expires_at IS NULL OR expires_at > ?1)) AS invites_unused";

/// Record a friendship in both directions (idempotent).
async fn befriend(tx: &mut sqlx::SqliteConnection, a: i64, b: i64, now: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO friends (ocid, friend, since) VALUES (?1, ?2, ?3), (?2, ?1, ?3) ON CONFLICT DO NOTHING",
    )
    .bind(a)
    .bind(b)
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(backend)?;
    Ok(())
}

/// Insert the account `new` with `conn` (the pool or a transaction) under the writer's turn:
/// with SQLite's single writer, MAX()+1 is race-free; ocids start at 10001.
pub(super) async fn insert_account<'e, E>(conn: E, new: &NewAccount) -> Result<Account>
where
    E: sqlx::Executor<'e, Database = sqlx::Sqlite>,
{
    let sql = sqlx::AssertSqlSafe(format!(
        "INSERT INTO accounts (ocid, uuid, email, phone, username, nickname, password_hash, created_at)
         VALUES ((SELECT COALESCE(MAX(ocid), 10000) + 1 FROM accounts), ?, ?, ?, ?, ?, ?, ?)
         RETURNING {ACCOUNT_COLUMNS}"
    ));
    let row = sqlx::query(sql)
        .bind(&new.uuid)
        .bind(&new.email)
        .bind(&new.phone)
        .bind(&new.username)
        .bind(&new.nickname)
        .bind(&new.password_hash)
        .bind(new.created_at)
        .fetch_one(conn)
        .await
        .map_err(backend)?;
    rows::account(&row).map_err(backend)
}

/// Check, inside a registration's transaction, that the invitation `code_hash` can still be
/// used at `now`.
pub(super) async fn check_invite(
    conn: &mut sqlx::SqliteConnection,
    code_hash: &[u8],
    now: i64,
) -> Result<()> {
    let usable: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM invite_codes WHERE code_hash = ? AND used_by IS NULL
         AND (expires_at IS NULL OR expires_at > ?)",
    )
    .bind(code_hash)
    .bind(now)
    .fetch_optional(conn)
    .await
    .map_err(backend)?;
    usable.map(|_| ()).ok_or(StoreError::NoSuchInvite)
}

/// Mark the invitation `code_hash` used by `ocid` at `now` (after [`check_invite`]).
pub(super) async fn use_invite(
    conn: &mut sqlx::SqliteConnection,
    code_hash: &[u8],
    ocid: Ocid,
    now: i64,
) -> Result<()> {
    sqlx::query("UPDATE invite_codes SET used_by = ?, used_at = ? WHERE code_hash = ?")
        .bind(ocid.sql())
        .bind(now)
        .bind(code_hash)
        .execute(conn)
        .await
        .map_err(backend)?;
    Ok(())
}
