//! Why the domain refused a request: structured, so that each dialect maps it onto its own
//! codes and words (an OurChat error code, an HTTP status and cause, a pipe `*_error` reason).
//! Nothing here names a wire field.

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
    /// No friend request from this account waits for an answer.
    #[error("no friend request from {0}")]
    NoSuchRequest(Ocid),
    #[error("not friends with {0}")]
    NotFriends(Ocid),
    /// The client message id was used before for a message to another chat.
    #[error("client id reused for another chat")]
    DuplicateClientId,
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
