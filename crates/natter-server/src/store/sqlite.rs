//! `Store` on an embedded SQLite database (WAL, `synchronous=FULL`).
//!
//! Reads and ordinary writes go through a small pool. Message appends go to one writer task
//! that owns a dedicated connection and commits every append waiting in its queue in ONE
//! transaction (group commit): each message's index is assigned in that transaction, and no
//! caller hears back before the commit that made its message durable.

use super::rows::{self, ACCOUNT_COLUMNS, AppendJob, MESSAGE_COLUMNS, backend};
use super::{
    Account, Appended, Befriend, Chat, ChatKind, Friend, FriendRequest, Membership, Message,
    NewAccount, NewMessage, OnDurable, Range, Receipt, Result, SessionRow, Store, StoreError,
};
use crate::ids::IdMap;
use async_trait::async_trait;
use natter_proto::{ChatId, Index, Ocid};
use rusqlite::OptionalExtension;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Most appends committed in one transaction.
const MAX_BATCH: usize = 512;
/// A commit at least this slow is logged (every append waiting behind it waits as long).
const SLOW_COMMIT: Duration = Duration::from_millis(100);
/// Committed batches waiting for their answers before the writer waits.
const ANSWER_QUEUE: usize = 4;
/// Appends waiting for the writer before callers wait for room.
const APPEND_QUEUE: usize = 4096;

type MarkJob = (Ocid, Vec<(ChatId, Index)>, oneshot::Sender<Result<()>>);

pub struct SqliteStore {
    pool: SqlitePool,
    /// Connections for the short reads on the login and delivery paths, run inline.
    readers: Readers,
    /// Appends and delivery marks, for the writer thread. Marks ride the writer's
    /// transactions too: no second writer contends for SQLite's write lock, and no extra
    /// fsync is spent on them.
    jobs: mpsc::Sender<WriteJob>,
    writer: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
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
        sqlx::migrate!("./migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Backend(format!("migration failed: {e}")))?;
        let conn = open_writer(path).map_err(lite)?;
        let (jobs, rx) = mpsc::channel(APPEND_QUEUE);
        let (answers, answers_rx) = mpsc::channel(ANSWER_QUEUE);
        let answerer = tokio::spawn(answer_loop(answers_rx));
        // A thread of its own, named, so that its CPU time can be told apart (`top -H`,
        // `/proc/<pid>/task`): the store's share of a message's cost is measured on it.
        let (stopped, writer_stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(WRITER_THREAD.into())
            .spawn(move || {
                write_loop(conn, rx, answers);
                let _ = stopped.send(());
            })
            .map_err(|e| StoreError::Backend(format!("cannot start the writer thread: {e}")))?;
        let writer = tokio::spawn(async move {
            let _ = writer_stopped.await;
            let _ = answerer.await;
        });
        Ok(Self {
            pool,
            readers: Readers::new(path),
            jobs,
            writer: tokio::sync::Mutex::new(Some(writer)),
            writes: tokio::sync::Mutex::new(()),
        })
    }
}

/// The writer thread's connection: the pool's settings (WAL is already set on the file by
/// then), except foreign keys. The writer inserts only messages and delivery marks, whose
/// references it has checked already: a message's chat is read (`last_index`) before its row
/// is written (a missing chat is `NoSuchChat`), its sender is the logged-in account, and
/// accounts and chats are never deleted. The foreign-key lookups (two parent probes and two
/// cursors per message) were ~9 % of a direct message's instructions under callgrind.
fn open_writer(path: &Path) -> rusqlite::Result<rusqlite::Connection> {
    use rusqlite::OpenFlags;
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", false)?;
    Ok(conn)
}

/// The name of the thread that writes every message (see `docs/performance.md`).
const WRITER_THREAD: &str = "natter-writer";

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

impl LiteRow<'_, '_> {
    fn get<T: rusqlite::types::FromSql>(&self, col: &str) -> std::result::Result<T, sqlx::Error> {
        self.0
            .get(col)
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))
    }
}

impl rows::StoreRow for LiteRow<'_, '_> {
    fn int(&self, col: &str) -> std::result::Result<i64, sqlx::Error> {
        self.get(col)
    }
    fn opt_int(&self, col: &str) -> std::result::Result<Option<i64>, sqlx::Error> {
        self.get(col)
    }
    fn text(&self, col: &str) -> std::result::Result<String, sqlx::Error> {
        self.get(col)
    }
    fn opt_text(&self, col: &str) -> std::result::Result<Option<String>, sqlx::Error> {
        self.get(col)
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

/// What the writer thread is asked to do, in queue order.
enum WriteJob {
    Append(AppendJob),
    Marks(MarkJob),
    /// Finish what is queued before this, then stop.
    Stop,
}

/// The group-commit loop, on its own thread with its own connection: take every queued append
/// and delivery mark (up to `MAX_BATCH` of each), run them in one transaction, commit, then
/// run each append's hook and answer each caller, in queue order.
fn write_loop(
    mut conn: rusqlite::Connection,
    mut rx: mpsc::Receiver<WriteJob>,
    answers: mpsc::Sender<Answer>,
) {
    let mut batch: Vec<AppendJob> = Vec::with_capacity(MAX_BATCH);
    let mut marks: Vec<MarkJob> = Vec::new();
    let mut stopping = false;
    while !stopping {
        let Some(first) = rx.blocking_recv() else {
            break;
        };
        // Whatever else is already waiting joins the same transaction.
        let mut next = Some(first);
        while let Some(job) = next.take() {
            match job {
                WriteJob::Append(j) => batch.push(j),
                WriteJob::Marks(m) => marks.push(m),
                WriteJob::Stop => {
                    stopping = true;
                    break;
                }
            }
            if batch.len() < MAX_BATCH && marks.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if batch.is_empty() && marks.is_empty() {
            continue;
        }
        let started = std::time::Instant::now();
        let outcome = write_batch(&mut conn, &mut batch, &marks);
        let took = started.elapsed();
        if took >= SLOW_COMMIT {
            tracing::warn!(
                ms = took.as_millis() as u64,
                appends = batch.len(),
                marks = marks.len(),
                "slow store commit"
            );
        }
        let marked = outcome
            .as_ref()
            .map(|_| ())
            .map_err(|e| StoreError::Backend(e.to_string()));
        for (_, _, reply) in marks.drain(..) {
            let _ = reply.send(marked.clone());
        }
        // Hooks and replies wake tasks: done on the runtime (cheap local wake-ups there), while
        // this thread starts the next transaction.
        let done = std::mem::replace(&mut batch, Vec::with_capacity(MAX_BATCH));
        if answers.blocking_send((done, outcome)).is_err() {
            break;
        }
    }
}

/// A committed (or failed) batch on its way to its callers.
type Answer = (Vec<AppendJob>, rusqlite::Result<Vec<Result<Appended>>>);

/// Run each batch's hooks and answer its callers, batch after batch in commit order.
async fn answer_loop(mut answers: mpsc::Receiver<Answer>) {
    while let Some((mut batch, outcome)) = answers.recv().await {
        rows::answer_batch(&mut batch, outcome);
    }
}

/// One transaction: the appends, then the marks; rolled back whole on any failure.
///
/// The appends are first written as fresh messages, many rows per statement. If a client id
/// turns out to be taken by a message stored before this batch (a retried send whose ack was
/// lost), that transaction is rolled back and the batch is written again, this time looking
/// up every client id first.
fn write_batch(
    conn: &mut rusqlite::Connection,
    batch: &mut [AppendJob],
    marks: &[MarkJob],
) -> rusqlite::Result<Vec<Result<Appended>>> {
    for probe in [false, true] {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if let Some(results) = append_batch(&tx, batch, probe)? {
            write_marks(&tx, marks)?;
            tx.commit()?;
            return Ok(results);
        }
        tx.rollback()?;
    }
    // Not reached: with `probe`, a short count is an error of its own.
    Err(rusqlite::Error::StatementChangedRows(0))
}

/// Every queued delivery mark (the highest index per account and chat; marks never go down).
fn write_marks(tx: &rusqlite::Transaction<'_>, marks: &[MarkJob]) -> rusqlite::Result<()> {
    if marks.is_empty() {
        return Ok(());
    }
    let mut highest: IdMap<(Ocid, ChatId), Index> = IdMap::default();
    for (ocid, list, _) in marks {
        for &(chat, index) in list {
            let mark = highest.entry((*ocid, chat)).or_insert(index);
            *mark = (*mark).max(index);
        }
    }
    let mut update = tx.prepare_cached(
        "UPDATE members SET delivered_index = MAX(delivered_index, ?3)
         WHERE ocid = ?1 AND chat_id = ?2",
    )?;
    for ((ocid, chat), index) in highest {
        update.execute((ocid as i64, chat as i64, index as i64))?;
    }
    Ok(())
}

/// Rows per multi-row `INSERT` of [`append_batch`], largest first: a batch is cut into
/// statements of these sizes. One statement for many rows saves SQLite's per-statement work
/// (three cursors opened and closed, the program's start and halt, the reset), which was
/// ~7 % of a direct message's instructions with one row per statement.
const INSERT_ROWS: [usize; 4] = [64, 16, 4, 1];

/// `INSERT OR IGNORE` of `rows` messages in one statement. `OR IGNORE` (rather than an abort)
/// keeps SQLite from opening a statement journal for a multi-row insert; a row it ignores
/// shows as a short count of changes, and the caller then starts over with client ids probed.
fn insert_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT OR IGNORE INTO messages (chat_id, idx, sender, kind, parts, client_id, created_at) VALUES ",
    );
    for i in 0..rows {
        sql.push_str(if i == 0 { "(" } else { ",(" });
        sql.push_str("?,?,?,?,?,?,?)");
    }
    sql
}

static INSERT_SQL: std::sync::LazyLock<Vec<(usize, String)>> =
    std::sync::LazyLock::new(|| INSERT_ROWS.iter().map(|&n| (n, insert_sql(n))).collect());

/// What [`append_batch`] decided for one queued append.
enum Plan {
    /// A new row at this index.
    Insert(Index),
    /// A retry of the earlier job at this position of the batch.
    SameAs(usize),
    /// A retry of a message stored before this batch (or a client id reused for another chat).
    Stored(Result<Appended>),
    /// The chat does not exist.
    NoChat,
}

/// Write every queued append, indexes assigned in queue order, a retry within the batch
/// answered with its first copy. Without `probe`, every message is taken to be fresh: `None`
/// (with rows already written: the caller rolls back) when a client id was taken by a message
/// stored before this batch. With `probe`, each client id is looked up first and a stored
/// message is the answer (`Appended::Existing`, or `ClientIdReused` for another chat); a fresh
/// message then costs one probe of the client-id index more, which is why it is the fallback.
///
/// The rows go in multi-row statements. Their ids are consecutive: SQLite gives a new row the
/// largest rowid plus one, and this thread is the only writer of messages.
fn append_batch(
    tx: &rusqlite::Transaction<'_>,
    batch: &mut [AppendJob],
    probe: bool,
) -> rusqlite::Result<Option<Vec<Result<Appended>>>> {
    let mut existing = tx.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE sender = ?1 AND client_id = ?2"
    ))?;
    let mut last_of = tx.prepare_cached("SELECT last_index FROM chats WHERE id = ?1")?;
    // chat -> (last index before this batch, last index assigned).
    let mut indexes: IdMap<ChatId, (Index, Index)> = IdMap::default();
    let mut first_of: HashMap<(Ocid, &str), usize> = HashMap::new();
    let mut plans = Vec::with_capacity(batch.len());
    let mut fresh = Vec::with_capacity(batch.len());
    for (i, job) in batch.iter().enumerate() {
        let new = &job.new;
        if let Some(c) = new.client_id.as_deref() {
            if let Some(&j) = first_of.get(&(new.sender, c)) {
                plans.push(Plan::SameAs(j));
                continue;
            }
            first_of.insert((new.sender, c), i);
            if probe {
                let stored = existing
                    .query_row((new.sender as i64, c), |r| {
                        decoded(rows::message(&LiteRow(r)))
                    })
                    .optional()?;
                if let Some(stored) = stored {
                    plans.push(Plan::Stored(if stored.chat == new.chat {
                        Ok(Appended::Existing(stored))
                    } else {
                        Err(StoreError::ClientIdReused)
                    }));
                    continue;
                }
            }
        }
        let slot = match indexes.entry(new.chat) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let last: Option<i64> = last_of
                    .query_row([new.chat as i64], |r| r.get(0))
                    .optional()?;
                let Some(last) = last else {
                    plans.push(Plan::NoChat);
                    continue;
                };
                v.insert((last as u64, last as u64))
            }
        };
        slot.1 += 1;
        plans.push(Plan::Insert(slot.1));
        fresh.push((i, slot.1));
    }
    let mut ids = Vec::with_capacity(fresh.len());
    let mut rest = &fresh[..];
    for (size, sql) in INSERT_SQL.iter() {
        let mut insert = tx.prepare_cached(sql)?;
        while rest.len() >= *size {
            let (chunk, tail) = rest.split_at(*size);
            rest = tail;
            let mut at = 1;
            for &(i, index) in chunk {
                let new = &batch[i].new;
                insert.raw_bind_parameter(at, new.chat as i64)?;
                insert.raw_bind_parameter(at + 1, index as i64)?;
                insert.raw_bind_parameter(at + 2, new.sender as i64)?;
                insert.raw_bind_parameter(at + 3, i64::from(new.kind))?;
                insert.raw_bind_parameter(at + 4, rows::encode_parts(&new.parts))?;
                insert.raw_bind_parameter(at + 5, new.client_id.as_deref())?;
                insert.raw_bind_parameter(at + 6, new.created_at)?;
                at += 7;
            }
            let changed = insert.raw_execute()?;
            if changed != chunk.len() {
                // Probed, every client id was free: only a broken store ignores a row then.
                return if probe {
                    Err(rusqlite::Error::StatementChangedRows(changed))
                } else {
                    Ok(None)
                };
            }
            let last = tx.last_insert_rowid() as u64;
            ids.extend(last + 1 - chunk.len() as u64..=last);
        }
    }
    drop(first_of);
    update_last_indexes(tx, indexes)?;
    let mut ids = ids.into_iter();
    let mut results: Vec<Result<Appended>> = Vec::with_capacity(batch.len());
    for (job, plan) in batch.iter_mut().zip(plans) {
        let new = &mut job.new;
        let result = match plan {
            Plan::SameAs(j) => rows::same_as(&results[j], new.chat),
            Plan::Stored(result) => result,
            Plan::NoChat => Err(StoreError::NoSuchChat),
            Plan::Insert(index) => Ok(Appended::New(Message {
                id: ids.next().unwrap_or_default(),
                chat: new.chat,
                index,
                sender: new.sender,
                kind: new.kind,
                parts: std::mem::take(&mut new.parts),
                client_id: new.client_id.take(),
                created_at: new.created_at,
            })),
        };
        results.push(result);
    }
    Ok(Some(results))
}

/// Record each chat's new last index after a batch.
fn update_last_indexes(
    tx: &rusqlite::Transaction<'_>,
    indexes: IdMap<ChatId, (Index, Index)>,
) -> rusqlite::Result<()> {
    let mut moved = tx.prepare_cached("UPDATE chats SET last_index = ?2 WHERE id = ?1")?;
    for (chat, (before, after)) in indexes {
        if after > before {
            moved.execute((chat as i64, after as i64))?;
        }
    }
    Ok(())
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
        let _turn = self.writes.lock().await;
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
        let _turn = self.writes.lock().await;
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
        let _turn = self.writes.lock().await;
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
        let _turn = self.writes.lock().await;
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
        rows::queue(&self.jobs, |reply| {
            WriteJob::Append(AppendJob {
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
        rows::request(&self.jobs, |reply| {
            WriteJob::Marks((ocid, marks.to_vec(), reply))
        })
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
        let _ = self.jobs.send(WriteJob::Stop).await;
        if let Some(writer) = self.writer.lock().await.take() {
            let _ = writer.await;
        }
        self.pool.close().await;
    }
}

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
