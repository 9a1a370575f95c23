//! `natter export` and `natter import`: a whole deployment as JSON lines, one row per line,
//! ids kept, from any store into any empty store (SQLite to PostgreSQL, or back).
//!
//! # Format
//! The first line names the format: `{"t":"natter-export","version":1}`. Then every row of
//! every table of [`store::TABLES`](crate::store::TABLES), table after table in that order
//! (each row before the rows that name it): accounts, chats, members, messages, friends,
//! friend requests, blocks, group join requests, group invitations, kept notices. Each line is
//! one object: its type in `t` (`account`, `chat`, `member`, …) and the row's columns by their
//! names in the store's schema (times in Unix milliseconds, a message's `parts` as the JSON
//! text the store keeps). Password and security-answer hashes are exported as stored
//! (Argon2id): the file is as sensitive as the database. Logins (sessions) and delivery marks
//! are not: after an import everyone logs in again and is sent what they had not been sent.

use crate::store::{Ocid, Row, Store, StoreError, TABLES, TableSpec};
use std::io::{BufRead, Write};

/// The format's name and version, on the first line.
const FORMAT: &str = "natter-export";
const VERSION: u64 = 1;
/// Rows read or written per store call.
const PAGE: usize = 1000;

/// Rows moved, per table (in [`TABLES`] order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts(pub Vec<(&'static str, u64)>);

impl Counts {
    fn add(&mut self, table: &'static str) {
        match self.0.iter_mut().find(|(t, _)| *t == table) {
            Some((_, n)) => *n += 1,
            None => self.0.push((table, 1)),
        }
    }

    /// Rows of `table` (`accounts`, `messages`, …).
    pub fn of(&self, table: &str) -> u64 {
        self.0
            .iter()
            .find(|(t, _)| *t == table)
            .map_or(0, |(_, n)| *n)
    }
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = TABLES
            .iter()
            .map(|t| format!("{} {}", self.of(t.name), t.name.replace('_', " ")))
            .collect();
        f.write_str(&parts.join(", "))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("writing the export: {0}")]
    Write(#[from] std::io::Error),
    #[error("line {line}: {why}")]
    Line { line: usize, why: String },
    #[error("the target store is not empty (it has accounts); import into a new one")]
    NotEmpty,
}

/// Write every row of `store` to `out` as JSON lines.
///
/// # Errors
/// The store fails, or `out` cannot be written.
pub async fn export(store: &dyn Store, out: &mut dyn Write) -> Result<Counts, TransferError> {
    let mut counts = Counts::default();
    writeln!(out, r#"{{"t":"{FORMAT}","version":{VERSION}}}"#)?;
    for table in TABLES {
        let mut after = (i64::MIN, i64::MIN);
        loop {
            let page = store.export(table, after, PAGE as u32).await?;
            for row in &page {
                let mut line = Row::with_capacity(row.len() + 1);
                line.insert("t".into(), table.line.into());
                line.extend(row.iter().map(|(k, v)| (k.clone(), v.clone())));
                serde_json::to_writer(&mut *out, &line).map_err(std::io::Error::from)?;
                out.write_all(b"\n")?;
                counts.add(table.name);
            }
            match page.last() {
                Some(last) if page.len() == PAGE => after = crate::store::rows_key(table, last),
                _ => break,
            }
        }
    }
    out.flush()?;
    Ok(counts)
}

/// Read JSON lines written by [`export`] into `store`, which must have no accounts.
///
/// # Errors
/// A line that is not of the format (its number is given), or the store refuses a row.
pub async fn import(store: &dyn Store, input: &mut dyn BufRead) -> Result<Counts, TransferError> {
    if !store.accounts(Ocid(0), 1).await?.is_empty() {
        return Err(TransferError::NotEmpty);
    }
    let mut counts = Counts::default();
    let mut batch: Vec<Row> = Vec::with_capacity(PAGE);
    let mut current: Option<&'static TableSpec> = None;
    let mut text = String::new();
    let mut n = 0;
    let line_error = |line: usize, why: String| TransferError::Line { line, why };
    loop {
        text.clear();
        let read = input
            .read_line(&mut text)
            .map_err(|e| line_error(n + 1, e.to_string()))?;
        if read == 0 {
            break;
        }
        n += 1;
        if text.trim().is_empty() {
            continue;
        }
        let mut row: Row = serde_json::from_str(&text).map_err(|e| line_error(n, e.to_string()))?;
        let t = match row.remove("t") {
            Some(serde_json::Value::String(t)) => t,
            _ => return Err(line_error(n, "no `t` naming the line's type".into())),
        };
        if n == 1 {
            let version = row.get("version").and_then(serde_json::Value::as_u64);
            match (t.as_str(), version) {
                (FORMAT, Some(VERSION)) => continue,
                (FORMAT, v) => {
                    return Err(line_error(
                        1,
                        format!("format version {v:?}; this natter reads {VERSION}"),
                    ));
                }
                _ => {
                    return Err(line_error(
                        1,
                        format!("not a natter export (no {FORMAT} line)"),
                    ));
                }
            }
        }
        let Some(table) = TABLES.iter().find(|s| s.line == t) else {
            return Err(line_error(n, format!("unknown type `{t}`")));
        };
        if current.is_some_and(|c| c.name != table.name) || batch.len() == PAGE {
            flush(store, current, &mut batch, n).await?;
        }
        current = Some(table);
        counts.add(table.name);
        batch.push(row);
    }
    if n == 0 {
        return Err(line_error(1, "empty input".into()));
    }
    flush(store, current, &mut batch, n).await?;
    store.finish_import().await?;
    Ok(counts)
}

async fn flush(
    store: &dyn Store,
    table: Option<&'static TableSpec>,
    batch: &mut Vec<Row>,
    line: usize,
) -> Result<(), TransferError> {
    let Some(table) = table else { return Ok(()) };
    if batch.is_empty() {
        return Ok(());
    }
    store
        .import(table, batch)
        .await
        .map_err(|e| TransferError::Line {
            line,
            why: format!("the store refused a row of {} near here: {e}", table.name),
        })?;
    batch.clear();
    Ok(())
}
