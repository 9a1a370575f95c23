//! Online backup and restore of a SQLite store.
//!
//! A backup copies the database with SQLite's backup API in one step, inside one read
//! transaction: the copy is the database as of one commit, WAL content included, while the
//! server goes on writing (in WAL mode a reader does not block the writer). It is written to a
//! temporary file beside the destination, checked (`PRAGMA integrity_check`), synced, and
//! renamed into place, so a destination file is always a whole backup.

use crate::store::{Result, StoreError};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What a backup (or a restore) holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    pub pages: u64,
    pub accounts: u64,
    pub messages: u64,
}

fn fail(what: &str, path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("{what} {}: {e}", path.display()))
}

/// Copy the database at `source` to `dest` (which must not exist), consistently, while it is
/// in use.
///
/// # Errors
/// The source cannot be read, the destination exists or cannot be written, or the copy fails
/// its integrity check.
pub fn backup(source: &Path, dest: &Path) -> Result<Copied> {
    if dest.exists() {
        return Err(fail("will not overwrite", dest, "the file exists"));
    }
    if !source.is_file() {
        return Err(fail("no database at", source, "the file does not exist"));
    }
    let from = rusqlite::Connection::open_with_flags(
        source,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| fail("cannot open", source, e))?;
    from.busy_timeout(Duration::from_secs(10))
        .map_err(|e| fail("cannot open", source, e))?;
    let partial = partial_path(dest);
    let _ = std::fs::remove_file(&partial);
    let copied = (|| {
        let mut to =
            rusqlite::Connection::open(&partial).map_err(|e| fail("cannot create", &partial, e))?;
        {
            let b = rusqlite::backup::Backup::new(&from, &mut to)
                .map_err(|e| fail("cannot back up", source, e))?;
            all_at_once(&b).map_err(|e| fail("backup failed of", source, e))?;
        }
        // A self-contained file: no WAL beside it.
        to.pragma_update(None, "journal_mode", "DELETE")
            .map_err(|e| fail("cannot finish", &partial, e))?;
        let copied = check(&to, &partial)?;
        drop(to);
        std::fs::File::open(&partial)
            .and_then(|f| f.sync_all())
            .map_err(|e| fail("cannot sync", &partial, e))?;
        Ok(copied)
    })();
    match copied {
        Ok(c) => {
            std::fs::rename(&partial, dest).map_err(|e| fail("cannot move into place", dest, e))?;
            Ok(c)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

/// Replace the database at `dest` (its server stopped) with the backup `source`: the backup is
/// checked, the current database (and its WAL) is moved aside to `<dest>.before-restore`, and
/// the backup copied into place in WAL mode. Returns what the restored database holds and
/// where the previous one went (if there was one).
///
/// # Errors
/// The backup is unreadable or damaged, or a file cannot be moved or written.
pub fn restore(source: &Path, dest: &Path) -> Result<(Copied, Option<PathBuf>)> {
    let backup = rusqlite::Connection::open_with_flags(
        source,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| fail("cannot open the backup", source, e))?;
    check(&backup, source)?;
    let mut aside = None;
    if dest.exists() {
        let mut to = dest.as_os_str().to_owned();
        to.push(".before-restore");
        let to = PathBuf::from(to);
        for suffix in ["", "-wal", "-shm"] {
            let (mut from_file, mut to_file) =
                (dest.as_os_str().to_owned(), to.as_os_str().to_owned());
            from_file.push(suffix);
            to_file.push(suffix);
            let from_file = PathBuf::from(from_file);
            if from_file.exists() {
                std::fs::rename(&from_file, PathBuf::from(to_file))
                    .map_err(|e| fail("cannot move aside", &from_file, e))?;
            }
        }
        aside = Some(to);
    }
    let partial = partial_path(dest);
    let _ = std::fs::remove_file(&partial);
    let mut to =
        rusqlite::Connection::open(&partial).map_err(|e| fail("cannot create", &partial, e))?;
    {
        let b = rusqlite::backup::Backup::new(&backup, &mut to)
            .map_err(|e| fail("cannot restore from", source, e))?;
        all_at_once(&b).map_err(|e| fail("restore failed from", source, e))?;
    }
    to.pragma_update(None, "journal_mode", "WAL")
        .map_err(|e| fail("cannot finish", &partial, e))?;
    let copied = check(&to, &partial)?;
    drop(to);
    std::fs::rename(&partial, dest).map_err(|e| fail("cannot move into place", dest, e))?;
    Ok((copied, aside))
}

/// Every page in one step: one read transaction, so one consistent state of the source
/// (SQLite restarts a stepwise backup whenever another connection writes, which under load may
/// be never done). A busy or locked source is tried again for up to a minute.
fn all_at_once(b: &rusqlite::backup::Backup<'_, '_>) -> rusqlite::Result<()> {
    use rusqlite::backup::StepResult;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        match b.step(-1)? {
            StepResult::Done => return Ok(()),
            StepResult::More => {}
            StepResult::Busy | StepResult::Locked if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            _ => {
                return Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                    Some("the database stayed busy for a minute".into()),
                ));
            }
        }
    }
}

fn partial_path(dest: &Path) -> PathBuf {
    let mut p = dest.as_os_str().to_owned();
    p.push(".partial");
    PathBuf::from(p)
}

/// Check a copy and count what it holds.
fn check(conn: &rusqlite::Connection, path: &Path) -> Result<Copied> {
    let verdict: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| fail("cannot check", path, e))?;
    if verdict != "ok" {
        return Err(fail("damaged database", path, verdict));
    }
    let count = |sql: &str| -> Result<u64> {
        conn.query_row(sql, [], |r| r.get::<_, i64>(0))
            .map(|n| n.max(0) as u64)
            .map_err(|e| fail("not a natter database", path, e))
    };
    Ok(Copied {
        pages: count("PRAGMA page_count")?,
        accounts: count("SELECT COUNT(*) FROM accounts")?,
        messages: count("SELECT COUNT(*) FROM messages")?,
    })
}
