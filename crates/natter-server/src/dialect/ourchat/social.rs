//! v1's extension codes 124-189 on the domain: profiles, search, account security, logins,
//! remarks, blocks, groups, read state and the service token. Wire details: `natter_proto::ourchat::v1::social`.

use super::v1::{V1, identity};
use super::{now_s, wire_error};
use crate::conn::Conn;
use crate::domain::groups::{Joined, role_of};
use crate::domain::profiles::Profile;
use crate::domain::reads::ChatEntry;
use crate::domain::{DomainError, GroupAdds, Invalid, To};
use crate::event::view;
use crate::store::{
    Account, Chat, GroupEdit, GroupSummary, Identity, Invitation, JoinMode, JoinRequest,
    ProfileEdit, Role, SearchBy,
};
use bytes::Bytes;
use natter_proto::ourchat::v1::social::{self, Clearable, Social, frame, target_fields};
use natter_proto::ourchat::v1::{self, LoginBy, Target, code};
use natter_proto::{ChatId, Ocid};
use serde_json::{Value, json};

/// Seconds from milliseconds, as every v1 time is written.
fn secs(ms: i64) -> i64 {
    ms.div_euclid(1000)
}

fn role_name(role: Option<Role>) -> Value {
    match role {
        Some(Role::Owner) => json!("owner"),
        Some(Role::Admin) => json!("admin"),
        Some(Role::Member) => json!("member"),
        None => Value::Null,
    }
}

/// An account as others see it (its own profile adds its email, phone and security question;
/// a friend's adds the asker's remark).
pub(super) fn profile_value(p: &Profile) -> Value {
    let a = &p.account;
    let mut v = public_profile(a);
    if p.own {
        v["email"] = json!(a.email);
        v["phone"] = json!(a.phone);
        v["security_question"] = json!(a.security_question);
    }
    if let Some(remark) = &p.remark {
        v["remark"] = json!(remark);
    }
    v
}

fn public_profile(a: &Account) -> Value {
    json!({
        "ocid": a.ocid,
        "nickname": a.nickname,
        "username": a.username,
        "avatar": a.avatar,
        "signature": a.signature,
        "description": a.description,
        "sex": a.sex,
        "status_text": a.status_text,
        "time": secs(a.created_at),
        "modified_at": secs(a.modified_at),
        "deleted": a.deleted,
    })
}

fn join_mode(m: JoinMode) -> u8 {
    m.code() as u8
}

/// Code 151's group: members see who the members are.
fn group_value(chat: &Chat, me: Ocid) -> Value {
    let role = role_of(chat, me);
    let mut v = json!({
        "group_id": chat.id,
        "name": chat.name,
        "description": chat.description,
        "avatar": chat.avatar,
        "join_mode": join_mode(chat.join_mode),
        "owner": chat.owner,
        "admins": chat.admins,
        "member_count": chat.members.len(),
        "time": secs(chat.created_at),
        "role": role_name(role),
    });
    if role.is_some() {
        v["members"] = json!(chat.members);
    }
    v
}

fn summary_value(g: &GroupSummary) -> Value {
    json!({
        "group_id": g.id,
        "name": g.name,
        "avatar": g.avatar,
        "join_mode": join_mode(g.join_mode),
        "member_count": g.member_count,
        "role": role_name(g.role),
    })
}

pub(super) fn join_request_value(r: &JoinRequest) -> Value {
    json!({"group_id": r.chat, "ocid": r.ocid, "msg": r.message, "time": secs(r.created_at)})
}

pub(super) fn invitation_value(i: &Invitation) -> Value {
    json!({"group_id": i.chat, "by": i.by, "time": secs(i.created_at)})
}

fn chat_value(e: &ChatEntry, me: Ocid) -> Value {
    let target = match e.chat.peer_of(me) {
        Some(peer) => Target::Private(peer),
        None => Target::Group(e.chat.id),
    };
    let mut v = target_fields(target);
    v["name"] = json!(e.name);
    v["last_index"] = json!(e.state.last_index);
    v["read"] = json!(e.state.read);
    v["unread"] = json!(e.state.unread);
    v["last"] = match &e.state.last {
        Some(m) => {
            let text = m.text();
            v1::text_value(&view(m, &e.chat, &text))
        }
        None => Value::Null,
    };
    v
}

/// How codes 134 and 136 name an account.
fn who(by: LoginBy, account: &str) -> Result<Identity, DomainError> {
    identity(by, account).ok_or(DomainError::BadCredentials)
}

fn clearable(c: Clearable) -> Option<Option<String>> {
    match c {
        Clearable::Keep => None,
        Clearable::Clear => Some(None),
        Clearable::Set(s) => Some(Some(s)),
    }
}

impl V1 {
    /// Answer one of codes 124-189. `rid` is the request's id.
    pub(super) async fn social(
        &self,
        c: &mut Conn<Self>,
        request_code: i64,
        rid: Option<&Value>,
        request: Social,
        out: &mut Vec<Bytes>,
    ) {
        let reply_code = request_code + 1;
        let t = now_s();
        let result = self.answer(c, request).await;
        let frame_out = match result {
            Ok(fields) => frame(reply_code, t, fields),
            Err(e) => v1::error_reply(t, Some(request_code), &wire_error(&e)),
        };
        out.push(self.bytes(frame_out, rid));
    }

    /// The reply's fields (besides `code` and `time`), or the refusal.
    async fn answer(&self, c: &mut Conn<Self>, request: Social) -> Result<Value, DomainError> {
        let me = c.me().unwrap_or_default();
        let origin = Some(c.origin());
        let d = c.domain();
        Ok(match request {
            Social::SetProfile {
                nickname,
                avatar,
                signature,
                description,
                sex,
                status_text,
                username,
                phone,
                group_adds,
            } => {
                let group_adds = match group_adds.as_deref() {
                    None => None,
                    Some(name) => Some(GroupAdds::named(name).ok_or(Invalid::GroupAdds)?),
                };
                let edit = ProfileEdit {
                    nickname,
                    avatar,
                    signature,
                    description,
                    sex,
                    status_text,
                    username: clearable(username),
                    phone: clearable(phone),
                };
                // The setting alone is a change too.
                let account = if group_adds.is_some() && edit == ProfileEdit::default() {
                    d.account(me).await?
                } else {
                    d.update_profile(me, &edit).await?
                };
                if let Some(to) = group_adds {
                    d.set_group_adds(me, to).await?;
                }
                let mut v = profile_value(&Profile {
                    account,
                    own: true,
                    remark: None,
                });
                v["group_adds"] = json!(d.group_adds(me).await?.name());
                json!({ "profile": v })
            }
            Social::Profile { ocid } => {
                if ocid != me {
                    d.look_up(me)?;
                }
                let mut v = profile_value(&d.profile(me, ocid).await?);
                if ocid == me {
                    v["group_adds"] = json!(d.group_adds(me).await?.name());
                }
                json!({ "profile": v })
            }
            Social::Search {
                by,
                query,
                after,
                limit,
            } => {
                let by = match by {
                    social::SearchBy::Ocid => match query.trim().parse() {
                        Ok(ocid) => SearchBy::Ocid(Ocid(ocid)),
                        // No account has an ocid that is not a number.
                        Err(_) => return Ok(json!({"accounts": [], "more": false})),
                    },
                    social::SearchBy::Email => SearchBy::Identity(Identity::Email(query)),
                    social::SearchBy::Phone => SearchBy::Identity(Identity::Phone(query)),
                    social::SearchBy::Username => SearchBy::Identity(Identity::Username(query)),
                    social::SearchBy::Nickname => SearchBy::NicknamePrefix(query),
                };
                d.look_up(me)?;
                let (found, more) = d.search(&by, Ocid(after), limit).await?;
                let accounts: Vec<Value> = found.iter().map(public_profile).collect();
                json!({"accounts": accounts, "more": more})
            }
            Social::ChangePassword {
                old,
                new,
                keep_others,
            } => {
                let device = c.device().cloned().ok_or(DomainError::InvalidToken)?;
                let ended = d
                    .change_password(me, &device, &old, &new, keep_others)
                    .await?;
                json!({"ended": ended})
            }
            Social::SetSecurity {
                password,
                question,
                answer,
            } => {
                d.set_security(me, &password, &question, &answer).await?;
                json!({"question": question.trim()})
            }
            Social::ResetPassword {
                by,
                account,
                answer,
                password,
            } => {
                let client = Some(c.peer().ip());
                d.reset_password_from(&who(by, &account)?, &answer, &password, client)
                    .await?;
                json!({})
            }
            Social::SecurityQuestion { by, account } => {
                let question = match who(by, &account) {
                    Ok(id) => d.security_question(&id).await?,
                    Err(_) => return Err(DomainError::NoSecurityQuestion),
                };
                json!({"question": question})
            }
            Social::Logins => {
                let device = c.device().cloned().ok_or(DomainError::InvalidToken)?;
                let logins: Vec<Value> = d
                    .logins(me, &device)
                    .await?
                    .iter()
                    .map(|l| {
                        json!({
                            "id": l.id,
                            "time": secs(l.created_at),
                            "expires": secs(l.expires_at),
                            "current": l.current,
                        })
                    })
                    .collect();
                json!({"logins": logins})
            }
            Social::RevokeLogin { id } => {
                d.revoke_login(me, &id).await?;
                json!({"id": id})
            }
            Social::DeleteAccount { password } => {
                d.delete_account(me, &password, origin).await?;
                json!({"ocid": me})
            }
            Social::SetRemark { ocid, remark } => {
                d.set_remark(me, ocid, &remark).await?;
                json!({"ocid": ocid, "remark": remark.trim()})
            }
            Social::Block { ocid, block } => {
                if block {
                    d.block(me, ocid, origin).await?;
                } else {
                    d.unblock(me, ocid).await?;
                }
                json!({"ocid": ocid, "block": block})
            }
            Social::Blocked => json!({"blocked": d.blocked(me).await?}),
            Social::GroupInfo { group } => {
                json!({"group": group_value(&d.group(me, group).await?.chat, me)})
            }
            Social::UpdateGroup {
                group,
                name,
                description,
                avatar,
                join_mode,
            } => {
                let edit = GroupEdit {
                    name,
                    description,
                    avatar,
                    join_mode: join_mode.map(|m| JoinMode::from_code(i64::from(m))),
                };
                let chat = d.update_group(me, group, &edit).await?;
                json!({"group": group_value(&chat, me)})
            }
            Social::JoinGroup { group, msg } => {
                let state = match d.join_group(me, group, &msg, origin).await? {
                    Joined::Member => 0,
                    Joined::Requested => 1,
                };
                json!({"group_id": group, "state": state})
            }
            Social::AnswerJoin {
                group,
                ocid,
                accept,
            } => {
                d.answer_join(me, group, ocid, accept, origin).await?;
                json!({"group_id": group, "ocid": ocid, "accept": accept})
            }
            Social::JoinRequests { group } => {
                let requests = match group {
                    Some(g) => d.join_requests(me, g).await?,
                    None => d.requests_to_answer(me).await?,
                };
                let requests: Vec<Value> = requests.iter().map(join_request_value).collect();
                json!({"requests": requests})
            }
            Social::Invite { group, ocid } => {
                d.invite(me, group, ocid, origin).await?;
                json!({"group_id": group, "ocid": ocid})
            }
            Social::AnswerInvitation { group, accept } => {
                d.answer_invitation(me, group, accept).await?;
                json!({"group_id": group, "accept": accept})
            }
            Social::Invitations => {
                let list: Vec<Value> = d
                    .invitations(me)
                    .await?
                    .iter()
                    .map(invitation_value)
                    .collect();
                json!({"invitations": list})
            }
            Social::LeaveGroup { group } => {
                d.leave_group(me, group).await?;
                json!({"group_id": group})
            }
            Social::Kick { group, ocid } => {
                d.kick(me, group, ocid).await?;
                json!({"group_id": group, "ocid": ocid})
            }
            Social::SetAdmin { group, ocid, admin } => {
                d.set_admin(me, group, ocid, admin).await?;
                json!({"group_id": group, "ocid": ocid, "admin": admin})
            }
            Social::TransferGroup { group, ocid } => {
                d.transfer_group(me, group, ocid).await?;
                json!({"group_id": group, "ocid": ocid})
            }
            Social::Disband { group } => {
                d.disband(me, group).await?;
                json!({"group_id": group})
            }
            Social::MyGroups => {
                let groups: Vec<Value> = d.my_groups(me).await?.iter().map(summary_value).collect();
                json!({"groups": groups})
            }
            Social::FindGroups {
                query,
                after,
                limit,
            } => {
                let (found, more) = d.find_groups(me, &query, ChatId(after), limit).await?;
                let groups: Vec<Value> = found.iter().map(summary_value).collect();
                json!({"groups": groups, "more": more})
            }
            Social::MarkRead { target, index } => {
                let to = match target {
                    Target::Private(p) => To::Account(p),
                    Target::Group(g) => To::Group(g),
                };
                let read = d.mark_read(me, to, index, origin).await?;
                let mut v = target_fields(target);
                v["index"] = json!(read);
                v
            }
            Social::ChatList => {
                let entries = d.chat_list(me).await?;
                let unread: u64 = entries.iter().map(|e| e.state.unread).sum();
                let chats: Vec<Value> = entries.iter().map(|e| chat_value(e, me)).collect();
                json!({"chats": chats, "unread": unread})
            }
            Social::SetServiceToken { token, password } => {
                let a = d.set_service_token(me, &password, &token).await?;
                json!({"ocid": a.ocid, "uuid": a.uuid})
            }
        })
    }

    /// The frame for a kept or live group notice, if it is one (codes 180-183, 188).
    pub(super) fn social_push(notice: &crate::event::Notice, me: Ocid, t: i64) -> Option<Value> {
        use crate::event::Notice;
        Some(match notice {
            Notice::JoinRequest {
                chat,
                from,
                message,
            } => frame(
                code::JOIN_REQUEST_PUSH,
                t,
                json!({"group_id": chat, "ocid": from, "msg": message}),
            ),
            Notice::JoinAnswer {
                chat,
                ocid,
                accepted,
                by,
            } => frame(
                code::JOIN_ANSWER_PUSH,
                t,
                json!({"group_id": chat, "ocid": ocid, "accepted": accepted, "by": by}),
            ),
            Notice::Invitation { chat, by } => frame(
                code::INVITATION_PUSH,
                t,
                json!({"group_id": chat, "by": by}),
            ),
            Notice::Removed {
                chat,
                by,
                disbanded,
            } => frame(
                code::REMOVED_PUSH,
                t,
                json!({"group_id": chat, "by": by, "disbanded": disbanded}),
            ),
            Notice::Read {
                chat,
                reader,
                index,
                pair,
            } => {
                let target = match pair {
                    // The other side of the chat, seen from the receiving account.
                    Some((a, b)) => Target::Private(if *a == me { *b } else { *a }),
                    None => Target::Group(*chat),
                };
                let mut fields = target_fields(target);
                fields["ocid"] = json!(reader);
                fields["index"] = json!(index);
                frame(code::READ_PUSH, t, fields)
            }
            _ => return None,
        })
    }
}
