//! `Store` on an embedded SQLite database (WAL, `synchronous=FULL`).
//!
//! Reads and ordinary writes go through a small pool. Message appends go to one writer task
//! that owns a dedicated connection and commits every append waiting in its queue in ONE
//! transaction (group commit): each message's index is assigned in that transaction, and no
//! caller hears back before the commit that made its message durable.

use super::rows::{self, ACCOUNT_COLUMNS, AppendJob, MESSAGE_COLUMNS, WriterTask, backend};
use super::{
    Account, Appended, Befriend, Chat, ChatKind, Friend, FriendRequest, Membership, Message,
    NewAccount, NewMessage, OnDurable, Range, Receipt, Result, SessionRow, Store, StoreError,
};
use async_trait::async_trait;
use natter_proto::{ChatId, Index, Ocid};
use sqlx::Connection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Most appends committed in one transaction.
const MAX_BATCH: usize = 512;
/// Appends waiting for the writer before callers wait for room.
const APPEND_QUEUE: usize = 4096;

type MarkJob = (Ocid, Vec<(ChatId, Index)>, oneshot::Sender<Result<()>>);

pub struct SqliteStore {
    pool: SqlitePool,
    /// Connections for the short reads on the login and delivery paths, run inline.
    readers: Readers,
    appends: mpsc::Sender<AppendJob>,
    /// Delivery marks ride the writer's transactions too: no second writer contends for
    /// SQLite's write lock, and no extra fsync is spent on them.
    marks: mpsc::Sender<MarkJob>,
    writer: WriterTask,
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
        sqlx::migrate!("./migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Backend(format!("migration failed: {e}")))?;
        let conn = SqliteConnection::connect_with(&options)
            .await
            .map_err(backend)?;
        let (tx, rx) = mpsc::channel(APPEND_QUEUE);
        let (marks_tx, marks_rx) = mpsc::channel(APPEND_QUEUE);
        let writer = WriterTask::spawn(|stop| append_writer(conn, rx, marks_rx, stop));
        Ok(Self {
            pool,
            readers: Readers::new(path),
            appends: tx,
            marks: marks_tx,
            writer,
        })
    }
}

/// Most idle read connections kept open.
const MAX_IDLE_READERS: usize = 8;

/// Read-only connections used inline, on the calling task's thread, for the point reads of the
/// hot paths (a resume, a cursor). Each such read takes microseconds from the page cache,
/// where going through sqlx's per-connection worker thread costs two thread hand-offs and
/// dominated a reconnect storm. Longer reads (history pages, catch-up) stay on the pool.
struct Readers {
    path: std::path::PathBuf,
    idle: std::sync::Mutex<Vec<rusqlite::Connection>>,
}

impl Readers {
    fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            idle: std::sync::Mutex::new(Vec::new()),
        }
    }

    fn open(&self) -> rusqlite::Result<rusqlite::Connection> {
        use rusqlite::OpenFlags;
        let conn = rusqlite::Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(10))?;
        Ok(conn)
    }

    /// Run `read` on an idle connection (opening one if none is idle). `read` never awaits, so
    /// at most one connection per runtime thread is in use at a time.
    fn with<T>(
        &self,
        read: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match idle {
            Some(c) => c,
            None => self.open().map_err(lite)?,
        };
        let out = read(&conn).map_err(lite);
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
        out
    }
}

fn lite(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// A `rusqlite` row as the shared decoders read it.
struct LiteRow<'a, 'r>(&'a rusqlite::Row<'r>);

impl rows::StoreRow for LiteRow<'_, '_> {
    fn int(&self, col: &str) -> std::result::Result<i64, sqlx::Error> {
        self.0
            .get(col)
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))
    }
    fn opt_int(&self, col: &str) -> std::result::Result<Option<i64>, sqlx::Error> {
        self.0
            .get(col)
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))
    }
    fn text(&self, col: &str) -> std::result::Result<String, sqlx::Error> {
        self.0
            .get(col)
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))
    }
    fn opt_text(&self, col: &str) -> std::result::Result<Option<String>, sqlx::Error> {
        self.0
            .get(col)
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))
    }
}

/// A decoding failure inside a `rusqlite` row callback.
fn decoded<T>(r: std::result::Result<T, sqlx::Error>) -> rusqlite::Result<T> {
    r.map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

const MEMBERSHIP_ONE_SQL: &str = "SELECT m.chat_id, m.joined_index, m.delivered_index,
     c.last_index FROM members m JOIN chats c ON c.id = m.chat_id
     WHERE m.ocid = ?1 AND m.chat_id = ?2";

/// A live session with its account (`rows::ACCOUNT_COLUMNS_A`, then `expires_at`).
const SESSION_SQL: &str = "SELECT a.ocid, a.uuid, a.email, a.phone, a.username, a.nickname,
     a.avatar, a.status, a.password_hash, a.created_at, s.expires_at
     FROM sessions AS s JOIN accounts AS a ON a.ocid = s.ocid
     WHERE s.token_hash = ?1 AND s.revoked = 0";

const MEMBERSHIP_SQL: &str = "SELECT m.chat_id, m.joined_index, m.delivered_index, c.last_index
     FROM members m JOIN chats c ON c.id = m.chat_id WHERE m.ocid = ?1";

/// The group-commit loop: take every queued append and delivery mark (up to `MAX_BATCH` of
/// each), run them in one transaction, commit, then answer each caller.
async fn append_writer(
    mut conn: SqliteConnection,
    mut rx: mpsc::Receiver<AppendJob>,
    mut marks_rx: mpsc::Receiver<MarkJob>,
    stop: CancellationToken,
) {
    let mut batch: Vec<AppendJob> = Vec::with_capacity(MAX_BATCH);
    let mut marks: Vec<MarkJob> = Vec::new();
    loop {
        // Biased: queued work is always taken before a stop request is honoured, and a batch
        // once taken is always finished (the stop is only seen while idle).
        let n = tokio::select! {
            biased;
            n = rx.recv_many(&mut batch, MAX_BATCH) => n,
            n = marks_rx.recv_many(&mut marks, MAX_BATCH) => n,
            () = stop.cancelled() => 0,
        };
        if n == 0 {
            break;
        }
        // Whatever else is already waiting joins the same transaction.
        while batch.len() < MAX_BATCH {
            let Ok(job) = rx.try_recv() else { break };
            batch.push(job);
        }
        while marks.len() < MAX_BATCH {
            let Ok(job) = marks_rx.try_recv() else { break };
            marks.push(job);
        }
        let outcome = append_batch(&mut conn, &batch, &marks).await;
        let marked = outcome
            .as_ref()
            .map(|_| ())
            .map_err(|e| StoreError::Backend(e.to_string()));
        for (_, _, reply) in marks.drain(..) {
            let _ = reply.send(marked.clone());
        }
        rows::answer_batch(&mut batch, outcome);
    }
    let _ = conn.close().await;
}

async fn append_batch(
    conn: &mut SqliteConnection,
    batch: &[AppendJob],
    marks: &[MarkJob],
) -> std::result::Result<Vec<Result<Appended>>, sqlx::Error> {
    sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
    let mut outcome = append_in_transaction(conn, batch).await;
    if outcome.is_ok()
        && !marks.is_empty()
        && let Err(e) = write_marks(conn, marks).await
    {
        outcome = Err(e);
    }
    let committed = match outcome {
        Ok(results) => match sqlx::query("COMMIT").execute(&mut *conn).await {
            Ok(_) => return Ok(results),
            Err(e) => e,
        },
        Err(e) => e,
    };
    let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
    Err(committed)
}

/// Every queued delivery mark in one statement (the highest index per account and chat;
/// marks never go down).
async fn write_marks(
    conn: &mut SqliteConnection,
    marks: &[MarkJob],
) -> std::result::Result<(), sqlx::Error> {
    let mut highest: HashMap<(Ocid, ChatId), Index> = HashMap::new();
    for (ocid, list, _) in marks {
        for &(chat, index) in list {
            let mark = highest.entry((*ocid, chat)).or_insert(index);
            *mark = (*mark).max(index);
        }
    }
    let rows: Vec<serde_json::Value> = highest
        .into_iter()
        .map(|((ocid, chat), index)| serde_json::json!([ocid, chat, index]))
        .collect();
    sqlx::query(
        "UPDATE OR ROLLBACK members SET delivered_index = MAX(delivered_index, j.value ->> 2)
         FROM json_each(?) AS j
         WHERE members.ocid = j.value ->> 0 AND members.chat_id = j.value ->> 1",
    )
    .bind(serde_json::Value::Array(rows).to_string())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// What becomes of one queued append.
enum Plan {
    Done(Result<Appended>),
    /// Stored by this batch with this index.
    Row(Index),
    /// The same sender and client id as an earlier job of this batch.
    SameAs(usize),
}

/// The whole batch in a handful of statements, however many messages it holds: one lookup of
/// every client id, one read of every chat's last index, one INSERT of every new row (from a
/// JSON array), one UPDATE of every chat's last index. Indexes are read and assigned inside the
/// write transaction (`BEGIN IMMEDIATE` holds SQLite's write lock), so they stay gapless even
/// with another writer on the same file.
async fn append_in_transaction(
    conn: &mut SqliteConnection,
    batch: &[AppendJob],
) -> std::result::Result<Vec<Result<Appended>>, sqlx::Error> {
    let json = |v: &serde_json::Value| v.to_string();
    // Retried sends: the stored message for every (sender, client id) in the batch.
    let keys: Vec<serde_json::Value> = batch
        .iter()
        .filter_map(|job| {
            let m = &job.new;
            m.client_id
                .as_ref()
                .map(|c| serde_json::json!([m.sender, c]))
        })
        .collect();
    // sender -> client id -> stored message (looked up by `&str`, no allocation per job).
    let mut stored: HashMap<Ocid, HashMap<String, Message>> = HashMap::new();
    if !keys.is_empty() {
        let found = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM json_each(?) AS k JOIN messages AS m
             ON m.sender = k.value ->> 0 AND m.client_id = k.value ->> 1
             AND m.client_id IS NOT NULL",
            rows::MESSAGE_COLUMNS_M
        )))
        .bind(json(&serde_json::Value::Array(keys)))
        .fetch_all(&mut *conn)
        .await?;
        for row in &found {
            let m = rows::message(row)?;
            if let Some(c) = m.client_id.clone() {
                stored.entry(m.sender).or_default().insert(c, m);
            }
        }
    }
    // The last index of every chat written to.
    let mut chats: Vec<i64> = batch.iter().map(|job| job.new.chat as i64).collect();
    chats.sort_unstable();
    chats.dedup();
    let last: HashMap<ChatId, Index> = sqlx::query_as::<_, (i64, i64)>(
        "SELECT id, last_index FROM chats WHERE id IN (SELECT value FROM json_each(?))",
    )
    .bind(json(&serde_json::json!(chats)))
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|(id, last)| (id as u64, last as u64))
    .collect();
    let mut next = last.clone();
    // Decide each job, assigning indexes in queue order.
    let mut plans = Vec::with_capacity(batch.len());
    let mut first_of: HashMap<(Ocid, &str), usize> = HashMap::new();
    let mut rows_json = Vec::new();
    for (i, new) in batch.iter().map(|job| &job.new).enumerate() {
        if let Some(c) = new.client_id.as_deref() {
            if let Some(m) = stored.get(&new.sender).and_then(|by_id| by_id.get(c)) {
                plans.push(Plan::Done(if m.chat == new.chat {
                    Ok(Appended::Existing(m.clone()))
                } else {
                    Err(StoreError::ClientIdReused)
                }));
                continue;
            }
            if let Some(&j) = first_of.get(&(new.sender, c)) {
                plans.push(Plan::SameAs(j));
                continue;
            }
            first_of.insert((new.sender, c), i);
        }
        let Some(index) = next.get_mut(&new.chat) else {
            plans.push(Plan::Done(Err(StoreError::NoSuchChat)));
            continue;
        };
        *index += 1;
        plans.push(Plan::Row(*index));
        rows_json.push(serde_json::json!([
            new.chat,
            *index,
            new.sender,
            new.kind,
            rows::encode_parts(&new.parts)?,
            new.client_id,
            new.created_at
        ]));
    }
    // Insert every new row; ids follow the array's order.
    let mut ids: HashMap<(ChatId, Index), u64> = HashMap::new();
    if !rows_json.is_empty() {
        let inserted = sqlx::query_as::<_, (i64, i64, i64)>(
            // OR ROLLBACK: a failure ends the whole transaction anyway, and SQLite then needs no
            // statement journal for this many-row statement.
            "INSERT OR ROLLBACK INTO messages (chat_id, idx, sender, kind, parts, client_id, created_at)
             SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5,
                    value ->> 6
             FROM json_each(?) ORDER BY key
             RETURNING id, chat_id, idx",
        )
        .bind(json(&serde_json::Value::Array(rows_json)))
        .fetch_all(&mut *conn)
        .await?;
        ids = inserted
            .into_iter()
            .map(|(id, chat, idx)| ((chat as u64, idx as u64), id as u64))
            .collect();
        let moved: Vec<serde_json::Value> = next
            .iter()
            .filter(|(chat, index)| last.get(chat) != Some(index))
            .map(|(chat, index)| serde_json::json!([chat, index]))
            .collect();
        sqlx::query(
            "UPDATE OR ROLLBACK chats SET last_index = j.value ->> 1
             FROM json_each(?) AS j WHERE chats.id = j.value ->> 0",
        )
        .bind(json(&serde_json::Value::Array(moved)))
        .execute(&mut *conn)
        .await?;
    }
    // Answer each job.
    let mut results: Vec<Result<Appended>> = Vec::with_capacity(batch.len());
    for (new, plan) in batch.iter().map(|job| &job.new).zip(&plans) {
        let result = match plan {
            Plan::Done(r) => r.clone(),
            &Plan::Row(index) => match ids.get(&(new.chat, index)) {
                Some(&id) => Ok(Appended::New(Message {
                    id,
                    chat: new.chat,
                    index,
                    sender: new.sender,
                    kind: new.kind,
                    parts: new.parts.clone(),
                    client_id: new.client_id.clone(),
                    created_at: new.created_at,
                })),
                None => Err(StoreError::Backend("inserted row not returned".into())),
            },
            Plan::SameAs(j) => match &results[*j] {
                Ok(Appended::New(m) | Appended::Existing(m)) if m.chat == new.chat => {
                    Ok(Appended::Existing(m.clone()))
                }
                Ok(_) => Err(StoreError::ClientIdReused),
                Err(e) => Err(e.clone()),
            },
        };
        results.push(result);
    }
    Ok(results)
}
impl SqliteStore {
    async fn chat_members(&self, id: ChatId) -> Result<Vec<Ocid>> {
        let rows: Vec<i64> =
            sqlx::query_scalar("SELECT ocid FROM members WHERE chat_id = ? ORDER BY ocid")
                .bind(id as i64)
                .fetch_all(&self.pool)
                .await
                .map_err(backend)?;
        Ok(rows.into_iter().map(|o| o as u64).collect())
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_account(&self, new: NewAccount) -> Result<Account> {
        // Under SQLite's single writer, MAX()+1 is race-free; ocids start at 10001.
        let row = sqlx::query(
            "INSERT INTO accounts (ocid, uuid, email, phone, username, nickname, password_hash, created_at)
             VALUES ((SELECT COALESCE(MAX(ocid), 10000) + 1 FROM accounts), ?, ?, ?, ?, ?, ?, ?)
             RETURNING ocid, uuid, email, phone, username, nickname, avatar, status, password_hash, created_at",
        )
        .bind(&new.uuid)
        .bind(&new.email)
        .bind(&new.phone)
        .bind(&new.username)
        .bind(&new.nickname)
        .bind(&new.password_hash)
        .bind(new.created_at)
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        rows::account(&row).map_err(backend)
    }

    async fn account(&self, ocid: Ocid) -> Result<Option<Account>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE ocid = ?"
        ));
        let row = sqlx::query(sql)
            .bind(ocid as i64)
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
        sqlx::query(
            "INSERT INTO sessions (token_hash, ocid, created_at, expires_at) VALUES (?, ?, ?, ?)",
        )
        .bind(token_hash)
        .bind(ocid as i64)
        .bind(now)
        .bind(expires_at)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
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
        sqlx::query("UPDATE sessions SET revoked = 1 WHERE token_hash = ?")
            .bind(token_hash)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn chat(&self, id: ChatId) -> Result<Option<Chat>> {
        let row = sqlx::query("SELECT kind, name, owner FROM chats WHERE id = ?")
            .bind(id as i64)
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
                .bind(lo as i64)
                .bind(hi as i64)
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
        Ok(id.map(|i| i as u64))
    }

    async fn private_chat(&self, a: Ocid, b: Ocid, now: i64) -> Result<Chat> {
        let (lo, hi) = (a.min(b), a.max(b));
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)?;
        let existing: Option<i64> =
            sqlx::query_scalar("SELECT id FROM chats WHERE pair_lo = ? AND pair_hi = ?")
                .bind(lo as i64)
                .bind(hi as i64)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
        let id = match existing {
            Some(id) => id,
            None => {
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO chats (kind, pair_lo, pair_hi, created_at) VALUES (0, ?, ?, ?) RETURNING id",
                )
                .bind(lo as i64)
                .bind(hi as i64)
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(backend)?;
                for m in [lo, hi] {
                    sqlx::query("INSERT INTO members (chat_id, ocid, joined_at) VALUES (?, ?, ?)")
                        .bind(id)
                        .bind(m as i64)
                        .bind(now)
                        .execute(&mut *tx)
                        .await
                        .map_err(backend)?;
                }
                id
            }
        };
        tx.commit().await.map_err(backend)?;
        Ok(Chat {
            id: id as u64,
            kind: ChatKind::Private,
            name: String::new(),
            owner: None,
            members: vec![lo, hi],
        })
    }

    async fn create_group(
        &self,
        owner: Ocid,
        name: &str,
        members: &[Ocid],
        now: i64,
    ) -> Result<Chat> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO chats (kind, name, owner, created_at) VALUES (1, ?, ?, ?) RETURNING id",
        )
        .bind(name)
        .bind(owner as i64)
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
                .bind(*m as i64)
                .bind(role)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(Chat {
            id: id as u64,
            kind: ChatKind::Group,
            name: name.to_owned(),
            owner: Some(owner),
            members: sorted,
        })
    }

    async fn queue_append(
        &self,
        new: NewMessage,
        on_durable: Option<OnDurable>,
    ) -> Result<Receipt> {
        rows::queue_append(&self.appends, new, on_durable).await
    }

    async fn messages(&self, chat: ChatId, range: Range, limit: u32) -> Result<Vec<Message>> {
        let query = match range {
            Range::Latest => sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE chat_id = ? ORDER BY idx DESC LIMIT ?"
            )))
            .bind(chat as i64)
            .bind(i64::from(limit)),
            Range::Before(i) => sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE chat_id = ? AND idx < ? ORDER BY idx DESC LIMIT ?"
            )))
            .bind(chat as i64)
            .bind(i as i64)
            .bind(i64::from(limit)),
            Range::After(i) => sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE chat_id = ? AND idx > ? ORDER BY idx ASC LIMIT ?"
            )))
            .bind(chat as i64)
            .bind(i as i64)
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

    async fn memberships(&self, ocid: Ocid) -> Result<Vec<Membership>> {
        self.readers.with(|c| {
            let mut st = c.prepare_cached(MEMBERSHIP_SQL)?;
            let mut rows = st.query([ocid as i64])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(decoded(rows::membership(&LiteRow(r)))?);
            }
            Ok(out)
        })
    }

    async fn membership(&self, ocid: Ocid, chat: ChatId) -> Result<Option<Membership>> {
        self.readers.with(|c| {
            let mut st = c.prepare_cached(MEMBERSHIP_ONE_SQL)?;
            let mut rows = st.query([ocid as i64, chat as i64])?;
            match rows.next()? {
                Some(r) => decoded(rows::membership(&LiteRow(r))).map(Some),
                None => Ok(None),
            }
        })
    }

    async fn mark_delivered(&self, ocid: Ocid, marks: &[(ChatId, Index)]) -> Result<()> {
        if marks.is_empty() {
            return Ok(());
        }
        rows::request(&self.marks, |reply| (ocid, marks.to_vec(), reply)).await
    }

    async fn request_friend(
        &self,
        from: Ocid,
        to: Ocid,
        message: &str,
        now: i64,
    ) -> Result<Befriend> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)?;
        let (from, to) = (from as i64, to as i64);
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
            sqlx::query("INSERT INTO friends (ocid, friend, since) VALUES (?, ?, ?), (?, ?, ?)")
                .bind(from)
                .bind(to)
                .bind(now)
                .bind(to)
                .bind(from)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
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
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)?;
        let (from, to) = (from as i64, to as i64);
        let found = sqlx::query("DELETE FROM friend_requests WHERE from_ocid = ? AND to_ocid = ?")
            .bind(from)
            .bind(to)
            .execute(&mut *tx)
            .await
            .map_err(backend)?
            .rows_affected()
            > 0;
        if found && accept {
            sqlx::query(
                "INSERT INTO friends (ocid, friend, since) VALUES (?, ?, ?), (?, ?, ?) ON CONFLICT DO NOTHING",
            )
            .bind(from)
            .bind(to)
            .bind(now)
            .bind(to)
            .bind(from)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(found)
    }

    async fn remove_friend(&self, a: Ocid, b: Ocid) -> Result<bool> {
        let removed = sqlx::query(
            "DELETE FROM friends WHERE (ocid = ? AND friend = ?) OR (ocid = ? AND friend = ?)",
        )
        .bind(a as i64)
        .bind(b as i64)
        .bind(b as i64)
        .bind(a as i64)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(removed.rows_affected() > 0)
    }

    async fn friends(&self, ocid: Ocid) -> Result<Vec<Friend>> {
        self.readers.with(|c| {
            let mut st = c.prepare_cached(
                "SELECT friend, since FROM friends WHERE ocid = ?1 ORDER BY friend",
            )?;
            let rows = st.query_map([ocid as i64], |r| {
                Ok(Friend {
                    ocid: r.get::<_, i64>(0)? as Ocid,
                    since: r.get(1)?,
                })
            })?;
            rows.collect()
        })
    }

    async fn friend_requests(&self, to: Ocid) -> Result<Vec<FriendRequest>> {
        let rows = sqlx::query(
            "SELECT from_ocid, message, created_at FROM friend_requests WHERE to_ocid = ? ORDER BY created_at, from_ocid",
        )
        .bind(to as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|r| rows::friend_request(r, to))
            .collect::<Result<_, _>>()
            .map_err(backend)
    }

    async fn close(&self) {
        // Called after every session has ended: the writer commits what is queued and stops,
        // then the pool closes (for SQLite that checkpoints the WAL).
        self.writer.stop().await;
        self.pool.close().await;
    }
}
