//! The rules of the chat system, independent of any wire dialect or storage engine.
//!
//! Dialects (over a connection or per HTTP request) call these functions with decoded requests
//! and get typed results or a [`DomainError`], which each dialect maps onto its own codes. Store
//! failures are logged here once and reported only as `DomainError::Internal`. This module
//! never touches sockets or SQL and imports no dialect: what it announces goes out as neutral
//! events (`crate::event`) on the bus.
//!
//! - `accounts.rs`: registration, password login, token resume, logout, account lookup;
//! - `chats.rs`: the chat cache, private chats made on first use, groups, membership checks;
//! - `messages.rs`: sending (queued or awaited), history, and the delivery state a
//!   connection reads and records;
//! - `friends.rs`: friend requests, friendships, typing notices;
//! - `profiles.rs`: identities and their rules, profiles, search, password changes and resets,
//!   logins, remarks, blocks, account deletion;
//! - `groups.rs`: joining, requests, invitations, roles, removal, disbanding, finding groups;
//! - `reads.rs`: read receipts, the chat list with unread counts, and what a login is told;
//! - `files.rs`: uploads, files, who may read them, files in messages, avatars, the sweep;
//! - `service.rs`: service tokens and UUIDs (the identity of the service-code dialect);
//! - `auth.rs`: password hashing and session tokens;
//! - `guard.rs`: limits on guessing secrets (per account and per client address);
//! - `quota.rs`: per-account limits on what reaches other accounts (groups, members added,
//!   friend requests, messages to strangers, lookups).

mod accounts;
pub mod admin;
pub mod auth;
mod chats;
mod error;
pub mod files;
pub mod friends;
pub mod groups;
pub mod guard;
mod messages;
pub mod profiles;
pub mod quota;
pub mod reads;
pub mod service;

pub use accounts::{Login, key_for_log};
pub use chats::GroupAdds;
pub use error::{DomainError, Invalid, TextField};
pub use messages::{PendingSend, Sent};

use crate::bus::{Bus, Chats, Presence};
use crate::event::ChatInfo;
use crate::ids::IdMap;
use crate::store::{Identity, Store};
use async_trait::async_trait;
use natter_proto::{ChatId, Ocid};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Limits the domain enforces; all configurable.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_text_bytes: usize,
    /// Bytes of messages one history page holds (at least one message): a page of many large
    /// messages is cut short, and says there is more.
    pub max_reply_bytes: usize,
    pub max_group_members: usize,
    pub session_ttl: Duration,
    /// Who may register.
    pub registration: Registration,
    /// Failed attempts at passwords, session tokens and security answers allowed per
    /// account and per client address, and the back-off after them.
    pub guessing: guard::GuessLimits,
    /// Addresses that stand for many clients (a reverse proxy or a load generator on them):
    /// they are not limited per address (connections, guessing), only per account and by the
    /// node's caps. Loopback by default.
    pub shared_addresses: Vec<guard::Network>,
    pub files: files::FileLimits,
    /// What each account may do to others per window.
    pub abuse: quota::AbuseLimits,
    /// Who may put an account into a group without asking, for accounts that have not chosen.
    pub group_adds: GroupAdds,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_text_bytes: 16 * 1024,
            max_reply_bytes: 1024 * 1024,
            max_group_members: 10_000,
            session_ttl: Duration::from_secs(30 * 24 * 3600),
            registration: Registration::Open,
            guessing: guard::GuessLimits::default(),
            shared_addresses: guard::Network::loopback(),
            files: files::FileLimits::default(),
            abuse: quota::AbuseLimits::default(),
            group_adds: GroupAdds::Friends,
        }
    }
}

/// Who may register an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Registration {
    /// Anyone.
    #[default]
    Open,
    /// Nobody: accounts are made by an operator (`natter admin accounts create`).
    Closed,
    /// Whoever presents an unused invitation code made by an operator (each code once).
    Invite,
}

impl std::str::FromStr for Registration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "open" => Ok(Self::Open),
            "closed" => Ok(Self::Closed),
            "invite" => Ok(Self::Invite),
            other => Err(format!(
                "unknown registration mode `{other}` (expected open, closed or invite)"
            )),
        }
    }
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Where a message (or a typing notice, or a history request) goes.
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
    Ocid(Ocid),
    /// An email, a username or a phone (normalised by their rules before the lookup).
    Identity(Identity),
}

/// Longest password (whatever the client sends as one), in bytes.
pub const MAX_PASSWORD: usize = 1024;
/// Longest avatar (a file reference), in characters.
pub const MAX_AVATAR: usize = 512;

/// Bound on cached chats before the cache is cleared (it refills from the store).
const CHAT_CACHE_MAX: usize = 100_000;

pub struct Domain {
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    presence: Arc<dyn Presence>,
    limits: Limits,
    /// chat id -> members; private chats also by their (low, high) pair.
    chats: Mutex<IdMap<ChatId, Arc<ChatInfo>>>,
    pairs: Mutex<IdMap<(Ocid, Ocid), Arc<ChatInfo>>>,
    hasher: auth::Hasher,
    guards: Guards,
    quotas: quota::Quotas,
    /// File bytes (absent for operator commands, which never read them).
    files: Option<files::FileStorage>,
    /// The key that signs file links, read from the store once.
    link_key: tokio::sync::OnceCell<[u8; 32]>,
    /// Taken while a blob is placed or removed, so that a sweep never removes the bytes a
    /// finishing upload just found in place.
    blob_turn: tokio::sync::Mutex<()>,
    /// The key of service token hashes, read from the store on first use.
    service_key: tokio::sync::OnceCell<[u8; 32]>,
}

/// Failed attempts at each kind of secret, counted apart.
struct Guards {
    password: guard::Guard,
    token: guard::Guard,
    answer: guard::Guard,
    service: guard::Guard,
}

impl Guards {
    fn new(limits: guard::GuessLimits) -> Self {
        Self {
            password: guard::Guard::new(limits),
            token: guard::Guard::new(limits),
            answer: guard::Guard::new(limits),
            service: guard::Guard::new(limits),
        }
    }
}

/// A kind of secret whose failed attempts are counted (apart from the other kinds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secret {
    /// An account's password (logins, and the current password before a change).
    Password,
    /// A session token (resumes).
    Token,
    /// A security answer (password resets).
    Answer,
    /// A token a dialect issues for its own requests (such as a service code's token).
    Service,
}

impl Domain {
    /// Count `n` against one of `me`'s quotas.
    ///
    /// # Errors
    /// `LimitReached` past the quota.
    fn spend(&self, counter: &quota::Counter, me: Ocid, n: u32) -> Result<(), DomainError> {
        counter
            .take(me, n)
            .map_err(|(what, retry_after_s)| DomainError::LimitReached {
                what,
                retry_after_s,
            })
    }

    /// Count a lookup of other accounts by `me` (account info, a profile, a search): call
    /// before answering one.
    ///
    /// # Errors
    /// `LimitReached` past the lookups quota.
    pub fn look_up(&self, me: Ocid) -> Result<(), DomainError> {
        self.spend(&self.quotas.lookups, me, 1)
    }

    /// Count one attempt at a `secret` of `subject` (an account, or a name that may be one;
    /// `None` when the secret names no account until it is checked) by the client at `client`,
    /// before the secret is checked. Call [`guard::Attempt::succeeded`] when it proves right;
    /// dropped otherwise, the attempt counts as a failure. A shared address (a proxy) is not
    /// counted per address.
    ///
    /// ```text
    /// let attempt = domain.attempt(Secret::Service, Some(Subject::account(ocid)), Some(ip))?;
    /// if token_is_right { attempt.succeeded(); } else { return Err(...) }
    /// ```
    ///
    /// # Errors
    /// `TooManyAttempts` (with the seconds to wait) while the account or the address is
    /// locked; the secret must then not be checked.
    pub fn attempt(
        &self,
        secret: Secret,
        subject: Option<guard::Subject>,
        client: Option<std::net::IpAddr>,
    ) -> Result<guard::Attempt<'_>, DomainError> {
        let guard = match secret {
            Secret::Password => &self.guards.password,
            Secret::Token => &self.guards.token,
            Secret::Answer => &self.guards.answer,
            Secret::Service => &self.guards.service,
        };
        let subjects: Vec<guard::Subject> = subject
            .into_iter()
            .chain(self.address_subject(client))
            .collect();
        Ok(guard.attempt(&subjects)?)
    }

    /// The client at `client` as a subject of the guessing limits, unless it is unknown or a
    /// shared address.
    fn address_subject(&self, client: Option<std::net::IpAddr>) -> Option<guard::Subject> {
        client
            .filter(|ip| !guard::Network::any_contains(&self.limits.shared_addresses, *ip))
            .map(guard::Subject::address)
    }
}

impl From<guard::Locked> for DomainError {
    fn from(l: guard::Locked) -> Self {
        Self::TooManyAttempts {
            retry_after_s: l.retry_after_s(),
        }
    }
}

impl Domain {
    pub fn new(
        store: Arc<dyn Store>,
        bus: Arc<dyn Bus>,
        presence: Arc<dyn Presence>,
        limits: Limits,
    ) -> Self {
        Self {
            store,
            bus,
            presence,
            chats: Mutex::new(IdMap::default()),
            pairs: Mutex::new(IdMap::default()),
            hasher: auth::Hasher::new(
                std::thread::available_parallelism().map_or(2, |n| n.get().min(4)),
            ),
            guards: Guards::new(limits.guessing),
            quotas: quota::Quotas::new(limits.abuse),
            limits,
            files: None,
            link_key: tokio::sync::OnceCell::new(),
            blob_turn: tokio::sync::Mutex::new(()),
            service_key: tokio::sync::OnceCell::new(),
        }
    }

    /// The same domain with file storage.
    #[must_use]
    pub fn with_files(mut self, storage: files::FileStorage) -> Self {
        self.files = Some(storage);
        self
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Whether the bus can carry deliveries now.
    pub fn bus_connected(&self) -> bool {
        self.bus.connected()
    }

    /// What the bus has counted (drops, reconnections).
    pub fn bus_stats(&self) -> crate::bus::BusStats {
        self.bus.stats()
    }

    /// Flush and close the store (at shutdown, after every connection has ended).
    pub async fn close(&self) {
        self.store.close().await;
    }
}

#[async_trait]
impl Chats for Domain {
    async fn chat_info(&self, chat: ChatId) -> Option<Arc<ChatInfo>> {
        self.chat(chat).await.ok()
    }

    fn forget(&self, chat: Option<ChatId>, pair: Option<(Ocid, Ocid)>) {
        self.forget_cached(chat, pair);
    }
}
