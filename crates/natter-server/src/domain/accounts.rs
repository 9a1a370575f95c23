//! Accounts and logins: registration by email, password login (which opens a session and so a
//! new device), token resume, logout, and looking an account up.

use super::error::internal;
use super::guard::Subject;
use super::profiles::{MAX_NICKNAME, normal_identity, taken};
use super::{Domain, DomainError, Invalid, LoginKey, Registration, Secret, auth, now_ms};
use crate::store::{Account, Device, Identity, NewAccount, StoreError, status};
use natter_proto::Ocid;
use std::net::IpAddr;

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
    /// As [`Domain::register`].
    pub async fn register_email(
        &self,
        email: &str,
        password: &str,
        name: Option<&str>,
        invite: Option<&str>,
    ) -> Result<Account, DomainError> {
        self.register(&Identity::Email(email.to_owned()), password, name, invite)
            .await
    }

    /// The invitation code a registration uses, as the server's registration mode asks:
    /// none when open, the given one (trimmed) when by invitation.
    ///
    /// # Errors
    /// `RegistrationClosed`; `InvalidInvite` when an invitation is needed and none is given.
    pub(super) fn registration_invite<'a>(
        &self,
        invite: Option<&'a str>,
    ) -> Result<Option<&'a str>, DomainError> {
        match self.limits.registration {
            Registration::Open => Ok(None),
            Registration::Closed => Err(DomainError::RegistrationClosed),
            Registration::Invite => invite
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(Some)
                .ok_or(DomainError::InvalidInvite),
        }
    }

    /// Register an account by an email, a username or a phone, as the server's registration
    /// mode allows (`invite`: the code is used up by this registration). The nickname defaults
    /// to the email's local part, the username, or "user" and the phone's last four digits.
    ///
    /// # Errors
    /// `RegistrationClosed`; `InvalidInvite`; `Invalid` for a malformed identity, password or
    /// name; `EmailTaken`, `UsernameTaken`, `PhoneTaken`; `Internal`.
    pub async fn register(
        &self,
        identity: &Identity,
        password: &str,
        name: Option<&str>,
        invite: Option<&str>,
    ) -> Result<Account, DomainError> {
        let invite = self.registration_invite(invite)?;
        let account = self
            .create_account(identity, password, name, invite)
            .await?;
        tracing::info!(ocid = %account.ocid, invited = invite.is_some(), "account registered");
        Ok(account)
    }

    /// Make an account (a registration, or an operator's): checks, hashing, insert; with
    /// `invite`, the invitation is used up in the same transaction.
    pub(super) async fn create_account(
        &self,
        identity: &Identity,
        password: &str,
        name: Option<&str>,
        invite: Option<&str>,
    ) -> Result<Account, DomainError> {
        let identity = normal_identity(identity)?;
        if password.is_empty() || password.len() > super::MAX_PASSWORD {
            return Err(Invalid::Password {
                max: super::MAX_PASSWORD,
            }
            .into());
        }
        let nickname = match name {
            Some(n) => {
                let n = n.trim();
                if n.is_empty() || n.chars().count() > MAX_NICKNAME {
                    return Err(Invalid::Nickname { max: MAX_NICKNAME }.into());
                }
                n.to_owned()
            }
            None => match &identity {
                Identity::Email(e) => e
                    .split('@')
                    .next()
                    .unwrap_or_default()
                    .chars()
                    .take(MAX_NICKNAME)
                    .collect(),
                Identity::Username(u) => u.clone(),
                Identity::Phone(p) => format!("user{}", &p[p.len().saturating_sub(4)..]),
            },
        };
        let password_hash = self
            .hasher
            .hash(password.to_owned())
            .await
            .map_err(|e| internal("password hashing failed", &e))?;
        let (mut email, mut phone, mut username) = (None, None, None);
        match identity {
            Identity::Email(e) => email = Some(e),
            Identity::Phone(p) => phone = Some(p),
            Identity::Username(u) => username = Some(u),
        }
        let new = NewAccount {
            uuid: uuid::Uuid::new_v4().to_string(),
            email,
            phone,
            username,
            nickname,
            password_hash,
            created_at: now_ms(),
        };
        let created = match invite {
            None => self.store.create_account(new).await,
            Some(code) => {
                self.store
                    .create_account_invited(new, &auth::token_hash(code), now_ms())
                    .await
            }
        };
        match created {
            Ok(a) => Ok(a),
            Err(StoreError::Conflict(u)) => Err(taken(u)),
            Err(StoreError::NoSuchInvite) => Err(DomainError::InvalidInvite),
            Err(e) => Err(internal("account insert failed", &e)),
        }
    }

    /// Check a password login and open a session: a new device of the account.
    ///
    /// # Errors
    /// As [`Domain::login_from`].
    pub async fn login(&self, key: LoginKey, password: &str) -> Result<Login, DomainError> {
        self.login_from(key, password, None).await
    }

    /// Check a password login from the client at `client` (when known) and open a session: a
    /// new device of the account. Failures are limited per account and per client address
    /// (see `guard.rs`); an unknown account costs the same time as a known one.
    ///
    /// # Errors
    /// `BadCredentials` for an unknown account or a wrong password; `TooManyAttempts`;
    /// `Internal`.
    pub async fn login_from(
        &self,
        key: LoginKey,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<Login, DomainError> {
        let logged = key_for_log(&key);
        let (found, name) = match key {
            LoginKey::Ocid(o) => (self.store.account(o).await, Subject::account(o)),
            LoginKey::Identity(id) => match normal_identity(&id) {
                Ok(id) => {
                    let name = Subject::name(&identity_name(&id));
                    (self.store.account_by(&id).await, name)
                }
                // No account has a malformed identity.
                Err(_) => (Ok(None), Subject::name(&identity_name(&id))),
            },
        };
        let found = found.map_err(|e| internal("account lookup failed", &e))?;
        let subject = found.as_ref().map_or(name, |a| Subject::account(a.ocid));
        let attempt = self.attempt(Secret::Password, Some(subject), client)?;
        // An unknown account is checked against no hash, which costs as much as a real one.
        let hash = found
            .as_ref()
            .map(|a| a.password_hash.clone())
            .unwrap_or_default();
        let matches = self
            .hasher
            .verify(password.to_owned(), hash)
            .await
            .map_err(|e| internal("password check failed", &e))?;
        let Some(account) = found else {
            tracing::debug!(key = %logged, reason = "no such account", "login refused");
            return Err(DomainError::BadCredentials);
        };
        if !matches {
            tracing::debug!(ocid = %account.ocid, reason = "wrong password", "login refused");
            return Err(DomainError::BadCredentials);
        }
        attempt.succeeded();
        // Told only to whoever knows the password.
        if account.status != status::ACTIVE {
            tracing::debug!(ocid = %account.ocid, reason = "account disabled", "login refused");
            return Err(DomainError::AccountDisabled);
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
    /// As [`Domain::resume_from`].
    pub async fn resume(&self, token: &str) -> Result<Login, DomainError> {
        self.resume_from(token, None).await
    }

    /// The login behind a live session token presented by the client at `client` (when
    /// known). Failures are limited per client address: a token names no account until it is
    /// right (and, 256 random bits, cannot be guessed; the limit stops scans).
    ///
    /// # Errors
    /// `InvalidToken` when unknown, expired or revoked; `AccountDisabled`;
    /// `TooManyAttempts`; `Internal`.
    pub async fn resume_from(
        &self,
        token: &str,
        client: Option<IpAddr>,
    ) -> Result<Login, DomainError> {
        let attempt = self.attempt(Secret::Token, None, client)?;
        let login = self.session_login(token).await;
        if !matches!(login, Err(DomainError::InvalidToken)) {
            attempt.succeeded();
        }
        login
    }

    async fn session_login(&self, token: &str) -> Result<Login, DomainError> {
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
        if account.status != status::ACTIVE {
            return Err(DomainError::AccountDisabled);
        }
        Ok(Login {
            account,
            token: token.to_owned(),
            device,
        })
    }

    /// Whether a live connection's login still stands: its session is unrevoked and unexpired
    /// and its account active (checked again when an operator bans, deletes or revokes).
    ///
    /// # Errors
    /// `InvalidToken`; `AccountDisabled`; `Internal`.
    pub async fn standing(&self, token: &str) -> Result<(), DomainError> {
        self.session_login(token).await.map(|_| ())
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

    /// An account that is not deleted (one that can be messaged, befriended or invited).
    ///
    /// # Errors
    /// `NoSuchAccount`; `Internal`.
    pub async fn live_account(&self, ocid: Ocid) -> Result<Account, DomainError> {
        let account = self.account(ocid).await?;
        if account.deleted {
            return Err(DomainError::NoSuchAccount(ocid));
        }
        Ok(account)
    }

    /// An account, deleted or not (a deleted one keeps only its ocid).
    ///
    /// # Errors
    /// `NoSuchAccount`; `Internal`.
    /// [`Domain::account`] asked for by `me`: another account's counts as a lookup.
    ///
    /// # Errors
    /// `LimitReached`, `NoSuchAccount`, `Internal`.
    pub async fn account_for(&self, me: Ocid, ocid: Ocid) -> Result<Account, DomainError> {
        if me != ocid {
            self.look_up(me)?;
        }
        self.account(ocid).await
    }

    pub async fn account(&self, ocid: Ocid) -> Result<Account, DomainError> {
        self.store
            .account(ocid)
            .await
            .map_err(|e| internal("account lookup failed", &e))?
            .ok_or(DomainError::NoSuchAccount(ocid))
    }
}

/// An identity as the guessing limits name an account that may not exist.
pub(super) fn identity_name(id: &Identity) -> String {
    match id {
        Identity::Email(e) => format!("email:{}", e.trim().to_lowercase()),
        Identity::Username(u) => format!("username:{}", u.trim().to_lowercase()),
        Identity::Phone(p) => format!("phone:{}", p.trim()),
    }
}

/// How a failed login names the account in the log: the ocid, the email's domain only (an
/// address is personal data; the domain is enough to spot a pattern), or only the kind of
/// identity (a username or a phone number is personal data too).
pub fn key_for_log(key: &LoginKey) -> String {
    match key {
        LoginKey::Ocid(o) => o.to_string(),
        LoginKey::Identity(Identity::Email(e)) => match e.rsplit_once('@') {
            Some((_, domain)) => format!("*@{}", domain.trim().to_lowercase()),
            None => "(not an email)".to_owned(),
        },
        LoginKey::Identity(Identity::Username(_)) => "(a username)".to_owned(),
        LoginKey::Identity(Identity::Phone(_)) => "(a phone number)".to_owned(),
    }
}
