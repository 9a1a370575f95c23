//! What an account owns besides its chats: its login identities (email, username, phone) and
//! their rules, its profile, search, its password, security question and logins, the private
//! remarks it gives friends, the accounts it blocks, and its deletion.

use super::error::internal;
use super::guard::Subject;
use super::{Domain, DomainError, Invalid, MAX_AVATAR, Secret, TextField, auth, now_ms};
use crate::event::{Audience, FriendChange, Notice, Origin};
use crate::store::{
    Account, Device, Identity, ProfileEdit, Revoke, Role, SearchBy, StoreError, Unique,
};
use natter_proto::Ocid;
use std::net::IpAddr;
use std::time::Duration;

/// Longest email address, in bytes.
pub const MAX_EMAIL: usize = 254;
/// Longest username, in characters.
pub const MAX_USERNAME: usize = 32;
/// Longest nickname, in characters.
pub const MAX_NICKNAME: usize = 64;
pub const MAX_SIGNATURE: usize = 256;
pub const MAX_DESCRIPTION: usize = 2048;
pub const MAX_STATUS_TEXT: usize = 128;
pub const MAX_REMARK: usize = 64;
pub const MAX_QUESTION: usize = 256;
pub const MAX_ANSWER: usize = 256;
/// Longest search query, in characters.
pub const MAX_QUERY: usize = 64;
/// Most accounts one search returns.
pub const MAX_FOUND: u32 = 50;
/// Wrong security answers in a row before answers are refused for [`RESET_LOCK`].
pub const RESET_ATTEMPTS: u32 = 5;
pub const RESET_LOCK: Duration = Duration::from_secs(15 * 60);

/// An email address, trimmed and lowercased.
///
/// # Errors
/// `NotAnEmail` without an `@`; `Email` for an empty part, whitespace or more than
/// [`MAX_EMAIL`] bytes.
pub fn normal_email(email: &str) -> Result<String, Invalid> {
    let email = email.trim().to_lowercase();
    let Some((local, domain)) = email.split_once('@') else {
        return Err(Invalid::NotAnEmail);
    };
    if local.is_empty()
        || domain.is_empty()
        || email.len() > MAX_EMAIL
        || email.chars().any(char::is_whitespace)
    {
        return Err(Invalid::Email { max: MAX_EMAIL });
    }
    Ok(email)
}

/// A username, trimmed and lowercased: 3 to [`MAX_USERNAME`] characters of `a-z`, `0-9`, `_`
/// and `.`, starting with a letter (so it is never mistaken for an ocid).
///
/// # Errors
/// `Username` when it breaks a rule.
pub fn normal_username(name: &str) -> Result<String, Invalid> {
    let name = name.trim().to_lowercase();
    let ok = (3..=MAX_USERNAME).contains(&name.len()) && username_characters_ok(&name);
    if ok {
        Ok(name)
    } else {
        Err(Invalid::Username { max: MAX_USERNAME })
    }
}

/// A phone number with spaces, dashes, dots and parentheses dropped: an optional `+` and 6 to
/// 15 digits (the longest international number).
///
/// # Errors
/// `Phone` when it breaks a rule.
pub fn normal_phone(phone: &str) -> Result<String, Invalid> {
    let kept = phone_kept(phone);
    let digits = kept.strip_prefix('+').unwrap_or(&kept);
    if (6..=15).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit()) {
        Ok(kept)
    } else {
        Err(Invalid::Phone)
    }
}

/// A phone number without the separators its rule drops.
fn phone_kept(phone: &str) -> String {
    phone
        .trim()
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect()
}

/// Whether a username's characters follow its rule (a letter first, then `a-z 0-9 _ .`),
/// whatever its length.
fn username_characters_ok(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.')
}

/// Whether a phone number its rule refuses is refused for its length only (its characters are
/// allowed), for dialects that answer a wrong length apart from a wrong format.
pub fn phone_wrong_length(phone: &str) -> bool {
    let kept = phone_kept(phone);
    let digits = kept.strip_prefix('+').unwrap_or(&kept);
    digits.chars().all(|c| c.is_ascii_digit()) && !(6..=15).contains(&digits.len())
}

/// Whether a username its rule refuses is refused for its length only, as
/// [`phone_wrong_length`].
pub fn username_wrong_length(name: &str) -> bool {
    let name = name.trim().to_lowercase();
    !(3..=MAX_USERNAME).contains(&name.len()) && (name.is_empty() || username_characters_ok(&name))
}

/// An identity in its stored form.
///
/// # Errors
/// As the rule for its kind.
pub fn normal_identity(id: &Identity) -> Result<Identity, Invalid> {
    Ok(match id {
        Identity::Email(e) => Identity::Email(normal_email(e)?),
        Identity::Username(u) => Identity::Username(normal_username(u)?),
        Identity::Phone(p) => Identity::Phone(normal_phone(p)?),
    })
}

/// A new password: 1 to [`super::MAX_PASSWORD`] bytes.
fn check_password(password: &str) -> Result<(), Invalid> {
    if password.is_empty() || password.len() > super::MAX_PASSWORD {
        return Err(Invalid::Password {
            max: super::MAX_PASSWORD,
        });
    }
    Ok(())
}

/// A security answer as it is hashed: trimmed, lowercased, inner whitespace collapsed, so that
/// "New  York" and "new york" are the same answer.
fn normal_answer(answer: &str) -> Result<String, Invalid> {
    let answer = answer
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    if answer.is_empty() || answer.chars().count() > MAX_ANSWER {
        return Err(Invalid::Answer { max: MAX_ANSWER });
    }
    Ok(answer)
}

pub(super) fn taken(u: Unique) -> DomainError {
    match u {
        Unique::Email => DomainError::EmailTaken,
        Unique::Username => DomainError::UsernameTaken,
        Unique::Phone => DomainError::PhoneTaken,
        Unique::Uuid => internal("account uuid collision", &"uuid"),
        Unique::ServiceToken => DomainError::ServiceTokenTaken,
    }
}

fn check_len(text: &str, field: TextField, max: usize) -> Result<(), DomainError> {
    if text.chars().count() > max {
        return Err(Invalid::TooLong { field, max }.into());
    }
    Ok(())
}

/// A profile edit checked and normalised.
fn checked_profile(edit: &ProfileEdit) -> Result<ProfileEdit, DomainError> {
    let mut edit = edit.clone();
    if let Some(n) = &mut edit.nickname {
        *n = n.trim().to_owned();
        if n.is_empty() || n.chars().count() > MAX_NICKNAME {
            return Err(Invalid::Nickname { max: MAX_NICKNAME }.into());
        }
    }
    for (text, field, max) in [
        (&edit.avatar, TextField::Avatar, MAX_AVATAR),
        (&edit.signature, TextField::Signature, MAX_SIGNATURE),
        (&edit.description, TextField::Description, MAX_DESCRIPTION),
        (&edit.status_text, TextField::StatusText, MAX_STATUS_TEXT),
    ] {
        if let Some(t) = text {
            check_len(t, field, max)?;
        }
    }
    if edit.sex.is_some_and(|s| s > 3) {
        return Err(Invalid::Sex.into());
    }
    if let Some(Some(u)) = &edit.username {
        edit.username = Some(Some(normal_username(u)?));
    }
    if let Some(Some(p)) = &edit.phone {
        edit.phone = Some(Some(normal_phone(p)?));
    }
    if edit == ProfileEdit::default() {
        return Err(Invalid::EmptyEdit.into());
    }
    Ok(edit)
}

/// An account as another account (or itself) looks it up.
#[derive(Debug, Clone)]
pub struct Profile {
    pub account: Account,
    /// The asking account's own profile (its email and phone may be shown).
    pub own: bool,
    /// The asking account's remark for this friend, if they are friends.
    pub remark: Option<String>,
}

/// One login (session) of an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginInfo {
    /// Names the login without revealing its token: the first 12 bytes of the token's hash,
    /// base64url.
    pub id: String,
    pub created_at: i64,
    pub expires_at: i64,
    /// The login the asking connection uses.
    pub current: bool,
}

/// The id that names a login (a device) without revealing its token.
pub fn login_id(token_hash: &[u8]) -> String {
    auth::base64url(&token_hash[..12.min(token_hash.len())])
}

impl Domain {
    /// Change `me`'s profile; usernames and phones follow their rules and stay unique.
    ///
    /// # Errors
    /// `Invalid`, `UsernameTaken`, `PhoneTaken`, `NoSuchAccount`, `Internal`.
    pub async fn update_profile(
        &self,
        me: Ocid,
        edit: &ProfileEdit,
    ) -> Result<Account, DomainError> {
        let edit = checked_profile(edit)?;
        if let Some(avatar) = &edit.avatar {
            self.check_avatar(me, avatar).await?;
        }
        match self.store.update_profile(me, &edit, now_ms()).await {
            Ok(a) => Ok(a),
            Err(StoreError::Conflict(u)) => Err(taken(u)),
            Err(e) => Err(internal("profile update failed", &e)),
        }
    }

    /// `ocid`'s profile as `me` sees it.
    ///
    /// # Errors
    /// `NoSuchAccount`, `Internal`.
    pub async fn profile(&self, me: Ocid, ocid: Ocid) -> Result<Profile, DomainError> {
        let account = self.account(ocid).await?;
        let remark = if me == ocid {
            None
        } else {
            self.store
                .friends(me)
                .await
                .map_err(|e| internal("friend list read failed", &e))?
                .into_iter()
                .find(|f| f.ocid == ocid)
                .map(|f| f.remark)
        };
        Ok(Profile {
            account,
            own: me == ocid,
            remark,
        })
    }

    /// Accounts matching `by`, at most `limit` (capped at [`MAX_FOUND`]) with an ocid above
    /// `after`, ascending, and whether more match beyond them. Deleted accounts are never
    /// found.
    ///
    /// # Errors
    /// `Invalid` (a malformed identity, an empty or long prefix), `Internal`.
    pub async fn search(
        &self,
        by: &SearchBy,
        after: Ocid,
        limit: u32,
    ) -> Result<(Vec<Account>, bool), DomainError> {
        let by = match by {
            SearchBy::Ocid(o) => SearchBy::Ocid(*o),
            SearchBy::Identity(id) => SearchBy::Identity(normal_identity(id)?),
            SearchBy::NicknamePrefix(p) => {
                let p = p.trim();
                if p.is_empty() || p.chars().count() > MAX_QUERY {
                    return Err(Invalid::Query { max: MAX_QUERY }.into());
                }
                SearchBy::NicknamePrefix(p.to_owned())
            }
        };
        let limit = limit.clamp(1, MAX_FOUND);
        // One more than asked says whether there is more.
        let mut found = self
            .store
            .search_accounts(&by, after, limit + 1)
            .await
            .map_err(|e| internal("account search failed", &e))?;
        let more = found.len() > limit as usize;
        found.truncate(limit as usize);
        Ok((found, more))
    }

    /// Check `me`'s password (for changes that need it again).
    /// Check the password of the logged-in `me` (before a change it guards); failures count
    /// against the account as failed logins do.
    pub(super) async fn check_password(&self, me: Ocid, password: &str) -> Result<(), DomainError> {
        let account = self.account(me).await?;
        let attempt = self.attempt(Secret::Password, Some(Subject::account(me)), None)?;
        let ok = self
            .hasher
            .verify(password.to_owned(), account.password_hash)
            .await
            .map_err(|e| internal("password check failed", &e))?;
        if ok {
            attempt.succeeded();
            Ok(())
        } else {
            Err(DomainError::BadCredentials)
        }
    }

    async fn hash_password(&self, password: &str) -> Result<String, DomainError> {
        check_password(password)?;
        self.hasher
            .hash(password.to_owned())
            .await
            .map_err(|e| internal("password hashing failed", &e))
    }

    /// Change `me`'s password. Every other login of the account ends unless `keep_others`;
    /// returns how many ended (their connections are closed).
    ///
    /// # Errors
    /// `BadCredentials` (wrong old password), `Invalid`, `Internal`.
    pub async fn change_password(
        &self,
        me: Ocid,
        device: &Device,
        old: &str,
        new: &str,
        keep_others: bool,
    ) -> Result<u64, DomainError> {
        self.check_password(me, old).await?;
        let hash = self.hash_password(new).await?;
        let revoke = if keep_others {
            Revoke::None
        } else {
            Revoke::AllBut(&device.0)
        };
        let ended = self
            .store
            .set_password(me, &hash, revoke)
            .await
            .map_err(|e| internal("password update failed", &e))?;
        tracing::info!(ocid = %me, ended, "password changed");
        if ended > 0 {
            self.end_logins(me);
        }
        Ok(ended)
    }

    /// Set the question (and its answer, stored only as a hash) that resets `me`'s password.
    ///
    /// # Errors
    /// `BadCredentials` (wrong password), `Invalid`, `Internal`.
    pub async fn set_security(
        &self,
        me: Ocid,
        password: &str,
        question: &str,
        answer: &str,
    ) -> Result<(), DomainError> {
        let question = question.trim();
        if question.is_empty() || question.chars().count() > MAX_QUESTION {
            return Err(Invalid::Question { max: MAX_QUESTION }.into());
        }
        normal_answer(answer)?;
        self.check_password(me, password).await?;
        self.set_security_answer(me, question, answer).await
    }

    /// Set `me`'s security question and answer on the strength of the login alone, for a
    /// dialect whose profile edit carries them under a session token and no password (seed
    /// 004's `update_profile`, and its registration).
    ///
    /// # Errors
    /// `Invalid`, `Internal`.
    pub async fn set_security_answer(
        &self,
        me: Ocid,
        question: &str,
        answer: &str,
    ) -> Result<(), DomainError> {
        let question = question.trim();
        if question.is_empty() || question.chars().count() > MAX_QUESTION {
            return Err(Invalid::Question { max: MAX_QUESTION }.into());
        }
        let answer = normal_answer(answer)?;
        let hash = self
            .hasher
            .hash(answer)
            .await
            .map_err(|e| internal("answer hashing failed", &e))?;
        self.store
            .set_security(me, question, &hash)
            .await
            .map_err(|e| internal("security question update failed", &e))
    }

    /// Register an account by `identity` with its profile and security question set in the
    /// same request (seed 004's `register`): everything is checked before the account is made,
    /// so a refused field leaves no account behind.
    ///
    /// # Errors
    /// As [`Domain::register`], [`Domain::update_profile`] and
    /// [`Domain::set_security_answer`].
    pub async fn register_with_profile(
        &self,
        identity: &Identity,
        password: &str,
        name: Option<&str>,
        profile: &ProfileEdit,
        security: Option<(&str, &str)>,
    ) -> Result<Account, DomainError> {
        let edit = *profile != ProfileEdit::default();
        if edit {
            checked_profile(profile)?;
        }
        if let Some((question, answer)) = security {
            let question = question.trim();
            if question.is_empty() || question.chars().count() > MAX_QUESTION {
                return Err(Invalid::Question { max: MAX_QUESTION }.into());
            }
            normal_answer(answer)?;
        }
        let mut account = self.register(identity, password, name, None).await?;
        if edit {
            account = self.update_profile(account.ocid, profile).await?;
        }
        if let Some((question, answer)) = security {
            self.set_security_answer(account.ocid, question, answer)
                .await?;
        }
        Ok(account)
    }

    /// The security question of the account with this identity. An unknown account and one
    /// without a question answer alike.
    ///
    /// # Errors
    /// `Invalid` (malformed identity), `NoSecurityQuestion`, `Internal`.
    pub async fn security_question(&self, who: &Identity) -> Result<String, DomainError> {
        let Some(account) = self.account_by(who).await? else {
            return Err(DomainError::NoSecurityQuestion);
        };
        account
            .security_question
            .ok_or(DomainError::NoSecurityQuestion)
    }

    /// The live account with this identity.
    async fn account_by(&self, who: &Identity) -> Result<Option<Account>, DomainError> {
        let who = normal_identity(who)?;
        self.store
            .account_by(&who)
            .await
            .map_err(|e| internal("account lookup failed", &e))
    }

    /// Reset a forgotten password with the security answer; every login of the account ends.
    /// After [`RESET_ATTEMPTS`] wrong answers in a row, answers are refused for [`RESET_LOCK`].
    ///
    /// # Errors
    /// `BadCredentials` (unknown account or wrong answer), `NoSecurityQuestion`,
    /// `ResetLocked`, `Invalid`, `Internal`.
    pub async fn reset_password(
        &self,
        who: &Identity,
        answer: &str,
        new_password: &str,
    ) -> Result<(), DomainError> {
        self.reset_password_from(who, answer, new_password, None)
            .await
    }

    /// [`Domain::reset_password`] asked by the client at `client` (when known): wrong answers
    /// are also limited per account and per address with a growing back-off (see `guard.rs`),
    /// beside the account's stored lock.
    ///
    /// # Errors
    /// As [`Domain::reset_password`], and `TooManyAttempts`.
    pub async fn reset_password_from(
        &self,
        who: &Identity,
        answer: &str,
        new_password: &str,
        client: Option<IpAddr>,
    ) -> Result<(), DomainError> {
        // A bad new password is refused before the answer counts as an attempt.
        check_password(new_password)?;
        let found = self.account_by(who).await?;
        let subject = match &found {
            Some(a) => Subject::account(a.ocid),
            None => Subject::name(&super::accounts::identity_name(who)),
        };
        let attempt = self.attempt(Secret::Answer, Some(subject), client)?;
        let answer = normal_answer(answer).map_err(|_| DomainError::BadCredentials)?;
        let account = found.ok_or(DomainError::BadCredentials)?;
        let ocid = account.ocid;
        let state = self
            .store
            .reset_state(ocid)
            .await
            .map_err(|e| internal("reset state read failed", &e))?;
        let Some((state, hash)) = state.and_then(|s| s.answer_hash.clone().map(|h| (s, h))) else {
            return Err(DomainError::NoSecurityQuestion);
        };
        let now = now_ms();
        if state.blocked_until > now {
            return Err(DomainError::ResetLocked {
                retry_after_s: ((state.blocked_until - now) as u64).div_ceil(1000),
            });
        }
        // Counted before it is checked, so that answers sent together cannot outrun the lock.
        let lock_until = now + RESET_LOCK.as_millis() as i64;
        let locked = DomainError::ResetLocked {
            retry_after_s: RESET_LOCK.as_secs(),
        };
        let Some(until) = self
            .store
            .count_reset_attempt(ocid, RESET_ATTEMPTS, now, lock_until)
            .await
            .map_err(|e| internal("reset state update failed", &e))?
        else {
            // Locked since the state was read, by answers that came at the same time.
            return Err(locked);
        };
        let right = self
            .hasher
            .verify(answer, hash)
            .await
            .map_err(|e| internal("answer check failed", &e))?;
        if !right {
            tracing::info!(ocid = %ocid, "wrong security answer");
            return Err(if until > now {
                locked
            } else {
                DomainError::BadCredentials
            });
        }
        let hash = self.hash_password(new_password).await?;
        self.store
            .set_password(ocid, &hash, Revoke::All)
            .await
            .map_err(|e| internal("password update failed", &e))?;
        self.store
            .set_reset_failures(ocid, 0, 0)
            .await
            .map_err(|e| internal("reset state update failed", &e))?;
        attempt.succeeded();
        tracing::info!(ocid = %ocid, "password reset by security answer");
        self.end_logins(ocid);
        Ok(())
    }

    /// `me`'s live logins, oldest first; `current` marks the asking one.
    ///
    /// # Errors
    /// `Internal`.
    pub async fn logins(&self, me: Ocid, current: &Device) -> Result<Vec<LoginInfo>, DomainError> {
        let sessions = self
            .store
            .sessions_of(me, now_ms())
            .await
            .map_err(|e| internal("session list read failed", &e))?;
        Ok(sessions
            .into_iter()
            .map(|s| LoginInfo {
                id: login_id(&s.token_hash),
                created_at: s.created_at,
                expires_at: s.expires_at,
                current: s.token_hash == current.0,
            })
            .collect())
    }

    /// End one of `me`'s logins by its id (see [`LoginInfo::id`]); its connections are closed.
    ///
    /// # Errors
    /// `NoSuchLogin`, `Internal`.
    pub async fn revoke_login(&self, me: Ocid, id: &str) -> Result<(), DomainError> {
        let sessions = self
            .store
            .sessions_of(me, now_ms())
            .await
            .map_err(|e| internal("session list read failed", &e))?;
        let session = sessions
            .into_iter()
            .find(|s| login_id(&s.token_hash) == id)
            .ok_or(DomainError::NoSuchLogin)?;
        self.store
            .revoke_session(&session.token_hash)
            .await
            .map_err(|e| internal("session revoke failed", &e))?;
        self.end_logins(me);
        Ok(())
    }

    /// Close the connections of `me`'s ended logins (revoked in the store already), on every
    /// node.
    fn end_logins(&self, me: Ocid) {
        self.signal(Audience::Accounts(vec![me]), None, Notice::LoggedOut);
    }

    /// Delete `me`'s account (its password confirms it). It leaves every group first: a group
    /// it owns goes to its first admin, else its first other member, and is disbanded when it
    /// has no other member. Its friendships, requests, blocks, identities and logins end; its
    /// ocid and the messages it sent stay, shown as from a deleted account.
    ///
    /// # Errors
    /// `BadCredentials`, `Internal`.
    pub async fn delete_account(
        &self,
        me: Ocid,
        password: &str,
        origin: Option<Origin>,
    ) -> Result<(), DomainError> {
        self.check_password(me, password).await?;
        self.erase_account(me, origin).await
    }

    /// Delete an account as [`Domain::delete_account`] does, without its password (the owner's
    /// request, once checked, or an operator's).
    ///
    /// # Errors
    /// `Internal`.
    pub async fn erase_account(&self, me: Ocid, origin: Option<Origin>) -> Result<(), DomainError> {
        for g in self.my_groups(me).await? {
            if g.role == Some(Role::Owner) {
                let group = self.group(me, g.id).await?.chat;
                let heir = group
                    .admins
                    .first()
                    .copied()
                    .or_else(|| group.members.iter().copied().find(|m| *m != me));
                match heir {
                    Some(heir) => self.transfer_group(me, g.id, heir).await?,
                    None => {
                        self.disband(me, g.id).await?;
                        continue;
                    }
                }
            }
            self.leave_group(me, g.id).await?;
        }
        let friends = self.friend_ids(me).await?;
        // Its private chats leave every node's cache: a private chat found anew is checked
        // for a live account, so messages to a deleted one are refused.
        let mut private = Vec::new();
        let chats = self
            .store
            .chat_states(me)
            .await
            .map_err(|e| internal("chat list read failed", &e))?;
        for state in chats {
            let chat = self.chat(state.chat).await.ok();
            if let Some(peer) = chat.and_then(|c| c.peer_of(me)) {
                private.push((state.chat, peer));
            }
        }
        self.store
            .delete_account(me, now_ms())
            .await
            .map_err(|e| internal("account delete failed", &e))?;
        for (chat, peer) in private {
            self.changed(Some(chat), Some((me, peer)));
        }
        for friend in friends {
            self.signal(
                Audience::Accounts(vec![friend]),
                origin,
                Notice::Friendship {
                    a: me,
                    b: friend,
                    change: FriendChange::Removed,
                    by: me,
                },
            );
        }
        self.end_logins(me);
        tracing::info!(ocid = %me, "account deleted");
        Ok(())
    }

    /// Give a friend a private name (empty removes it).
    ///
    /// # Errors
    /// `Invalid` (too long), `NotFriends`, `Internal`.
    pub async fn set_remark(
        &self,
        me: Ocid,
        friend: Ocid,
        remark: &str,
    ) -> Result<(), DomainError> {
        let remark = remark.trim();
        check_len(remark, TextField::Remark, MAX_REMARK)?;
        let set = self
            .store
            .set_remark(me, friend, remark)
            .await
            .map_err(|e| internal("remark update failed", &e))?;
        if set {
            Ok(())
        } else {
            Err(DomainError::NotFriends(friend))
        }
    }

    /// Whether `blocker` blocks `other`.
    pub(super) async fn blocks(&self, blocker: Ocid, other: Ocid) -> Result<bool, DomainError> {
        self.store
            .blocks(blocker, other)
            .await
            .map_err(|e| internal("block lookup failed", &e))
    }

    /// Block `other`: it can no longer message `me` or ask to be friends, and their friendship
    /// (and any request between them) ends.
    ///
    /// # Errors
    /// `Invalid` (own account), `NoSuchAccount`, `Internal`.
    pub async fn block(
        &self,
        me: Ocid,
        other: Ocid,
        origin: Option<Origin>,
    ) -> Result<(), DomainError> {
        if me == other {
            return Err(Invalid::OwnAccount.into());
        }
        self.live_account(other).await?;
        let were_friends = self.friend_ids(me).await?.contains(&other);
        self.store
            .block(me, other, now_ms())
            .await
            .map_err(|e| internal("block insert failed", &e))?;
        self.changed_pair(me, other).await;
        if were_friends {
            self.signal(
                Audience::Accounts(vec![me, other]),
                origin,
                Notice::Friendship {
                    a: me,
                    b: other,
                    change: FriendChange::Removed,
                    by: me,
                },
            );
        }
        Ok(())
    }

    /// Stop blocking `other` (nothing happens if `me` did not block it).
    ///
    /// # Errors
    /// `Internal`.
    pub async fn unblock(&self, me: Ocid, other: Ocid) -> Result<(), DomainError> {
        self.store
            .unblock(me, other)
            .await
            .map_err(|e| internal("block delete failed", &e))?;
        self.changed_pair(me, other).await;
        Ok(())
    }

    /// The accounts `me` blocks, ascending.
    ///
    /// # Errors
    /// `Internal`.
    pub async fn blocked(&self, me: Ocid) -> Result<Vec<Ocid>, DomainError> {
        self.store
            .blocked(me)
            .await
            .map_err(|e| internal("block list read failed", &e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_follow_their_rules() {
        assert_eq!(normal_username(" Alice_1 "), Ok("alice_1".into()));
        for bad in ["al", "1alice", "al ice", "alice!", &"a".repeat(33)] {
            assert!(normal_username(bad).is_err(), "{bad}");
        }
        assert_eq!(normal_phone("+1 (555) 010-9999"), Ok("+15550109999".into()));
        assert_eq!(normal_phone("18870742138"), Ok("18870742138".into()));
        for bad in ["12345", "+1234567890123456", "555-CALL", "++123456"] {
            assert!(normal_phone(bad).is_err(), "{bad}");
        }
        assert_eq!(normal_email(" A@B.example "), Ok("a@b.example".into()));
        assert_eq!(normal_email("ab.example"), Err(Invalid::NotAnEmail));
        assert_eq!(normal_answer("  New   York "), Ok("new york".into()));
        assert!(normal_answer("   ").is_err());
    }

    #[test]
    fn a_login_id_does_not_reveal_its_token_hash() {
        let hash = [7u8; 32];
        let id = login_id(&hash);
        assert_eq!(id.len(), 16);
        assert_eq!(id, login_id(&hash));
    }
}
