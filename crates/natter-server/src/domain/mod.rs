//! The rules of the chat system, independent of any wire dialect or storage engine.
//!
//! Dialects call these functions with decoded requests and get typed results or a `WireError`
//! (the client-facing failure). Store failures are logged here once and reported to clients
//! only as `internal`. This module never touches sockets or SQL.

pub mod auth;
pub mod friends;

use crate::bus::{Bus, Origin};
use crate::ids::IdMap;
use crate::store::{
    Account, Appended, Category, Chat, ChatKind, KIND_NORMAL, Message, NewAccount, NewMessage,
    OnDurable, Part, Range, Receipt, Store, StoreError, Unique,
};
use natter_proto::v1::MessageView;
use natter_proto::{ChatId, ErrorCode, Index, MessageId, Ocid, WireError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Limits the domain enforces; all configurable.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_text_bytes: usize,
    pub max_group_members: usize,
    pub session_ttl: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_text_bytes: 16 * 1024,
            max_group_members: 10_000,
            session_ttl: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A chat as the delivery path needs it: kind and members (ascending).
#[derive(Debug)]
pub struct ChatInfo {
    pub id: ChatId,
    pub kind: ChatKind,
    pub members: Vec<Ocid>,
}

impl ChatInfo {
    fn from_chat(c: Chat) -> Self {
        Self {
            id: c.id,
            kind: c.kind,
            members: c.members,
        }
    }

    pub fn is_member(&self, ocid: Ocid) -> bool {
        self.members.binary_search(&ocid).is_ok()
    }

    /// For a private chat, the member that is not `ocid`.
    pub fn peer_of(&self, ocid: Ocid) -> Option<Ocid> {
        match self.kind {
            ChatKind::Private => self.members.iter().copied().find(|m| *m != ocid),
            ChatKind::Group => None,
        }
    }
}

/// Which encoding a connection speaks; a delivered message is encoded once per dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    V1 = 0,
    V0 = 1,
}

/// A stored message on its way to every connection of every member: the unit the bus
/// carries and the hub fans out.
#[derive(Debug)]
pub struct Delivery {
    pub message: Message,
    pub chat: Arc<ChatInfo>,
    /// The connection that sent it (it gets an ack, not the message).
    pub origin: Option<Origin>,
}

impl Delivery {
    pub fn new(message: Message, chat: Arc<ChatInfo>, origin: Option<Origin>) -> Self {
        Self {
            message,
            chat,
            origin,
        }
    }

    /// The message's code 0 frame in `dialect`.
    pub fn encode(&self, dialect: Dialect) -> String {
        let text = self.message.text();
        encode(dialect, &view(&self.message, &self.chat, &text))
    }
}

/// The encoder-facing view of a message.
pub fn view<'a>(m: &Message, chat: &ChatInfo, text: &'a str) -> MessageView<'a> {
    MessageView {
        id: m.id,
        chat: m.chat,
        index: m.index,
        time: m.created_at / 1000,
        sender: m.sender,
        private_to: chat.peer_of(m.sender),
        text,
    }
}

/// A message's code 0 frame in a dialect.
pub fn encode(dialect: Dialect, v: &MessageView<'_>) -> String {
    match dialect {
        Dialect::V1 => natter_proto::v1::encode_text(v),
        Dialect::V0 => natter_proto::v0::encode_text(v),
    }
}

/// Where a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum To {
    /// The private chat with this account (made on first use).
    Account(Ocid),
    /// A chat (group or private) by id; the sender must be a member.
    Chat(ChatId),
    /// A group by id; the sender must be a member.
    Group(ChatId),
}

/// How a password login names the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginKey {
    Email(String),
    Ocid(Ocid),
}

/// A send queued in the store and not yet answered.
#[derive(Debug)]
pub struct PendingSend {
    pub chat: Arc<ChatInfo>,
    /// Resolves once the message is durable.
    pub receipt: Receipt,
}

/// The outcome of a send: what the ack needs.
#[derive(Debug)]
pub struct Sent {
    pub id: MessageId,
    pub chat: ChatId,
    pub index: Index,
    pub client_id: Option<String>,
}

impl Sent {
    fn of(m: &Message) -> Self {
        Self {
            id: m.id,
            chat: m.chat,
            index: m.index,
            client_id: m.client_id.clone(),
        }
    }
}

fn internal(context: &str, e: &dyn std::fmt::Display) -> WireError {
    tracing::error!(error = %e, "{context}");
    WireError::new(ErrorCode::Internal, "the server failed; try again")
}

fn invalid(message: impl Into<String>) -> WireError {
    WireError::new(ErrorCode::InvalidField, message)
}

/// Bound on cached chats before the cache is cleared (it refills from the store).
const CHAT_CACHE_MAX: usize = 100_000;

pub struct Domain {
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    limits: Limits,
    /// chat id -> members; private chats also by their (low, high) pair.
    chats: Mutex<IdMap<ChatId, Arc<ChatInfo>>>,
    pairs: Mutex<IdMap<(Ocid, Ocid), Arc<ChatInfo>>>,
    hasher: auth::Hasher,
}

impl Domain {
    pub fn new(store: Arc<dyn Store>, bus: Arc<dyn Bus>, limits: Limits) -> Self {
        Self {
            store,
            bus,
            limits,
            chats: Mutex::new(IdMap::default()),
            pairs: Mutex::new(IdMap::default()),
            hasher: auth::Hasher::new(
                std::thread::available_parallelism().map_or(2, |n| n.get().min(4)),
            ),
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    // -- accounts --------------------------------------------------------------------------

    /// Register an account by email. The nickname defaults to the email's local part.
    ///
    /// # Errors
    /// `invalid_field` for a malformed email, password or name; `email_taken`; `internal`.
    pub async fn register_email(
        &self,
        email: &str,
        password: &str,
        name: Option<&str>,
    ) -> Result<Account, WireError> {
        let email = email.trim().to_lowercase();
        let Some((local, domain)) = email.split_once('@') else {
            return Err(invalid("field `email` must be an email address"));
        };
        if local.is_empty()
            || domain.is_empty()
            || email.len() > 254
            || email.chars().any(char::is_whitespace)
        {
            return Err(invalid(
                "field `email` must be an email address of at most 254 bytes",
            ));
        }
        if password.is_empty() || password.len() > 1024 {
            return Err(invalid("field `password` must be 1 to 1024 bytes"));
        }
        let nickname = match name {
            Some(n) => {
                let n = n.trim();
                if n.is_empty() || n.chars().count() > 64 {
                    return Err(invalid("field `name` must be 1 to 64 characters"));
                }
                n.to_owned()
            }
            None => local.chars().take(64).collect(),
        };
        let password_hash = self
            .hasher
            .hash(password.to_owned())
            .await
            .map_err(|e| internal("password hashing failed", &e))?;
        let new = NewAccount {
            uuid: uuid::Uuid::new_v4().to_string(),
            email: Some(email),
            phone: None,
            username: None,
            nickname,
            password_hash,
            created_at: now_ms(),
        };
        match self.store.create_account(new).await {
            Ok(a) => {
                tracing::info!(ocid = a.ocid, "account registered");
                Ok(a)
            }
            Err(StoreError::Conflict(Unique::Email)) => Err(WireError::new(
                ErrorCode::EmailTaken,
                "that email address is already registered",
            )),
            Err(e) => Err(internal("account insert failed", &e)),
        }
    }

    /// Check a password login and open a session.
    ///
    /// # Errors
    /// `bad_credentials` for an unknown account or a wrong password; `internal`.
    pub async fn login(
        &self,
        key: LoginKey,
        password: &str,
    ) -> Result<(Account, String), WireError> {
        let found = match &key {
            LoginKey::Email(e) => self.store.account_by_email(&e.trim().to_lowercase()).await,
            LoginKey::Ocid(o) => self.store.account(*o).await,
        }
        .map_err(|e| internal("account lookup failed", &e))?;
        let bad = || WireError::new(ErrorCode::BadCredentials, "wrong account or password");
        let Some(account) = found else {
            return Err(bad());
        };
        let matches = self
            .hasher
            .verify(password.to_owned(), account.password_hash.clone())
            .await
            .map_err(|e| internal("password check failed", &e))?;
        if !matches {
            return Err(bad());
        }
        let token = auth::new_token();
        let now = now_ms();
        let expires = now + self.limits.session_ttl.as_millis() as i64;
        self.store
            .create_session(account.ocid, &auth::token_hash(&token), now, expires)
            .await
            .map_err(|e| internal("session insert failed", &e))?;
        tracing::info!(ocid = account.ocid, "logged in");
        Ok((account, token))
    }

    /// The account behind a live session token.
    ///
    /// # Errors
    /// `invalid_token` when unknown, expired or revoked; `internal`.
    pub async fn resume(&self, token: &str) -> Result<Account, WireError> {
        let bad = || {
            WireError::new(
                ErrorCode::InvalidToken,
                "the session token is unknown, expired or revoked",
            )
        };
        let (row, account) = self
            .store
            .session(&auth::token_hash(token))
            .await
            .map_err(|e| internal("session lookup failed", &e))?
            .ok_or_else(bad)?;
        if row.expires_at <= now_ms() {
            return Err(bad());
        }
        Ok(account)
    }

    /// Revoke a session token (logout).
    ///
    /// # Errors
    /// `internal`.
    pub async fn logout(&self, token: &str) -> Result<(), WireError> {
        self.store
            .revoke_session(&auth::token_hash(token))
            .await
            .map_err(|e| internal("session revoke failed", &e))
    }

    /// # Errors
    /// `no_such_account`; `internal`.
    pub async fn account(&self, ocid: Ocid) -> Result<Account, WireError> {
        self.store
            .account(ocid)
            .await
            .map_err(|e| internal("account lookup failed", &e))?
            .ok_or_else(|| {
                WireError::new(
                    ErrorCode::NoSuchAccount,
                    format!("no account with ocid {ocid}"),
                )
            })
    }

    // -- chats -----------------------------------------------------------------------------

    fn cache(&self, info: &Arc<ChatInfo>) {
        let mut chats = self.chats.lock().unwrap_or_else(|p| p.into_inner());
        if chats.len() >= CHAT_CACHE_MAX {
            chats.clear();
        }
        chats.insert(info.id, info.clone());
    }

    /// A chat's members, from the cache or the store.
    ///
    /// # Errors
    /// `no_such_chat`; `internal`.
    pub async fn chat(&self, id: ChatId) -> Result<Arc<ChatInfo>, WireError> {
        if let Some(c) = self
            .chats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
        {
            return Ok(c.clone());
        }
        let chat = self
            .store
            .chat(id)
            .await
            .map_err(|e| internal("chat lookup failed", &e))?
            .ok_or_else(|| {
                WireError::new(ErrorCode::NoSuchChat, format!("no chat with id {id}"))
            })?;
        let info = Arc::new(ChatInfo::from_chat(chat));
        self.cache(&info);
        Ok(info)
    }

    /// The private chat of `me` and `peer`; created if `create`, else `None` when absent.
    async fn private_chat(
        &self,
        me: Ocid,
        peer: Ocid,
        create: bool,
    ) -> Result<Option<Arc<ChatInfo>>, WireError> {
        if me == peer {
            return Err(invalid(
                "a private chat needs another account than your own",
            ));
        }
        let key = (me.min(peer), me.max(peer));
        if let Some(c) = self
            .pairs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(Some(c.clone()));
        }
        let chat = if create {
            self.account(peer).await?;
            self.store
                .private_chat(me, peer, now_ms())
                .await
                .map_err(|e| internal("private chat insert failed", &e))?
        } else {
            let id = self
                .store
                .find_private_chat(me, peer)
                .await
                .map_err(|e| internal("private chat lookup failed", &e))?;
            let Some(id) = id else { return Ok(None) };
            return self.chat(id).await.map(Some);
        };
        let info = Arc::new(ChatInfo::from_chat(chat));
        self.cache(&info);
        let mut pairs = self.pairs.lock().unwrap_or_else(|p| p.into_inner());
        if pairs.len() >= CHAT_CACHE_MAX {
            pairs.clear();
        }
        pairs.insert(key, info.clone());
        Ok(Some(info))
    }

    /// Resolve a destination for `me`, checking membership.
    async fn resolve(
        &self,
        me: Ocid,
        to: To,
        create: bool,
    ) -> Result<Option<Arc<ChatInfo>>, WireError> {
        match to {
            To::Account(peer) => self.private_chat(me, peer, create).await,
            To::Chat(id) | To::Group(id) => {
                let chat = self.chat(id).await?;
                if matches!(to, To::Group(_)) && chat.kind != ChatKind::Group {
                    return Err(WireError::new(
                        ErrorCode::NoSuchChat,
                        format!("no group with id {id}"),
                    ));
                }
                if !chat.is_member(me) {
                    return Err(WireError::new(
                        ErrorCode::NotAMember,
                        format!("you are not a member of chat {id}"),
                    ));
                }
                Ok(Some(chat))
            }
        }
    }

    /// The chat ids of destinations `me` belongs to, each with its index; others are left out.
    pub async fn chat_ids(&self, me: Ocid, targets: Vec<(To, Index)>) -> Vec<(ChatId, Index)> {
        let mut out = Vec::with_capacity(targets.len());
        for (to, index) in targets {
            if let Ok(Some(chat)) = self.resolve(me, to, false).await {
                out.push((chat.id, index));
            }
        }
        out
    }

    /// Create a group owned by `owner` with `members` (the owner is added if absent).
    ///
    /// # Errors
    /// `no_such_account` for an unknown member; `invalid_field` past the size limit; `internal`.
    pub async fn create_group(
        &self,
        owner: Ocid,
        members: &[Ocid],
        name: &str,
    ) -> Result<Arc<ChatInfo>, WireError> {
        let mut all: Vec<Ocid> = members.to_vec();
        all.push(owner);
        all.sort_unstable();
        all.dedup();
        if all.len() > self.limits.max_group_members {
            return Err(invalid(format!(
                "a group may have at most {} members",
                self.limits.max_group_members
            )));
        }
        if name.chars().count() > 128 {
            return Err(invalid("field `name` must be at most 128 characters"));
        }
        for m in &all {
            if *m != owner {
                self.account(*m).await?;
            }
        }
        let chat = self
            .store
            .create_group(owner, name, &all, now_ms())
            .await
            .map_err(|e| internal("group insert failed", &e))?;
        tracing::info!(chat = chat.id, owner, members = all.len(), "group created");
        let info = Arc::new(ChatInfo::from_chat(chat));
        self.cache(&info);
        Ok(info)
    }

    // -- messages --------------------------------------------------------------------------

    /// Check a text message and queue it for storing; the returned `PendingSend` resolves
    /// (`receipt`) once it is durable, and `finish_send` then publishes it. Sends queued one
    /// after another get indexes in that order.
    ///
    /// # Errors
    /// `invalid_field` (empty text), `message_too_long`, `no_such_account`, `no_such_chat`,
    /// `not_a_member`, `internal`.
    pub async fn queue_text(
        &self,
        me: Ocid,
        to: To,
        text: String,
        client_id: Option<String>,
        origin: Option<Origin>,
    ) -> Result<PendingSend, WireError> {
        if text.is_empty() {
            return Err(invalid("field `msg` must not be empty"));
        }
        if text.len() > self.limits.max_text_bytes {
            return Err(WireError::new(
                ErrorCode::MessageTooLong,
                format!(
                    "a message may be at most {} bytes",
                    self.limits.max_text_bytes
                ),
            ));
        }
        if client_id
            .as_ref()
            .is_some_and(|c| c.is_empty() || c.len() > 128)
        {
            return Err(invalid("field `client_id` must be 1 to 128 bytes"));
        }
        let chat = self
            .resolve(me, to, true)
            .await?
            .ok_or_else(|| internal("private chat missing after create", &"none"))?;
        let new = NewMessage {
            chat: chat.id,
            sender: me,
            kind: KIND_NORMAL,
            parts: vec![Part {
                category: Category::TEXT,
                content: text,
            }],
            client_id,
            created_at: now_ms(),
        };
        // Published by the store's writer right after the commit, so every chat's messages
        // reach the bus in index order. A retried send (`Existing`) is published again, in
        // case the node that stored it died before publishing (receivers drop what they
        // already have by index).
        let bus = self.bus.clone();
        let to_bus = chat.clone();
        let publish: OnDurable = Box::new(move |appended: &Appended| {
            let (Appended::New(message) | Appended::Existing(message)) = appended;
            bus.publish(Arc::new(Delivery::new(message.clone(), to_bus, origin)));
        });
        let receipt = self
            .store
            .queue_append(new, Some(publish))
            .await
            .map_err(|e| internal("message append failed", &e))?;
        Ok(PendingSend { chat, receipt })
    }

    /// What a queued send's receipt means for its sender.
    ///
    /// # Errors
    /// `duplicate_client_id`, `no_such_chat`, `internal`.
    pub fn finish_send(stored: crate::store::Result<Appended>) -> Result<Sent, WireError> {
        match stored {
            Ok(Appended::New(message) | Appended::Existing(message)) => Ok(Sent::of(&message)),
            Err(StoreError::ClientIdReused) => Err(WireError::new(
                ErrorCode::DuplicateClientId,
                "that client_id was already used for a message to another chat",
            )),
            Err(StoreError::NoSuchChat) => {
                Err(WireError::new(ErrorCode::NoSuchChat, "no such chat"))
            }
            Err(e) => Err(internal("message append failed", &e)),
        }
    }

    /// A page of a chat's history for a member, ascending, and whether more lie beyond it.
    ///
    /// # Errors
    /// `no_such_account`, `no_such_chat`, `not_a_member`, `internal`.
    pub async fn history(
        &self,
        me: Ocid,
        to: To,
        range: Range,
        limit: u32,
    ) -> Result<(Option<Arc<ChatInfo>>, Vec<Message>, bool), WireError> {
        let Some(chat) = self.resolve(me, to, false).await? else {
            if let To::Account(peer) = to {
                self.account(peer).await?;
            }
            return Ok((None, Vec::new(), false));
        };
        let mut messages = self
            .store
            .messages(chat.id, range, limit + 1)
            .await
            .map_err(|e| internal("history read failed", &e))?;
        let more = messages.len() > limit as usize;
        if more {
            match range {
                Range::After(_) => {
                    messages.pop();
                }
                Range::Latest | Range::Before(_) => {
                    messages.remove(0);
                }
            }
        }
        Ok((Some(chat), messages, more))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_of_private_chat() {
        let c = ChatInfo {
            id: 1,
            kind: ChatKind::Private,
            members: vec![10001, 10002],
        };
        assert_eq!(c.peer_of(10001), Some(10002));
        assert_eq!(c.peer_of(10002), Some(10001));
        assert!(c.is_member(10002) && !c.is_member(10003));
    }
}
