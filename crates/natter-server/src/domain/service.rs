//! Service tokens and UUIDs: the identity of the service-code dialect, kept safe.
//!
//! An account registered there is named by a UUID its client chose and proves itself with a
//! token its client chose; later requests may present the token alone, so tokens are unique
//! and looked up by their hash. The hash is BLAKE2b-256 keyed with a server key (drawn once and
//! kept in the store, the same on every node), so a token table read on its own gives nothing
//! to guess against. A login by UUID and token compares the hashes in constant time; a lookup
//! by token alone goes through the unique index of the keyed hash, whose timing says nothing
//! about any token.

use super::auth::{hex, same, unhex};
use super::error::internal;
use super::{Domain, DomainError, Invalid, auth, now_ms};
use crate::event::ChatInfo;
use crate::store::{Account, AccountRef, NewAccount, StoreError, Unique, server_key, status};
use blake2::digest::consts::U32;
use blake2::digest::{KeyInit, Mac};
use natter_proto::Ocid;
use rand::RngExt;
use std::sync::Arc;

/// Shortest service token, in characters.
pub const MIN_SERVICE_TOKEN: usize = 8;
/// Longest service token, in characters.
pub const MAX_SERVICE_TOKEN: usize = 128;

type KeyedHash = blake2::Blake2bMac<U32>;

/// `token`'s stored form under `key`: the keyed BLAKE2b-256, in hex.
fn keyed_hash(key: &[u8; 32], token: &str) -> String {
    let mut mac = <KeyedHash as KeyInit>::new_from_slice(key).unwrap_or_else(|_| {
        // A 32-byte key is always accepted (BLAKE2b takes up to 64).
        unreachable!("a BLAKE2b key of 32 bytes")
    });
    mac.update(token.as_bytes());
    hex(&mac.finalize().into_bytes())
}

/// A UUID in its one stored spelling (lower-case, hyphenated), or `Invalid::Uuid`.
///
/// # Errors
/// `Invalid::Uuid`.
pub fn normal_uuid(uuid: &str) -> Result<String, DomainError> {
    uuid::Uuid::parse_str(uuid.trim())
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| Invalid::Uuid.into())
}

fn check_token(token: &str) -> Result<(), DomainError> {
    let n = token.chars().count();
    if !(MIN_SERVICE_TOKEN..=MAX_SERVICE_TOKEN).contains(&n) {
        return Err(Invalid::ServiceToken {
            min: MIN_SERVICE_TOKEN,
            max: MAX_SERVICE_TOKEN,
        }
        .into());
    }
    Ok(())
}

impl Domain {
    /// A key of this installation (see `store::server_key`), read or drawn by the first node
    /// to ask.
    pub(super) async fn installation_key(&self, id: i64) -> Result<[u8; 32], DomainError> {
        let candidate: [u8; 32] = rand::rng().random();
        let stored = self
            .store
            .server_key(id, &hex(&candidate))
            .await
            .map_err(|e| internal("installation key read failed", &e))?;
        unhex(&stored).ok_or_else(|| internal("installation key malformed", &"not 64 hex"))
    }

    /// The key of service token hashes: read (or drawn, by the first node to ask) once.
    async fn service_key(&self) -> Result<[u8; 32], DomainError> {
        self.service_key
            .get_or_try_init(|| self.installation_key(server_key::SERVICE_TOKENS))
            .await
            .copied()
    }

    async fn service_token_hash(&self, token: &str) -> Result<String, DomainError> {
        Ok(keyed_hash(&self.service_key().await?, token))
    }

    /// Register an account named by `uuid` (normalised) that proves itself with `token`, as
    /// the server's registration mode allows (`invite`: the code is used up by it). It has no
    /// password and no other identity; its nickname is `name`, or "user-" and the first eight
    /// digits of the UUID.
    ///
    /// # Errors
    /// `RegistrationClosed`, `InvalidInvite`, `Invalid` (UUID, token, name), `UuidTaken`,
    /// `ServiceTokenTaken`, `Internal`.
    pub async fn register_service(
        &self,
        uuid: &str,
        token: &str,
        name: Option<&str>,
        invite: Option<&str>,
    ) -> Result<Account, DomainError> {
        let invite = self.registration_invite(invite)?.map(auth::token_hash);
        let uuid = normal_uuid(uuid)?;
        check_token(token)?;
        let nickname = match name {
            Some(n) => {
                let n = n.trim();
                let max = super::profiles::MAX_NICKNAME;
                if n.is_empty() || n.chars().count() > max {
                    return Err(Invalid::Nickname { max }.into());
                }
                n.to_owned()
            }
            None => format!("user-{}", &uuid[..8]),
        };
        let hash = self.service_token_hash(token).await?;
        let new = NewAccount {
            uuid,
            email: None,
            phone: None,
            username: None,
            nickname,
            // No password: an Argon2 check against it always fails.
            password_hash: String::new(),
            created_at: now_ms(),
        };
        let created = self
            .store
            .create_service_account(new, &hash, invite.as_ref().map(|h| &h[..]))
            .await;
        match created {
            Ok(account) => {
                tracing::info!(ocid = %account.ocid, invited = invite.is_some(), "account registered by service token");
                Ok(account)
            }
            Err(StoreError::Conflict(Unique::Uuid)) => Err(DomainError::UuidTaken),
            Err(StoreError::Conflict(Unique::ServiceToken)) => Err(DomainError::ServiceTokenTaken),
            Err(StoreError::NoSuchInvite) => Err(DomainError::InvalidInvite),
            Err(e) => Err(internal("account insert failed", &e)),
        }
    }

    /// Give `me` (an account of any dialect, confirming with its password) the service token
    /// `token`, replacing the one it had; returns the account, whose UUID then logs in with it.
    ///
    /// # Errors
    /// `Invalid` (token), `BadCredentials` (wrong password), `ServiceTokenTaken`, `Internal`.
    pub async fn set_service_token(
        &self,
        me: Ocid,
        password: &str,
        token: &str,
    ) -> Result<Account, DomainError> {
        check_token(token)?;
        self.check_password(me, password).await?;
        let hash = self.service_token_hash(token).await?;
        match self.store.set_service_token(me, &hash, now_ms()).await {
            Ok(()) => {}
            Err(StoreError::Conflict(Unique::ServiceToken)) => {
                return Err(DomainError::ServiceTokenTaken);
            }
            Err(e) => return Err(internal("service token update failed", &e)),
        }
        tracing::info!(ocid = %me, "service token set");
        self.account(me).await
    }

    /// The account named by `uuid` if `token` is its service token.
    ///
    /// # Errors
    /// `BadCredentials` (no such account, no token, another token), `AccountDisabled`,
    /// `Internal`.
    pub async fn service_login(&self, uuid: &str, token: &str) -> Result<Account, DomainError> {
        let Ok(uuid) = normal_uuid(uuid) else {
            return Err(DomainError::BadCredentials);
        };
        let hash = self.service_token_hash(token).await?;
        let account = self
            .store
            .account_by_uuid(&uuid)
            .await
            .map_err(|e| internal("account lookup failed", &e))?
            .filter(|a| !a.deleted)
            .ok_or(DomainError::BadCredentials)?;
        let stored = self
            .store
            .service_token_hash(account.ocid)
            .await
            .map_err(|e| internal("service token lookup failed", &e))?;
        if !stored.is_some_and(|s| same(s.as_bytes(), hash.as_bytes())) {
            tracing::debug!(ocid = %account.ocid, "service login refused");
            return Err(DomainError::BadCredentials);
        }
        if account.status != status::ACTIVE {
            return Err(DomainError::AccountDisabled);
        }
        Ok(account)
    }

    /// The account whose service token `token` is (a request that presents the token alone).
    ///
    /// # Errors
    /// `InvalidToken` (no account has it), `AccountDisabled`, `Internal`.
    pub async fn service_account(&self, token: &str) -> Result<Account, DomainError> {
        let hash = self.service_token_hash(token).await?;
        let account = self
            .store
            .account_by_service_token(&hash)
            .await
            .map_err(|e| internal("service token lookup failed", &e))?
            .filter(|a| !a.deleted)
            .ok_or(DomainError::InvalidToken)?;
        if account.status != status::ACTIVE {
            return Err(DomainError::AccountDisabled);
        }
        Ok(account)
    }

    /// The live (not deleted) account with this UUID (any spelling), if any.
    ///
    /// # Errors
    /// `Invalid::Uuid`, `Internal`.
    pub async fn account_by_uuid(&self, uuid: &str) -> Result<Option<Account>, DomainError> {
        let uuid = normal_uuid(uuid)?;
        Ok(self
            .store
            .account_by_uuid(&uuid)
            .await
            .map_err(|e| internal("account lookup failed", &e))?
            .filter(|a| !a.deleted))
    }

    /// The UUID and nickname of each of `ocids` (what lists of senders and members show).
    ///
    /// # Errors
    /// `Internal`.
    pub async fn account_refs(&self, ocids: &[Ocid]) -> Result<Vec<AccountRef>, DomainError> {
        self.store
            .account_refs(ocids)
            .await
            .map_err(|e| internal("account read failed", &e))
    }

    /// The private chat of `me` and `peer`, made now if it does not exist (as a first message
    /// would make it).
    ///
    /// # Errors
    /// `Invalid` (own account), `NoSuchAccount`, `Internal`.
    pub async fn open_private_chat(
        &self,
        me: Ocid,
        peer: Ocid,
    ) -> Result<Arc<ChatInfo>, DomainError> {
        self.resolve(me, super::To::Account(peer), true)
            .await?
            .ok_or_else(|| internal("private chat missing after create", &"none"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_hashes_depend_on_the_key_and_round_trip_through_hex() {
        let (k1, k2) = ([1u8; 32], [2u8; 32]);
        assert_eq!(keyed_hash(&k1, "12345678"), keyed_hash(&k1, "12345678"));
        assert_ne!(keyed_hash(&k1, "12345678"), keyed_hash(&k2, "12345678"));
        assert_ne!(keyed_hash(&k1, "12345678"), keyed_hash(&k1, "12345679"));
        assert_eq!(keyed_hash(&k1, "x").len(), 64);
        assert_eq!(unhex(&hex(&k2)), Some(k2));
        assert_eq!(unhex("zz"), None);
        assert!(same(b"abc", b"abc") && !same(b"abc", b"abd") && !same(b"abc", b"ab"));
    }

    #[test]
    fn uuids_are_stored_in_one_spelling() {
        assert_eq!(
            normal_uuid(" 67E55044-10B1-426F-9247-BB680E5FE0C8 ")
                .ok()
                .as_deref(),
            Some("67e55044-10b1-426f-9247-bb680e5fe0c8")
        );
        assert!(normal_uuid("not-a-uuid").is_err());
    }
}
