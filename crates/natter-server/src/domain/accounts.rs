//! Accounts and logins: registration by email, password login (which opens a session and so a
//! new device), token resume, logout, and looking an account up.

use super::error::internal;
use super::{Domain, DomainError, Invalid, LoginKey, auth, now_ms};
use crate::store::{Account, Device, NewAccount, StoreError, Unique};
use natter_proto::Ocid;

/// Longest email address, in bytes.
const MAX_EMAIL: usize = 254;
/// Longest password (whatever the client sends as one), in bytes.
const MAX_PASSWORD: usize = 1024;
/// Longest nickname, in characters.
const MAX_NICKNAME: usize = 64;

/// A login: the account, the session token that proves it, and the device that token is.
#[derive(Debug, Clone)]
pub struct Login {
    pub account: Account,
    pub token: String,
    pub device: Device,
}

impl Domain {
    /// Register an account by email. The nickname defaults to the email's local part.
    ///
    /// # Errors
    /// `Invalid` for a malformed email, password or name; `EmailTaken`; `Internal`.
    pub async fn register_email(
        &self,
        email: &str,
        password: &str,
        name: Option<&str>,
    ) -> Result<Account, DomainError> {
        let email = email.trim().to_lowercase();
        let Some((local, domain)) = email.split_once('@') else {
            return Err(Invalid::NotAnEmail.into());
        };
        if local.is_empty()
            || domain.is_empty()
            || email.len() > MAX_EMAIL
            || email.chars().any(char::is_whitespace)
        {
            return Err(Invalid::Email { max: MAX_EMAIL }.into());
        }
        if password.is_empty() || password.len() > MAX_PASSWORD {
            return Err(Invalid::Password { max: MAX_PASSWORD }.into());
        }
        let nickname = match name {
            Some(n) => {
                let n = n.trim();
                if n.is_empty() || n.chars().count() > MAX_NICKNAME {
                    return Err(Invalid::Nickname { max: MAX_NICKNAME }.into());
                }
                n.to_owned()
            }
            None => local.chars().take(MAX_NICKNAME).collect(),
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
                tracing::info!(ocid = %a.ocid, "account registered");
                Ok(a)
            }
            Err(StoreError::Conflict(Unique::Email)) => Err(DomainError::EmailTaken),
            Err(e) => Err(internal("account insert failed", &e)),
        }
    }

    /// Check a password login and open a session: a new device of the account.
    ///
    /// # Errors
    /// `BadCredentials` for an unknown account or a wrong password; `Internal`.
    pub async fn login(&self, key: LoginKey, password: &str) -> Result<Login, DomainError> {
        let found = match &key {
            LoginKey::Email(e) => self.store.account_by_email(&e.trim().to_lowercase()).await,
            LoginKey::Ocid(o) => self.store.account(*o).await,
        }
        .map_err(|e| internal("account lookup failed", &e))?;
        let Some(account) = found else {
            return Err(DomainError::BadCredentials);
        };
        let matches = self
            .hasher
            .verify(password.to_owned(), account.password_hash.clone())
            .await
            .map_err(|e| internal("password check failed", &e))?;
        if !matches {
            return Err(DomainError::BadCredentials);
        }
        let token = auth::new_token();
        let device = Device(auth::token_hash(&token));
        let now = now_ms();
        let expires = now + self.limits.session_ttl.as_millis() as i64;
        self.store
            .create_session(account.ocid, &device.0, now, expires)
            .await
            .map_err(|e| internal("session insert failed", &e))?;
        tracing::info!(ocid = %account.ocid, "logged in");
        Ok(Login {
            account,
            token,
            device,
        })
    }

    /// The login behind a live session token.
    ///
    /// # Errors
    /// `InvalidToken` when unknown, expired or revoked; `Internal`.
    pub async fn resume(&self, token: &str) -> Result<Login, DomainError> {
        let device = Device(auth::token_hash(token));
        let (row, account) = self
            .store
            .session(&device.0)
            .await
            .map_err(|e| internal("session lookup failed", &e))?
            .ok_or(DomainError::InvalidToken)?;
        if row.expires_at <= now_ms() {
            return Err(DomainError::InvalidToken);
        }
        Ok(Login {
            account,
            token: token.to_owned(),
            device,
        })
    }

    /// Revoke a session token (logout).
    ///
    /// # Errors
    /// `Internal`.
    pub async fn logout(&self, token: &str) -> Result<(), DomainError> {
        self.store
            .revoke_session(&auth::token_hash(token))
            .await
            .map_err(|e| internal("session revoke failed", &e))
    }

    /// # Errors
    /// `NoSuchAccount`; `Internal`.
    pub async fn account(&self, ocid: Ocid) -> Result<Account, DomainError> {
        self.store
            .account(ocid)
            .await
            .map_err(|e| internal("account lookup failed", &e))?
            .ok_or(DomainError::NoSuchAccount(ocid))
    }
}
