//! PostgreSQL's group commit: one writer task per node takes every queued append and commits
//! them in one transaction, chats locked in ascending id order; a batch that fails with a
//! transient error is retried whole.

use crate::store::rows::{self, AppendJob, AsSql, MESSAGE_COLUMNS};
use crate::store::{Appended, Index, Message, MessageId, NewMessage, Result, StoreError};
use sqlx::postgres::{PgConnection, PgPool};
use sqlx::{Acquire, Row};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Most appends committed in one transaction.
const MAX_BATCH: usize = 512;
/// Appends waiting for the writer before callers wait for room.
pub(super) const APPEND_QUEUE: usize = 4096;
/// Attempts at a batch that fails with a transient error.
const BATCH_ATTEMPTS: usize = 4;

/// Where the writer reports, once a server has said.
pub(super) type Observed = std::sync::Arc<std::sync::OnceLock<crate::metrics::StoreMetrics>>;

/// The group-commit loop: as SQLite's, on a pooled connection (so a lost connection is
/// replaced for the next batch).
pub(super) async fn append_writer(
    pool: PgPool,
    mut rx: mpsc::Receiver<AppendJob>,
    stop: CancellationToken,
    metrics: Observed,
) {
    let mut batch: Vec<AppendJob> = Vec::with_capacity(MAX_BATCH);
    loop {
        let n = tokio::select! {
            biased;
            n = rx.recv_many(&mut batch, MAX_BATCH) => n,
            () = stop.cancelled() => 0,
        };
        if n == 0 {
            break;
        }
        let started = std::time::Instant::now();
        let mut outcome = Err(sqlx::Error::PoolClosed);
        for attempt in 1..=BATCH_ATTEMPTS {
            outcome = match pool.acquire().await {
                Ok(mut conn) => append_batch(&mut conn, &batch).await,
                Err(e) => Err(e),
            };
            match &outcome {
                Err(e) if transient(e) && attempt < BATCH_ATTEMPTS => {
                    tracing::debug!(error = %e, attempt, "append batch retried");
                }
                _ => break,
            }
        }
        if let Some(m) = metrics.get() {
            m.commit_seconds.record(started.elapsed().as_secs_f64());
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
        rows::answer_batch(&mut batch, outcome);
    }
}

/// Whether a failed batch may succeed when run again: deadlock, serialization failure, or a
/// unique violation (another node stored the same client id first; the retry finds it).
fn transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            matches!(db.code().as_deref(), Some("40P01" | "40001" | "23505"))
        }
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => true,
        _ => false,
    }
}

async fn append_batch(
    conn: &mut PgConnection,
    batch: &[AppendJob],
) -> std::result::Result<Vec<Result<Appended>>, sqlx::Error> {
    // Lock chats in ascending id order; within a chat, keep the queue's order.
    let mut order: Vec<usize> = (0..batch.len()).collect();
    order.sort_by_key(|&i| batch[i].new.chat);
    let mut tx = conn.begin().await?;
    let mut results: Vec<Option<Result<Appended>>> = (0..batch.len()).map(|_| None).collect();
    for i in order {
        results[i] = Some(append_one(&mut tx, &batch[i].new).await?);
    }
    tx.commit().await?;
    Ok(results
        .into_iter()
        .map(|r| r.unwrap_or(Err(StoreError::Backend("append skipped".into()))))
        .collect())
}

async fn append_one(
    conn: &mut PgConnection,
    new: &NewMessage,
) -> std::result::Result<Result<Appended>, sqlx::Error> {
    if let Some(client_id) = &new.client_id {
        let existing = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE sender = $1 AND client_id = $2"
        )))
        .bind(new.sender.sql())
        .bind(client_id)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(row) = existing {
            let m = rows::message(&row)?;
            return Ok(if m.chat == new.chat {
                Ok(Appended::Existing(m))
            } else {
                Err(StoreError::ClientIdReused)
            });
        }
    }
    let parts = rows::encode_parts(&new.parts);
    // One round trip: take the chat's next index (locking its row) and insert.
    let row = sqlx::query(
        "WITH next AS (
             UPDATE chats SET last_index = last_index + 1 WHERE id = $1 RETURNING last_index
         )
         INSERT INTO messages (chat_id, idx, sender, kind, parts, client_id, created_at)
         SELECT $1, last_index, $2, $3, $4, $5, $6 FROM next
         RETURNING id, idx",
    )
    .bind(new.chat.sql())
    .bind(new.sender.sql())
    .bind(i64::from(new.kind))
    .bind(&parts)
    .bind(&new.client_id)
    .bind(new.created_at)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(Err(StoreError::NoSuchChat));
    };
    Ok(Ok(Appended::New(Message {
        id: MessageId(row.try_get::<i64, _>("id")? as u64),
        chat: new.chat,
        index: Index(row.try_get::<i64, _>("idx")? as u64),
        sender: new.sender,
        kind: new.kind,
        parts: new.parts.clone(),
        client_id: new.client_id.clone(),
        created_at: new.created_at,
    })))
}
