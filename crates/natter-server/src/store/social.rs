//! The social part of the storage contract: profiles and more login identities, search, account
//! security, friends' remarks and blocks (`Profiles`); groups, join requests and invitations
//! (`Groups`); read state and the notices kept for offline accounts (`ReadState`). Each backend
//! implements each trait in a file of its own.

use super::{Account, Index, Message, Result};
use async_trait::async_trait;
use natter_proto::{ChatId, Ocid};

/// A login identity other than the ocid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    Email(String),
    Phone(String),
    Username(String),
}

/// What a profile change sets; `None` leaves a field as it is. Identities are set to `Some(..)`
/// or cleared with `Some(None)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileEdit {
    pub nickname: Option<String>,
    pub avatar: Option<String>,
    pub signature: Option<String>,
    pub description: Option<String>,
    pub sex: Option<u8>,
    pub status_text: Option<String>,
    pub username: Option<Option<String>>,
    pub phone: Option<Option<String>>,
}

/// How accounts are searched: exactly by an identity, or by the start of their nickname
/// (case-insensitive). Deleted accounts are never found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchBy {
    Ocid(Ocid),
    Identity(Identity),
    NicknamePrefix(String),
}

/// A live login of an account (a device).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub token_hash: [u8; 32],
    pub created_at: i64,
    pub expires_at: i64,
}

/// Which of an account's sessions a password change ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoke<'a> {
    None,
    /// Every session but the one with this token hash.
    AllBut(&'a [u8]),
    All,
}

/// What a password reset by security question needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetState {
    pub question: Option<String>,
    pub answer_hash: Option<String>,
    /// Wrong answers since the last right one (or since the count was last cleared).
    pub failures: u32,
    /// Answers are refused until this time (ms).
    pub blocked_until: i64,
}

#[async_trait]
pub trait Profiles: Send + Sync {
    /// Change an account's profile (and its username or phone); `modified_at` becomes `now`.
    ///
    /// # Errors
    /// `Conflict(Username | Phone)` when another account has that identity.
    async fn update_profile(&self, ocid: Ocid, edit: &ProfileEdit, now: i64) -> Result<Account>;
    /// The live (not deleted) account with this identity.
    async fn account_by(&self, identity: &Identity) -> Result<Option<Account>>;
    /// At most `limit` live accounts matching `by` with an ocid above `after`, ascending.
    async fn search_accounts(&self, by: &SearchBy, after: Ocid, limit: u32)
    -> Result<Vec<Account>>;
    /// Set a new password hash and revoke the account's sessions that `revoke` names; returns
    /// how many were revoked.
    async fn set_password(
        &self,
        ocid: Ocid,
        password_hash: &str,
        revoke: Revoke<'_>,
    ) -> Result<u64>;
    async fn set_security(&self, ocid: Ocid, question: &str, answer_hash: &str) -> Result<()>;
    async fn reset_state(&self, ocid: Ocid) -> Result<Option<ResetState>>;
    /// Record the count of wrong answers and how long answers are refused.
    async fn set_reset_failures(&self, ocid: Ocid, failures: u32, blocked_until: i64)
    -> Result<()>;
    /// Count an answer before it is checked, unless answers are refused at `now`: the count of
    /// wrong answers grows by one and, on reaching `max`, starts again from zero while answers
    /// are refused until `lock_until`. Returns the time answers are refused until after the
    /// count (`lock_until` when this answer set the lock), or `None` when it is refused (or
    /// there is no such live account). One statement, so that answers arriving together are
    /// each counted and no more than `max` of them are checked.
    async fn count_reset_attempt(
        &self,
        ocid: Ocid,
        max: u32,
        now: i64,
        lock_until: i64,
    ) -> Result<Option<i64>>;
    /// The account's unrevoked sessions that have not expired at `now`, oldest first.
    async fn sessions_of(&self, ocid: Ocid, now: i64) -> Result<Vec<SessionInfo>>;
    /// Delete an account: its identities, password and security answer are cleared, its
    /// sessions revoked, its friendships, requests, blocks, invitations and notices removed.
    /// (Its group memberships are ended before, one by one, so that groups hear of it.)
    async fn delete_account(&self, ocid: Ocid, now: i64) -> Result<()>;

    /// Set the private name `ocid` gives its friend `friend`; `false` if they are not friends.
    async fn set_remark(&self, ocid: Ocid, friend: Ocid, remark: &str) -> Result<bool>;
    /// `ocid` blocks `other`: their friendship and requests between them end.
    async fn block(&self, ocid: Ocid, other: Ocid, now: i64) -> Result<()>;
    /// `false` when `ocid` did not block `other`.
    async fn unblock(&self, ocid: Ocid, other: Ocid) -> Result<bool>;
    /// The accounts `ocid` blocks, ascending.
    async fn blocked(&self, ocid: Ocid) -> Result<Vec<Ocid>>;
    /// Whether `blocker` blocks `other`.
    async fn blocks(&self, blocker: Ocid, other: Ocid) -> Result<bool>;
    /// Who may put `ocid` into a group without asking (`group_adds::*`), if the account ever
    /// set it (`None`: the default).
    async fn group_adds(&self, ocid: Ocid) -> Result<Option<u8>>;
    /// Set who may put `ocid` into a group without asking.
    async fn set_group_adds(&self, ocid: Ocid, value: u8) -> Result<()>;
}

/// Who may put an account into a group without asking it (the others' groups invite it).
pub mod group_adds {
    pub const EVERYONE: u8 = 0;
    pub const FRIENDS: u8 = 1;
    pub const NOBODY: u8 = 2;
}

/// A member's role in a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Member,
    Admin,
    Owner,
}

impl Role {
    /// As stored: 0 member, 1 owner, 2 admin.
    pub fn code(self) -> i64 {
        match self {
            Self::Member => 0,
            Self::Owner => 1,
            Self::Admin => 2,
        }
    }

    pub fn from_code(code: i64) -> Self {
        match code {
            1 => Self::Owner,
            2 => Self::Admin,
            _ => Self::Member,
        }
    }
}

/// How a group is joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinMode {
    /// Anyone may join.
    Open,
    /// A join request waits for an admin's answer (an invitation lets its invitee in).
    Approval,
}

impl JoinMode {
    pub fn code(self) -> i64 {
        match self {
            Self::Open => 0,
            Self::Approval => 1,
        }
    }

    pub fn from_code(code: i64) -> Self {
        if code == 0 {
            Self::Open
        } else {
            Self::Approval
        }
    }
}

/// What a group edit sets; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupEdit {
    pub name: Option<String>,
    pub description: Option<String>,
    pub avatar: Option<String>,
    pub join_mode: Option<JoinMode>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    pub chat: ChatId,
    pub ocid: Ocid,
    pub message: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    pub chat: ChatId,
    pub ocid: Ocid,
    pub by: Ocid,
    pub created_at: i64,
}

/// A group as a list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSummary {
    pub id: ChatId,
    pub name: String,
    pub avatar: String,
    pub join_mode: JoinMode,
    pub member_count: u64,
    /// The asking account's role, if a member.
    pub role: Option<Role>,
}

#[async_trait]
pub trait Groups: Send + Sync {
    /// Change a group's name, description, avatar or join mode; `false` if no such group.
    async fn update_group(&self, chat: ChatId, edit: &GroupEdit) -> Result<bool>;
    /// Add a member with `role`, joining at the chat's current last index (which it returns);
    /// `None` if it was a member already. Its join request and invitation go with it.
    async fn add_member(
        &self,
        chat: ChatId,
        ocid: Ocid,
        role: Role,
        now: i64,
    ) -> Result<Option<Index>>;
    /// `false` if it was not a member.
    async fn remove_member(&self, chat: ChatId, ocid: Ocid) -> Result<bool>;
    /// `false` if it is not a member.
    async fn set_role(&self, chat: ChatId, ocid: Ocid, role: Role) -> Result<bool>;
    /// The owner becomes an admin and `to` (a member) the owner, in one transaction; `false`
    /// if `from` is not the owner or `to` not a member.
    async fn transfer_group(&self, chat: ChatId, from: Ocid, to: Ocid) -> Result<bool>;
    /// Mark the group disbanded and remove every member, request and invitation; `false` if
    /// it was disbanded already.
    async fn disband(&self, chat: ChatId, now: i64) -> Result<bool>;
    /// Store (or replace) `ocid`'s request to join.
    async fn request_join(&self, chat: ChatId, ocid: Ocid, message: &str, now: i64) -> Result<()>;
    /// A group's pending join requests, oldest first.
    async fn join_requests(&self, chat: ChatId) -> Result<Vec<JoinRequest>>;
    /// Delete `ocid`'s request to join; `false` if there was none.
    async fn take_join_request(&self, chat: ChatId, ocid: Ocid) -> Result<bool>;
    /// The pending join requests of every group `admin` owns or administers, oldest first.
    async fn join_requests_for(&self, admin: Ocid) -> Result<Vec<JoinRequest>>;
    /// Store (or renew) an invitation of `ocid` by `by`.
    async fn invite(&self, chat: ChatId, ocid: Ocid, by: Ocid, now: i64) -> Result<()>;
    /// Delete `ocid`'s invitation; `false` if there was none.
    async fn take_invitation(&self, chat: ChatId, ocid: Ocid) -> Result<bool>;
    /// `ocid`'s pending invitations, oldest first.
    async fn invitations(&self, ocid: Ocid) -> Result<Vec<Invitation>>;
    /// The groups `ocid` is a member of, ascending by id.
    async fn groups_of(&self, ocid: Ocid) -> Result<Vec<GroupSummary>>;
    /// At most `limit` live groups whose name starts with `prefix` (case-insensitive), by id
    /// above `after`, ascending.
    async fn find_groups(
        &self,
        prefix: &str,
        after: ChatId,
        limit: u32,
    ) -> Result<Vec<GroupSummary>>;
}

/// One chat as an account's chat list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatState {
    pub chat: ChatId,
    pub last_index: Index,
    /// The newest message, if any.
    pub last: Option<Message>,
    /// How far the account has read.
    pub read: Index,
    /// Messages after `read` sent by others, counted up to [`MAX_UNREAD`].
    pub unread: u64,
}

/// Unread messages are counted per chat up to this many: a count of 100 means "100 or more".
/// Counting stops there so that a login of an account that never marks anything read costs
/// the same as any other.
pub const MAX_UNREAD: u64 = 100;

/// What waits for an account, counted (read at every login, so in one cheap read).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NewsCounts {
    /// Friend requests waiting for its answer.
    pub friend_requests: u64,
    /// Requests to join the groups it owns or administers.
    pub join_requests: u64,
    pub invitations: u64,
    /// Kept notices.
    pub notices: u64,
    /// Others' unread messages over all its chats, each chat's count capped at [`MAX_UNREAD`].
    pub unread: u64,
}

#[async_trait]
pub trait ReadState: Send + Sync {
    /// Raise how far `ocid` has read `chat` (never past its last message, never lowered);
    /// returns the read index. `None` if not a member.
    async fn mark_read(&self, ocid: Ocid, chat: ChatId, index: Index) -> Result<Option<Index>>;
    /// Every chat of `ocid` with its newest message and unread count (capped at
    /// [`MAX_UNREAD`]), in no order.
    async fn chat_states(&self, ocid: Ocid) -> Result<Vec<ChatState>>;
    /// How much waits for `ocid`.
    async fn news_counts(&self, ocid: Ocid) -> Result<NewsCounts>;
    /// Keep a notice (as JSON) for each of `ocids` until its next login, in one transaction.
    async fn keep_notice(&self, ocids: &[Ocid], body: &str, now: i64) -> Result<()>;
    /// Take (and delete) `ocid`'s kept notices, oldest first.
    async fn take_notices(&self, ocid: Ocid) -> Result<Vec<String>>;
}
