//! Row decoding and error mapping shared by the SQL backends: both schemas use the same
//! column names and 64-bit integer columns, so one decoder serves SQLite and PostgreSQL.

use super::{
    Account, Category, ChatId, FriendRequest, Index, Membership, Message, MessageId, Ocid, Part,
    StoreError, Unique,
};
use sqlx::{ColumnIndex, Decode, Row as SqlRow, Type};

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
    R: SqlRow,
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

pub const ACCOUNT_COLUMNS: &str = "ocid, uuid, email, phone, username, nickname, avatar, \
     status, password_hash, created_at, signature, description, sex, status_text, modified_at, \
     security_question, deleted_at";

/// The same columns of an `accounts` table aliased `a`.
pub const ACCOUNT_COLUMNS_A: &str = "a.ocid, a.uuid, a.email, a.phone, a.username, a.nickname, \
     a.avatar, a.status, a.password_hash, a.created_at, a.signature, a.description, a.sex, \
     a.status_text, a.modified_at, a.security_question, a.deleted_at";

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
        signature: row.text("signature")?,
        description: row.text("description")?,
        sex: row.int("sex")? as u8,
        status_text: row.text("status_text")?,
        modified_at: row.int("modified_at")?,
        security_question: row.opt_text("security_question")?,
        deleted: row.opt_int("deleted_at")?.is_some(),
    })
}

/// The columns [`upload`] reads.
pub const UPLOAD_COLUMNS: &str = "id, owner, name, mime, length, metadata, created_at, expires_at";
/// The columns [`file`] reads.
pub const FILE_COLUMNS: &str =
    "id, owner, name, size, mime, sha256, width, height, public, created_at";

/// Files nothing refers to: no chat, no account avatar, no group avatar (`f` is the file).
pub const UNREFERENCED: &str = "NOT EXISTS (SELECT 1 FROM file_refs r WHERE r.file_seq = f.seq)
     AND NOT EXISTS (SELECT 1 FROM accounts a WHERE a.avatar = '/files/' || f.id)
     AND NOT EXISTS (SELECT 1 FROM chats c WHERE c.avatar = '/files/' || f.id)";

pub fn upload<R: StoreRow>(row: &R) -> Result<super::files::Upload, sqlx::Error> {
    Ok(super::files::Upload {
        id: row.text("id")?,
        owner: Ocid(row.int("owner")? as u64),
        name: row.text("name")?,
        mime: row.text("mime")?,
        length: row.int("length")? as u64,
        metadata: row.text("metadata")?,
        created_at: row.int("created_at")?,
        expires_at: row.int("expires_at")?,
    })
}

pub fn file<R: StoreRow>(row: &R) -> Result<super::files::File, sqlx::Error> {
    Ok(super::files::File {
        id: row.text("id")?,
        owner: Ocid(row.int("owner")? as u64),
        name: row.text("name")?,
        size: row.int("size")? as u64,
        mime: row.text("mime")?,
        sha256: row.text("sha256")?,
        width: row.opt_int("width")?.map(|w| w as u32),
        height: row.opt_int("height")?.map(|h| h as u32),
        public: row.int("public")? != 0,
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
            // Before the others: its index's name holds no account column's name.
            ("service_tokens", Unique::ServiceToken),
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

/// The columns [`chat`] reads from a `chats` row.
pub const CHAT_COLUMNS: &str =
    "kind, name, owner, description, avatar, join_mode, created_at, disbanded_at";

/// A `chats` row ([`CHAT_COLUMNS`]) with its members and their roles read separately.
pub fn chat<R: StoreRow>(
    row: &R,
    id: ChatId,
    members: Vec<(Ocid, super::Role)>,
) -> Result<super::Chat, sqlx::Error> {
    let owner = row.opt_int("owner")?;
    let admins = members
        .iter()
        .filter(|(_, r)| *r == super::Role::Admin)
        .map(|(o, _)| *o)
        .collect();
    Ok(super::Chat {
        id,
        kind: if row.int("kind")? == 0 {
            super::ChatKind::Private
        } else {
            super::ChatKind::Group
        },
        name: row.text("name")?,
        owner: owner.map(|o| Ocid(o as u64)),
        members: members.into_iter().map(|(o, _)| o).collect(),
        admins,
        description: row.text("description")?,
        avatar: row.text("avatar")?,
        join_mode: super::JoinMode::from_code(row.int("join_mode")?),
        created_at: row.int("created_at")?,
        disbanded: row.opt_int("disbanded_at")?.is_some(),
    })
}

/// The columns [`group_summary`] reads, from a `chats` row aliased `c` (its member count
/// included); a caller adds the asking account's `role` when it has one.
pub const GROUP_SUMMARY_COLUMNS: &str = "c.id, c.name, c.avatar, c.join_mode,
     (SELECT COUNT(*) FROM members x WHERE x.chat_id = c.id) AS member_count";

/// A group as lists show it: [`GROUP_SUMMARY_COLUMNS`], and `role` if `with_role`.
pub fn group_summary<R: StoreRow>(
    row: &R,
    with_role: bool,
) -> Result<super::GroupSummary, sqlx::Error> {
    Ok(super::GroupSummary {
        id: ChatId(row.int("id")? as u64),
        name: row.text("name")?,
        avatar: row.text("avatar")?,
        join_mode: super::JoinMode::from_code(row.int("join_mode")?),
        member_count: row.int("member_count")? as u64,
        role: if with_role {
            Some(super::Role::from_code(row.int("role")?))
        } else {
            None
        },
    })
}

/// A live session as listed: its token hash must be the 32 bytes every session is opened with.
pub fn session_info(
    token_hash: Vec<u8>,
    created_at: i64,
    expires_at: i64,
) -> super::Result<super::SessionInfo> {
    let token_hash = token_hash
        .try_into()
        .map_err(|_| StoreError::Backend("a session hash is not 32 bytes".into()))?;
    Ok(super::SessionInfo {
        token_hash,
        created_at,
        expires_at,
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

/// How a column is read and written by export and import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Col {
    Int,
    OptInt,
    Text,
    OptText,
}

/// A table as export and import see it: its name, the type word of its lines, its key (one or
/// two integer columns) and every column it has.
#[derive(Debug)]
pub struct TableSpec {
    pub name: &'static str,
    /// The `t` of its lines in an export.
    pub line: &'static str,
    pub key: (&'static str, Option<&'static str>),
    pub columns: &'static [(&'static str, Col)],
}

use Col::{Int, OptInt, OptText, Text};

/// Every table an export holds, in import order (rows before the rows that name them).
/// Service tokens go with their accounts, and the key of their hashes with them (without it
/// they would match nothing). Logins, delivery marks and the operator's own tables (invitation codes, account events,
/// node checks) are left out. A column added to one of these tables is added here too (the
/// store conformance suite checks that nothing is missing).
pub const TABLES: &[TableSpec] = &[
    TableSpec {
        name: "accounts",
        line: "account",
        key: ("ocid", None),
        columns: &[
            ("ocid", Int),
            ("uuid", Text),
            ("email", OptText),
            ("phone", OptText),
            ("username", OptText),
            ("nickname", Text),
            ("avatar", Text),
            ("status", Int),
            ("password_hash", Text),
            ("created_at", Int),
            ("signature", Text),
            ("description", Text),
            ("sex", Int),
            ("status_text", Text),
            ("modified_at", Int),
            ("security_question", OptText),
            ("security_answer_hash", OptText),
            ("reset_failures", Int),
            ("reset_blocked_until", Int),
            ("deleted_at", OptInt),
        ],
    },
    TableSpec {
        name: "account_settings",
        line: "account_setting",
        key: ("ocid", None),
        columns: &[("ocid", Int), ("group_adds", Int)],
    },
    TableSpec {
        name: "server_keys",
        line: "server_key",
        key: ("id", None),
        columns: &[("id", Int), ("value", Text)],
    },
    TableSpec {
        name: "service_tokens",
        line: "service_token",
        key: ("ocid", None),
        columns: &[("ocid", Int), ("hash", Text), ("created_at", Int)],
    },
    TableSpec {
        name: "chats",
        line: "chat",
        key: ("id", None),
        columns: &[
            ("id", Int),
            ("kind", Int),
            ("name", Text),
            ("owner", OptInt),
            ("pair_lo", OptInt),
            ("pair_hi", OptInt),
            ("last_index", Int),
            ("created_at", Int),
            ("description", Text),
            ("avatar", Text),
            ("join_mode", Int),
            ("disbanded_at", OptInt),
        ],
    },
    TableSpec {
        name: "members",
        line: "member",
        key: ("chat_id", Some("ocid")),
        columns: &[
            ("chat_id", Int),
            ("ocid", Int),
            ("role", Int),
            ("joined_index", Int),
            ("delivered_index", Int),
            ("joined_at", Int),
            ("read_index", Int),
        ],
    },
    TableSpec {
        name: "messages",
        line: "message",
        key: ("id", None),
        columns: &[
            ("id", Int),
            ("chat_id", Int),
            ("idx", Int),
            ("sender", Int),
            ("kind", Int),
            ("parts", Text),
            ("client_id", OptText),
            ("created_at", Int),
        ],
    },
    TableSpec {
        name: "friends",
        line: "friend",
        key: ("ocid", Some("friend")),
        columns: &[
            ("ocid", Int),
            ("friend", Int),
            ("since", Int),
            ("remark", Text),
        ],
    },
    TableSpec {
        name: "friend_requests",
        line: "friend_request",
        key: ("from_ocid", Some("to_ocid")),
        columns: &[
            ("from_ocid", Int),
            ("to_ocid", Int),
            ("message", Text),
            ("created_at", Int),
        ],
    },
    TableSpec {
        name: "blocks",
        line: "block",
        key: ("ocid", Some("blocked")),
        columns: &[("ocid", Int), ("blocked", Int), ("since", Int)],
    },
    TableSpec {
        name: "join_requests",
        line: "join_request",
        key: ("chat_id", Some("ocid")),
        columns: &[
            ("chat_id", Int),
            ("ocid", Int),
            ("message", Text),
            ("created_at", Int),
        ],
    },
    TableSpec {
        name: "invitations",
        line: "invitation",
        key: ("chat_id", Some("ocid")),
        columns: &[
            ("chat_id", Int),
            ("ocid", Int),
            ("by_ocid", Int),
            ("created_at", Int),
        ],
    },
    TableSpec {
        name: "pending_notices",
        line: "pending_notice",
        key: ("id", None),
        columns: &[
            ("id", Int),
            ("ocid", Int),
            ("body", Text),
            ("created_at", Int),
        ],
    },
    TableSpec {
        name: "files",
        line: "file",
        key: ("seq", None),
        columns: &[
            ("seq", Int),
            ("id", Text),
            ("owner", Int),
            ("name", Text),
            ("size", Int),
            ("mime", Text),
            ("sha256", Text),
            ("width", OptInt),
            ("height", OptInt),
            ("public", Int),
            ("created_at", Int),
        ],
    },
    TableSpec {
        name: "file_refs",
        line: "file_ref",
        key: ("file_seq", Some("chat_id")),
        columns: &[("file_seq", Int), ("chat_id", Int)],
    },
];

/// One exported row: its columns by name.
pub type Row = serde_json::Map<String, serde_json::Value>;

/// The SQL of `Store::export` for `spec`: rows after a key, in key order. Parameters: the
/// key's first column, its second (two-column keys), the limit; SQLite binds all three
/// (`?1`..`?3`), PostgreSQL only those the statement names (`$1`, [`$2`,] then the limit).
pub fn export_sql(spec: &TableSpec, pg: bool) -> String {
    let columns: Vec<&str> = spec.columns.iter().map(|(c, _)| *c).collect();
    let (columns, from) = (columns.join(", "), spec.name);
    let mark = if pg { '$' } else { '?' };
    match spec.key {
        (key1, None) => {
            let limit = if pg { 2 } else { 3 };
            format!(
                "SELECT {columns} FROM {from} WHERE {key1} > {mark}1 ORDER BY {key1} LIMIT {mark}{limit}"
            )
        }
        (key1, Some(key2)) => format!(
            "SELECT {columns} FROM {from}
             WHERE ({key1} > {mark}1 OR ({key1} = {mark}1 AND {key2} > {mark}2))
             ORDER BY {key1}, {key2} LIMIT {mark}3"
        ),
    }
}

/// A row read by [`export_sql`], as its columns by name.
pub fn export_row<R: StoreRow>(spec: &TableSpec, row: &R) -> Result<Row, sqlx::Error> {
    use serde_json::Value;
    let mut out = Row::new();
    for (name, col) in spec.columns {
        let value = match col {
            Col::Int => Value::from(row.int(name)?),
            Col::OptInt => row.opt_int(name)?.map_or(Value::Null, Value::from),
            Col::Text => Value::from(row.text(name)?),
            Col::OptText => row.opt_text(name)?.map_or(Value::Null, Value::from),
        };
        out.insert((*name).to_owned(), value);
    }
    Ok(out)
}

/// Where the next page of `spec` starts after `row`.
pub fn row_key(spec: &TableSpec, row: &Row) -> (i64, i64) {
    let int = |c: &str| row.get(c).and_then(serde_json::Value::as_i64).unwrap_or(0);
    (int(spec.key.0), spec.key.1.map_or(0, int))
}

/// The SQL that inserts one imported row of `spec` (placeholders as in [`export_sql`]).
pub fn import_sql(spec: &TableSpec, pg: bool) -> String {
    let columns: Vec<&str> = spec.columns.iter().map(|(c, _)| *c).collect();
    let values: Vec<String> = (1..=columns.len())
        .map(|i| if pg { format!("${i}") } else { "?".into() })
        .collect();
    format!(
        "INSERT INTO {} ({}) VALUES ({})",
        spec.name,
        columns.join(", "),
        values.join(", ")
    )
}

/// A value of an imported row, checked against its column's kind.
pub enum Value<'a> {
    Int(Option<i64>),
    Text(Option<&'a str>),
}

/// The values of an imported row in [`import_sql`]'s order.
///
/// # Errors
/// A column missing, of the wrong type, or null where it may not be; a column the table does
/// not have.
pub fn import_values<'a>(spec: &TableSpec, row: &'a Row) -> super::Result<Vec<Value<'a>>> {
    let bad = |why: String| StoreError::Backend(format!("{} row: {why}", spec.name));
    if let Some(extra) = row
        .keys()
        .find(|k| !spec.columns.iter().any(|(c, _)| c == k))
    {
        return Err(bad(format!("no column `{extra}`")));
    }
    spec.columns
        .iter()
        .map(|(name, col)| {
            let v = row.get(*name).unwrap_or(&serde_json::Value::Null);
            match (col, v) {
                (Col::Int | Col::OptInt, serde_json::Value::Number(n)) => n
                    .as_i64()
                    .map(|i| Value::Int(Some(i)))
                    .ok_or_else(|| bad(format!("`{name}` is not a 64-bit integer"))),
                (Col::OptInt, serde_json::Value::Null) => Ok(Value::Int(None)),
                (Col::Text | Col::OptText, serde_json::Value::String(t)) => {
                    Ok(Value::Text(Some(t.as_str())))
                }
                (Col::OptText, serde_json::Value::Null) => Ok(Value::Text(None)),
                _ => Err(bad(format!("`{name}` is missing or of the wrong type"))),
            }
        })
        .collect()
}

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
