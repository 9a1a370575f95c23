//! What an operator does to accounts (`natter admin`): create, ban, unban, delete, reset a
//! password, list and revoke logins, invitation codes, statistics, the list of groups.
//!
//! Every change to an account's standing (a ban, a deletion, a revoked login) is also posted as
//! an account event in the store: every running node polls those and has the account's live
//! connections check their login again, so the change takes effect on connections already
//! open, on every node, within a poll period (see `crate::app`). The command itself runs in
//! another process, with a bus that reaches nobody.

use super::error::internal;
use super::profiles::{LoginInfo, login_id};
use super::{Domain, DomainError, auth, now_ms};
use crate::store::{
    Account, ChatId, GroupSummary, Identity, Invite, Ocid, Revoke, Statistics, Store, status,
};
use std::sync::Arc;

/// An invitation code as an operator lists it: its id (the start of the code's hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteInfo {
    pub id: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub used_by: Option<Ocid>,
    pub used_at: Option<i64>,
}

impl InviteInfo {
    fn from_invite(i: &Invite) -> Self {
        Self {
            id: login_id(&i.code_hash),
            created_at: i.created_at,
            expires_at: i.expires_at,
            used_by: i.used_by,
            used_at: i.used_at,
        }
    }
}

impl Domain {
    /// The store, for what only an operator's tools do with it (backup, export).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Create an account as an operator (whatever the registration mode).
    ///
    /// # Errors
    /// As registration: `Invalid`, `EmailTaken`, `Internal`.
    pub async fn admin_create_account(
        &self,
        email: &str,
        password: &str,
        name: Option<&str>,
    ) -> Result<Account, DomainError> {
        self.create_account(&Identity::Email(email.to_owned()), password, name, None)
            .await
    }

    /// # Errors
    /// `Internal`.
    pub async fn admin_accounts(
        &self,
        after: Ocid,
        limit: u32,
    ) -> Result<Vec<Account>, DomainError> {
        self.store
            .accounts(after, limit)
            .await
            .map_err(|e| internal("account list failed", &e))
    }

    /// An account that exists and is not deleted.
    async fn kept_account(&self, ocid: Ocid) -> Result<Account, DomainError> {
        let account = self.account(ocid).await?;
        if account.deleted {
            return Err(DomainError::NoSuchAccount(ocid));
        }
        Ok(account)
    }

    /// Ban or unban an account. A ban ends its live connections on every node.
    ///
    /// # Errors
    /// `NoSuchAccount`; `Internal`.
    pub async fn set_banned(&self, ocid: Ocid, banned: bool) -> Result<(), DomainError> {
        self.kept_account(ocid).await?;
        let to = if banned {
            status::BANNED
        } else {
            status::ACTIVE
        };
        self.store
            .set_account_status(ocid, to)
            .await
            .map_err(|e| internal("account status update failed", &e))?;
        tracing::info!(ocid = %ocid, banned, "account standing changed by an operator");
        if banned {
            self.post_account_event(ocid).await?;
        }
        Ok(())
    }

    /// Delete an account as its owner can (see [`Domain::delete_account`]), and end its live
    /// connections on every node.
    ///
    /// # Errors
    /// `NoSuchAccount`; `Internal`.
    pub async fn admin_delete_account(&self, ocid: Ocid) -> Result<(), DomainError> {
        self.kept_account(ocid).await?;
        self.erase_account(ocid, None).await?;
        self.post_account_event(ocid).await
    }

    /// Set a new password (hashed with Argon2id). The account's logins stay; revoke them with
    /// [`Domain::admin_revoke_logins`] if the old password may be known to someone else.
    ///
    /// # Errors
    /// `Invalid` for an empty or over-long password; `NoSuchAccount`; `Internal`.
    pub async fn admin_reset_password(
        &self,
        ocid: Ocid,
        password: &str,
    ) -> Result<(), DomainError> {
        if password.is_empty() || password.len() > super::MAX_PASSWORD {
            return Err(super::Invalid::Password {
                max: super::MAX_PASSWORD,
            }
            .into());
        }
        self.kept_account(ocid).await?;
        let hash = self
            .hasher
            .hash(password.to_owned())
            .await
            .map_err(|e| internal("password hashing failed", &e))?;
        self.store
            .set_password(ocid, &hash, Revoke::None)
            .await
            .map_err(|e| internal("password update failed", &e))?;
        Ok(())
    }

    /// An account's live logins, oldest first.
    ///
    /// # Errors
    /// `NoSuchAccount`; `Internal`.
    pub async fn admin_logins(&self, ocid: Ocid) -> Result<Vec<LoginInfo>, DomainError> {
        self.account(ocid).await?;
        let sessions = self
            .store
            .sessions_of(ocid, now_ms())
            .await
            .map_err(|e| internal("session list failed", &e))?;
        Ok(sessions
            .iter()
            .map(|s| LoginInfo {
                id: login_id(&s.token_hash),
                created_at: s.created_at,
                expires_at: s.expires_at,
                current: false,
            })
            .collect())
    }

    /// Revoke an account's live logins whose id starts with `id` (every one when `None`), and
    /// end the connections logged in with them on every node. Returns how many were revoked.
    ///
    /// # Errors
    /// `NoSuchAccount`; `Internal`.
    pub async fn admin_revoke_logins(
        &self,
        ocid: Ocid,
        id: Option<&str>,
    ) -> Result<usize, DomainError> {
        self.account(ocid).await?;
        let sessions = self
            .store
            .sessions_of(ocid, now_ms())
            .await
            .map_err(|e| internal("session list failed", &e))?;
        let mut revoked = 0;
        for s in &sessions {
            if id.is_some_and(|prefix| !login_id(&s.token_hash).starts_with(prefix)) {
                continue;
            }
            self.store
                .revoke_session(&s.token_hash)
                .await
                .map_err(|e| internal("session revoke failed", &e))?;
            revoked += 1;
        }
        if revoked > 0 {
            tracing::info!(ocid = %ocid, revoked, "logins revoked by an operator");
            self.post_account_event(ocid).await?;
        }
        Ok(revoked)
    }

    /// A new single-use invitation code, valid for `ttl` (forever when `None`). Only its hash is
    /// stored: the code is shown once, here.
    ///
    /// # Errors
    /// `Internal`.
    pub async fn create_invite(
        &self,
        ttl: Option<std::time::Duration>,
    ) -> Result<String, DomainError> {
        let code = auth::new_token();
        let now = now_ms();
        let expires = ttl.map(|t| now + t.as_millis() as i64);
        self.store
            .create_invite(&auth::token_hash(&code), now, expires)
            .await
            .map_err(|e| internal("invitation insert failed", &e))?;
        Ok(code)
    }

    /// # Errors
    /// `Internal`.
    pub async fn invites(&self) -> Result<Vec<InviteInfo>, DomainError> {
        let all = self
            .store
            .invites()
            .await
            .map_err(|e| internal("invitation list failed", &e))?;
        Ok(all.iter().map(InviteInfo::from_invite).collect())
    }

    /// # Errors
    /// `Internal`.
    pub async fn statistics(&self) -> Result<Statistics, DomainError> {
        self.store
            .statistics(now_ms())
            .await
            .map_err(|e| internal("statistics failed", &e))
    }

    /// Up to `limit` live groups with an id above `after`, ascending.
    ///
    /// # Errors
    /// `Internal`.
    pub async fn admin_groups(
        &self,
        after: ChatId,
        limit: u32,
    ) -> Result<Vec<GroupSummary>, DomainError> {
        self.store
            .find_groups("", after, limit)
            .await
            .map_err(|e| internal("group list failed", &e))
    }

    async fn post_account_event(&self, ocid: Ocid) -> Result<(), DomainError> {
        self.store
            .post_account_event(ocid, now_ms())
            .await
            .map_err(|e| internal("account event insert failed", &e))
    }
}
