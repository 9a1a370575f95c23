//! `Store` on PostgreSQL, for clusters: every node opens the same database.
//!
//! Appends use the same group commit as SQLite (one writer task per node, one transaction per
//! queued batch, callers answered only after COMMIT). A message's index comes from
//! `UPDATE chats SET last_index = last_index + 1 ... RETURNING`, which holds the chat row's
//! lock until the transaction ends, so indexes stay gapless and unique with writers on many
//! nodes. Each batch takes its chat locks in ascending chat order, so two nodes' batches cannot
//! deadlock on each other; a batch that still fails with a transient error (deadlock,
//! serialization failure, a client id raced in from another node) is retried whole.

mod files;
mod service;
mod social;
mod writer;

use super::rows::{
    self, ACCOUNT_COLUMNS, ACCOUNT_COLUMNS_A, AppendJob, AsSql, CHAT_COLUMNS, MESSAGE_COLUMNS,
    WriterTask, backend,
};
use super::{
    Account, Befriend, Chat, ChatId, Device, Friend, FriendRequest, Index, Invite, Membership,
    Message, NewAccount, NewMessage, Ocid, OnDurable, Range, Receipt, Result, Role, Row,
    SessionRow, Statistics, Store, StoreError, TableSpec,
};
use async_trait::async_trait;
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};
use std::time::Duration;
use tokio::sync::mpsc;
use writer::{APPEND_QUEUE, append_writer};

pub struct PgStore {
    pool: PgPool,
    appends: mpsc::Sender<AppendJob>,
    writer: WriterTask,
    metrics: writer::Observed,
}

impl PgStore {
    /// Connect to `url` (a `postgres://` URL) with at most `max_connections`, and run the
    /// embedded migrations (safe when several nodes start at once: sqlx takes an advisory lock).
    ///
    /// # Errors
    /// The database cannot be reached or a migration fails.
    pub async fn open(url: &str, max_connections: u32) -> Result<Self> {
        let place = redacted(url);
        // One connection first, so that a failure says why (refused, unknown host, bad
        // password, TLS) rather than that the pool timed out.
        let options: sqlx::postgres::PgConnectOptions = url
            .parse()
            .map_err(|e| StoreError::Backend(format!("invalid PostgreSQL URL {place}: {e}")))?;
        let first = tokio::time::timeout(
            CONNECT_TIMEOUT,
            <PgConnection as sqlx::Connection>::connect_with(&options),
        )
        .await;
        match first {
            Ok(Ok(conn)) => {
                let _ = sqlx::Connection::close(conn).await;
            }
            Ok(Err(e)) => {
                return Err(StoreError::Backend(format!(
                    "cannot connect to PostgreSQL at {place}: {e}"
                )));
            }
            Err(_) => {
                return Err(StoreError::Backend(format!(
                    "cannot connect to PostgreSQL at {place}: no answer within {} s",
                    CONNECT_TIMEOUT.as_secs()
                )));
            }
        }
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(2))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Backend(format!("PostgreSQL at {place}: {e}")))?;
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Backend(format!("migration failed: {e}")))?;
        let (tx, rx) = mpsc::channel(APPEND_QUEUE);
        let metrics = writer::Observed::default();
        let observed = metrics.clone();
        let writer = WriterTask::spawn(|stop| append_writer(pool.clone(), rx, stop, observed));
        Ok(Self {
            pool,
            appends: tx,
            writer,
            metrics,
        })
    }
}

/// How long the first connection to PostgreSQL may take at start.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A PostgreSQL URL fit for logs and errors: the password replaced by `***`.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (auth, host) = match rest.rsplit_once('@') {
        Some((auth, host)) => (Some(auth), host),
        None => (None, rest),
    };
    match auth {
        Some(auth) => match auth.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => format!("{scheme}://{auth}@{host}"),
        },
        None => format!("{scheme}://{host}"),
    }
}

impl PgStore {
    async fn chat_members(&self, id: ChatId) -> Result<Vec<(Ocid, Role)>> {
        let rows: Vec<(i64, i64)> =
            sqlx::query_as("SELECT ocid, role FROM members WHERE chat_id = $1 ORDER BY ocid")
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

    async fn account_where(
        &self,
        clause: &'static str,
        bind: AccountKey<'_>,
    ) -> Result<Option<Account>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE {clause}"
        ));
        let query = sqlx::query(sql);
        let query = match bind {
            AccountKey::Ocid(o) => query.bind(o.sql()),
            AccountKey::Email(e) => query.bind(e),
        };
        let row = query.fetch_optional(&self.pool).await.map_err(backend)?;
        row.as_ref().map(rows::account).transpose().map_err(backend)
    }
}

enum AccountKey<'a> {
    Ocid(Ocid),
    Email(&'a str),
}

#[async_trait]
impl Store for PgStore {
    async fn create_account(&self, new: NewAccount) -> Result<Account> {
        insert_account(&self.pool, &new).await
    }

    async fn account(&self, ocid: Ocid) -> Result<Option<Account>> {
        self.account_where("ocid = $1", AccountKey::Ocid(ocid))
            .await
    }

    async fn account_by_email(&self, email: &str) -> Result<Option<Account>> {
        self.account_where("email = $1", AccountKey::Email(email))
            .await
    }

    async fn create_session(
        &self,
        ocid: Ocid,
        token_hash: &[u8],
        now: i64,
        expires_at: i64,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        sqlx::query(
            "INSERT INTO sessions (token_hash, ocid, created_at, expires_at) VALUES ($1, $2, $3, $4)",
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
             SELECT $1, chat_id, delivered_index FROM members WHERE ocid = $2",
        )
        .bind(token_hash)
        .bind(ocid.sql())
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    async fn session(&self, token_hash: &[u8]) -> Result<Option<(SessionRow, Account)>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ACCOUNT_COLUMNS_A}, s.expires_at FROM sessions AS s
             JOIN accounts AS a ON a.ocid = s.ocid
             WHERE s.token_hash = $1 AND NOT s.revoked"
        )))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.as_ref()
            .map(|r| Ok((rows::session(r)?, rows::account(r)?)))
            .transpose()
            .map_err(backend)
    }

    async fn revoke_session(&self, token_hash: &[u8]) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        sqlx::query("UPDATE sessions SET revoked = TRUE WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        // A revoked login is never resumed: its delivery marks have no use any more.
        sqlx::query("DELETE FROM device_marks WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    async fn chat(&self, id: ChatId) -> Result<Option<Chat>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CHAT_COLUMNS} FROM chats WHERE id = $1"
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
            sqlx::query_scalar("SELECT id FROM chats WHERE pair_lo = $1 AND pair_hi = $2")
                .bind(lo.sql())
                .bind(hi.sql())
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
        Ok(id.map(|i| ChatId(i as u64)))
    }

    async fn private_chat(&self, a: Ocid, b: Ocid, now: i64) -> Result<Chat> {
        let (lo, hi) = (a.min(b), a.max(b));
        let mut tx = self.pool.begin().await.map_err(backend)?;
        // Two nodes racing here: the loser's insert waits for the winner's commit, then does
        // nothing, and the chat is read back below.
        let created: Option<i64> = sqlx::query_scalar(
            "INSERT INTO chats (kind, pair_lo, pair_hi, created_at) VALUES (0, $1, $2, $3)
             ON CONFLICT (pair_lo, pair_hi) DO NOTHING RETURNING id",
        )
        .bind(lo.sql())
        .bind(hi.sql())
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        if let Some(id) = created {
            sqlx::query(
                "INSERT INTO members (chat_id, ocid, joined_at) VALUES ($1, $2, $4), ($1, $3, $4)",
            )
            .bind(id)
            .bind(lo.sql())
            .bind(hi.sql())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
            tx.commit().await.map_err(backend)?;
            return self.written_chat(id).await;
        }
        tx.rollback().await.map_err(backend)?;
        let id = self
            .find_private_chat(lo, hi)
            .await?
            .ok_or_else(|| StoreError::Backend("private chat vanished after a conflict".into()))?;
        self.written_chat(id.sql()).await
    }

    async fn create_group(
        &self,
        owner: Ocid,
        name: &str,
        members: &[Ocid],
        now: i64,
    ) -> Result<Chat> {
        let mut sorted = members.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO chats (kind, name, owner, created_at) VALUES (1, $1, $2, $3) RETURNING id",
        )
        .bind(name)
        .bind(owner.sql())
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        let ocids: Vec<i64> = sorted.iter().map(|m| m.sql()).collect();
        sqlx::query(
            "INSERT INTO members (chat_id, ocid, role, joined_at)
             SELECT $1, m, CASE WHEN m = $2 THEN 1 ELSE 0 END, $3 FROM unnest($4::bigint[]) AS m",
        )
        .bind(id)
        .bind(owner.sql())
        .bind(now)
        .bind(&ocids)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        self.written_chat(id).await
    }

    async fn queue_append(
        &self,
        new: NewMessage,
        on_durable: Option<OnDurable>,
    ) -> Result<Receipt> {
        rows::queue_append(&self.appends, new, on_durable).await
    }

    async fn messages(&self, chat: ChatId, range: Range, limit: u32) -> Result<Vec<Message>> {
        let (clause, order, bound) = match range {
            Range::Latest => ("", "DESC", Index::ZERO),
            Range::Before(i) => ("AND idx < $3", "DESC", i),
            Range::After(i) => ("AND idx > $3", "ASC", i),
        };
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE chat_id = $1 {clause}
             ORDER BY idx {order} LIMIT $2"
        ));
        let mut query = sqlx::query(sql).bind(chat.sql()).bind(i64::from(limit));
        if !clause.is_empty() {
            query = query.bind(bound.sql());
        }
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
        let rows = sqlx::query(
            "SELECT m.chat_id, m.joined_index, m.delivered_index, c.last_index,
                    d.delivered_index AS device_index
             FROM members m JOIN chats c ON c.id = m.chat_id
             LEFT JOIN device_marks d ON d.token_hash = $2 AND d.chat_id = m.chat_id
             WHERE m.ocid = $1",
        )
        .bind(ocid.sql())
        .bind(&device.0[..])
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|r| rows::membership(r, true))
            .collect::<Result<_, _>>()
            .map_err(backend)
    }

    async fn membership(&self, ocid: Ocid, chat: ChatId) -> Result<Option<Membership>> {
        let row = sqlx::query(
            "SELECT m.chat_id, m.joined_index, m.delivered_index, c.last_index
             FROM members m JOIN chats c ON c.id = m.chat_id WHERE m.ocid = $1 AND m.chat_id = $2",
        )
        .bind(ocid.sql())
        .bind(chat.sql())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.as_ref()
            .map(|r| rows::membership(r, false))
            .transpose()
            .map_err(backend)
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
        let chats: Vec<i64> = marks.iter().map(|(c, _)| c.sql()).collect();
        let indexes: Vec<i64> = marks.iter().map(|(_, i)| i.sql()).collect();
        let mut tx = self.pool.begin().await.map_err(backend)?;
        sqlx::query(
            "UPDATE members m SET delivered_index = GREATEST(m.delivered_index, v.idx)
             FROM unnest($1::bigint[], $2::bigint[]) AS v(chat, idx)
             WHERE m.chat_id = v.chat AND m.ocid = $3",
        )
        .bind(&chats)
        .bind(&indexes)
        .bind(ocid.sql())
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        sqlx::query(
            "INSERT INTO device_marks (token_hash, chat_id, delivered_index)
             SELECT $3, v.chat, MAX(v.idx) FROM unnest($1::bigint[], $2::bigint[]) AS v(chat, idx)
             GROUP BY v.chat
             ON CONFLICT (token_hash, chat_id) DO UPDATE
             SET delivered_index = GREATEST(device_marks.delivered_index, excluded.delivered_index)",
        )
        .bind(&chats)
        .bind(&indexes)
        .bind(&device.0[..])
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    async fn request_friend(
        &self,
        from: Ocid,
        to: Ocid,
        message: &str,
        now: i64,
    ) -> Result<Befriend> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let (from, to) = (from.sql(), to.sql());
        // Both account rows locked, lowest first: the pair's requests and answers run one at a
        // time, whichever nodes they arrive on, so crossed requests become one friendship.
        lock_pair(&mut tx, from, to).await?;
        let friends: Option<i64> =
            sqlx::query_scalar("SELECT since FROM friends WHERE ocid = $1 AND friend = $2")
                .bind(from)
                .bind(to)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
        if friends.is_some() {
            return Ok(Befriend::AlreadyFriends);
        }
        let asked =
            sqlx::query("DELETE FROM friend_requests WHERE from_ocid = $1 AND to_ocid = $2")
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
                "INSERT INTO friend_requests (from_ocid, to_ocid, message, created_at) VALUES ($1, $2, $3, $4)
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
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let (from, to) = (from.sql(), to.sql());
        lock_pair(&mut tx, from, to).await?;
        let found =
            sqlx::query("DELETE FROM friend_requests WHERE from_ocid = $1 AND to_ocid = $2")
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
        let removed = sqlx::query(
            "DELETE FROM friends WHERE (ocid = $1 AND friend = $2) OR (ocid = $2 AND friend = $1)",
        )
        .bind(a.sql())
        .bind(b.sql())
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(removed.rows_affected() > 0)
    }

    async fn friends(&self, ocid: Ocid) -> Result<Vec<Friend>> {
        let rows: Vec<(i64, i64, String)> = sqlx::query_as(
            "SELECT friend, since, remark FROM friends WHERE ocid = $1 ORDER BY friend",
        )
        .bind(ocid.sql())
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        Ok(rows
            .into_iter()
            .map(|(f, since, remark)| Friend {
                ocid: Ocid(f as u64),
                since,
                remark,
            })
            .collect())
    }

    async fn friend_requests(&self, to: Ocid) -> Result<Vec<FriendRequest>> {
        let rows = sqlx::query(
            "SELECT from_ocid, message, created_at FROM friend_requests WHERE to_ocid = $1 ORDER BY created_at, from_ocid",
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
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE ocid > $1 ORDER BY ocid LIMIT $2"
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
        let done = sqlx::query("UPDATE accounts SET status = $1 WHERE ocid = $2")
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
        sqlx::query(
            "INSERT INTO invite_codes (code_hash, created_at, expires_at) VALUES ($1, $2, $3)",
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
        let rows: Vec<(Vec<u8>, i64, Option<i64>, Option<i64>, Option<i64>)> = sqlx::query_as(
            "SELECT code_hash, created_at, expires_at, used_by, used_at FROM invite_codes
             ORDER BY created_at DESC, code_hash",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        Ok(rows
            .into_iter()
            .map(
                |(code_hash, created_at, expires_at, used_by, used_at)| Invite {
                    code_hash,
                    created_at,
                    expires_at,
                    used_by: used_by.map(|o| Ocid(o as u64)),
                    used_at,
                },
            )
            .collect())
    }

    async fn create_account_invited(
        &self,
        new: NewAccount,
        code_hash: &[u8],
        now: i64,
    ) -> Result<Account> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        check_invite(&mut tx, code_hash, now).await?;
        let account = insert_account(&mut *tx, &new).await?;
        use_invite(&mut tx, code_hash, account.ocid, now).await?;
        tx.commit().await.map_err(backend)?;
        Ok(account)
    }

    async fn post_account_event(&self, ocid: Ocid, now: i64) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        sqlx::query("INSERT INTO account_events (ocid, at) VALUES ($1, $2)")
            .bind(ocid.sql())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        // Polled within a second or so: a day's worth is plenty.
        sqlx::query("DELETE FROM account_events WHERE at < $1")
            .bind(now - EVENT_KEEP_MS)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    async fn account_events(&self, after: i64, limit: u32) -> Result<Vec<(i64, Ocid)>> {
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT id, ocid FROM account_events WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        Ok(rows
            .into_iter()
            .map(|(id, o)| (id, Ocid(o as u64)))
            .collect())
    }

    async fn last_account_event(&self) -> Result<i64> {
        sqlx::query_scalar("SELECT COALESCE(MAX(id), 0)::BIGINT FROM account_events")
            .fetch_one(&self.pool)
            .await
            .map_err(backend)
    }

    async fn check_write(&self, node: &str, now: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO node_checks (node, at) VALUES ($1, $2)
             ON CONFLICT (node) DO UPDATE SET at = excluded.at",
        )
        .bind(node)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn export(&self, table: &TableSpec, after: (i64, i64), limit: u32) -> Result<Vec<Row>> {
        let sql = sqlx::AssertSqlSafe(rows::export_sql(table, true));
        let query = sqlx::query(sql).bind(after.0);
        // `$2` appears only in the statements of two-column keys.
        let query = match table.key.1 {
            Some(_) => query.bind(after.1),
            None => query,
        };
        let found = query
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
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let sql = rows::import_sql(table, true);
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
        for sql in [
            "SELECT setval('accounts_ocid_seq', GREATEST((SELECT MAX(ocid) FROM accounts), 10000))",
            "SELECT setval(pg_get_serial_sequence('chats', 'id'), GREATEST((SELECT MAX(id) FROM chats), 1), (SELECT MAX(id) FROM chats) IS NOT NULL)",
            "SELECT setval(pg_get_serial_sequence('messages', 'id'), GREATEST((SELECT MAX(id) FROM messages), 1), (SELECT MAX(id) FROM messages) IS NOT NULL)",
            "SELECT setval(pg_get_serial_sequence('pending_notices', 'id'), GREATEST((SELECT MAX(id) FROM pending_notices), 1), (SELECT MAX(id) FROM pending_notices) IS NOT NULL)",
            "SELECT setval(pg_get_serial_sequence('files', 'seq'), GREATEST((SELECT MAX(seq) FROM files), 1), (SELECT MAX(seq) FROM files) IS NOT NULL)",
        ] {
            sqlx::query(sql)
                .execute(&self.pool)
                .await
                .map_err(backend)?;
        }
        Ok(())
    }

    fn observe(&self, metrics: crate::metrics::StoreMetrics) {
        let _ = self.metrics.set(metrics);
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

/// Every count of [`Statistics`] in one query (`$1`: now, for session expiry).
const STATISTICS_SQL: &str = "SELECT
    (SELECT COUNT(*) FROM accounts WHERE status = 0 AND deleted_at IS NULL) AS accounts_active,
    (SELECT COUNT(*) FROM accounts WHERE status = 1 AND deleted_at IS NULL) AS accounts_banned,
    (SELECT COUNT(*) FROM accounts WHERE deleted_at IS NOT NULL) AS accounts_deleted,
    (SELECT COUNT(*) FROM sessions WHERE NOT revoked AND expires_at > $1) AS sessions_live,
    (SELECT COUNT(*) FROM chats WHERE kind = 0) AS private_chats,
    (SELECT COUNT(*) FROM chats WHERE kind = 1 AND disbanded_at IS NULL) AS groups,
    (SELECT COUNT(*) FROM messages) AS messages,
    (SELECT COUNT(*) FROM friends) / 2 AS friendships,
    (SELECT COUNT(*) FROM invite_codes WHERE used_by IS NULL AND (expires_at IS NULL OR expires_at > $1)) AS invites_unused";

/// Lock two accounts' rows, lowest ocid first (so two transactions on one pair never deadlock).
async fn lock_pair(tx: &mut PgConnection, a: i64, b: i64) -> Result<()> {
    sqlx::query("SELECT ocid FROM accounts WHERE ocid IN ($1, $2) ORDER BY ocid FOR UPDATE")
        .bind(a)
        .bind(b)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
    Ok(())
}

/// Record a friendship in both directions (idempotent).
async fn befriend(tx: &mut PgConnection, a: i64, b: i64, now: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO friends (ocid, friend, since) VALUES ($1, $2, $3), ($2, $1, $3) ON CONFLICT DO NOTHING",
    )
    .bind(a)
    .bind(b)
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(backend)?;
    Ok(())
}

/// Insert the account `new` with `conn` (the pool or a transaction); ocids are assigned here.
pub(super) async fn insert_account<'e, E>(conn: E, new: &NewAccount) -> Result<Account>
where
    E: sqlx::Executor<'e, Database = sqlx::Postgres>,
{
    let sql = sqlx::AssertSqlSafe(format!(
        "INSERT INTO accounts (uuid, email, phone, username, nickname, password_hash, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {ACCOUNT_COLUMNS}"
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
/// used at `now`, and lock its row so that two registrations cannot both use it.
pub(super) async fn check_invite(
    conn: &mut sqlx::PgConnection,
    code_hash: &[u8],
    now: i64,
) -> Result<()> {
    let usable: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM invite_codes WHERE code_hash = $1 AND used_by IS NULL
         AND (expires_at IS NULL OR expires_at > $2) FOR UPDATE",
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
    conn: &mut sqlx::PgConnection,
    code_hash: &[u8],
    ocid: Ocid,
    now: i64,
) -> Result<()> {
    sqlx::query("UPDATE invite_codes SET used_by = $1, used_at = $2 WHERE code_hash = $3")
        .bind(ocid.sql())
        .bind(now)
        .bind(code_hash)
        .execute(conn)
        .await
        .map_err(backend)?;
    Ok(())
}
