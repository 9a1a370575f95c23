//! The storage contract: an object-safe `Store` trait and the plain records it deals in.
//!
//! Everything above this module sees only these types. Implementations (`sqlite/` for one
//! node, `postgres/` for a cluster) own their SQL and migrations; nothing backend-specific
//! leaks through the trait: uniqueness violations arrive as `StoreError::Conflict`, message
//! indexes are assigned inside the store's own transaction. Nothing here knows a dialect.

pub mod files;
pub mod postgres;
mod rows;
mod service;
mod social;
pub mod sqlite;

pub use service::{AccountRef, Services, server_key};
pub use social::{
    ChatState, GroupEdit, GroupSummary, Groups, Identity, Invitation, JoinMode, JoinRequest,
    MAX_UNREAD, NewsCounts, ProfileEdit, Profiles, ReadState, ResetState, Revoke, Role, SearchBy,
    SessionInfo, group_adds,
};

use async_trait::async_trait;
pub use natter_proto::{ChatId, Index, MessageId, Ocid};

/// Which unique field a conflicting insert collided on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unique {
    Email,
    Phone,
    Username,
    Uuid,
    /// Another account has this service token.
    ServiceToken,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("unique value already taken: {0:?}")]
    Conflict(Unique),
    #[error("no such chat")]
    NoSuchChat,
    #[error("the client id was already used for another chat")]
    ClientIdReused,
    /// No unused, unexpired invitation has that code.
    #[error("no such invitation")]
    NoSuchInvite,
    #[error("store backend: {0}")]
    Backend(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub ocid: Ocid,
    pub uuid: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub username: Option<String>,
    pub nickname: String,
    pub avatar: String,
    pub status: i64,
    pub password_hash: String,
    /// Unix milliseconds.
    pub created_at: i64,
    pub signature: String,
    pub description: String,
    /// 0 unknown, 1 male, 2 female, 3 other.
    pub sex: u8,
    pub status_text: String,
    /// When the profile last changed (ms; 0 never).
    pub modified_at: i64,
    /// The question that resets a forgotten password, if one is set.
    pub security_question: Option<String>,
    /// The account was deleted: it keeps its ocid and nothing else.
    pub deleted: bool,
}

#[derive(Debug, Clone)]
pub struct NewAccount {
    pub uuid: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub username: Option<String>,
    pub nickname: String,
    pub password_hash: String,
    pub created_at: i64,
}

/// The values of `Account::status`.
pub mod status {
    /// May log in.
    pub const ACTIVE: i64 = 0;
    /// Kept, but may not log in or resume until unbanned.
    pub const BANNED: i64 = 1;
}

/// Counts over the whole store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Statistics {
    pub accounts_active: u64,
    pub accounts_banned: u64,
    pub accounts_deleted: u64,
    /// Unrevoked sessions that have not expired.
    pub sessions_live: u64,
    pub private_chats: u64,
    pub groups: u64,
    pub messages: u64,
    pub friendships: u64,
    pub invites_unused: u64,
}

/// An invitation code (only its hash is stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    pub code_hash: Vec<u8>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub used_by: Option<Ocid>,
    pub used_at: Option<i64>,
}

pub use rows::{Col, Row, TABLES, TableSpec, row_key as rows_key};

/// A live (unrevoked) login session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionRow {
    pub ocid: Ocid,
    pub expires_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatKind {
    Private,
    Group,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chat {
    pub id: ChatId,
    pub kind: ChatKind,
    pub name: String,
    pub owner: Option<Ocid>,
    /// Every member, ascending.
    pub members: Vec<Ocid>,
    /// A group's admins (not its owner), ascending.
    pub admins: Vec<Ocid>,
    pub description: String,
    pub avatar: String,
    pub join_mode: JoinMode,
    /// Unix milliseconds.
    pub created_at: i64,
    /// A disbanded group keeps its id and history and has no members.
    pub disbanded: bool,
}

/// The content category of one message part (seed 003's list: 0 text, 1 image, 2 voice,
/// 3 file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Category(pub u8);

impl Category {
    pub const TEXT: Self = Self(0);
    /// The parts below carry a file: their content is the file's JSON (see
    /// `docs/protocol/files.md`, "Files in messages").
    pub const IMAGE: Self = Self(1);
    pub const VOICE: Self = Self(2);
    pub const FILE: Self = Self(3);
    /// natter's own: an emoji or sticker image (seed 001's code 1), shown without a frame.
    pub const EMOJI: Self = Self(4);
    /// natter's own: the JSON of a system message's event (who joined, left, was removed...),
    /// for programs; the message's text says the same for people.
    pub const EVENT: Self = Self(100);
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub category: Category,
    pub content: String,
}

pub use natter_proto::view::kind;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: MessageId,
    pub chat: ChatId,
    pub index: Index,
    pub sender: Ocid,
    /// The message type (`kind::NORMAL` for what people write).
    pub kind: u8,
    pub parts: Vec<Part>,
    pub client_id: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
}

impl Message {
    /// What one frame of this message is reckoned to cost in bytes, for the budgets of
    /// buffered outgoing data: its parts and client id, plus a fixed allowance for the fields
    /// around them. Cheap (no encoding); an estimate that no dialect's frame exceeds by more
    /// than its escaping.
    pub fn wire_bytes(&self) -> usize {
        let parts: usize = self.parts.iter().map(|p| p.content.len() + 16).sum();
        parts + self.client_id.as_ref().map_or(0, String::len) + 160
    }

    /// The text of the message: its text parts joined (borrowed when there is one).
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        let mut texts = self.parts.iter().filter(|p| p.category == Category::TEXT);
        match (texts.next(), texts.next()) {
            (Some(one), None) => std::borrow::Cow::Borrowed(&one.content),
            (None, _) => std::borrow::Cow::Borrowed(""),
            (Some(first), Some(second)) => {
                let mut s = format!("{}{}", first.content, second.content);
                texts.for_each(|p| s.push_str(&p.content));
                std::borrow::Cow::Owned(s)
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewMessage {
    pub chat: ChatId,
    pub sender: Ocid,
    pub kind: u8,
    pub parts: Vec<Part>,
    pub client_id: Option<String>,
    pub created_at: i64,
}

/// The outcome of an append: a fresh message, or the one already stored under the same
/// sender and client id (a retried send).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    New(Message),
    Existing(Message),
}

/// One login of an account (a device): the stored hash of its session token. Delivery marks
/// are kept per device, so each device is sent exactly what it has not been written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Device(pub [u8; 32]);

/// One account's place in one chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Membership {
    pub chat: ChatId,
    /// The chat's last index when the account joined: it is sent what comes after.
    pub joined: Index,
    /// The furthest any device of the account has been written in this chat.
    pub delivered: Index,
    /// How far the device asked about has been written, if it has a mark in this chat.
    pub device: Option<Index>,
    pub last_index: Index,
}

/// A pending friend request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FriendRequest {
    pub from: Ocid,
    pub to: Ocid,
    pub message: String,
    /// Unix milliseconds of the latest request (asking again replaces the text and time).
    pub created_at: i64,
}

/// One of an account's friends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Friend {
    pub ocid: Ocid,
    /// Unix milliseconds when the request was accepted.
    pub since: i64,
    /// The private name the account gave this friend ("" for none).
    pub remark: String,
}

/// What asking to befriend an account did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Befriend {
    /// The request is stored (or its text replaced) and waits for an answer.
    Requested,
    /// The other account had already asked this one: both are now friends.
    Accepted,
    /// They were friends already; nothing changed.
    AlreadyFriends,
}

/// Which part of a chat's history to read; results are always ascending by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    Latest,
    Before(Index),
    After(Index),
}

/// Run by a store's writer once an append is durable (see `Store::queue_append`).
pub type OnDurable = Box<dyn FnOnce(&Appended) + Send + Sync>;

/// The answer to a queued append: resolves once the message is durable (or the append failed).
#[derive(Debug)]
pub struct Receipt(tokio::sync::oneshot::Receiver<Result<Appended>>);

impl Receipt {
    pub(crate) fn new(rx: tokio::sync::oneshot::Receiver<Result<Appended>>) -> Self {
        Self(rx)
    }
}

impl std::future::Future for Receipt {
    type Output = Result<Appended>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or_else(|_| Err(rows::writer_stopped())))
    }
}

#[async_trait]
pub trait Store:
    Profiles + Groups + ReadState + files::Files + Services + Send + Sync + 'static
{
    /// Create an account; the store allocates its ocid.
    async fn create_account(&self, new: NewAccount) -> Result<Account>;
    async fn account(&self, ocid: Ocid) -> Result<Option<Account>>;
    async fn account_by_email(&self, email: &str) -> Result<Option<Account>>;

    /// Open a login session: a new device of the account. Its delivery marks start, in the
    /// same transaction, where the account's furthest device got in each chat.
    async fn create_session(
        &self,
        ocid: Ocid,
        token_hash: &[u8],
        now: i64,
        expires_at: i64,
    ) -> Result<()>;
    /// The unrevoked session with this token hash, expired or not, with its account (one
    /// read: a resume storm costs one query per resume before the catch-up).
    async fn session(&self, token_hash: &[u8]) -> Result<Option<(SessionRow, Account)>>;
    /// Revoke a session (logout); its device's delivery marks go with it.
    async fn revoke_session(&self, token_hash: &[u8]) -> Result<()>;

    async fn chat(&self, id: ChatId) -> Result<Option<Chat>>;
    /// The private chat of two accounts, created (with both as members) if it does not exist.
    async fn private_chat(&self, a: Ocid, b: Ocid, now: i64) -> Result<Chat>;
    /// The private chat of two accounts if it exists.
    async fn find_private_chat(&self, a: Ocid, b: Ocid) -> Result<Option<ChatId>>;
    /// A new group owned by `owner` with `members` (which include the owner).
    async fn create_group(
        &self,
        owner: Ocid,
        name: &str,
        members: &[Ocid],
        now: i64,
    ) -> Result<Chat>;

    /// Queue a message for storing and return as soon as the writer has taken it (waiting
    /// only for room in its queue); the receipt resolves once the message is durable. Messages
    /// queued one after another are assigned indexes, and answered, in the order they were
    /// queued: a connection can keep many sends in flight and still ack them in order.
    ///
    /// `on_durable` runs on the writer right after the commit, before the receipt resolves, in
    /// queue order: whatever it publishes goes out in index order. It must be quick and must
    /// not block.
    async fn queue_append(&self, new: NewMessage, on_durable: Option<OnDurable>)
    -> Result<Receipt>;
    /// Store a message, assigning the chat's next index in the same transaction. Returns only
    /// once the message is durable.
    async fn append(&self, new: NewMessage) -> Result<Appended> {
        self.queue_append(new, None).await?.await
    }
    /// At most `limit` messages of a chat, ascending by index.
    async fn messages(&self, chat: ChatId, range: Range, limit: u32) -> Result<Vec<Message>>;

    /// Every chat of an account, with `device`'s marks.
    async fn memberships(&self, ocid: Ocid, device: &Device) -> Result<Vec<Membership>>;
    /// One chat of an account (`device` is `None` in the answer).
    async fn membership(&self, ocid: Ocid, chat: ChatId) -> Result<Option<Membership>>;
    /// Raise `device`'s delivered index in each chat, and the account's with it (never lowers
    /// either).
    async fn mark_delivered(
        &self,
        ocid: Ocid,
        device: &Device,
        marks: &[(ChatId, Index)],
    ) -> Result<()>;

    /// Ask `to` to be `from`'s friend (both accounts exist; the caller checks). A request
    /// already pending from `to` to `from` is taken as the answer: both become friends.
    async fn request_friend(
        &self,
        from: Ocid,
        to: Ocid,
        message: &str,
        now: i64,
    ) -> Result<Befriend>;
    /// Answer the pending request from `from` to `to`, deleting it; accepting makes them
    /// friends. `false` when no such request is pending.
    async fn answer_friend_request(
        &self,
        to: Ocid,
        from: Ocid,
        accept: bool,
        now: i64,
    ) -> Result<bool>;
    /// End a friendship (both directions). `false` when they were not friends.
    async fn remove_friend(&self, a: Ocid, b: Ocid) -> Result<bool>;
    /// An account's friends, ascending by ocid.
    async fn friends(&self, ocid: Ocid) -> Result<Vec<Friend>>;
    /// The requests waiting for `to`'s answer, oldest first.
    async fn friend_requests(&self, to: Ocid) -> Result<Vec<FriendRequest>>;

    /// Up to `limit` accounts with an ocid above `after`, ascending (every status).
    async fn accounts(&self, after: Ocid, limit: u32) -> Result<Vec<Account>>;
    /// Set an account's status (`status::*`); `false` when there is no such account.
    async fn set_account_status(&self, ocid: Ocid, status: i64) -> Result<bool>;
    /// Counts over the whole store; `now` decides which sessions have expired.
    async fn statistics(&self, now: i64) -> Result<Statistics>;

    /// Store a new invitation code (by its hash).
    async fn create_invite(
        &self,
        code_hash: &[u8],
        now: i64,
        expires_at: Option<i64>,
    ) -> Result<()>;
    /// Every invitation, newest first.
    async fn invites(&self) -> Result<Vec<Invite>>;
    /// Create an account with an invitation, using the invitation up in the same transaction:
    /// `NoSuchInvite` when the code is unknown, used or expired at `now` (nothing is created).
    async fn create_account_invited(
        &self,
        new: NewAccount,
        code_hash: &[u8],
        now: i64,
    ) -> Result<Account>;

    /// Record that `ocid`'s standing changed (banned, deleted, a login revoked): every node's
    /// poll of [`Store::account_events`] then has its live connections check again.
    async fn post_account_event(&self, ocid: Ocid, now: i64) -> Result<()>;
    /// The account events after id `after`, oldest first (at most `limit`), with their ids.
    async fn account_events(&self, after: i64, limit: u32) -> Result<Vec<(i64, Ocid)>>;
    /// The id of the newest account event (0 when there is none): where a poll starts.
    async fn last_account_event(&self) -> Result<i64>;

    /// Commit one small write (this node's row of `node_checks`) through the same path as
    /// messages: `Ok` means the store accepts writes now.
    async fn check_write(&self, node: &str, now: i64) -> Result<()>;

    /// Up to `limit` rows of `table` (one of [`TABLES`]) after the key `after` (the table's
    /// key, one or two integers: `(id, 0)` or `(a, b)`), in key order, every column by name.
    async fn export(&self, table: &TableSpec, after: (i64, i64), limit: u32) -> Result<Vec<Row>>;
    /// Insert `rows` of `table` as they are (ids kept), in one transaction. For an empty
    /// store, with no server running on it.
    async fn import(&self, table: &TableSpec, rows: &[Row]) -> Result<()>;
    /// After the last [`Store::import`]: id sequences move past the imported ids.
    async fn finish_import(&self) -> Result<()>;

    /// Report commits and stored messages to `metrics` from now on (a running server's store).
    fn observe(&self, _metrics: crate::metrics::StoreMetrics) {}

    /// Flush and close; called once at shutdown.
    async fn close(&self);
}
