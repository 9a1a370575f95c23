//! The service-code dialect (seed 002), served per HTTP request at `POST /svc`: each request
//! is read whole (up to `svc_max_body_bytes`), authenticated by the token it carries, handled
//! with the domain and answered with `{"state_code", "content"}` under the same HTTP status.
//! There is no connection and no push: a client reads new messages with code 9.
//!
//! Failed token attempts (an unknown token, a wrong UUID and token pair, a registration whose
//! token another account has) are counted by the domain's guessing limits (`Domain::attempt`,
//! service tokens apart from other secrets): per client address, and per account for a login
//! that names its UUID, with the back-off of `docs/security.md`; while locked, requests are
//! answered 429. Every request also spends from a per-address bucket of `rate_per_sec`. This
//! module never touches the store and never logs a token.

use crate::app::App;
use crate::conn::budget::Bucket;
use crate::domain::groups::Joined;
use crate::domain::guard::Subject;
use crate::domain::{Domain, DomainError, Invalid, Secret, To};
use crate::store::{Account, Category, GroupEdit, JoinMode, Message, Range, kind};
use crate::transport::ClientAddr;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, post};
use natter_proto::svc::{self, BadRequest, Cause, Request};
use natter_proto::{ChatId, Index, Ocid};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Addresses the request limiter remembers before it forgets them all.
const MAX_ADDRESSES: usize = 100_000;

/// `POST` handler of the service-code dialect.
pub fn route(app: &App) -> MethodRouter<Arc<App>> {
    let svc = Arc::new(Svc::new(app));
    post(
        move |State(app): State<Arc<App>>,
              ConnectInfo(ClientAddr(peer)): ConnectInfo<ClientAddr>,
              body: Body| {
            let svc = svc.clone();
            async move { svc.serve(&app, peer.ip(), body).await }
        },
    )
}

/// What the dialect keeps between requests: its limits and the per-address budgets.
struct Svc {
    max_body: usize,
    max_count: u32,
    /// Requests per address (`rate_per_sec`, `rate_burst`).
    requests: Mutex<HashMap<IpAddr, Bucket>>,
    rate: (u32, u32),
}

/// One reply: the HTTP status (= `state_code`) and the body.
struct Reply(u16, Vec<u8>);

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, [(header::CONTENT_TYPE, "application/json")], self.1).into_response()
    }
}

fn ok(extra: Map<String, Value>) -> Reply {
    Reply(200, svc::success(extra))
}

fn failed(cause: Cause) -> Reply {
    Reply(200, svc::failed(cause))
}

fn error(status: u16, msg: &str) -> Reply {
    Reply(status, svc::error(status, msg))
}

fn fields(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// A domain refusal as this dialect answers it: `failed` with a cause for a refusal of a
/// well-formed request, 400 for input the rules refuse, 401 for an unknown token, 500 for a
/// server failure.
fn refusal(e: &DomainError) -> Reply {
    let cause = match e {
        DomainError::Invalid(Invalid::GroupSize { .. }) => Cause::GroupFull,
        DomainError::Invalid(Invalid::PrivateChatWithSelf) => Cause::OwnAccount,
        DomainError::Invalid(i) => return error(400, &invalid_text(*i)),
        DomainError::TextTooLong { .. } => Cause::MessageTooLong,
        DomainError::UuidTaken => Cause::UuidTaken,
        DomainError::ServiceTokenTaken => Cause::TokenTaken,
        DomainError::RegistrationClosed => Cause::RegistrationClosed,
        DomainError::InvalidInvite => Cause::InvalidInvite,
        DomainError::AccountDisabled => Cause::AccountDisabled,
        DomainError::NoSuchChat(_) => Cause::NoSuchChat,
        DomainError::NoSuchGroup(_) => Cause::NoSuchGroup,
        DomainError::NotAMember(_) => Cause::NotAMember,
        DomainError::AlreadyMember(_) => Cause::AlreadyMember,
        DomainError::NoSuchAccount(_) => Cause::NoSuchUser,
        DomainError::Blocking(_) => Cause::Blocking,
        DomainError::NotAccepted(_) => Cause::NotAccepted,
        DomainError::DuplicateClientId => Cause::DuplicateClientId,
        DomainError::LimitReached { .. } => return error(429, &e.to_string()),
        DomainError::TooManyAttempts { retry_after_s } => {
            return error(
                429,
                &format!("too many failed token attempts; try again in {retry_after_s} s"),
            );
        }
        DomainError::InvalidToken => return error(401, "unknown token"),
        DomainError::BadCredentials => return error(401, "unknown id or token"),
        DomainError::Internal => return error(500, "the server failed; try again"),
        other => {
            // No request of this dialect leads here; said plainly rather than guessed at.
            tracing::warn!(error = %other, "service-code request refused unexpectedly");
            return error(500, "the server failed; try again");
        }
    };
    failed(cause)
}

/// The sentence of a 400 for input the domain's rules refuse, naming this dialect's fields.
fn invalid_text(i: Invalid) -> String {
    match i {
        Invalid::EmptyText => "field `content.msg` must not be empty".into(),
        Invalid::ClientId { max } => format!("field `content.client_id` must be 1 to {max} bytes"),
        Invalid::GroupName { max } => {
            format!("field `content.name` must be at most {max} characters")
        }
        Invalid::Nickname { max } => format!("field `content.name` must be 1 to {max} characters"),
        Invalid::Uuid => "field `content.id` must be a UUID".into(),
        Invalid::ServiceToken { min, max } => {
            format!("field `content.token` must be {min} to {max} characters")
        }
        other => format!("invalid input: {other:?}"),
    }
}

/// What a part that is not text names: the id of the file it carries (its content is the
/// file's JSON), or its content as it is when that is not a file's JSON.
fn file_id(content: &str) -> &str {
    let id = content
        .strip_prefix('{')
        .and_then(|_| content.split_once(r#""id":""#))
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(id, _)| id);
    id.unwrap_or(content)
}

/// A stored message's `content`: its parts in order, separated by a space; text as it is,
/// an image, voice, file or emoji part as `[image <file id>]`, `[voice <id>]`, `[file <id>]`,
/// `[emoji <id>]`, a part of
/// another category as `[attachment <ref>]`, and a system message's event part (for programs;
/// its text says the same) left out.
pub fn content(m: &Message) -> String {
    let mut out = String::new();
    for part in &m.parts {
        let tag = match part.category {
            Category::TEXT => None,
            Category::EVENT => continue,
            Category(c) => {
                Some(natter_proto::view::FileKind::of(c).map_or("attachment", |k| k.name()))
            }
        };
        if !out.is_empty() {
            out.push(' ');
        }
        match tag {
            None => out.push_str(&part.content),
            Some(tag) => {
                out.push('[');
                out.push_str(tag);
                let reference = file_id(&part.content);
                if !reference.is_empty() {
                    out.push(' ');
                    out.push_str(reference);
                }
                out.push(']');
            }
        }
    }
    out
}

impl Svc {
    fn new(app: &App) -> Self {
        let c = &app.config;
        Self {
            max_body: c.svc_max_body_bytes,
            max_count: c.svc_max_count,
            requests: Mutex::new(HashMap::new()),
            rate: (c.rate_per_sec, c.rate_burst),
        }
    }

    /// Spend one request of `ip`'s budget; `false` when it is empty.
    fn allow_request(&self, ip: IpAddr) -> bool {
        let (rate, burst) = self.rate;
        if rate == 0 {
            return true;
        }
        let mut map = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ADDRESSES && !map.contains_key(&ip) {
            map.clear();
        }
        map.entry(ip)
            .or_insert_with(|| Bucket::new(rate, burst))
            .allow()
    }

    async fn serve(&self, app: &App, ip: IpAddr, body: Body) -> Reply {
        if !self.allow_request(ip) {
            return error(429, "too many requests; slow down");
        }
        // A body that stalls is given up on, as an upload's is (`--body-idle-timeout-secs`; a
        // request body here is small, so the whole of it gets that long).
        let deadline = app.config.body_idle_timeout;
        let read = tokio::time::timeout(deadline, axum::body::to_bytes(body, self.max_body));
        let bytes = match read.await {
            Err(_) => {
                return error(
                    408,
                    &format!("the body did not arrive within {} s", deadline.as_secs()),
                );
            }
            Ok(Ok(b)) => b,
            Ok(Err(_)) => {
                return error(
                    413,
                    &format!("the body may be at most {} bytes", self.max_body),
                );
            }
        };
        let request = match svc::decode(&bytes) {
            Ok(r) => r,
            Err(e @ (BadRequest::Malformed(_) | BadRequest::UnknownCode(_))) => {
                return error(e.status(), e.message());
            }
        };
        // Counted before the token is looked at, so that requests in flight together cannot
        // outrun the limit; forgiven when the token turns out good. A login names its account
        // by UUID: counted against it too, whether or not it exists.
        let subject = match &request {
            Request::Login { id, .. } => {
                Some(Subject::name(&format!("uuid:{}", id.trim().to_lowercase())))
            }
            _ => None,
        };
        let attempt = match app.domain.attempt(Secret::Service, subject, Some(ip)) {
            Ok(attempt) => attempt,
            Err(e) => return refusal(&e),
        };
        let reply = self.handle(&app.domain, request).await;
        match reply {
            // Learning that a token is taken is learning a token: counted like a failure.
            Err(
                e @ (DomainError::InvalidToken
                | DomainError::BadCredentials
                | DomainError::ServiceTokenTaken),
            ) => {
                tracing::debug!(%ip, "service-code token attempt failed");
                drop(attempt);
                refusal(&e)
            }
            other => {
                attempt.succeeded();
                match other {
                    Ok(reply) => reply,
                    Err(e) => refusal(&e),
                }
            }
        }
    }

    async fn handle(&self, domain: &Domain, request: Request) -> Result<Reply, DomainError> {
        match request {
            Request::Register {
                id,
                token,
                name,
                invite,
            } => {
                let a = domain
                    .register_service(&id, &token, name.as_deref(), invite.as_deref())
                    .await?;
                Ok(ok(fields(json!({"ocid": a.ocid}))))
            }
            Request::Login { id, token } => {
                let a = domain.service_login(&id, &token).await?;
                Ok(ok(fields(json!({"ocid": a.ocid, "name": a.nickname}))))
            }
            Request::Messages {
                token,
                chat,
                index,
                count,
            } => {
                let me = domain.service_account(&token).await?;
                let count = count.min(self.max_count);
                let mut page = self.messages(domain, &me, chat, index, count).await?;
                page.reverse();
                list(domain, &page, false).await
            }
            Request::Receive {
                token,
                chat,
                index,
                count,
            } => {
                let me = domain.service_account(&token).await?;
                let count = count.min(self.max_count);
                let page = self.receive(domain, &me, chat, index, count).await?;
                list(domain, &page, true).await
            }
            Request::Chats { token } => {
                let me = domain.service_account(&token).await?;
                chats(domain, &me).await
            }
            Request::Send {
                token,
                chat,
                msg,
                client_id,
            } => {
                let me = domain.service_account(&token).await?;
                let sent = domain
                    .send_text(me.ocid, To::Chat(ChatId(chat)), msg, client_id)
                    .await?;
                Ok(ok(fields(json!({"index": sent.index.0}))))
            }
            Request::Join { token, chat } => {
                let me = domain.service_account(&token).await?;
                let joined = domain.join_group(me.ocid, ChatId(chat), "", None).await?;
                Ok(ok(fields(match joined {
                    Joined::Member => json!({"joined": true}),
                    Joined::Requested => json!({"joined": false, "pending": true}),
                })))
            }
            Request::Create {
                token,
                name,
                is_group,
                members,
            } => {
                let me = domain.service_account(&token).await?;
                create(domain, &me, &name, is_group, &members).await
            }
        }
    }

    /// Code 3's page, ascending: at most `count` messages up to `index` (`index` < 0: up to the
    /// newest).
    async fn messages(
        &self,
        domain: &Domain,
        me: &Account,
        chat: u64,
        index: i64,
        count: u32,
    ) -> Result<Vec<Message>, DomainError> {
        let range = match u64::try_from(index) {
            Err(_) => Range::Latest,
            Ok(i) => Range::Before(Index(i.saturating_add(1))),
        };
        let (_, page, _) = domain
            .history(me.ocid, To::Chat(ChatId(chat)), range, count)
            .await?;
        Ok(page)
    }

    /// Code 9's page, ascending: at most `count` messages from `index` up (`index` >= 0), or
    /// the `count` ending at the `-index`-th newest (`index` < 0).
    async fn receive(
        &self,
        domain: &Domain,
        me: &Account,
        chat: u64,
        index: i64,
        count: u32,
    ) -> Result<Vec<Message>, DomainError> {
        let to = To::Chat(ChatId(chat));
        let range = match u64::try_from(index) {
            Ok(i) => Range::After(Index(i.saturating_sub(1))),
            Err(_) if index == -1 => Range::Latest,
            Err(_) => {
                // The newest index first: the page ends `-index - 1` below it.
                let (_, newest, _) = domain.history(me.ocid, to, Range::Latest, 1).await?;
                let Some(last) = newest.last() else {
                    return Ok(Vec::new());
                };
                let back = index.unsigned_abs() - 1;
                if back >= last.index.0 {
                    return Ok(Vec::new());
                }
                Range::Before(Index(last.index.0 - back + 1))
            }
        };
        let (_, page, _) = domain.history(me.ocid, to, range, count).await?;
        Ok(page)
    }
}

/// A code 3 or 9 reply: `page` in its order, each sender named by UUID (and nickname in 9's).
async fn list(domain: &Domain, page: &[Message], names: bool) -> Result<Reply, DomainError> {
    let mut senders: Vec<Ocid> = page.iter().map(|m| m.sender).collect();
    senders.sort_unstable();
    senders.dedup();
    let refs: HashMap<Ocid, (String, String)> = domain
        .account_refs(&senders)
        .await?
        .into_iter()
        .map(|r| (r.ocid, (r.uuid, r.nickname)))
        .collect();
    let values: Vec<Value> = page
        .iter()
        .map(|m| {
            let (uuid, name) = refs
                .get(&m.sender)
                .map_or(("", ""), |(u, n)| (u.as_str(), n.as_str()));
            svc::message_value(
                uuid,
                names.then_some(name),
                &content(m),
                m.index.0,
                m.created_at,
                m.kind == kind::SYSTEM,
            )
        })
        .collect();
    Ok(ok(fields(json!({"values": values}))))
}

/// Code 4: the caller's chats, the most recently active first.
async fn chats(domain: &Domain, me: &Account) -> Result<Reply, DomainError> {
    let entries = domain.chat_list(me.ocid).await?;
    let mut everyone: Vec<Ocid> = entries
        .iter()
        .flat_map(|e| e.chat.members.iter().copied())
        .collect();
    everyone.sort_unstable();
    everyone.dedup();
    let refs: HashMap<Ocid, (String, String)> = domain
        .account_refs(&everyone)
        .await?
        .into_iter()
        .map(|r| (r.ocid, (r.uuid, r.nickname)))
        .collect();
    let values: Vec<Value> = entries
        .iter()
        .map(|e| {
            let is_group = e.chat.kind == crate::store::ChatKind::Group;
            let name = if is_group {
                e.name.as_str()
            } else {
                // A private chat is named after the other member.
                e.chat
                    .peer_of(me.ocid)
                    .and_then(|p| refs.get(&p))
                    .map_or("", |(_, n)| n.as_str())
            };
            let members: Vec<&str> = e
                .chat
                .members
                .iter()
                .filter_map(|o| refs.get(o).map(|(u, _)| u.as_str()))
                .collect();
            svc::chat_value(e.chat.id.0, name, is_group, &members)
        })
        .collect();
    Ok(ok(fields(json!({"values": values}))))
}

/// Code 7: a group with the named members, or the private chat with the one other member.
async fn create(
    domain: &Domain,
    me: &Account,
    name: &str,
    is_group: bool,
    members: &[String],
) -> Result<Reply, DomainError> {
    let mut ocids = Vec::with_capacity(members.len());
    for uuid in members {
        match domain.account_by_uuid(uuid).await {
            Ok(Some(a)) => ocids.push(a.ocid),
            Ok(None) => return Ok(failed(Cause::NoSuchUser)),
            Err(DomainError::Invalid(Invalid::Uuid)) => {
                return Ok(error(
                    400,
                    "each `id` of field `content.member` must be a UUID",
                ));
            }
            Err(e) => return Err(e),
        }
    }
    let chat = if is_group {
        let chat = domain.create_group(me.ocid, &ocids, name).await?;
        // The seed joins a group in one step (code 6) and has no way to answer a request: its
        // groups are open. (Other dialects' groups keep their mode.)
        let open = GroupEdit {
            join_mode: Some(JoinMode::Open),
            ..GroupEdit::default()
        };
        domain.update_group(me.ocid, chat.id, &open).await?;
        chat
    } else {
        let mut others: Vec<Ocid> = ocids.into_iter().filter(|o| *o != me.ocid).collect();
        others.sort_unstable();
        others.dedup();
        match others.as_slice() {
            [peer] => domain.open_private_chat(me.ocid, *peer).await?,
            [] if !members.is_empty() => return Ok(failed(Cause::OwnAccount)),
            _ => return Ok(failed(Cause::OneMemberNeeded)),
        }
    };
    Ok(ok(fields(json!({"chat": chat.id.0}))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Part;
    use natter_proto::MessageId;

    #[test]
    fn content_renders_every_part_in_order() {
        let part = |c: u8, s: &str| Part {
            category: Category(c),
            content: s.into(),
        };
        let m = |parts| Message {
            id: MessageId(1),
            chat: ChatId(1),
            index: Index(1),
            sender: Ocid(1),
            kind: kind::NORMAL,
            parts,
            client_id: None,
            created_at: 0,
        };
        assert_eq!(content(&m(vec![part(0, "hi")])), "hi");
        assert_eq!(
            content(&m(vec![
                part(0, "see"),
                part(1, "f/12"),
                part(3, ""),
                part(9, "x")
            ])),
            "see [image f/12] [file] [attachment x]"
        );
        // A file part as the server writes it: its id.
        let voice = r#"{"duration_ms":900,"id":"abc","kind":"voice","mime":"audio/ogg","name":"n","size":3}"#;
        assert_eq!(
            content(&m(vec![part(2, voice), part(0, "hey")])),
            "[voice abc] hey"
        );
        assert_eq!(
            content(&m(vec![part(4, r#"{"id":"e1","kind":"emoji"}"#)])),
            "[emoji e1]"
        );
        assert_eq!(
            content(&m(vec![part(0, "Ann joined"), part(100, "{}")])),
            "Ann joined"
        );
    }
}
