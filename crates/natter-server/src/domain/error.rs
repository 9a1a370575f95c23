//! Why the domain refused a request: structured, so that each dialect maps it onto its own
//! codes and words (an OurChat error code, an HTTP status and cause, a pipe `*_error` reason).
//! Nothing here names a wire field.

use crate::store::Role;
use natter_proto::{ChatId, Ocid};

/// An input the domain's rules refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// Not of the form `local@domain` at all.
    NotAnEmail,
    /// An email address breaking a rule: empty part, whitespace, or longer than `max` bytes.
    Email { max: usize },
    /// A password that is empty or longer than `max` bytes.
    Password { max: usize },
    /// A nickname that is empty (after trimming) or longer than `max` characters.
    Nickname { max: usize },
    /// A group name longer than `max` characters.
    GroupName { max: usize },
    /// A group over `max` members (its owner included).
    GroupSize { max: usize },
    /// A message without text.
    EmptyText,
    /// A client message id that is empty or longer than `max` bytes.
    ClientId { max: usize },
    /// A private chat (or typing) addressed to one's own account.
    PrivateChatWithSelf,
    /// A friend request (or answer) naming one's own account.
    OwnAccount,
    /// A friend request note longer than `max` characters.
    RequestNote { max: usize },
    /// A username breaking the rules: 3 to `max` characters of `a-z`, `0-9`, `_` and `.`,
    /// starting with a letter.
    Username { max: usize },
    /// A phone number breaking the rules: an optional `+` and 6 to 15 digits (spaces, dashes,
    /// dots and parentheses are dropped).
    Phone,
    /// A profile or group text longer than `max` characters (which one is `field`).
    TooLong { field: TextField, max: usize },
    /// Sex other than 0 (unknown), 1 (male), 2 (female) or 3 (other).
    Sex,
    /// A search query that is empty or longer than `max` characters.
    Query { max: usize },
    /// A security answer that is empty (after trimming) or longer than `max` characters.
    Answer { max: usize },
    /// A security question that is empty or longer than `max` characters.
    Question { max: usize },
    /// Nothing to change.
    EmptyEdit,
    /// A message type a client may not send (the system type, or one past the list).
    MessageType,
    /// A voice note needs a duration of 1 to `max` milliseconds; other files take none.
    VoiceDuration { max: u64 },
    /// Not a UUID.
    Uuid,
    /// A group-adds setting other than `everyone`, `friends` or `nobody`.
    GroupAdds,
    /// A service token shorter than `min` or longer than `max` characters.
    ServiceToken { min: usize, max: usize },
}

/// Which free text an `Invalid::TooLong` is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextField {
    Signature,
    Description,
    StatusText,
    Avatar,
    Remark,
    GroupDescription,
    JoinNote,
}

impl TextField {
    /// The field's name as the native dialect writes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Signature => "signature",
            Self::Description => "description",
            Self::StatusText => "status_text",
            Self::Avatar => "avatar",
            Self::Remark => "remark",
            Self::GroupDescription => "description",
            Self::JoinNote => "msg",
        }
    }
}

/// A refusal by the domain. `Internal` is the only failure that is not the caller's: it is
/// logged once where it happens and reaches clients without detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("invalid input: {0:?}")]
    Invalid(Invalid),
    #[error("message text over {max} bytes")]
    TextTooLong { max: usize },
    #[error("email address already registered")]
    EmailTaken,
    #[error("username already taken")]
    UsernameTaken,
    #[error("phone number already registered")]
    PhoneTaken,
    /// Another account has this UUID.
    #[error("uuid already registered")]
    UuidTaken,
    /// Another account has this service token.
    #[error("service token already taken")]
    ServiceTokenTaken,
    #[error("wrong account or password")]
    BadCredentials,
    #[error("unknown, expired or revoked token")]
    InvalidToken,
    /// The account is banned or deleted: it may not log in or resume.
    #[error("account disabled")]
    AccountDisabled,
    /// The server takes no registrations.
    #[error("registration is closed")]
    RegistrationClosed,
    /// Registration needs an invitation code, and this one is missing, unknown, used or
    /// expired.
    #[error("invalid invitation code")]
    InvalidInvite,
    #[error("no account {0}")]
    NoSuchAccount(Ocid),
    #[error("no chat {0}")]
    NoSuchChat(ChatId),
    /// The id names a chat that is not a group where a group is required.
    #[error("no group {0}")]
    NoSuchGroup(ChatId),
    #[error("not a member of chat {0}")]
    NotAMember(ChatId),
    /// The account a group operation names (not the caller) is not a member.
    #[error("{ocid} is not a member of chat {chat}")]
    NoSuchMember { chat: ChatId, ocid: Ocid },
    /// No friend request from this account waits for an answer.
    #[error("no friend request from {0}")]
    NoSuchRequest(Ocid),
    #[error("not friends with {0}")]
    NotFriends(Ocid),
    /// The operation needs a role in the group the caller does not have (`Owner`, too, for an
    /// admin acting on another admin or on the owner).
    #[error("only the group's {need:?} may do this")]
    Forbidden { chat: ChatId, need: Role },
    #[error("already a member of chat {0}")]
    AlreadyMember(ChatId),
    #[error("no request from {ocid} to join chat {chat}")]
    NoSuchJoinRequest { chat: ChatId, ocid: Ocid },
    #[error("no invitation to chat {0}")]
    NoSuchInvitation(ChatId),
    /// The owner leaves a group only after handing it over (or disbanding it).
    #[error("the owner cannot leave chat {0}")]
    OwnerCannotLeave(ChatId),
    /// The caller blocks this account (unblock it first).
    #[error("you block account {0}")]
    Blocking(Ocid),
    /// This account does not accept messages from the caller (it blocks the caller).
    #[error("account {0} does not accept messages from you")]
    NotAccepted(Ocid),
    /// Too many wrong security answers: answers are refused for `retry_after_s` seconds.
    #[error("too many wrong answers; try again in {retry_after_s} s")]
    ResetLocked { retry_after_s: u64 },
    /// Too many failed attempts at a password, token or answer by this account or from this
    /// address: attempts are refused for `retry_after_s` seconds (the wait grows with each
    /// further failure).
    #[error("too many failed attempts; try again in {retry_after_s} s")]
    TooManyAttempts { retry_after_s: u64 },
    /// The account reached one of its quotas (`what`): refused for `retry_after_s` seconds.
    #[error("too many {} in a while; try again in {retry_after_s} s", what.what())]
    LimitReached {
        what: crate::domain::quota::Limited,
        retry_after_s: u64,
    },
    /// The account already has as many connections on this node as it may (`max`).
    #[error("too many connections of this account (at most {max})")]
    TooManyConnections { max: usize },
    #[error("no security question is set")]
    NoSecurityQuestion,
    #[error("no such login")]
    NoSuchLogin,
    /// The client message id was used before for a message to another chat.
    #[error("client id reused for another chat")]
    DuplicateClientId,
    /// No file or upload with that id, or none the caller may read (the two are not told
    /// apart).
    #[error("no such file")]
    NoSuchFile,
    /// The file does not suit what it is sent as (`need` says what would).
    #[error("the file is not {need}")]
    WrongFileKind { need: &'static str },
    #[error("file over {max} bytes")]
    FileTooLarge { max: u64 },
    /// The account's files and uploads would exceed its quota.
    #[error("over the quota of {quota} bytes")]
    OverQuota { quota: u64 },
    #[error("internal failure")]
    Internal,
}

impl From<Invalid> for DomainError {
    fn from(i: Invalid) -> Self {
        Self::Invalid(i)
    }
}

/// Log an internal failure once, where it happened, and report it without detail.
pub(crate) fn internal(context: &str, e: &dyn std::fmt::Display) -> DomainError {
    tracing::error!(error = %e, "{context}");
    DomainError::Internal
}
