//! The SQLite writer: one thread with its own connection that commits every queued append and
//! delivery mark in one transaction (group commit), then hands the batch to an answering task
//! that runs each append's hook and answers its caller, in queue order.

use super::reads::{LiteRow, decoded, lite};
use crate::ids::IdMap;
use crate::metrics::StoreMetrics;
use crate::store::rows::{self, AppendJob, AsSql, MESSAGE_COLUMNS};
use crate::store::{Appended, ChatId, Device, Index, Message, MessageId, Ocid, Result, StoreError};
use rusqlite::OptionalExtension;
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

/// One connection's delivery marks: its account, its device, the highest index per chat.
pub(super) type MarkJob = (
    Ocid,
    Device,
    Vec<(ChatId, Index)>,
    oneshot::Sender<Result<()>>,
);

/// A readiness check: this node's row of `node_checks`, written in the next transaction.
pub(super) type CheckJob = (String, i64, oneshot::Sender<Result<()>>);

/// The writer thread and its answering task, as the store sees them.
pub(super) struct Writer {
    jobs: mpsc::Sender<WriteJob>,
    done: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    metrics: Observed,
}

/// Where the writer reports, once a server has said (shared with its thread).
type Observed = std::sync::Arc<std::sync::OnceLock<StoreMetrics>>;

impl Writer {
    /// Open the writer's connection to `path` and start its thread.
    ///
    /// # Errors
    /// The connection cannot be opened or the thread cannot start.
    pub(super) fn start(path: &Path) -> Result<Self> {
        let conn = open_writer(path).map_err(lite)?;
        let (jobs, rx) = mpsc::channel(APPEND_QUEUE);
        let (answers, answers_rx) = mpsc::channel(ANSWER_QUEUE);
        let answerer = tokio::spawn(answer_loop(answers_rx));
        // A thread of its own, named, so that its CPU time can be told apart (`top -H`,
        // `/proc/<pid>/task`): the store's share of a message's cost is measured on it.
        let (stopped, writer_stopped) = oneshot::channel::<()>();
        let metrics = Observed::default();
        let observed = metrics.clone();
        std::thread::Builder::new()
            .name(WRITER_THREAD.into())
            .spawn(move || {
                write_loop(conn, rx, answers, &observed);
                let _ = stopped.send(());
            })
            .map_err(|e| StoreError::Backend(format!("cannot start the writer thread: {e}")))?;
        let done = tokio::spawn(async move {
            let _ = writer_stopped.await;
            let _ = answerer.await;
        });
        Ok(Self {
            jobs,
            done: tokio::sync::Mutex::new(Some(done)),
            metrics,
        })
    }

    /// Report commits to `metrics` from now on (once).
    pub(super) fn observe(&self, metrics: StoreMetrics) {
        let _ = self.metrics.set(metrics);
    }

    /// Queue a job built around a reply channel (waiting for room) and return the channel.
    pub(super) async fn queue<T>(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<T>>) -> WriteJob,
    ) -> Result<oneshot::Receiver<Result<T>>> {
        rows::queue(&self.jobs, job).await
    }

    /// Queue a job and wait for the writer's answer.
    pub(super) async fn request<T>(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<T>>) -> WriteJob,
    ) -> Result<T> {
        rows::request(&self.jobs, job).await
    }

    /// Commit what is queued, then stop the thread and wait for the last answers.
    pub(super) async fn stop(&self) {
        let _ = self.jobs.send(WriteJob::Stop).await;
        if let Some(done) = self.done.lock().await.take() {
            let _ = done.await;
        }
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

/// What the writer thread is asked to do, in queue order.
pub(super) enum WriteJob {
    Append(AppendJob),
    Marks(MarkJob),
    Check(CheckJob),
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
    metrics: &Observed,
) {
    let mut batch: Vec<AppendJob> = Vec::with_capacity(MAX_BATCH);
    let mut marks: Vec<MarkJob> = Vec::new();
    let mut checks: Vec<CheckJob> = Vec::new();
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
                WriteJob::Check(c) => checks.push(c),
                WriteJob::Stop => {
                    stopping = true;
                    break;
                }
            }
            if batch.len() < MAX_BATCH && marks.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if batch.is_empty() && marks.is_empty() && checks.is_empty() {
            continue;
        }
        let started = std::time::Instant::now();
        let outcome = write_batch(&mut conn, &mut batch, &marks, &checks);
        let took = started.elapsed();
        if let Some(m) = metrics.get() {
            m.commit_seconds.record(took.as_secs_f64());
            match &outcome {
                Ok(results) => m.messages.increment(
                    results
                        .iter()
                        .filter(|r| matches!(r, Ok(Appended::New(_))))
                        .count() as u64,
                ),
                Err(_) => m.failed_commits.increment(1),
            }
        }
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
        for (_, _, _, reply) in marks.drain(..) {
            let _ = reply.send(marked.clone());
        }
        for (_, _, reply) in checks.drain(..) {
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
    checks: &[CheckJob],
) -> rusqlite::Result<Vec<Result<Appended>>> {
    for probe in [false, true] {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if let Some(results) = append_batch(&tx, batch, probe)? {
            write_marks(&tx, marks)?;
            write_checks(&tx, checks)?;
            tx.commit()?;
            return Ok(results);
        }
        tx.rollback()?;
    }
    // Not reached: with `probe`, a short count is an error of its own.
    Err(rusqlite::Error::StatementChangedRows(0))
}

/// Every queued delivery mark: each device's highest index per chat, and the account's with it
/// (marks never go down).
fn write_marks(tx: &rusqlite::Transaction<'_>, marks: &[MarkJob]) -> rusqlite::Result<()> {
    if marks.is_empty() {
        return Ok(());
    }
    let mut accounts: IdMap<(Ocid, ChatId), Index> = IdMap::default();
    let mut devices: HashMap<(Device, ChatId), Index> = HashMap::new();
    for (ocid, device, list, _) in marks {
        for &(chat, index) in list {
            let mark = accounts.entry((*ocid, chat)).or_insert(index);
            *mark = (*mark).max(index);
            let mark = devices.entry((*device, chat)).or_insert(index);
            *mark = (*mark).max(index);
        }
    }
    let mut account = tx.prepare_cached(
        "UPDATE members SET delivered_index = MAX(delivered_index, ?3)
         WHERE ocid = ?1 AND chat_id = ?2",
    )?;
    for ((ocid, chat), index) in accounts {
        account.execute((ocid.sql(), chat.sql(), index.sql()))?;
    }
    let mut device = tx.prepare_cached(
        "INSERT INTO device_marks (token_hash, chat_id, delivered_index) VALUES (?1, ?2, ?3)
         ON CONFLICT (token_hash, chat_id)
         DO UPDATE SET delivered_index = MAX(delivered_index, excluded.delivered_index)",
    )?;
    for ((dev, chat), index) in devices {
        device.execute((&dev.0[..], chat.sql(), index.sql()))?;
    }
    Ok(())
}

/// Each readiness check's row: a write that commits with the batch.
fn write_checks(tx: &rusqlite::Transaction<'_>, checks: &[CheckJob]) -> rusqlite::Result<()> {
    if checks.is_empty() {
        return Ok(());
    }
    let mut check = tx.prepare_cached(
        "INSERT INTO node_checks (node, at) VALUES (?1, ?2)
         ON CONFLICT (node) DO UPDATE SET at = excluded.at",
    )?;
    for (node, at, _) in checks {
        check.execute((node, at))?;
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
                    .query_row((new.sender.sql(), c), |r| {
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
                    .query_row([new.chat.sql()], |r| r.get(0))
                    .optional()?;
                let Some(last) = last else {
                    plans.push(Plan::NoChat);
                    continue;
                };
                v.insert((Index(last as u64), Index(last as u64)))
            }
        };
        slot.1 = slot.1.next();
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
                insert.raw_bind_parameter(at, new.chat.sql())?;
                insert.raw_bind_parameter(at + 1, index.sql())?;
                insert.raw_bind_parameter(at + 2, new.sender.sql())?;
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
            ids.extend((last + 1 - chunk.len() as u64..=last).map(MessageId));
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
            moved.execute((chat.sql(), after.sql()))?;
        }
    }
    Ok(())
}
