//! The storage contract of service tokens (the per-account secret of the service-code dialect)
//! and of the accounts' UUIDs by which that dialect names accounts. Each backend implements it
//! in a file of its own.

use super::{Account, NewAccount, Ocid, Result};
use async_trait::async_trait;

/// What a message list shows of its senders and a chat list of its members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRef {
    pub ocid: Ocid,
    pub uuid: String,
    pub nickname: String,
}

/// The rows of `server_keys`.
pub mod server_key {
    /// The key of service token hashes.
    pub const SERVICE_TOKENS: i64 = 1;
    /// The key that signs file links.
    pub const FILE_LINKS: i64 = 2;
}

#[async_trait]
pub trait Services: Send + Sync {
    /// A key of this installation (one of [`server_key`]): drawn once (the first caller's
    /// `candidate` is kept, whichever node it runs on) and the same for every node afterwards.
    async fn server_key(&self, id: i64, candidate: &str) -> Result<String>;
    /// Create an account with a service token (its keyed hash), in one transaction; with
    /// `invite` (a code's hash), the invitation is used up in it too.
    ///
    /// # Errors
    /// `Conflict(Uuid)` when another account has the UUID, `Conflict(ServiceToken)` when
    /// another account has the token, `NoSuchInvite` when the code is unknown, used or expired
    /// (nothing is created).
    async fn create_service_account(
        &self,
        new: NewAccount,
        token_hash: &str,
        invite: Option<&[u8]>,
    ) -> Result<Account>;
    /// Give an account a service token (its keyed hash), replacing the one it had.
    ///
    /// # Errors
    /// `Conflict(ServiceToken)` when another account has the token.
    async fn set_service_token(&self, ocid: Ocid, token_hash: &str, now: i64) -> Result<()>;
    /// The account (deleted or not) with this UUID.
    async fn account_by_uuid(&self, uuid: &str) -> Result<Option<Account>>;
    /// The account whose service token has this hash.
    async fn account_by_service_token(&self, token_hash: &str) -> Result<Option<Account>>;
    /// The hash of an account's service token, if it has one.
    async fn service_token_hash(&self, ocid: Ocid) -> Result<Option<String>>;
    /// The UUID and nickname of each of `ocids` that exists, in no particular order.
    async fn account_refs(&self, ocids: &[Ocid]) -> Result<Vec<AccountRef>>;
}
