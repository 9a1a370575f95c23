//! Row decoding and error mapping shared by the SQL backends: both schemas use the same
//! column names and 64-bit integer columns, so one decoder serves SQLite and PostgreSQL.

use super::{
    Account, Category, ChatId, FriendRequest, Index, Membership, Message, MessageId, Ocid, Part,
    StoreError, Unique,
};
use sqlx::{ColumnIndex, Decode, Row, Type};

/// An id as the schemas store it: a 64-bit signed integer.
pub trait AsSql {
    fn sql(self) -> i64;
}

macro_rules! as_sql {
    ($($t:ty),*) => {
        $(impl AsSql for $t {
            fn sql(self) -> i64 {
                self.0 as i64
            }
        })*
    };
}
as_sql!(Ocid, ChatId, Index, MessageId);

/// A part as stored in a message's `parts` column.
#[derive(serde::Deserialize)]
struct StoredPart {
    category: u8,
    content: String,
}

/// A row type whose columns decode as the store's plain integers and strings.
pub trait StoreRow {
    fn int(&self, col: &str) -> Result<i64, sqlx::Error>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>, sqlx::Error>;
    fn text(&self, col: &str) -> Result<String, sqlx::Error>;
    fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error>;
}

impl<R> StoreRow for R
where
    R: Row,
    for<'r> &'r str: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    fn int(&self, col: &str) -> Result<i64, sqlx::Error> {
        self.try_get(col)
    }
    fn opt_int(&self, col: &str) -> Result<Option<i64>, sqlx::Error> {
        self.try_get(col)
    }
    fn text(&self, col: &str) -> Result<String, sqlx::Error> {
        self.try_get(col)
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error> {
        self.try_get(col)
    }
}

pub const ACCOUNT_COLUMNS: &str =
    "ocid, uuid, email, phone, username, nickname, avatar, status, password_hash, created_at";

/// The same columns of an `accounts` table aliased `a`.
pub const ACCOUNT_COLUMNS_A: &str = "a.ocid, a.uuid, a.email, a.phone, a.username, a.nickname, \
     a.avatar, a.status, a.password_hash, a.created_at";

pub const MESSAGE_COLUMNS: &str = "id, chat_id, idx, sender, kind, parts, client_id, created_at";

pub fn account<R: StoreRow>(row: &R) -> Result<Account, sqlx::Error> {
    Ok(Account {
        ocid: Ocid(row.int("ocid")? as u64),
        uuid: row.text("uuid")?,
        email: row.opt_text("email")?,
        phone: row.opt_text("phone")?,
        username: row.opt_text("username")?,
        nickname: row.text("nickname")?,
        avatar: row.text("avatar")?,
        status: row.int("status")?,
        password_hash: row.text("password_hash")?,
        created_at: row.int("created_at")?,
    })
}

pub fn message<R: StoreRow>(row: &R) -> Result<Message, sqlx::Error> {
    let stored: Vec<StoredPart> =
        serde_json::from_str(&row.text("parts")?).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    let parts = stored
        .into_iter()
        .map(|p| Part {
            category: Category(p.category),
            content: p.content,
        })
        .collect();
    Ok(Message {
        id: MessageId(row.int("id")? as u64),
        chat: ChatId(row.int("chat_id")? as u64),
        index: Index(row.int("idx")? as u64),
        sender: Ocid(row.int("sender")? as u64),
        kind: row.int("kind")? as u8,
        parts,
        client_id: row.opt_text("client_id")?,
        created_at: row.int("created_at")?,
    })
}

/// A membership row (`chat_id, joined_index, delivered_index, last_index`, and optionally
/// `device_index`, null when the device has no mark in the chat).
pub fn membership<R: StoreRow>(row: &R, with_device: bool) -> Result<Membership, sqlx::Error> {
    let device = if with_device {
        row.opt_int("device_index")?.map(|i| Index(i as u64))
    } else {
        None
    };
    Ok(Membership {
        chat: ChatId(row.int("chat_id")? as u64),
        joined: Index(row.int("joined_index")? as u64),
        delivered: Index(row.int("delivered_index")? as u64),
        device,
        last_index: Index(row.int("last_index")? as u64),
    })
}

/// A `friend_requests` row (`from_ocid, message, created_at`) addressed to `to`.
pub fn friend_request<R: StoreRow>(row: &R, to: Ocid) -> Result<FriendRequest, sqlx::Error> {
    Ok(FriendRequest {
        from: Ocid(row.int("from_ocid")? as u64),
        to,
        message: row.text("message")?,
        created_at: row.int("created_at")?,
    })
}

/// Parts as stored: a JSON array of `{category, content}`, the bytes `serde_json` writes for
/// `parts`, written field by field (once per message, on the store writer).
pub fn encode_parts(parts: &[Part]) -> String {
    let size: usize = parts.iter().map(|p| 32 + p.content.len()).sum();
    let mut w = natter_proto::json::Writer::new(2 + size);
    w.lit("[");
    for (i, part) in parts.iter().enumerate() {
        w.lit(if i == 0 {
            r#"{"category":"#
        } else {
            r#",{"category":"#
        })
        .int(part.category.0)
        .lit(r#","content":"#)
        .str(&part.content)
        .lit("}");
    }
    w.lit("]").finish()
}

/// A backend error as the store reports it: unique violations on account fields become
/// `Conflict`, everything else `Backend`.
pub fn backend(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e
        && db.is_unique_violation()
    {
        // SQLite names the column ("accounts.email"), PostgreSQL the constraint
        // ("accounts_email_key"); both contain the column name.
        let m = db.constraint().unwrap_or_else(|| db.message());
        let field = [
            ("email", Unique::Email),
            ("phone", Unique::Phone),
            ("username", Unique::Username),
            ("uuid", Unique::Uuid),
        ]
        .into_iter()
        .find_map(|(name, field)| m.contains(name).then_some(field));
        if let Some(field) = field {
            return StoreError::Conflict(field);
        }
    }
    StoreError::Backend(e.to_string())
}

/// A store's writer task: how callers hand it a job and wait for the answer, and how the store
/// stops it at shutdown. Shared by the SQL backends, whose writers own group commit.
pub struct WriterTask {
    task: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    stop: tokio_util::sync::CancellationToken,
}

impl WriterTask {
    /// Run `writer`, which must end once `stop` is cancelled and its queues are drained.
    pub fn spawn<F>(writer: impl FnOnce(tokio_util::sync::CancellationToken) -> F) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let stop = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn(writer(stop.clone()));
        Self {
            task: tokio::sync::Mutex::new(Some(task)),
            stop,
        }
    }

    /// Stop the writer after the batch it holds and wait for it (once; later calls return).
    pub async fn stop(&self) {
        let handle = self.task.lock().await.take();
        if let Some(handle) = handle {
            self.stop.cancel();
            let _ = handle.await;
        }
    }
}

/// One queued append: the message, the hook to run once it is durable, and where to answer.
pub struct AppendJob {
    pub new: super::NewMessage,
    pub on_durable: Option<super::OnDurable>,
    pub reply: tokio::sync::oneshot::Sender<super::Result<super::Appended>>,
}

/// Answer every job of a batch, in queue order: on success each job's hook runs, then its
/// caller hears back; on failure every caller gets the error.
pub fn answer_batch(
    batch: &mut Vec<AppendJob>,
    outcome: Result<Vec<super::Result<super::Appended>>, impl std::fmt::Display>,
) {
    match outcome {
        Ok(results) => {
            for (job, result) in batch.drain(..).zip(results) {
                if let (Ok(appended), Some(hook)) = (&result, job.on_durable) {
                    hook(appended);
                }
                // The caller may have gone away (connection closed); the message is stored
                // either way and will be delivered from the store.
                let _ = job.reply.send(result);
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "append batch failed; rolled back");
            for job in batch.drain(..) {
                let _ = job.reply.send(Err(StoreError::Backend(e.to_string())));
            }
        }
    }
}

/// The answer to a retried send whose first copy is job `first` of the same batch: the same
/// message if it went to the same chat.
pub fn same_as(
    first: &super::Result<super::Appended>,
    chat: ChatId,
) -> super::Result<super::Appended> {
    use super::Appended;
    match first {
        Ok(Appended::New(m) | Appended::Existing(m)) if m.chat == chat => {
            Ok(Appended::Existing(m.clone()))
        }
        Ok(_) => Err(StoreError::ClientIdReused),
        Err(e) => Err(e.clone()),
    }
}

/// The failure every caller of a writer sees once it has stopped.
pub fn writer_stopped() -> StoreError {
    StoreError::Backend("the message writer has stopped".into())
}

/// Queue a job built around a reply channel on `queue` (waiting for room) and return the
/// channel the writer will answer on.
pub async fn queue<J, T>(
    queue: &tokio::sync::mpsc::Sender<J>,
    job: impl FnOnce(tokio::sync::oneshot::Sender<super::Result<T>>) -> J,
) -> super::Result<tokio::sync::oneshot::Receiver<super::Result<T>>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    queue.send(job(tx)).await.map_err(|_| writer_stopped())?;
    Ok(rx)
}

/// Queue an append on a writer's queue (waiting for room): `Store::queue_append` for both SQL
/// backends.
pub async fn queue_append(
    queue: &tokio::sync::mpsc::Sender<AppendJob>,
    new: super::NewMessage,
    on_durable: Option<super::OnDurable>,
) -> super::Result<super::Receipt> {
    self::queue(queue, |reply| AppendJob {
        new,
        on_durable,
        reply,
    })
    .await
    .map(super::Receipt::new)
}

/// Queue a job built around a reply channel on `queue` and wait for the writer's answer.
pub async fn request<J, T>(
    queue: &tokio::sync::mpsc::Sender<J>,
    job: impl FnOnce(tokio::sync::oneshot::Sender<super::Result<T>>) -> J,
) -> super::Result<T> {
    self::queue(queue, job)
        .await?
        .await
        .map_err(|_| writer_stopped())?
}

/// A `sessions` row (`ocid`, `expires_at`).
pub fn session<R: StoreRow>(row: &R) -> Result<super::SessionRow, sqlx::Error> {
    Ok(super::SessionRow {
        ocid: Ocid(row.int("ocid")? as u64),
        expires_at: row.int("expires_at")?,
    })
}

/// A `chats` row (`kind`, `name`, `owner`) with its members read separately.
pub fn chat<R: StoreRow>(
    row: &R,
    id: ChatId,
    members: Vec<Ocid>,
) -> Result<super::Chat, sqlx::Error> {
    let owner = row.opt_int("owner")?;
    Ok(super::Chat {
        id,
        kind: if row.int("kind")? == 0 {
            super::ChatKind::Private
        } else {
            super::ChatKind::Group
        },
        name: row.text("name")?,
        owner: owner.map(|o| Ocid(o as u64)),
        members,
    })
}

/// The one row of a statistics query (columns named as [`super::Statistics`]'s fields).
pub fn statistics<R: StoreRow>(row: &R) -> Result<super::Statistics, sqlx::Error> {
    let n = |col: &str| row.int(col).map(|v| v.max(0) as u64);
    Ok(super::Statistics {
        accounts_active: n("accounts_active")?,
        accounts_banned: n("accounts_banned")?,
        accounts_deleted: n("accounts_deleted")?,
        sessions_live: n("sessions_live")?,
        private_chats: n("private_chats")?,
        groups: n("groups")?,
        messages: n("messages")?,
        friendships: n("friendships")?,
        invites_unused: n("invites_unused")?,
    })
}

/// A group row (`id, name, owner, last_index, created_at, members`).
pub fn group_summary<R: StoreRow>(row: &R) -> Result<super::GroupSummary, sqlx::Error> {
    Ok(super::GroupSummary {
        id: ChatId(row.int("id")? as u64),
        name: row.text("name")?,
        owner: row.opt_int("owner")?.map(|o| Ocid(o as u64)),
        members: row.int("members")?.max(0) as u64,
        last_index: Index(row.int("last_index")? as u64),
        created_at: row.int("created_at")?,
    })
}

/// The SQL of `Store::export` for `table`: rows after a key, in key order. Parameters: the
/// key's first column, its second (two-column keys), the limit; SQLite binds all three
/// (`?1`..`?3`), PostgreSQL only those the statement names (`$1`, [`$2`,] then the limit).
pub fn export_sql(table: super::Table, pg: bool) -> String {
    use super::Table;
    let (columns, from, key1, key2) = match table {
        Table::Accounts => (ACCOUNT_COLUMNS, "accounts", "ocid", None),
        Table::Chats => (
            "id, kind, name, owner, pair_lo, pair_hi, last_index, created_at",
            "chats",
            "id",
            None,
        ),
        Table::Members => (
            "chat_id, ocid, role, joined_index, delivered_index, joined_at",
            "members",
            "chat_id",
            Some("ocid"),
        ),
        Table::Messages => (MESSAGE_COLUMNS, "messages", "id", None),
        Table::Friends => ("ocid, friend, since", "friends", "ocid", Some("friend")),
        Table::FriendRequests => (
            "from_ocid, to_ocid, message, created_at",
            "friend_requests",
            "from_ocid",
            Some("to_ocid"),
        ),
    };
    let mark = if pg { '$' } else { '?' };
    match key2 {
        None => {
            let limit = if pg { 2 } else { 3 };
            format!(
                "SELECT {columns} FROM {from} WHERE {key1} > {mark}1 ORDER BY {key1} LIMIT {mark}{limit}"
            )
        }
        Some(key2) => format!(
            "SELECT {columns} FROM {from}
             WHERE ({key1} > {mark}1 OR ({key1} = {mark}1 AND {key2} > {mark}2))
             ORDER BY {key1}, {key2} LIMIT {mark}3"
        ),
    }
}

/// One exported row of `table`, and its key (for the next page).
pub fn export_row<R: StoreRow>(
    table: super::Table,
    row: &R,
) -> Result<(super::Record, (i64, i64)), sqlx::Error> {
    use super::{ChatRecord, MemberRecord, Record, Table};
    Ok(match table {
        Table::Accounts => {
            let a = account(row)?;
            let key = (a.ocid.0 as i64, 0);
            (Record::Account(a), key)
        }
        Table::Chats => {
            let id = row.int("id")?;
            let pair = match (row.opt_int("pair_lo")?, row.opt_int("pair_hi")?) {
                (Some(lo), Some(hi)) => Some((Ocid(lo as u64), Ocid(hi as u64))),
                _ => None,
            };
            let chat = ChatRecord {
                id: ChatId(id as u64),
                kind: row.int("kind")?,
                name: row.text("name")?,
                owner: row.opt_int("owner")?.map(|o| Ocid(o as u64)),
                pair,
                last_index: Index(row.int("last_index")? as u64),
                created_at: row.int("created_at")?,
            };
            (Record::Chat(chat), (id, 0))
        }
        Table::Members => {
            let (chat, ocid) = (row.int("chat_id")?, row.int("ocid")?);
            let member = MemberRecord {
                chat: ChatId(chat as u64),
                ocid: Ocid(ocid as u64),
                role: row.int("role")?,
                joined_index: Index(row.int("joined_index")? as u64),
                delivered_index: Index(row.int("delivered_index")? as u64),
                joined_at: row.int("joined_at")?,
            };
            (Record::Member(member), (chat, ocid))
        }
        Table::Messages => {
            let m = message(row)?;
            let key = (m.id.0 as i64, 0);
            (Record::Message(m), key)
        }
        Table::Friends => {
            let (ocid, friend) = (row.int("ocid")?, row.int("friend")?);
            (
                Record::Friend {
                    ocid: Ocid(ocid as u64),
                    friend: Ocid(friend as u64),
                    since: row.int("since")?,
                },
                (ocid, friend),
            )
        }
        Table::FriendRequests => {
            let (from, to) = (row.int("from_ocid")?, row.int("to_ocid")?);
            let r = friend_request(row, Ocid(to as u64))?;
            (Record::FriendRequest(r), (from, to))
        }
    })
}

/// The SQL that inserts one imported record, ids kept (placeholders as in [`export_sql`]).
pub fn import_sql(record: &super::Record, pg: bool) -> String {
    use super::Record;
    let (table, columns) = match record {
        Record::Account(_) => (
            "accounts",
            "ocid, uuid, email, phone, username, nickname, avatar, status, password_hash, created_at",
        ),
        Record::Chat(_) => (
            "chats",
            "id, kind, name, owner, pair_lo, pair_hi, last_index, created_at",
        ),
        Record::Member(_) => (
            "members",
            "chat_id, ocid, role, joined_index, delivered_index, joined_at",
        ),
        Record::Message(_) => (
            "messages",
            "id, chat_id, idx, sender, kind, parts, client_id, created_at",
        ),
        Record::Friend { .. } => ("friends", "ocid, friend, since"),
        Record::FriendRequest(_) => ("friend_requests", "from_ocid, to_ocid, message, created_at"),
    };
    let n = columns.split(',').count();
    let values: Vec<String> = (1..=n)
        .map(|i| if pg { format!("${i}") } else { "?".into() })
        .collect();
    format!(
        "INSERT INTO {table} ({columns}) VALUES ({})",
        values.join(", ")
    )
}

/// Bind an imported record's values, in the order of [`import_sql`]'s columns.
macro_rules! bind_record {
    ($query:expr, $record:expr) => {{
        use $crate::store::Record;
        use $crate::store::rows::{AsSql, encode_parts};
        let q = $query;
        match $record {
            Record::Account(a) => q
                .bind(a.ocid.sql())
                .bind(a.uuid.clone())
                .bind(a.email.clone())
                .bind(a.phone.clone())
                .bind(a.username.clone())
                .bind(a.nickname.clone())
                .bind(a.avatar.clone())
                .bind(a.status)
                .bind(a.password_hash.clone())
                .bind(a.created_at),
            Record::Chat(c) => q
                .bind(c.id.sql())
                .bind(c.kind)
                .bind(c.name.clone())
                .bind(c.owner.map(|o| o.sql()))
                .bind(c.pair.map(|p| p.0.sql()))
                .bind(c.pair.map(|p| p.1.sql()))
                .bind(c.last_index.sql())
                .bind(c.created_at),
            Record::Member(m) => q
                .bind(m.chat.sql())
                .bind(m.ocid.sql())
                .bind(m.role)
                .bind(m.joined_index.sql())
                .bind(m.delivered_index.sql())
                .bind(m.joined_at),
            Record::Message(m) => q
                .bind(m.id.sql())
                .bind(m.chat.sql())
                .bind(m.index.sql())
                .bind(m.sender.sql())
                .bind(i64::from(m.kind))
                .bind(encode_parts(&m.parts))
                .bind(m.client_id.clone())
                .bind(m.created_at),
            Record::Friend {
                ocid,
                friend,
                since,
            } => q.bind(ocid.sql()).bind(friend.sql()).bind(*since),
            Record::FriendRequest(r) => q
                .bind(r.from.sql())
                .bind(r.to.sql())
                .bind(r.message.clone())
                .bind(r.created_at),
        }
    }};
}
pub(crate) use bind_record;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Category;

    #[test]
    fn parts_are_stored_as_serde_json_writes_them() {
        let one = |category, content: &str| Part {
            category: Category(category),
            content: content.to_owned(),
        };
        for parts in [
            vec![],
            vec![one(0, "hello")],
            vec![one(0, "a \"quoted\"\nline"), one(3, "ünï")],
        ] {
            let reference = serde_json::Value::Array(
                parts
                    .iter()
                    .map(|p| serde_json::json!({"category": p.category.0, "content": p.content}))
                    .collect(),
            )
            .to_string();
            assert_eq!(encode_parts(&parts), reference);
        }
    }
}
