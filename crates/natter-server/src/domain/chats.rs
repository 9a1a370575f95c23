//! Chats: the per-node cache of members, private chats made on first use, groups, and the
//! membership check every request that names a chat goes through.
//!
//! The cache is dropped for a chat whenever its members change (on this node at once; on the
//! others when the change's system message or `Notice::Forget` arrives from the bus), and no
//! entry is trusted for longer than [`CACHE_TTL`], so a change whose bus message was lost
//! still reaches every node within that time.

use super::error::internal;
use super::{CHAT_CACHE_MAX, Domain, DomainError, Invalid, To, now_ms};
use crate::event::ChatInfo;
use crate::store::{Chat, ChatKind, group_adds};
use natter_proto::{ChatId, Index, Ocid};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest group name, in characters.
pub(super) const MAX_GROUP_NAME: usize = 128;

/// Longest a cached chat is used before it is read again from the store.
pub const CACHE_TTL: Duration = Duration::from_secs(60);

impl Domain {
    /// The cacheable view of a stored chat (for a private chat, whether a block stands between
    /// its members).
    async fn info(&self, c: Chat) -> Result<ChatInfo, DomainError> {
        let blocked = match (c.kind, c.members.as_slice()) {
            (ChatKind::Private, [a, b]) => {
                let blocks = |x: Ocid, y: Ocid| self.store.blocks(x, y);
                let (ab, ba) = tokio::try_join!(blocks(*a, *b), blocks(*b, *a))
                    .map_err(|e| internal("block lookup failed", &e))?;
                ab || ba
            }
            _ => false,
        };
        let friends = match (c.kind, c.members.as_slice()) {
            (ChatKind::Private, [a, b]) if self.quotas.stranger_messages.enabled() => self
                .store
                .friends(*a)
                .await
                .map_err(|e| internal("friend lookup failed", &e))?
                .iter()
                .any(|f| f.ocid == *b),
            _ => true,
        };
        Ok(ChatInfo {
            id: c.id,
            kind: c.kind,
            members: c.members,
            blocked,
            friends,
            loaded: Instant::now(),
        })
    }

    /// Drop what this node caches of a chat, and of the private chat of a pair.
    pub(super) fn forget_cached(&self, chat: Option<ChatId>, pair: Option<(Ocid, Ocid)>) {
        if let Some(id) = chat {
            self.chats
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
        }
        if let Some((a, b)) = pair {
            let removed = self
                .pairs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&(a.min(b), a.max(b)));
            if let Some(info) = removed {
                self.chats
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&info.id);
            }
        }
    }

    /// Drop a chat (or pair) from the cache here and on every other node.
    pub(super) fn changed(&self, chat: Option<ChatId>, pair: Option<(Ocid, Ocid)>) {
        self.forget_cached(chat, pair);
        self.signal(
            crate::event::Audience::Accounts(Vec::new()),
            None,
            crate::event::Notice::Forget { chat, pair },
        );
    }

    /// [`Domain::changed`] for the private chat of `a` and `b` (a block between them changed
    /// what it allows). It is named by its id too: a node may hold it by id alone, from a
    /// delivery, and would go on using what it holds.
    pub(super) async fn changed_pair(&self, a: Ocid, b: Ocid) {
        // On a failed lookup (logged) the pair alone is forgotten.
        let chat = self
            .store
            .find_private_chat(a, b)
            .await
            .map_err(|e| internal("private chat lookup failed", &e))
            .ok()
            .flatten();
        self.changed(chat, Some((a, b)));
    }

    fn cache(&self, info: &Arc<ChatInfo>) {
        let mut chats = self.chats.lock().unwrap_or_else(|p| p.into_inner());
        if chats.len() >= CHAT_CACHE_MAX {
            chats.clear();
        }
        chats.insert(info.id, info.clone());
    }

    /// A chat's members, from the cache or the store.
    ///
    /// # Errors
    /// `NoSuchChat`; `Internal`.
    pub async fn chat(&self, id: ChatId) -> Result<Arc<ChatInfo>, DomainError> {
        if let Some(c) = self
            .chats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            && c.loaded.elapsed() < CACHE_TTL
        {
            return Ok(c.clone());
        }
        let chat = self
            .store
            .chat(id)
            .await
            .map_err(|e| internal("chat lookup failed", &e))?
            .ok_or(DomainError::NoSuchChat(id))?;
        // Boxed: a cache miss is rare, and its future would enlarge every send (and so every
        // connection's task).
        let info = Arc::new(Box::pin(self.info(chat)).await?);
        self.cache(&info);
        Ok(info)
    }

    /// The private chat of `me` and `peer`; created if `create`, else `None` when absent.
    async fn private_chat(
        &self,
        me: Ocid,
        peer: Ocid,
        create: bool,
    ) -> Result<Option<Arc<ChatInfo>>, DomainError> {
        if me == peer {
            return Err(Invalid::PrivateChatWithSelf.into());
        }
        let key = (me.min(peer), me.max(peer));
        let cached = self
            .pairs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned();
        let info = match cached {
            Some(c) if c.loaded.elapsed() < CACHE_TTL => return Ok(Some(c)),
            // Known to exist: read again (members never change, a block may have).
            Some(c) => self.chat(c.id).await?,
            None if create => {
                self.live_account(peer).await?;
                let chat = self
                    .store
                    .private_chat(me, peer, now_ms())
                    .await
                    .map_err(|e| internal("private chat insert failed", &e))?;
                let info = Arc::new(Box::pin(self.info(chat)).await?);
                self.cache(&info);
                info
            }
            None => {
                let id = self
                    .store
                    .find_private_chat(me, peer)
                    .await
                    .map_err(|e| internal("private chat lookup failed", &e))?;
                let Some(id) = id else { return Ok(None) };
                self.chat(id).await?
            }
        };
        let mut pairs = self.pairs.lock().unwrap_or_else(|p| p.into_inner());
        if pairs.len() >= CHAT_CACHE_MAX {
            pairs.clear();
        }
        pairs.insert(key, info.clone());
        Ok(Some(info))
    }

    /// Resolve a destination for `me`, checking membership; a private chat is made on first
    /// use only when `create`.
    pub(super) async fn resolve(
        &self,
        me: Ocid,
        to: To,
        create: bool,
    ) -> Result<Option<Arc<ChatInfo>>, DomainError> {
        match to {
            To::Account(peer) => self.private_chat(me, peer, create).await,
            To::Chat(id) | To::Group(id) => {
                let chat = self.chat(id).await?;
                if matches!(to, To::Group(_)) && chat.kind != ChatKind::Group {
                    return Err(DomainError::NoSuchGroup(id));
                }
                if !chat.is_member(me) {
                    return Err(DomainError::NotAMember(id));
                }
                Ok(Some(chat))
            }
        }
    }

    /// The chat ids of destinations `me` belongs to, each with its index; others are left out.
    pub async fn chat_ids(&self, me: Ocid, targets: Vec<(To, Index)>) -> Vec<(ChatId, Index)> {
        let mut out = Vec::with_capacity(targets.len());
        for (to, index) in targets {
            if let Ok(Some(chat)) = self.resolve(me, to, false).await {
                out.push((chat.id, index));
            }
        }
        out
    }

    /// Create a group owned by `owner` with `members` (the owner is added if absent).
    ///
    /// # Errors
    /// `NoSuchAccount` for an unknown member; `Invalid` past the size or name limit;
    /// `Internal`.
    pub async fn create_group(
        &self,
        owner: Ocid,
        members: &[Ocid],
        name: &str,
    ) -> Result<Arc<ChatInfo>, DomainError> {
        self.create_group_inviting(owner, members, name, None)
            .await
            .map(|(chat, _)| chat)
    }

    /// [`Domain::create_group`], also returning the listed accounts that were invited rather
    /// than added (their setting, [`GroupAdds`], does not let `owner` add them), ascending.
    /// They are told of the invitation now (except to `origin`) and find it at login.
    ///
    /// # Errors
    /// As [`Domain::create_group`], and `LimitReached` past the quotas of groups created or
    /// members added.
    pub async fn create_group_inviting(
        &self,
        owner: Ocid,
        members: &[Ocid],
        name: &str,
        origin: Option<crate::event::Origin>,
    ) -> Result<(Arc<ChatInfo>, Vec<Ocid>), DomainError> {
        let mut all: Vec<Ocid> = members.to_vec();
        all.push(owner);
        all.sort_unstable();
        all.dedup();
        let max = self.limits.max_group_members;
        if all.len() > max {
            return Err(Invalid::GroupSize { max }.into());
        }
        if name.chars().count() > MAX_GROUP_NAME {
            return Err(Invalid::GroupName {
                max: MAX_GROUP_NAME,
            }
            .into());
        }
        for m in &all {
            if *m != owner {
                self.live_account(*m).await?;
            }
        }
        self.spend(&self.quotas.groups, owner, 1)?;
        // An account that blocks the owner is not put in its group (and the owner is not told,
        // as an invitation it would not see).
        let mut kept = Vec::with_capacity(all.len());
        for m in all {
            if m == owner || !self.blocks(m, owner).await? {
                kept.push(m);
            }
        }
        // Nobody is put into a group without consent: an account is added only when its
        // setting lets the owner add it, and invited otherwise.
        let mut friends: Option<Vec<Ocid>> = None;
        let (mut all, mut invited) = (Vec::with_capacity(kept.len()), Vec::new());
        for m in kept {
            if m == owner || self.may_add(owner, m, &mut friends).await? {
                all.push(m);
            } else {
                invited.push(m);
            }
        }
        // Those who let the owner add them agreed to it; the others are invited, and the
        // invitations are what the quota bounds (as with invitations into an existing group).
        self.spend(
            &self.quotas.members,
            owner,
            u32::try_from(invited.len()).unwrap_or(u32::MAX),
        )?;
        let now = now_ms();
        let chat = self
            .store
            .create_group(owner, name, &all, now)
            .await
            .map_err(|e| internal("group insert failed", &e))?;
        let id = chat.id;
        tracing::info!(chat = %id, owner = %owner, members = all.len(), invited = invited.len(), "group created");
        let info = Arc::new(self.info(chat).await?);
        self.cache(&info);
        for m in &invited {
            self.store
                .invite(id, *m, owner, now)
                .await
                .map_err(|e| internal("invitation insert failed", &e))?;
            self.signal(
                crate::event::Audience::Accounts(vec![*m]),
                origin,
                crate::event::Notice::Invitation {
                    chat: id,
                    by: owner,
                },
            );
        }
        Ok((info, invited))
    }

    /// Whether `owner` may put `m` into a group without asking, by `m`'s setting (friends
    /// only unless set); `friends` caches the owner's friends once read.
    async fn may_add(
        &self,
        owner: Ocid,
        m: Ocid,
        friends: &mut Option<Vec<Ocid>>,
    ) -> Result<bool, DomainError> {
        let setting = self
            .store
            .group_adds(m)
            .await
            .map_err(|e| internal("setting read failed", &e))?;
        match GroupAdds::from_stored(setting, self.limits.group_adds) {
            GroupAdds::Everyone => Ok(true),
            GroupAdds::Nobody => Ok(false),
            GroupAdds::Friends => {
                if friends.is_none() {
                    let list = self.friend_ids(owner).await?;
                    *friends = Some(list);
                }
                Ok(friends.as_ref().is_some_and(|f| f.contains(&m)))
            }
        }
    }

    /// Who may put `me` into a group without asking.
    ///
    /// # Errors
    /// `Internal`.
    pub async fn group_adds(&self, me: Ocid) -> Result<GroupAdds, DomainError> {
        self.store
            .group_adds(me)
            .await
            .map(|v| GroupAdds::from_stored(v, self.limits.group_adds))
            .map_err(|e| internal("setting read failed", &e))
    }

    /// Set who may put `me` into a group without asking.
    ///
    /// # Errors
    /// `Internal`.
    pub async fn set_group_adds(&self, me: Ocid, to: GroupAdds) -> Result<(), DomainError> {
        self.store
            .set_group_adds(me, to.stored())
            .await
            .map_err(|e| internal("setting write failed", &e))
    }
}

/// Who may put an account into a group without asking it; the others' new groups invite it
/// (it accepts or declines the invitation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupAdds {
    Everyone,
    /// Its friends (the default unless the operator chose another for accounts that have not
    /// chosen).
    #[default]
    Friends,
    Nobody,
}

impl std::str::FromStr for GroupAdds {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::named(s).ok_or_else(|| {
            format!("unknown group-adds setting `{s}` (expected everyone, friends or nobody)")
        })
    }
}

impl GroupAdds {
    /// The stored setting, or `default` for an account that never set it.
    fn from_stored(v: Option<u8>, default: Self) -> Self {
        match v {
            Some(group_adds::EVERYONE) => Self::Everyone,
            Some(group_adds::FRIENDS) => Self::Friends,
            Some(group_adds::NOBODY) => Self::Nobody,
            _ => default,
        }
    }

    fn stored(self) -> u8 {
        match self {
            Self::Everyone => group_adds::EVERYONE,
            Self::Friends => group_adds::FRIENDS,
            Self::Nobody => group_adds::NOBODY,
        }
    }

    /// The setting's name on the wire: `everyone`, `friends` or `nobody`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Everyone => "everyone",
            Self::Friends => "friends",
            Self::Nobody => "nobody",
        }
    }

    /// The setting named `name`.
    pub fn named(name: &str) -> Option<Self> {
        match name {
            "everyone" => Some(Self::Everyone),
            "friends" => Some(Self::Friends),
            "nobody" => Some(Self::Nobody),
            _ => None,
        }
    }
}
