//! Groups: joining (open, by approval, by invitation), leaving and removal, roles, ownership,
//! disbanding, a group's profile and finding groups.
//!
//! Every change to who is in a group, or to its name, is written into the group's history as a
//! system message (type 0, from the account that made the change), so every member sees it in
//! order, online or not and in any dialect. What an account must hear that is not in a history
//! it can read (the answer to its join request, its removal, the end of the group) is a notice,
//! kept for its next login when it has no connection.

use super::error::internal;
use super::{Domain, DomainError, Invalid, MAX_AVATAR, TextField, now_ms};
use crate::event::{Audience, ChatInfo, Notice, Origin};
use crate::store::{
    Category, Chat, ChatKind, GroupEdit, GroupSummary, Invitation, JoinMode, JoinRequest,
    NewMessage, Part, Role, kind,
};
use natter_proto::{ChatId, Ocid};
use serde_json::json;
use std::sync::Arc;

/// Longest group description, in characters.
pub const MAX_GROUP_DESCRIPTION: usize = 1024;
/// Longest note on a join request, in characters.
pub const MAX_JOIN_NOTE: usize = 256;
/// Longest group search, in characters.
pub const MAX_GROUP_QUERY: usize = 64;
/// Most groups one search returns.
pub const MAX_FOUND: u32 = 50;

/// What a request to join did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joined {
    /// The account is a member now.
    Member,
    /// The request waits for an admin's answer.
    Requested,
}

/// A group with the asking account's role in it.
#[derive(Debug, Clone)]
pub struct Group {
    pub chat: Chat,
    pub role: Option<Role>,
}

/// `ocid`'s role in a group, if a member.
pub fn role_of(chat: &Chat, ocid: Ocid) -> Option<Role> {
    if chat.owner == Some(ocid) {
        Some(Role::Owner)
    } else if chat.admins.binary_search(&ocid).is_ok() {
        Some(Role::Admin)
    } else if chat.members.binary_search(&ocid).is_ok() {
        Some(Role::Member)
    } else {
        None
    }
}

/// `me`'s role if it is at least `need`.
fn need(chat: &Chat, me: Ocid, need: Role) -> Result<Role, DomainError> {
    match role_of(chat, me) {
        None => Err(DomainError::NotAMember(chat.id)),
        Some(r) if r < need => Err(DomainError::Forbidden {
            chat: chat.id,
            need,
        }),
        Some(r) => Ok(r),
    }
}

fn check_len(text: &str, field: TextField, max: usize) -> Result<(), DomainError> {
    if text.chars().count() > max {
        return Err(Invalid::TooLong { field, max }.into());
    }
    Ok(())
}

/// A group edit checked and normalised (names trimmed).
fn checked_edit(edit: &GroupEdit) -> Result<GroupEdit, DomainError> {
    let mut edit = edit.clone();
    if let Some(name) = &mut edit.name {
        *name = name.trim().to_owned();
        let max = super::chats::MAX_GROUP_NAME;
        if name.is_empty() || name.chars().count() > max {
            return Err(Invalid::GroupName { max }.into());
        }
    }
    if let Some(d) = &edit.description {
        check_len(d, TextField::GroupDescription, MAX_GROUP_DESCRIPTION)?;
    }
    if let Some(a) = &edit.avatar {
        check_len(a, TextField::Avatar, MAX_AVATAR)?;
    }
    if edit == GroupEdit::default() {
        return Err(Invalid::EmptyEdit.into());
    }
    Ok(edit)
}

impl Domain {
    /// A group that exists and is not disbanded.
    async fn live_group(&self, id: ChatId) -> Result<Chat, DomainError> {
        let chat = self
            .store
            .chat(id)
            .await
            .map_err(|e| internal("group lookup failed", &e))?
            .ok_or(DomainError::NoSuchGroup(id))?;
        if chat.kind != ChatKind::Group || chat.disbanded {
            return Err(DomainError::NoSuchGroup(id));
        }
        Ok(chat)
    }

    /// A nickname for a system message's text.
    async fn name_of(&self, ocid: Ocid) -> String {
        match self.store.account(ocid).await {
            Ok(Some(a)) if !a.nickname.is_empty() => a.nickname,
            _ => ocid.to_string(),
        }
    }

    /// Write a system message into a group's history: `text` for people, `event` (JSON) for
    /// programs. Returns once it is durable. It goes to every connection of every member, the
    /// one that asked for the change included: unlike a send, it was never acked there.
    async fn announce(
        &self,
        chat: Arc<ChatInfo>,
        actor: Ocid,
        text: String,
        event: serde_json::Value,
    ) -> Result<(), DomainError> {
        let new = NewMessage {
            chat: chat.id,
            sender: actor,
            kind: kind::SYSTEM,
            parts: vec![
                Part {
                    category: Category::TEXT,
                    content: text,
                },
                Part {
                    category: Category::EVENT,
                    content: event.to_string(),
                },
            ],
            client_id: None,
            created_at: now_ms(),
        };
        let receipt = self.queue_message(chat, new, None).await?;
        receipt
            .await
            .map(|_| ())
            .map_err(|e| internal("system message append failed", &e))
    }

    /// Tell accounts of something on their connections; an account with none keeps it for its
    /// next login when `keep`.
    pub(super) async fn tell(&self, to: Vec<Ocid>, notice: Notice, keep: bool) {
        if keep {
            let now = now_ms();
            let stored = crate::bus::keep_notice(&notice, now);
            let offline: Vec<Ocid> = to
                .iter()
                .copied()
                .filter(|o| !self.presence.has_connection(*o))
                .collect();
            if !offline.is_empty()
                && let Err(e) = self.store.keep_notice(&offline, &stored, now).await
            {
                internal("notice not kept", &e);
            }
        }
        self.signal(Audience::Accounts(to), None, notice);
    }

    /// The group and `me`'s role in it. Anyone may look a group up; what a dialect shows of
    /// its members is for members.
    ///
    /// # Errors
    /// `NoSuchGroup`, `Internal`.
    pub async fn group(&self, me: Ocid, id: ChatId) -> Result<Group, DomainError> {
        let chat = self.live_group(id).await?;
        let role = role_of(&chat, me);
        Ok(Group { chat, role })
    }

    /// Change a group's name, description, avatar or join mode (admins). A rename is
    /// announced in the group.
    ///
    /// # Errors
    /// `Invalid`, `NoSuchGroup`, `NotAMember`, `Forbidden`, `Internal`.
    pub async fn update_group(
        &self,
        me: Ocid,
        id: ChatId,
        edit: &GroupEdit,
    ) -> Result<Chat, DomainError> {
        let edit = checked_edit(edit)?;
        let before = self.live_group(id).await?;
        need(&before, me, Role::Admin)?;
        if let Some(avatar) = &edit.avatar {
            self.check_avatar(me, avatar).await?;
        }
        self.store
            .update_group(id, &edit)
            .await
            .map_err(|e| internal("group update failed", &e))?;
        if let Some(name) = edit.name.as_ref().filter(|n| **n != before.name) {
            let who = self.name_of(me).await;
            self.announce(
                self.chat(id).await?,
                me,
                format!("{who} renamed the group to \"{name}\""),
                json!({"event": "renamed", "by": me, "name": name}),
            )
            .await?;
        }
        self.live_group(id).await
    }

    /// A group full already refuses a new member (checked before a request or an invitation
    /// that would let one in is used up).
    fn has_room(&self, chat: &Chat) -> Result<(), DomainError> {
        let max = self.limits.max_group_members;
        if chat.members.len() >= max {
            return Err(Invalid::GroupSize { max }.into());
        }
        Ok(())
    }

    /// Add `ocid` to a group and announce it; `by` is who let it in (an admin answering a
    /// request, or the inviter), if anyone.
    async fn admit(&self, chat: &Chat, ocid: Ocid, by: Option<Ocid>) -> Result<(), DomainError> {
        self.has_room(chat)?;
        let added = self
            .store
            .add_member(chat.id, ocid, Role::Member, now_ms())
            .await
            .map_err(|e| internal("member insert failed", &e))?;
        if added.is_none() {
            return Err(DomainError::AlreadyMember(chat.id));
        }
        self.changed(Some(chat.id), None);
        let who = self.name_of(ocid).await;
        tracing::info!(chat = %chat.id, ocid = %ocid, "joined a group");
        self.announce(
            self.chat(chat.id).await?,
            ocid,
            format!("{who} joined"),
            json!({"event": "joined", "ocid": ocid, "by": by}),
        )
        .await
    }

    /// Join a group: at once if it is open (or `me` is invited), else by a request that waits
    /// for an admin (its owner and admins are told now, or at their next login).
    ///
    /// # Errors
    /// `Invalid` (note too long, group full), `NoSuchGroup`, `AlreadyMember`, `Internal`.
    pub async fn join_group(
        &self,
        me: Ocid,
        id: ChatId,
        note: &str,
        origin: Option<Origin>,
    ) -> Result<Joined, DomainError> {
        check_len(note, TextField::JoinNote, MAX_JOIN_NOTE)?;
        let chat = self.live_group(id).await?;
        if role_of(&chat, me).is_some() {
            return Err(DomainError::AlreadyMember(id));
        }
        let invited = chat.join_mode == JoinMode::Approval
            && self
                .store
                .invitations(me)
                .await
                .map_err(|e| internal("invitation read failed", &e))?
                .iter()
                .any(|i| i.chat == id);
        if chat.join_mode == JoinMode::Open || invited {
            self.admit(&chat, me, None).await?;
            return Ok(Joined::Member);
        }
        self.store
            .request_join(id, me, note, now_ms())
            .await
            .map_err(|e| internal("join request insert failed", &e))?;
        let mut admins = chat.admins.clone();
        admins.extend(chat.owner);
        self.signal(
            Audience::Accounts(admins),
            origin,
            Notice::JoinRequest {
                chat: id,
                from: me,
                message: note.to_owned(),
            },
        );
        Ok(Joined::Requested)
    }

    /// Accept or reject `ocid`'s request to join (admins). The requester is told (now, or at its
    /// next login), and so are the group's other admins.
    ///
    /// # Errors
    /// `NoSuchGroup`, `NotAMember`, `Forbidden`, `NoSuchJoinRequest`, `Invalid` (group full),
    /// `Internal`.
    pub async fn answer_join(
        &self,
        me: Ocid,
        id: ChatId,
        ocid: Ocid,
        accept: bool,
        origin: Option<Origin>,
    ) -> Result<(), DomainError> {
        let chat = self.live_group(id).await?;
        need(&chat, me, Role::Admin)?;
        if accept {
            self.has_room(&chat)?;
        }
        let taken = self
            .store
            .take_join_request(id, ocid)
            .await
            .map_err(|e| internal("join request delete failed", &e))?;
        if !taken {
            return Err(DomainError::NoSuchJoinRequest { chat: id, ocid });
        }
        if accept {
            match self.admit(&chat, ocid, Some(me)).await {
                Ok(()) | Err(DomainError::AlreadyMember(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let notice = Notice::JoinAnswer {
            chat: id,
            ocid,
            accepted: accept,
            by: me,
        };
        self.tell(vec![ocid], notice.clone(), true).await;
        let mut admins = chat.admins.clone();
        admins.extend(chat.owner);
        self.signal(Audience::Accounts(admins), origin, notice);
        Ok(())
    }

    /// A group's pending join requests (admins), oldest first.
    ///
    /// # Errors
    /// `NoSuchGroup`, `NotAMember`, `Forbidden`, `Internal`.
    pub async fn join_requests(
        &self,
        me: Ocid,
        id: ChatId,
    ) -> Result<Vec<JoinRequest>, DomainError> {
        let chat = self.live_group(id).await?;
        need(&chat, me, Role::Admin)?;
        self.store
            .join_requests(id)
            .await
            .map_err(|e| internal("join request read failed", &e))
    }

    /// Invite `ocid` (members of an open group, admins of one that approves joins). The invitee
    /// is told now, and finds the invitation among its own at login.
    ///
    /// # Errors
    /// `Invalid` (own account), `NoSuchGroup`, `NotAMember`, `Forbidden`, `NoSuchAccount`,
    /// `AlreadyMember`, `Internal`.
    pub async fn invite(
        &self,
        me: Ocid,
        id: ChatId,
        ocid: Ocid,
        origin: Option<Origin>,
    ) -> Result<(), DomainError> {
        if me == ocid {
            return Err(Invalid::OwnAccount.into());
        }
        let chat = self.live_group(id).await?;
        let role = need(&chat, me, Role::Member)?;
        if chat.join_mode == JoinMode::Approval && role < Role::Admin {
            return Err(DomainError::Forbidden {
                chat: id,
                need: Role::Admin,
            });
        }
        self.live_account(ocid).await?;
        if role_of(&chat, ocid).is_some() {
            return Err(DomainError::AlreadyMember(id));
        }
        self.spend(&self.quotas.members, me, 1)?;
        // An account that blocks the inviter is not bothered, and the inviter is not told.
        if self.blocks(ocid, me).await? {
            return Ok(());
        }
        self.store
            .invite(id, ocid, me, now_ms())
            .await
            .map_err(|e| internal("invitation insert failed", &e))?;
        self.signal(
            Audience::Accounts(vec![ocid]),
            origin,
            Notice::Invitation { chat: id, by: me },
        );
        Ok(())
    }

    /// Accept (join) or decline an invitation.
    ///
    /// # Errors
    /// `NoSuchInvitation`, `NoSuchGroup`, `Invalid` (group full), `AlreadyMember`, `Internal`.
    pub async fn answer_invitation(
        &self,
        me: Ocid,
        id: ChatId,
        accept: bool,
    ) -> Result<(), DomainError> {
        let invitation = self
            .store
            .invitations(me)
            .await
            .map_err(|e| internal("invitation read failed", &e))?
            .into_iter()
            .find(|i| i.chat == id)
            .ok_or(DomainError::NoSuchInvitation(id))?;
        let chat = if accept {
            let chat = self.live_group(id).await?;
            self.has_room(&chat)?;
            Some(chat)
        } else {
            None
        };
        self.store
            .take_invitation(id, me)
            .await
            .map_err(|e| internal("invitation delete failed", &e))?;
        match chat {
            Some(chat) => self.admit(&chat, me, Some(invitation.by)).await,
            None => Ok(()),
        }
    }

    /// `me`'s pending invitations, oldest first.
    ///
    /// # Errors
    /// `Internal`.
    pub async fn invitations(&self, me: Ocid) -> Result<Vec<Invitation>, DomainError> {
        self.store
            .invitations(me)
            .await
            .map_err(|e| internal("invitation read failed", &e))
    }

    /// Remove a member and announce it: `by` is `None` when it leaves on its own.
    async fn dismiss(&self, chat: &Chat, ocid: Ocid, by: Option<Ocid>) -> Result<(), DomainError> {
        let before = self.chat(chat.id).await?;
        let removed = self
            .store
            .remove_member(chat.id, ocid)
            .await
            .map_err(|e| internal("member delete failed", &e))?;
        if !removed {
            return Err(DomainError::NotAMember(chat.id));
        }
        self.changed(Some(chat.id), None);
        let who = self.name_of(ocid).await;
        let (text, event) = match by {
            None => (
                format!("{who} left"),
                json!({"event": "left", "ocid": ocid}),
            ),
            Some(by) => (
                format!("{} removed {who}", self.name_of(by).await),
                json!({"event": "removed", "ocid": ocid, "by": by}),
            ),
        };
        // Announced to the members as they were, the one leaving included.
        self.announce(before, by.unwrap_or(ocid), text, event).await
    }

    /// Leave a group (its owner must hand it over or disband it instead).
    ///
    /// # Errors
    /// `NoSuchGroup`, `NotAMember`, `OwnerCannotLeave`, `Internal`.
    pub async fn leave_group(&self, me: Ocid, id: ChatId) -> Result<(), DomainError> {
        let chat = self.live_group(id).await?;
        if need(&chat, me, Role::Member)? == Role::Owner {
            return Err(DomainError::OwnerCannotLeave(id));
        }
        self.dismiss(&chat, me, None).await
    }

    /// Remove `ocid` from a group: admins remove members, the owner anyone. The removed account
    /// is told (now, or at its next login).
    ///
    /// # Errors
    /// `Invalid` (own account), `NoSuchGroup`, `NotAMember`, `NoSuchMember`, `Forbidden`,
    /// `Internal`.
    pub async fn kick(&self, me: Ocid, id: ChatId, ocid: Ocid) -> Result<(), DomainError> {
        if me == ocid {
            return Err(Invalid::OwnAccount.into());
        }
        let chat = self.live_group(id).await?;
        let mine = need(&chat, me, Role::Admin)?;
        let theirs = role_of(&chat, ocid).ok_or(DomainError::NoSuchMember { chat: id, ocid })?;
        if theirs >= mine {
            return Err(DomainError::Forbidden {
                chat: id,
                need: Role::Owner,
            });
        }
        self.dismiss(&chat, ocid, Some(me)).await?;
        let notice = Notice::Removed {
            chat: id,
            by: me,
            disbanded: false,
        };
        self.tell(vec![ocid], notice, true).await;
        Ok(())
    }

    /// Make a member an admin, or an admin a member again (the owner).
    ///
    /// # Errors
    /// `Invalid` (own account), `NoSuchGroup`, `NotAMember`, `NoSuchMember`, `Forbidden`,
    /// `Internal`.
    pub async fn set_admin(
        &self,
        me: Ocid,
        id: ChatId,
        ocid: Ocid,
        admin: bool,
    ) -> Result<(), DomainError> {
        if me == ocid {
            return Err(Invalid::OwnAccount.into());
        }
        let chat = self.live_group(id).await?;
        need(&chat, me, Role::Owner)?;
        let now = role_of(&chat, ocid).ok_or(DomainError::NoSuchMember { chat: id, ocid })?;
        let role = if admin { Role::Admin } else { Role::Member };
        if now == role {
            return Ok(());
        }
        self.store
            .set_role(id, ocid, role)
            .await
            .map_err(|e| internal("role update failed", &e))?;
        let (me_name, who) = (self.name_of(me).await, self.name_of(ocid).await);
        let (text, event) = if admin {
            (format!("{me_name} made {who} an admin"), "promoted")
        } else {
            (format!("{me_name} made {who} a member"), "demoted")
        };
        self.announce(
            self.chat(id).await?,
            me,
            text,
            json!({"event": event, "ocid": ocid, "by": me}),
        )
        .await
    }

    /// Hand a group to another member (the owner, who becomes an admin).
    ///
    /// # Errors
    /// `Invalid` (own account), `NoSuchGroup`, `NotAMember`, `NoSuchMember`, `Forbidden`,
    /// `Internal`.
    pub async fn transfer_group(&self, me: Ocid, id: ChatId, to: Ocid) -> Result<(), DomainError> {
        if me == to {
            return Err(Invalid::OwnAccount.into());
        }
        let chat = self.live_group(id).await?;
        need(&chat, me, Role::Owner)?;
        let moved = self
            .store
            .transfer_group(id, me, to)
            .await
            .map_err(|e| internal("group transfer failed", &e))?;
        if !moved {
            return Err(DomainError::NoSuchMember { chat: id, ocid: to });
        }
        let (me_name, who) = (self.name_of(me).await, self.name_of(to).await);
        self.announce(
            self.chat(id).await?,
            me,
            format!("{me_name} handed the group to {who}"),
            json!({"event": "transferred", "ocid": to, "by": me}),
        )
        .await
    }

    /// End a group (the owner): it is announced in the group, which then has no members; every
    /// former member is told (now, or at its next login). Its history stays in the store.
    ///
    /// # Errors
    /// `NoSuchGroup`, `NotAMember`, `Forbidden`, `Internal`.
    pub async fn disband(&self, me: Ocid, id: ChatId) -> Result<(), DomainError> {
        let chat = self.live_group(id).await?;
        need(&chat, me, Role::Owner)?;
        let who = self.name_of(me).await;
        let text = format!("{who} disbanded the group");
        self.end_group(&chat, me, text, json!({"event": "disbanded", "by": me}))
            .await
    }

    /// End a group as the server's operator (`natter admin groups disband`): announced in the
    /// group from its owner's account, as "disbanded by the operator"; every member is told.
    ///
    /// # Errors
    /// `NoSuchGroup`, `Internal`.
    pub async fn admin_disband(&self, id: ChatId) -> Result<(), DomainError> {
        let chat = self.live_group(id).await?;
        let owner = chat
            .owner
            .or_else(|| chat.members.first().copied())
            .ok_or(DomainError::NoSuchGroup(id))?;
        let text = "The group was disbanded by the server's operator".to_owned();
        self.end_group(
            &chat,
            owner,
            text,
            json!({"event": "disbanded", "by": null}),
        )
        .await
    }

    /// Announce a group's end (from `actor`), disband it, and tell every member but `actor`.
    async fn end_group(
        &self,
        chat: &Chat,
        actor: Ocid,
        text: String,
        event: serde_json::Value,
    ) -> Result<(), DomainError> {
        let id = chat.id;
        self.announce(self.chat(id).await?, actor, text, event)
            .await?;
        self.store
            .disband(id, now_ms())
            .await
            .map_err(|e| internal("group disband failed", &e))?;
        self.changed(Some(id), None);
        tracing::info!(chat = %id, "group disbanded");
        let others: Vec<Ocid> = chat
            .members
            .iter()
            .copied()
            .filter(|m| *m != actor)
            .collect();
        let notice = Notice::Removed {
            chat: id,
            by: actor,
            disbanded: true,
        };
        self.tell(others, notice, true).await;
        Ok(())
    }

    /// The groups `me` is in, ascending by id.
    ///
    /// # Errors
    /// `Internal`.
    pub async fn my_groups(&self, me: Ocid) -> Result<Vec<GroupSummary>, DomainError> {
        self.store
            .groups_of(me)
            .await
            .map_err(|e| internal("group list read failed", &e))
    }

    /// Groups whose name starts with `query` (case-insensitive), at most `limit` (capped at
    /// [`MAX_FOUND`]) with an id above `after`, each with `me`'s role in it, and whether more
    /// match beyond them.
    ///
    /// # Errors
    /// `Invalid` (empty or long query), `Internal`.
    pub async fn find_groups(
        &self,
        me: Ocid,
        query: &str,
        after: ChatId,
        limit: u32,
    ) -> Result<(Vec<GroupSummary>, bool), DomainError> {
        let query = query.trim();
        if query.is_empty() || query.chars().count() > MAX_GROUP_QUERY {
            return Err(Invalid::Query {
                max: MAX_GROUP_QUERY,
            }
            .into());
        }
        let limit = limit.clamp(1, MAX_FOUND);
        // One more than asked says whether there is more.
        let mut found = self
            .store
            .find_groups(query, after, limit + 1)
            .await
            .map_err(|e| internal("group search failed", &e))?;
        let more = found.len() > limit as usize;
        found.truncate(limit as usize);
        // The search knows no asker: its roles come from the asker's own groups.
        let mine = self.my_groups(me).await?;
        for group in &mut found {
            group.role = mine
                .binary_search_by_key(&group.id, |g| g.id)
                .ok()
                .and_then(|i| mine[i].role);
        }
        Ok((found, more))
    }

    /// The pending join requests of every group `me` owns or administers, oldest first.
    ///
    /// # Errors
    /// `Internal`.
    pub async fn requests_to_answer(&self, me: Ocid) -> Result<Vec<JoinRequest>, DomainError> {
        self.store
            .join_requests_for(me)
            .await
            .map_err(|e| internal("join request read failed", &e))
    }
}
