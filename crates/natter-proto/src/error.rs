//! The stable error-code registry shared by every dialect.
//!
//! A code never changes meaning once published; new failures get new codes. The numeric code
//! and the snake_case name travel together in error replies (see `docs/protocol/`).

use std::fmt;

/// Every failure a client can be told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The frame is not valid JSON, or not a JSON object.
    BadJson,
    /// The request's `code` is not one this dialect accepts from clients.
    UnknownCode,
    /// A required field is absent.
    MissingField,
    /// A field is present but has the wrong type or an unacceptable value.
    InvalidField,
    /// The frame is larger than the configured limit.
    FrameTooLarge,
    /// A binary frame arrived where only text frames are defined.
    BinaryFrame,
    /// The request needs a logged-in connection.
    NotLoggedIn,
    /// Wrong account or password.
    BadCredentials,
    /// The session token is unknown, expired or revoked.
    InvalidToken,
    /// The account is banned or deleted.
    AccountDisabled,
    /// The email address is already registered.
    EmailTaken,
    /// The server takes no registrations.
    RegistrationClosed,
    /// Registration needs an invitation code, and this one is missing, unknown, used or
    /// expired.
    InvalidInvite,
    /// No account has that ocid (or email).
    NoSuchAccount,
    /// No chat has that id.
    NoSuchChat,
    /// The account is not a member of that chat.
    NotAMember,
    /// The text is longer than the configured limit.
    MessageTooLong,
    /// No friend request from that account is waiting for an answer.
    NoSuchRequest,
    /// The two accounts are not friends.
    NotFriends,
    /// Too many requests; slow down.
    RateLimited,
    /// A `client_id` was reused for a different message.
    DuplicateClientId,
    /// The username is taken by another account.
    UsernameTaken,
    /// The phone number is registered to another account.
    PhoneTaken,
    /// The service token is another account's.
    ServiceTokenTaken,
    /// The account's role in the group does not allow this.
    Forbidden,
    /// The account is already a member of the group.
    AlreadyMember,
    /// No request from that account to join the group is waiting.
    NoSuchJoinRequest,
    /// No invitation to that group is waiting.
    NoSuchInvitation,
    /// The owner must hand the group over (or disband it) before leaving.
    OwnerCannotLeave,
    /// The caller blocks that account.
    Blocking,
    /// That account does not accept this from the caller.
    NotAccepted,
    /// No security question is set for the account.
    NoSecurityQuestion,
    /// No live login of the account has that id.
    NoSuchLogin,
    /// Too many failed attempts at a password, token or answer; wait before trying again.
    TooManyAttempts,
    /// The account has as many connections to this server as it may; close one first.
    TooManyConnections,
    /// The account did this (created groups, added members, sent friend requests, wrote to
    /// strangers, looked accounts up) as often as it may in a while; wait before doing it
    /// again.
    LimitReached,
    /// No file or upload with that id, or none the caller may read.
    NoSuchFile,
    /// The file does not suit what it is sent as (an image message needs a picture).
    WrongFileKind,
    /// The file is larger than the configured limit.
    FileTooLarge,
    /// The account's files would exceed its quota.
    OverQuota,
    /// The server failed; the request may be retried.
    Internal,
}

impl ErrorCode {
    /// Every code, for documentation and tests.
    pub const ALL: [ErrorCode; 41] = [
        Self::BadJson,
        Self::UnknownCode,
        Self::MissingField,
        Self::InvalidField,
        Self::FrameTooLarge,
        Self::BinaryFrame,
        Self::NotLoggedIn,
        Self::BadCredentials,
        Self::InvalidToken,
        Self::AccountDisabled,
        Self::EmailTaken,
        Self::RegistrationClosed,
        Self::InvalidInvite,
        Self::NoSuchAccount,
        Self::NoSuchChat,
        Self::NotAMember,
        Self::MessageTooLong,
        Self::RateLimited,
        Self::DuplicateClientId,
        Self::NoSuchRequest,
        Self::NotFriends,
        Self::UsernameTaken,
        Self::PhoneTaken,
        Self::ServiceTokenTaken,
        Self::Forbidden,
        Self::AlreadyMember,
        Self::NoSuchJoinRequest,
        Self::NoSuchInvitation,
        Self::OwnerCannotLeave,
        Self::Blocking,
        Self::NotAccepted,
        Self::NoSecurityQuestion,
        Self::NoSuchLogin,
        Self::TooManyAttempts,
        Self::TooManyConnections,
        Self::LimitReached,
        Self::NoSuchFile,
        Self::WrongFileKind,
        Self::FileTooLarge,
        Self::OverQuota,
        Self::Internal,
    ];

    /// The stable number sent on the wire.
    pub const fn number(self) -> u32 {
        match self {
            Self::BadJson => 1000,
            Self::UnknownCode => 1001,
            Self::MissingField => 1002,
            Self::InvalidField => 1003,
            Self::FrameTooLarge => 1004,
            Self::BinaryFrame => 1005,
            Self::NotLoggedIn => 2000,
            Self::BadCredentials => 2001,
            Self::InvalidToken => 2002,
            Self::AccountDisabled => 2003,
            Self::EmailTaken => 3000,
            Self::RegistrationClosed => 3003,
            Self::InvalidInvite => 3004,
            Self::NoSuchAccount => 4000,
            Self::NoSuchChat => 4001,
            Self::NotAMember => 4002,
            Self::MessageTooLong => 4003,
            Self::DuplicateClientId => 4004,
            Self::NoSuchRequest => 4005,
            Self::NotFriends => 4006,
            Self::RateLimited => 4290,
            Self::UsernameTaken => 3001,
            Self::PhoneTaken => 3002,
            Self::ServiceTokenTaken => 3005,
            Self::Forbidden => 4007,
            Self::AlreadyMember => 4008,
            Self::NoSuchJoinRequest => 4009,
            Self::NoSuchInvitation => 4010,
            Self::OwnerCannotLeave => 4011,
            Self::Blocking => 4012,
            Self::NotAccepted => 4013,
            Self::NoSecurityQuestion => 4014,
            Self::NoSuchLogin => 4015,
            Self::TooManyAttempts => 4291,
            Self::TooManyConnections => 4292,
            Self::LimitReached => 4293,
            Self::NoSuchFile => 4016,
            Self::WrongFileKind => 4017,
            Self::FileTooLarge => 4130,
            Self::OverQuota => 4131,
            Self::Internal => 5000,
        }
    }

    /// The stable snake_case name sent beside the number.
    pub const fn name(self) -> &'static str {
        match self {
            Self::BadJson => "bad_json",
            Self::UnknownCode => "unknown_code",
            Self::MissingField => "missing_field",
            Self::InvalidField => "invalid_field",
            Self::FrameTooLarge => "frame_too_large",
            Self::BinaryFrame => "binary_frame",
            Self::NotLoggedIn => "not_logged_in",
            Self::BadCredentials => "bad_credentials",
            Self::InvalidToken => "invalid_token",
            Self::AccountDisabled => "account_disabled",
            Self::EmailTaken => "email_taken",
            Self::RegistrationClosed => "registration_closed",
            Self::InvalidInvite => "invalid_invite",
            Self::NoSuchAccount => "no_such_account",
            Self::NoSuchChat => "no_such_chat",
            Self::NotAMember => "not_a_member",
            Self::MessageTooLong => "message_too_long",
            Self::DuplicateClientId => "duplicate_client_id",
            Self::NoSuchRequest => "no_such_request",
            Self::NotFriends => "not_friends",
            Self::RateLimited => "rate_limited",
            Self::UsernameTaken => "username_taken",
            Self::PhoneTaken => "phone_taken",
            Self::ServiceTokenTaken => "service_token_taken",
            Self::Forbidden => "forbidden",
            Self::AlreadyMember => "already_member",
            Self::NoSuchJoinRequest => "no_such_join_request",
            Self::NoSuchInvitation => "no_such_invitation",
            Self::OwnerCannotLeave => "owner_cannot_leave",
            Self::Blocking => "blocking",
            Self::NotAccepted => "not_accepted",
            Self::NoSecurityQuestion => "no_security_question",
            Self::NoSuchLogin => "no_such_login",
            Self::TooManyAttempts => "too_many_attempts",
            Self::TooManyConnections => "too_many_connections",
            Self::LimitReached => "limit_reached",
            Self::NoSuchFile => "no_such_file",
            Self::WrongFileKind => "wrong_file_kind",
            Self::FileTooLarge => "file_too_large",
            Self::OverQuota => "over_quota",
            Self::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A failure with its code and a human-readable sentence for the client.
///
/// The message is written for the client: it never carries internal details (SQL, paths).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    pub code: ErrorCode,
    pub message: String,
}

impl WireError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for WireError {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn numbers_and_names_are_unique() {
        let numbers: HashSet<u32> = ErrorCode::ALL.iter().map(|c| c.number()).collect();
        let names: HashSet<&str> = ErrorCode::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(numbers.len(), ErrorCode::ALL.len());
        assert_eq!(names.len(), ErrorCode::ALL.len());
    }
}
