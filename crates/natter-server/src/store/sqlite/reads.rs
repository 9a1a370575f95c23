//! Read-only `rusqlite` connections for the point reads of the login and delivery paths, run
//! inline on the calling task's thread, and the row adapter the shared decoders read through.

use crate::store::rows;
use crate::store::{Result, StoreError};
use std::path::Path;
use std::time::Duration;

/// Most idle read connections kept open.
const MAX_IDLE_READERS: usize = 8;

/// Read-only connections used inline, on the calling task's thread, for the point reads of the
/// hot paths (a resume, a cursor). Each such read takes microseconds from the page cache,
/// where going through sqlx's per-connection worker thread costs two thread hand-offs and
/// dominated a reconnect storm. Longer reads (history pages, catch-up) stay on the pool.
pub(super) struct Readers {
    path: std::path::PathBuf,
    idle: std::sync::Mutex<Vec<rusqlite::Connection>>,
}

impl Readers {
    pub(super) fn new(path: &Path) -> Self {
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
    pub(super) fn with<T>(
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

pub(super) fn lite(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// A `rusqlite` row as the shared decoders read it.
pub(super) struct LiteRow<'a, 'r>(pub(super) &'a rusqlite::Row<'r>);

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
pub(super) fn decoded<T>(r: std::result::Result<T, sqlx::Error>) -> rusqlite::Result<T> {
    r.map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

pub(super) const MEMBERSHIP_ONE_SQL: &str = "SELECT m.chat_id, m.joined_index, m.delivered_index,
     c.last_index FROM members m JOIN chats c ON c.id = m.chat_id
     WHERE m.ocid = ?1 AND m.chat_id = ?2";

/// A live session with its account (`rows::ACCOUNT_COLUMNS_A`, then `expires_at`).
pub(super) const SESSION_SQL: &str =
    "SELECT a.ocid, a.uuid, a.email, a.phone, a.username, a.nickname,
     a.avatar, a.status, a.password_hash, a.created_at, a.signature, a.description, a.sex,
     a.status_text, a.modified_at, a.security_question, a.deleted_at, s.expires_at
     FROM sessions AS s JOIN accounts AS a ON a.ocid = s.ocid
     WHERE s.token_hash = ?1 AND s.revoked = 0";

/// Every chat of an account with one device's marks (`?2`, its token hash).
pub(super) const MEMBERSHIP_SQL: &str = "SELECT m.chat_id, m.joined_index, m.delivered_index,
     c.last_index, d.delivered_index AS device_index
     FROM members m JOIN chats c ON c.id = m.chat_id
     LEFT JOIN device_marks d ON d.token_hash = ?2 AND d.chat_id = m.chat_id
     WHERE m.ocid = ?1";

/// What waits for an account (`?1`), counted in one read.
pub(super) const NEWS_COUNTS_SQL: &str = "SELECT
     (SELECT COUNT(*) FROM friend_requests WHERE to_ocid = ?1),
     (SELECT COUNT(*) FROM join_requests j JOIN members m ON m.chat_id = j.chat_id
      WHERE m.ocid = ?1 AND m.role IN (1, 2)),
     (SELECT COUNT(*) FROM invitations WHERE ocid = ?1),
     (SELECT COUNT(*) FROM pending_notices WHERE ocid = ?1),
     (SELECT COALESCE(SUM((SELECT COUNT(*) FROM (SELECT 1 FROM messages x
       WHERE x.chat_id = m.chat_id AND x.idx > m.read_index AND x.sender != m.ocid LIMIT 100))), 0)
      FROM members m WHERE m.ocid = ?1)";
