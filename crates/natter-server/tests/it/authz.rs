//! The authorization matrix: every operation that acts on a group, a chat, an account or a
//! file, performed by each role, through every dialect that has it.
//!
//! One table ([`expected`]) says for each operation and role whether it is allowed; it is the
//! same for every dialect, because the permission lives in the core. Each dialect has an
//! adapter (`V1`, `V0`, `Pipe`, `Svc`, `Rest`) that performs an operation as a role over that
//! dialect's exact wire and classifies the reply as allowed or refused; where a dialect has no
//! such operation its adapter says so ([`Outcome::Absent`]), and the test checks that every
//! dialect performs at least the operations listed for it. A reply that is neither a success
//! nor a refusal for lack of permission (a malformed request, a server failure) fails the test.
//!
//! The world: `owner` created the group with `admin`, `coadmin`, `member`, `victim` and
//! `banned` (all its friends, so every add is consented), made `admin` and `coadmin` admins,
//! set the group to join by approval, said "hello" in it, and removed `banned`; `joiner` asks
//! to join. `peer` is an account outside the group; it wrote to `victim`. `blocked` is blocked
//! by both `owner` and `peer`; `stranger` has no relation to anyone; `anonymous` is not logged
//! in (or carries no valid credential). `pal` is the friend of `member`, `admin`, `owner` and
//! `banned`, and keeps the product's default consent to groups (friends may add it).
//! `outsider` asked `peer` to be friends. The quotas between accounts are off (they are tested
//! on their own), so that the matrix's many groups and requests measure permissions only. Each
//! operation runs on a fresh group, so that one that changes it (a kick, a disband) does not
//! change the next.
//!
//! A request with no reply on success (typing) is judged by its effect: the other side must
//! hear it before the notice of an account that may type, sent after it.

use crate::common::http::{Reply, request};
use crate::common::{Client, TestServer, User, befriend_v1, frame, int, string, user_v1};
use crate::files::{png, upload};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use natter_client::ourchat::v1;
use natter_client::pipe;
use natter_server::domain::GroupAdds;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Role {
    Anonymous,
    Stranger,
    Blocked,
    Member,
    Admin,
    Owner,
    Banned,
}

const ROLES: [Role; 7] = [
    Role::Anonymous,
    Role::Stranger,
    Role::Blocked,
    Role::Member,
    Role::Admin,
    Role::Owner,
    Role::Banned,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// Send a text to the group.
    SendToGroup,
    /// Read the group's history.
    GroupHistory,
    /// See who the group's members are.
    GroupMembers,
    /// Rename the group.
    RenameGroup,
    /// Invite an outsider to the group (which joins by approval).
    Invite,
    /// List the group's join requests.
    JoinRequests,
    /// Accept `joiner`'s request.
    AnswerJoin,
    /// Remove `victim`.
    Kick,
    /// Remove `coadmin`, a second admin (an admin removes members only; the owner anyone).
    KickAdmin,
    /// Make `victim` an admin.
    SetAdmin,
    /// Hand the group to `victim`.
    Transfer,
    Disband,
    Leave,
    /// Ask to join (the group joins by approval: a request is stored).
    Join,
    /// Mark the group read up to its first message.
    MarkRead,
    /// Download a picture `owner` sent in the group.
    ReadGroupFile,
    /// Send a private text to `peer`.
    SendToPeer,
    /// Read `peer`'s public profile.
    PeerProfile,
    /// Send into the private chat of `peer` and `victim`, named by its chat id.
    SendInOthersPrivateChat,
    /// Ask `peer` to be friends.
    FriendRequestToPeer,
    /// Ask for `peer`'s account values (v1 code 10).
    AccountInfoOfPeer,
    /// List one's own groups or chats.
    OwnChats,
    /// Create a group of one's own.
    CreateGroup,
    /// Say one types in the group (no reply on success: the effect is observed by `victim`,
    /// a member, who receives the notice or not).
    TypeInGroup,
    /// Say one types to `peer` (observed by `peer`).
    TypeToPeer,
    /// Accept an invitation to the group; an admin invited every outsider role (`stranger`,
    /// `blocked`, `banned`), and a member has none.
    AcceptInvitation,
    /// Give `pal` a remark; `pal` is the friend of `member`, `admin`, `owner` and `banned`.
    SetRemark,
    /// End the friendship with `pal` (restored after each success).
    EndFriendship,
    /// Put `pal` into a new group of one's own: `pal` keeps the default `group_adds`
    /// (friends), so only its friends add it; anyone else's group invites it instead.
    AddToGroup,
    /// Upload a file of one's own.
    UploadFile,
    /// Send a picture of one's own to the group as a file message.
    SendFileToGroup,
    /// Send the picture `owner` sent in the group on to `outsider` (a member of a chat a file
    /// was sent in may send it on).
    ForwardGroupFile,
    /// Offer `peer` a file to fetch from the offerer (the pipe dialect's peer-to-peer offer).
    OfferFileToPeer,
    /// Answer the friend request `outsider` made to `peer` (one answers only requests made
    /// to oneself).
    AnswerOthersFriendRequest,
    /// Change `peer`'s profile.
    EditOthersProfile,
    /// Read `peer`'s email address or phone number (only the account itself sees them, and in
    /// REST its friends its phone; `peer` has no friends).
    PeerContact,
    /// Read the history of the private chat of `peer` and `victim`, named by its chat id.
    ReadOthersPrivateChat,
}

const OPS: [Op; 37] = [
    Op::SendToGroup,
    Op::GroupHistory,
    Op::GroupMembers,
    Op::RenameGroup,
    Op::Invite,
    Op::JoinRequests,
    Op::AnswerJoin,
    Op::Kick,
    Op::KickAdmin,
    Op::SetAdmin,
    Op::Transfer,
    Op::Disband,
    Op::Leave,
    Op::Join,
    Op::MarkRead,
    Op::ReadGroupFile,
    Op::SendToPeer,
    Op::PeerProfile,
    Op::SendInOthersPrivateChat,
    Op::FriendRequestToPeer,
    Op::AccountInfoOfPeer,
    Op::OwnChats,
    Op::CreateGroup,
    Op::TypeInGroup,
    Op::TypeToPeer,
    Op::AcceptInvitation,
    Op::SetRemark,
    Op::EndFriendship,
    Op::AddToGroup,
    Op::UploadFile,
    Op::SendFileToGroup,
    Op::ForwardGroupFile,
    Op::OfferFileToPeer,
    Op::AnswerOthersFriendRequest,
    Op::EditOthersProfile,
    Op::PeerContact,
    Op::ReadOthersPrivateChat,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Allowed,
    Denied,
    /// The dialect has no such operation.
    Absent,
}

use Outcome::{Allowed as A, Denied as D};

/// The one table of expectations: may `role` do `op`?
fn expected(op: Op, role: Role) -> Outcome {
    // anonymous, stranger, blocked, member, admin, owner, banned
    let row: [Outcome; 7] = match op {
        Op::SendToGroup
        | Op::GroupHistory
        | Op::GroupMembers
        | Op::MarkRead
        | Op::TypeInGroup
        | Op::SendFileToGroup
        | Op::ForwardGroupFile => [D, D, D, A, A, A, D],
        Op::ReadGroupFile => [D, D, D, A, A, A, D],
        Op::RenameGroup | Op::Invite | Op::JoinRequests | Op::AnswerJoin | Op::Kick => {
            [D, D, D, D, A, A, D]
        }
        Op::KickAdmin | Op::SetAdmin | Op::Transfer | Op::Disband => [D, D, D, D, D, A, D],
        // The owner must hand the group over first.
        Op::Leave => [D, D, D, A, A, D, D],
        // Anyone outside may ask (a removed member too); members already are.
        Op::Join => [D, A, A, D, D, D, A],
        // Only the invited accept; members have no invitation to accept.
        Op::AcceptInvitation => [D, A, A, D, D, D, A],
        // `peer` blocks `blocked`; strangers may write (within their limits). A typing notice
        // to an account that blocks the typer goes nowhere (the typer is not told).
        Op::SendToPeer | Op::TypeToPeer | Op::OfferFileToPeer => [D, A, D, A, A, A, A],
        // Only `pal`'s friends.
        Op::SetRemark | Op::EndFriendship | Op::AddToGroup => [D, D, D, A, A, A, A],
        Op::UploadFile => [D, A, A, A, A, A, A],
        Op::PeerProfile | Op::AccountInfoOfPeer => [D, A, A, A, A, A, A],
        // A request to an account that blocks the caller is answered as sent and goes nowhere
        // (the caller is not told it is blocked).
        Op::FriendRequestToPeer => [D, A, A, A, A, A, A],
        Op::OwnChats | Op::CreateGroup => [D, A, A, A, A, A, A],
        // Nobody but its two members writes to a private chat; nobody answers for another
        // account or changes its profile.
        Op::SendInOthersPrivateChat
        | Op::AnswerOthersFriendRequest
        | Op::EditOthersProfile
        | Op::PeerContact
        | Op::ReadOthersPrivateChat => [D, D, D, D, D, D, D],
    };
    row[ROLES.iter().position(|r| *r == role).expect("a role")]
}

/// One account of the world, with its credentials in every dialect.
struct Acct {
    user: User,
    username: String,
    phone: String,
    uuid: String,
    svc_token: String,
}

const PW: &str = "matrix-pw";

/// Where one operation is performed: a fresh group, and what it holds.
struct Cell {
    group: u64,
    file: Option<String>,
}

struct World {
    addr: SocketAddr,
    pipe_addr: SocketAddr,
    accts: HashMap<&'static str, Acct>,
    /// The private chat of `peer` and `victim`.
    others_chat: u64,
    next_id: u64,
}

fn name_of(role: Role) -> Option<&'static str> {
    Some(match role {
        Role::Anonymous => return None,
        Role::Stranger => "stranger",
        Role::Blocked => "blocked",
        Role::Member => "member",
        Role::Admin => "admin",
        Role::Owner => "owner",
        Role::Banned => "banned",
    })
}

/// Send a v1 request with a fresh `request_id` and return the reply that carries it, passing
/// over every push in between.
async fn ask(c: &mut Client, next_id: &mut u64, mut req: Value) -> Value {
    *next_id += 1;
    let id = format!("r{next_id}");
    req["request_id"] = json!(id);
    c.send_json(&req).await;
    loop {
        let f = c.recv().await;
        if f["request_id"] == json!(id) {
            return f;
        }
    }
}

impl World {
    async fn new(server: &TestServer) -> Self {
        let names = [
            "owner", "admin", "member", "victim", "banned", "stranger", "blocked", "peer",
            "outsider", "joiner", "coadmin", "pal",
        ];
        let mut accts = HashMap::new();
        let mut next_id = 0;
        for (n, name) in names.into_iter().enumerate() {
            let email = format!("{name}@matrix.test");
            let mut user = user_v1(server, &email, name, PW).await;
            let username = format!("m_{name}");
            let phone = format!("1380000{:04}", n + 1);
            let r = ask(
                &mut user.client,
                &mut next_id,
                json!({"code": 124, "username": username, "phone": phone}),
            )
            .await;
            assert_eq!(r["code"], json!(125), "{r}");
            let svc_token = format!("svc-token-of-{name}");
            let r = ask(
                &mut user.client,
                &mut next_id,
                json!({"code": 189, "token": svc_token, "password": PW}),
            )
            .await;
            assert_eq!(r["code"], json!(190), "{r}");
            let ocid = user.ocid;
            let r = ask(
                &mut user.client,
                &mut next_id,
                json!({"code": 10, "ocid": ocid, "request_values": ["uuid"]}),
            )
            .await;
            let uuid = string(&r["data"]["uuid"]);
            accts.insert(
                name,
                Acct {
                    user,
                    username,
                    phone,
                    uuid,
                    svc_token,
                },
            );
        }
        let mut world = Self {
            addr: server.addr,
            pipe_addr: server.pipe,
            accts,
            others_chat: 0,
            next_id,
        };
        // The owner's friends, so that putting them in its groups is consented.
        for friend in ["admin", "coadmin", "member", "victim", "banned"] {
            let mut owner = world.accts.remove("owner").expect("owner");
            let mut other = world.accts.remove(friend).expect("friend");
            befriend_v1(&mut owner.user, &mut other.user).await;
            world.accts.insert("owner", owner);
            world.accts.insert(friend, other);
        }
        for friend in ["member", "admin", "owner", "banned"] {
            world.befriend(friend, "pal").await;
        }
        let peer = world.ocid("peer");
        let r = world
            .v1_ask("outsider", json!({"code": 111, "ocid": peer, "msg": "hi"}))
            .await;
        assert_eq!(r["code"], json!(112), "{r}");
        let blocked = world.ocid("blocked");
        for blocker in ["owner", "peer"] {
            let r = world
                .v1_ask(
                    blocker,
                    json!({"code": 146, "ocid": blocked, "block": true}),
                )
                .await;
            assert_eq!(r["code"], json!(147), "{r}");
        }
        // The private chat of peer and victim, by its id (as the service-code dialect names it).
        let victim_uuid = world.accts["victim"].uuid.clone();
        let r = world
            .svc(
                "peer",
                7,
                json!({"name": "", "is_group": false, "member": [{"id": victim_uuid}]}),
            )
            .await;
        world.others_chat = int(&r.json()["content"]["chat"]);
        let victim = world.ocid("victim");
        let r = world
            .v1_ask(
                "peer",
                json!({"code": 0, "sender": {"private_id": victim}, "msg": "between us"}),
            )
            .await;
        assert_eq!(r["code"], json!(103), "{r}");
        world
    }

    fn ocid(&self, name: &str) -> u64 {
        self.accts[name].user.ocid
    }

    /// Make `a` and `b` friends: `a` asks, `b` accepts.
    async fn befriend(&mut self, a: &str, b: &str) {
        let (a_id, b_id) = (self.ocid(a), self.ocid(b));
        let r = self
            .v1_ask(a, json!({"code": 111, "ocid": b_id, "msg": "hi"}))
            .await;
        assert_eq!(r["code"], json!(112), "{r}");
        let r = self
            .v1_ask(b, json!({"code": 113, "ocid": a_id, "accept": true}))
            .await;
        assert_eq!(r["code"], json!(114), "{r}");
    }

    /// Whether `name` is a member of `group`, as the group's profile tells it.
    async fn is_member(&mut self, name: &str, group: u64) -> bool {
        let r = self
            .v1_ask(name, json!({"code": 150, "group_id": group}))
            .await;
        assert_eq!(r["code"], json!(151), "{r}");
        !r["group"]["role"].is_null()
    }

    async fn v1_ask(&mut self, name: &str, req: Value) -> Value {
        let acct = self.accts.get_mut(name).expect("an account");
        ask(&mut acct.user.client, &mut self.next_id, req).await
    }

    /// A service-code request of `name` (or with a token nobody has).
    async fn svc(&self, name: &str, code: i64, mut content: Value) -> Reply {
        let token = self
            .accts
            .get(name)
            .map_or("no-such-service-token".to_owned(), |a| a.svc_token.clone());
        content["token"] = json!(token);
        let body = json!({"service_code": code, "content": content}).to_string();
        request(
            self.addr,
            "POST",
            "/svc",
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
        .await
    }

    /// A fresh group, set up as the module's doc says.
    async fn cell(&mut self, op: Op) -> Cell {
        let members: Vec<u64> = ["admin", "coadmin", "member", "victim", "banned"]
            .iter()
            .map(|n| self.ocid(n))
            .collect();
        let r = self
            .v1_ask("owner", frame(&v1::new_group(&members, Some("matrix"))))
            .await;
        assert_eq!(r["success"], json!(true), "{r}");
        let group = int(&r["group_id"]);
        let r = self
            .v1_ask(
                "owner",
                json!({"code": 152, "group_id": group, "join_mode": 1}),
            )
            .await;
        assert_eq!(r["code"], json!(153), "{r}");
        for admin in ["admin", "coadmin"] {
            let admin = self.ocid(admin);
            let r = self
                .v1_ask(
                    "owner",
                    json!({"code": 170, "group_id": group, "ocid": admin, "admin": true}),
                )
                .await;
            assert_eq!(r["code"], json!(171), "{r}");
        }
        let r = self
            .v1_ask(
                "owner",
                json!({"code": 0, "sender": {"group_id": group}, "msg": "hello"}),
            )
            .await;
        assert_eq!(r["code"], json!(103), "{r}");
        let banned = self.ocid("banned");
        let r = self
            .v1_ask(
                "owner",
                json!({"code": 168, "group_id": group, "ocid": banned}),
            )
            .await;
        assert_eq!(r["code"], json!(169), "{r}");
        let r = self
            .v1_ask(
                "joiner",
                json!({"code": 154, "group_id": group, "msg": "let me in"}),
            )
            .await;
        assert_eq!(r["code"], json!(155), "{r}");
        if op == Op::JoinRequests {
            // A second request, so that the list of the group's requests is never one line
            // like a live push of one.
            let r = self
                .v1_ask(
                    "outsider",
                    json!({"code": 154, "group_id": group, "msg": "me too"}),
                )
                .await;
            assert_eq!(r["code"], json!(155), "{r}");
        }
        if op == Op::AcceptInvitation {
            for invitee in ["stranger", "blocked", "banned"] {
                let invitee = self.ocid(invitee);
                let r = self
                    .v1_ask(
                        "admin",
                        json!({"code": 160, "group_id": group, "ocid": invitee}),
                    )
                    .await;
                assert_eq!(r["code"], json!(161), "{r}");
            }
        }
        let file = if matches!(op, Op::ReadGroupFile | Op::ForwardGroupFile) {
            let token = self.accts["owner"].user.token.clone();
            let id = upload(self.addr, &token, "p.png", "image/png", &png(2, 2, 64)).await;
            let r = self
                .v1_ask(
                    "owner",
                    json!({"code": 2, "sender": {"group_id": group}, "file": {"id": id}, "msg": ""}),
                )
                .await;
            assert_eq!(r["code"], json!(103), "{r}");
            Some(id)
        } else {
            None
        };
        Cell { group, file }
    }
}

/// A dialect's way of performing operations.
trait Adapter {
    const NAME: &'static str;
    /// The operations this dialect has (the rest must answer [`Outcome::Absent`]).
    const HAS: &'static [Op];
    async fn perform(&mut self, w: &mut World, op: Op, role: Role, cell: &Cell) -> Outcome;
}

/// Run the whole matrix over one dialect.
async fn run<T: Adapter>(adapter: &mut T) {
    let server = TestServer::start_with(|c| {
        // The product's default consent to groups (the harness lets anyone add by default).
        c.limits.group_adds = GroupAdds::Friends;
        let abuse = &mut c.limits.abuse;
        for quota in [
            &mut abuse.groups,
            &mut abuse.members,
            &mut abuse.friend_requests,
            &mut abuse.lookups,
        ] {
            quota.max = 0;
        }
    })
    .await;
    let mut world = World::new(&server).await;
    let mut failures = Vec::new();
    let mut checked = 0;
    for op in OPS {
        for role in ROLES {
            let cell = world.cell(op).await;
            let got = adapter.perform(&mut world, op, role, &cell).await;
            if op == Op::EndFriendship && got == Outcome::Allowed {
                let name = name_of(role).expect("an account ended a friendship");
                world.befriend(name, "pal").await;
            }
            let want = if T::HAS.contains(&op) {
                expected(op, role)
            } else {
                Outcome::Absent
            };
            if got != want {
                failures.push(format!(
                    "{op:?} as {role:?}: expected {want:?}, got {got:?}"
                ));
            }
            checked += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{}: {} of {checked} cells differ from the table:\n{}",
        T::NAME,
        failures.len(),
        failures.join("\n")
    );
}

/// The error names that mean "not allowed" (rather than "asked wrongly").
const REFUSALS: &[&str] = &[
    "not_logged_in",
    "not_a_member",
    "forbidden",
    "no_such_chat",
    "no_such_file",
    "already_member",
    "owner_cannot_leave",
    "blocking",
    "not_accepted",
    "invalid_token",
    "blocked",
    "no_such_invitation",
    "not_friends",
    "no_such_request",
];

// ---------------------------------------------------------------------------------------------
// OurChat v1.

struct V1 {
    anonymous: Option<Client>,
}

impl V1 {
    async fn as_role(&mut self, w: &mut World, role: Role, req: Value) -> Value {
        match name_of(role) {
            Some(name) => w.v1_ask(name, req).await,
            None => {
                if self.anonymous.is_none() {
                    self.anonymous = Some(Client::connect(w.addr, v1::PATH).await);
                }
                let c = self.anonymous.as_mut().expect("an anonymous connection");
                ask(c, &mut w.next_id, req).await
            }
        }
    }

    /// Send `req`, which has no reply on success, as `role`: whether it was refused.
    async fn silent(&mut self, w: &mut World, role: Role, req: Value) -> bool {
        if self.anonymous.is_none() {
            self.anonymous = Some(Client::connect(w.addr, v1::PATH).await);
        }
        let c = match name_of(role) {
            Some(name) => &mut w.accts.get_mut(name).expect("an account").user.client,
            None => self.anonymous.as_mut().expect("an anonymous connection"),
        };
        silent(c, &mut w.next_id, req).await
    }

    /// Say `role` types in `chat` (`{"group_id": ..}` or `{"private_id": ..}`), and then
    /// `marker`, who may: allowed when `observer` hears `role` before it hears `marker`
    /// (requests of one connection are handled in order, and `role`'s was handled before
    /// `marker` typed).
    async fn typing(
        &mut self,
        w: &mut World,
        role: Role,
        chat: Value,
        observer: &str,
        marker: &str,
    ) -> Outcome {
        let mut req = chat.clone();
        req["code"] = json!(121);
        self.silent(w, role, req.clone()).await;
        let c = &mut w.accts.get_mut(marker).expect("the marker").user.client;
        assert!(
            !silent(c, &mut w.next_id, req).await,
            "{marker} may type in {chat}"
        );
        let typer = name_of(role).map(|n| w.ocid(n));
        let marker_id = w.ocid(marker);
        let group = chat.get("group_id").cloned();
        let obs = &mut w.accts.get_mut(observer).expect("the observer").user.client;
        let mut heard = false;
        loop {
            let f = obs
                .recv_within(Duration::from_secs(30))
                .await
                .unwrap_or_else(|| panic!("{observer} never heard {marker} type in {chat}"));
            if f["code"] != json!(122) || f["sender"].get("group_id").cloned() != group {
                continue;
            }
            let from = f["sender"]["ocid"].as_u64();
            heard |= from.is_some() && from == typer;
            if from == Some(marker_id) {
                return if heard {
                    Outcome::Allowed
                } else {
                    Outcome::Denied
                };
            }
        }
    }
}

/// Send a v1 request that has no reply on success, then a heartbeat: whether a refusal of the
/// request came before the heartbeat's reply.
async fn silent(c: &mut Client, next_id: &mut u64, mut req: Value) -> bool {
    *next_id += 2;
    let (id, beat) = (format!("r{}", *next_id - 1), format!("r{next_id}"));
    req["request_id"] = json!(id);
    c.send_json(&req).await;
    c.send_json(&json!({"code": 107, "request_id": beat})).await;
    let mut refused = false;
    loop {
        let f = c.recv().await;
        if f["request_id"] == json!(id) {
            assert_eq!(f["code"], json!(100), "{f}");
            let name = string(&crate::common::error_body(&f)["error"]);
            assert!(REFUSALS.contains(&name.as_str()), "not a refusal: {f}");
            refused = true;
        } else if f["request_id"] == json!(beat) {
            return refused;
        }
    }
}

/// A v1 reply: the expected code is success, code 100 with a refusal's name is a denial.
fn v1_outcome(r: &Value, success: i64) -> Outcome {
    match r["code"].as_i64() {
        // Code 9 says a refusal in `success` (the `state` of codes 112 and 155 is no refusal).
        Some(c) if c == success && r["success"] == json!(false) => Outcome::Denied,
        Some(c) if c == success => Outcome::Allowed,
        Some(100) => {
            let name = string(&crate::common::error_body(r)["error"]);
            assert!(REFUSALS.contains(&name.as_str()), "not a refusal: {r}");
            Outcome::Denied
        }
        _ => panic!("expected code {success} or 100, got {r}"),
    }
}

impl Adapter for V1 {
    const NAME: &'static str = "OurChat v1";
    const HAS: &'static [Op] = &[
        Op::SendToGroup,
        Op::GroupHistory,
        Op::GroupMembers,
        Op::RenameGroup,
        Op::Invite,
        Op::JoinRequests,
        Op::AnswerJoin,
        Op::Kick,
        Op::KickAdmin,
        Op::SetAdmin,
        Op::Transfer,
        Op::Disband,
        Op::Leave,
        Op::Join,
        Op::MarkRead,
        Op::ReadGroupFile,
        Op::SendToPeer,
        Op::PeerProfile,
        Op::FriendRequestToPeer,
        Op::AccountInfoOfPeer,
        Op::OwnChats,
        Op::CreateGroup,
        Op::TypeInGroup,
        Op::TypeToPeer,
        Op::AcceptInvitation,
        Op::SetRemark,
        Op::EndFriendship,
        Op::AddToGroup,
        Op::UploadFile,
        Op::AnswerOthersFriendRequest,
        Op::SendFileToGroup,
        Op::ForwardGroupFile,
        Op::PeerContact,
    ];

    async fn perform(&mut self, w: &mut World, op: Op, role: Role, cell: &Cell) -> Outcome {
        let g = cell.group;
        let pal = w.ocid("pal");
        let victim = w.ocid("victim");
        let peer = w.ocid("peer");
        let (req, success) = match op {
            Op::SendToGroup => (
                json!({"code": 0, "sender": {"group_id": g}, "msg": "hi"}),
                103,
            ),
            Op::GroupHistory => (json!({"code": 104, "group_id": g}), 105),
            Op::GroupMembers => {
                let r = self
                    .as_role(w, role, json!({"code": 150, "group_id": g}))
                    .await;
                if r["code"] == json!(151) {
                    // Anyone may look a group up; its members are shown to members only.
                    return if r["group"]["members"]
                        .as_array()
                        .is_some_and(|m| !m.is_empty())
                    {
                        Outcome::Allowed
                    } else {
                        Outcome::Denied
                    };
                }
                return v1_outcome(&r, 151);
            }
            Op::RenameGroup => (json!({"code": 152, "group_id": g, "name": "renamed"}), 153),
            Op::Invite => (
                json!({"code": 160, "group_id": g, "ocid": w.ocid("outsider")}),
                161,
            ),
            Op::JoinRequests => (json!({"code": 158, "group_id": g}), 159),
            Op::AnswerJoin => (
                json!({"code": 156, "group_id": g, "ocid": w.ocid("joiner"), "accept": true}),
                157,
            ),
            Op::Kick => (json!({"code": 168, "group_id": g, "ocid": victim}), 169),
            Op::KickAdmin => (
                json!({"code": 168, "group_id": g, "ocid": w.ocid("coadmin")}),
                169,
            ),
            Op::SetAdmin => (
                json!({"code": 170, "group_id": g, "ocid": victim, "admin": true}),
                171,
            ),
            Op::Transfer => (json!({"code": 172, "group_id": g, "ocid": victim}), 173),
            Op::Disband => (json!({"code": 174, "group_id": g}), 175),
            Op::Leave => (json!({"code": 166, "group_id": g}), 167),
            Op::Join => (json!({"code": 154, "group_id": g, "msg": "me too"}), 155),
            Op::MarkRead => (json!({"code": 184, "group_id": g, "index": 1}), 185),
            Op::ReadGroupFile => {
                let id = cell.file.as_deref().expect("a file");
                let token = name_of(role).map(|n| w.accts[n].user.token.clone());
                let auth = token.map(|t| format!("Bearer {t}"));
                let headers: Vec<(&str, &str)> =
                    auth.iter().map(|a| ("Authorization", a.as_str())).collect();
                let r = request(w.addr, "GET", &format!("/files/{id}"), &headers, b"").await;
                return http_outcome(&r);
            }
            Op::SendToPeer => (
                json!({"code": 0, "sender": {"private_id": w.ocid("peer")}, "msg": "hi"}),
                103,
            ),
            Op::PeerProfile => (json!({"code": 126, "ocid": peer}), 127),
            Op::FriendRequestToPeer => (json!({"code": 111, "ocid": peer, "msg": "hi"}), 112),
            Op::AccountInfoOfPeer => (
                json!({"code": 10, "ocid": peer, "request_values": ["ocid", "nickname"]}),
                11,
            ),
            Op::OwnChats => (json!({"code": 176}), 177),
            Op::CreateGroup => (frame(&v1::new_group(&[], Some("mine"))), 9),
            Op::TypeInGroup => {
                let chat = json!({"group_id": g});
                return self.typing(w, role, chat, "victim", "coadmin").await;
            }
            Op::TypeToPeer => {
                let chat = json!({"private_id": peer});
                return self.typing(w, role, chat, "peer", "outsider").await;
            }
            Op::AcceptInvitation => (json!({"code": 162, "group_id": g, "accept": true}), 163),
            Op::SetRemark => (json!({"code": 144, "ocid": pal, "remark": "pally"}), 145),
            Op::EndFriendship => (json!({"code": 115, "ocid": pal}), 116),
            Op::AnswerOthersFriendRequest => (
                json!({"code": 113, "ocid": w.ocid("outsider"), "accept": true}),
                114,
            ),
            Op::AddToGroup => {
                let r = self
                    .as_role(w, role, frame(&v1::new_group(&[pal], Some("mine"))))
                    .await;
                if r["code"] == json!(9) && r["success"] == json!(true) {
                    let invited = r["invited"]
                        .as_array()
                        .is_some_and(|i| i.contains(&json!(pal)));
                    return pal_added(w, int(&r["group_id"]), Some(invited)).await;
                }
                return v1_outcome(&r, 9);
            }
            Op::UploadFile => {
                let auth = name_of(role).map(|n| format!("Bearer {}", w.accts[n].user.token));
                let mut headers = vec![("Tus-Resumable", "1.0.0"), ("Upload-Length", "10")];
                if let Some(a) = &auth {
                    headers.push(("Authorization", a.as_str()));
                }
                let r = request(w.addr, "POST", "/files/", &headers, b"").await;
                return match r.status {
                    201 => Outcome::Allowed,
                    401 => Outcome::Denied,
                    s => panic!("unexpected status {s}: {r:?}"),
                };
            }
            Op::PeerContact => {
                // Account values (email) and the profile (email and phone).
                let values =
                    json!({"code": 10, "ocid": peer, "request_values": ["email", "phone"]});
                let r10 = self.as_role(w, role, values).await;
                let r126 = self
                    .as_role(w, role, json!({"code": 126, "ocid": peer}))
                    .await;
                let outcomes = [v1_outcome(&r10, 11), v1_outcome(&r126, 127)];
                assert_eq!(outcomes[0], outcomes[1], "{r10} {r126}");
                let shown = shows_contact(w, &r10) || shows_contact(w, &r126);
                return if outcomes[0] == Outcome::Allowed && shown {
                    Outcome::Allowed
                } else {
                    Outcome::Denied
                };
            }
            Op::SendFileToGroup => {
                let id = own_picture(w, role).await;
                (
                    json!({"code": 2, "sender": {"group_id": g}, "file": {"id": id}, "msg": ""}),
                    103,
                )
            }
            Op::ForwardGroupFile => {
                let id = cell.file.as_deref().expect("a file");
                (
                    json!({"code": 2, "sender": {"private_id": w.ocid("outsider")}, "file": {"id": id}, "msg": ""}),
                    103,
                )
            }
            Op::SendInOthersPrivateChat
            | Op::ReadOthersPrivateChat
            | Op::OfferFileToPeer
            | Op::EditOthersProfile => {
                return Outcome::Absent;
            }
        };
        let r = self.as_role(w, role, req).await;
        v1_outcome(&r, success)
    }
}

/// Whether `reply` shows `peer`'s email address or phone number anywhere.
fn shows_contact(w: &World, reply: &Value) -> bool {
    let text = reply.to_string();
    text.contains("peer@matrix.test") || text.contains(&w.accts["peer"].phone)
}

/// The id of a picture `role` uploaded (one nobody has for anonymous).
async fn own_picture(w: &World, role: Role) -> String {
    match name_of(role) {
        Some(name) => {
            let token = &w.accts[name].user.token;
            upload(w.addr, token, "p.png", "image/png", &png(2, 2, 64)).await
        }
        None => "nofile".to_owned(),
    }
}

/// A new group listing `pal` was made: allowed when `pal` is a member, refused when it was
/// invited instead (a reply that says which must say the same as the group).
async fn pal_added(w: &mut World, group: u64, invited: Option<bool>) -> Outcome {
    let added = w.is_member("pal", group).await;
    if let Some(invited) = invited {
        assert_ne!(added, invited, "pal is either added or invited to {group}");
    }
    if added {
        Outcome::Allowed
    } else {
        Outcome::Denied
    }
}

/// An HTTP file download: 200 is allowed; 401 and 404 (no file the caller may read) are not.
fn http_outcome(r: &Reply) -> Outcome {
    match r.status {
        200 | 206 => Outcome::Allowed,
        401 | 403 | 404 => Outcome::Denied,
        s => panic!(
            "unexpected status {s}: {}",
            String::from_utf8_lossy(&r.body)
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ourchat_v1_matrix() {
    run(&mut V1 { anonymous: None }).await;
}

// ---------------------------------------------------------------------------------------------
// OurChat draft v0.

struct V0 {
    conns: HashMap<Role, Client>,
}

impl Adapter for V0 {
    const NAME: &'static str = "OurChat v0";
    const HAS: &'static [Op] = &[Op::SendToGroup, Op::GroupHistory, Op::SendToPeer];

    async fn perform(&mut self, w: &mut World, op: Op, role: Role, cell: &Cell) -> Outcome {
        let data = match op {
            Op::SendToGroup => json!({"code": 0, "data": {"cid": cell.group, "msg": "hi"}}),
            Op::SendToPeer => json!({"code": 0, "data": {"to": w.ocid("peer"), "msg": "hi"}}),
            Op::GroupHistory => json!({"code": 104, "data": {"cid": cell.group}}),
            _ => return Outcome::Absent,
        };
        if let Entry::Vacant(slot) = self.conns.entry(role) {
            let mut c = Client::connect(w.addr, natter_client::ourchat::v0::PATH).await;
            if let Some(name) = name_of(role) {
                let ocid = w.ocid(name);
                let r = ask(
                    &mut c,
                    &mut w.next_id,
                    json!({"code": 6, "data": {"ocId": ocid, "password": PW, "ext": 1}}),
                )
                .await;
                assert_eq!(r["code"], json!(7), "{r}");
            }
            slot.insert(c);
        }
        let c = self.conns.get_mut(&role).expect("a connection");
        let r = ask(c, &mut w.next_id, data).await;
        let success = if op == Op::GroupHistory { 105 } else { 103 };
        v1_outcome(&r, success)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ourchat_v0_matrix() {
    run(&mut V0 {
        conns: HashMap::new(),
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// The pipe dialect.

struct Pipe {
    conns: HashMap<Role, (pipe::Conn<TcpStream>, String, String)>,
}

impl Pipe {
    /// The connection of `role`, logged in by username (anonymous: a connection that never logs
    /// in, naming the stranger's uid with a token nobody has).
    async fn conn(
        &mut self,
        w: &World,
        role: Role,
    ) -> &mut (pipe::Conn<TcpStream>, String, String) {
        if let Entry::Vacant(slot) = self.conns.entry(role) {
            let conn = pipe::Conn::connect(w.pipe_addr).await.expect("connect");
            let entry = match name_of(role) {
                Some(name) => {
                    let acct = &w.accts[name];
                    let (client, _) = pipe::Client::login(conn, &acct.username, PW)
                        .await
                        .expect("a pipe login");
                    (client.conn, client.uid.to_string(), client.token)
                }
                None => (
                    conn,
                    w.ocid("stranger").to_string(),
                    "no-such-token".to_owned(),
                ),
            };
            slot.insert(entry);
        }
        self.conns.get_mut(&role).expect("a connection")
    }
}

impl Adapter for Pipe {
    const NAME: &'static str = "pipe";
    const HAS: &'static [Op] = &[
        Op::SendToGroup,
        Op::GroupMembers,
        Op::Join,
        Op::AnswerJoin,
        Op::ReadGroupFile,
        Op::SendToPeer,
        Op::PeerProfile,
        Op::FriendRequestToPeer,
        Op::OwnChats,
        Op::CreateGroup,
        Op::EndFriendship,
        Op::SendFileToGroup,
        Op::OfferFileToPeer,
        Op::AnswerOthersFriendRequest,
        Op::EditOthersProfile,
        Op::JoinRequests,
    ];

    async fn perform(&mut self, w: &mut World, op: Op, role: Role, cell: &Cell) -> Outcome {
        let g = cell.group.to_string();
        let peer = w.ocid("peer").to_string();
        let joiner = w.ocid("joiner").to_string();
        let pal = w.ocid("pal").to_string();
        let outsider = w.ocid("outsider").to_string();
        w.next_id += 1;
        let transfer = format!("t{}", w.next_id);
        let picture = STANDARD.encode(png(2, 2, 64));
        let (c, uid, token) = self.conn(w, role).await;
        let (uid, token) = (uid.clone(), token.clone());
        let (command, fields, ok): (&str, Vec<&str>, &[&str]) = match op {
            Op::SendToGroup => (
                "send_message",
                vec!["1", &uid, &g, "0", "hi", &token],
                &["send_message_succ"],
            ),
            Op::SendToPeer => (
                "send_message",
                vec!["0", &uid, &peer, "0", "hi", &token],
                &["send_message_succ"],
            ),
            Op::GroupMembers => ("get_group_info", vec![&uid, &g, &token], &["groupinfo"]),
            Op::Join => (
                "join_group",
                vec![&uid, &g, "me too", &token],
                &["join_group_succ"],
            ),
            Op::AnswerJoin => (
                "hand_group_request",
                vec![&joiner, &g, "1", &token],
                &["hand_group_request_succ"],
            ),
            Op::ReadGroupFile => (
                "get_file",
                vec![&uid, cell.file.as_deref().expect("a file"), &token],
                &["get_file_succ"],
            ),
            Op::PeerProfile => (
                "get_user_info",
                vec![&uid, &peer, &token],
                &["userinfo", "friend_detail_info"],
            ),
            Op::FriendRequestToPeer => (
                "add_friend",
                vec![&uid, &peer, "hi", &token],
                &["add_friend_succ"],
            ),
            Op::OwnChats => ("get_user_group", vec![&uid, &token], &["groupinfo"]),
            Op::CreateGroup => (
                "create_group",
                vec![&uid, "mine", &token],
                &["create_group_succ"],
            ),
            Op::EndFriendship => ("del_friend", vec![&uid, &pal, &token], &["del_friend_succ"]),
            Op::AnswerOthersFriendRequest => (
                "hand_friend_request",
                vec![&uid, &outsider, "1", &token],
                &["hand_friend_request_succ"],
            ),
            // The acting uid is `peer`'s; the token the caller's own.
            Op::EditOthersProfile => (
                "update_profile",
                vec![&peer, &token, "renamed", "", "", "", ""],
                &["update_profile_succ"],
            ),
            // The requests waiting in the groups the caller administers: allowed when the
            // cell's request is among them.
            Op::JoinRequests => ("get_unread_group_request", vec![""], &[]),
            // A picture in one line, to the group (target 1).
            Op::SendFileToGroup => (
                "send_file",
                vec![
                    "0", &uid, &g, "0", &transfer, &picture, &token, "p.png", "0", "1",
                ],
                &["send_file_succ"],
            ),
            Op::OfferFileToPeer => (
                "file",
                vec![&uid, "127.0.0.1", "9000", "a.txt", "10", &peer, &token],
                &["file_succ"],
            ),
            _ => return Outcome::Absent,
        };
        c.send(command, &fields).await.expect("send a line");
        let error = format!("{command}_error");
        loop {
            let line = c
                .recv_within(Duration::from_secs(5))
                .await
                .expect("a readable line")
                .unwrap_or_else(|| panic!("no reply to {command}"));
            if ok.contains(&line[0].as_str()) {
                return Outcome::Allowed;
            }
            // group_request|count|uid|groupid|request|...: a live push of one request has a
            // count of 1; the reply lists at least the cell's two (see `World::cell`).
            if op == Op::JoinRequests && line[0] == "group_request" && line[1] != "1" {
                let listed = line
                    .get(2..)
                    .unwrap_or_default()
                    .chunks(3)
                    .any(|r| r.len() == 3 && r[0] == joiner && r[1] == g);
                return if listed {
                    Outcome::Allowed
                } else {
                    Outcome::Denied
                };
            }
            if line[0] == error {
                let reason = line.get(1).map_or("", String::as_str);
                assert!(
                    REFUSALS.contains(&reason) || reason == "bad_token",
                    "not a refusal: {line:?}"
                );
                return Outcome::Denied;
            }
            // A push (a message, a request) before the reply.
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipe_matrix() {
    run(&mut Pipe {
        conns: HashMap::new(),
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// The service-code dialect.

struct Svc;

impl Adapter for Svc {
    const NAME: &'static str = "service codes";
    const HAS: &'static [Op] = &[
        Op::SendToGroup,
        Op::GroupHistory,
        Op::Join,
        Op::SendInOthersPrivateChat,
        Op::OwnChats,
        Op::CreateGroup,
        Op::AddToGroup,
        Op::ReadOthersPrivateChat,
    ];

    async fn perform(&mut self, w: &mut World, op: Op, role: Role, cell: &Cell) -> Outcome {
        let g = cell.group;
        if op == Op::AddToGroup {
            let pal = w.accts["pal"].uuid.clone();
            let content = json!({"name": "mine", "is_group": true, "member": [{"id": pal}]});
            let r = w
                .svc(name_of(role).unwrap_or("nobody"), 7, content.clone())
                .await;
            if r.status == 200 && r.json()["content"]["msg"] == json!("success") {
                return pal_added(w, int(&r.json()["content"]["chat"]), None).await;
            }
            return svc_outcome(w, role, 7, content).await;
        }
        let (code, content) = match op {
            Op::OwnChats => (4, json!({})),
            Op::CreateGroup => (7, json!({"name": "mine", "is_group": true, "member": []})),
            Op::SendToGroup => (5, json!({"chat": g, "msg": "hi"})),
            Op::GroupHistory => (3, json!({"chat": g, "index": -1, "count": 10})),
            Op::ReadOthersPrivateChat => {
                (3, json!({"chat": w.others_chat, "index": -1, "count": 10}))
            }
            Op::Join => (6, json!({"chat": g})),
            Op::SendInOthersPrivateChat => (5, json!({"chat": w.others_chat, "msg": "hi"})),
            _ => return Outcome::Absent,
        };
        let outcome = svc_outcome(w, role, code, content.clone()).await;
        if matches!(op, Op::GroupHistory | Op::ReadOthersPrivateChat) {
            // Code 9 pages the other way; it must be allowed to the same roles.
            assert_eq!(
                svc_outcome(w, role, 9, content).await,
                outcome,
                "code 9 as {role:?}"
            );
        }
        outcome
    }
}

/// A service-code request as `role`: success, or a refusal (a cause, or 401 for a token that is
/// nobody's).
async fn svc_outcome(w: &World, role: Role, code: i64, content: Value) -> Outcome {
    let r = w
        .svc(name_of(role).unwrap_or("nobody"), code, content)
        .await;
    let body = r.json();
    match (r.status, body["content"]["msg"].as_str()) {
        (200, Some("success")) => Outcome::Allowed,
        (200, Some("failed")) => {
            let cause = string(&body["content"]["cause"]);
            assert!(REFUSALS.contains(&cause.as_str()), "not a refusal: {body}");
            Outcome::Denied
        }
        (401 | 403, _) => Outcome::Denied,
        _ => panic!("unexpected reply {}: {body}", r.status),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_code_matrix() {
    run(&mut Svc).await;
}

// ---------------------------------------------------------------------------------------------
// The REST dialect.

struct Rest {
    sessions: HashMap<Role, String>,
}

impl Rest {
    async fn cookie(&mut self, w: &World, role: Role) -> Option<String> {
        let name = name_of(role)?;
        if let Entry::Vacant(slot) = self.sessions.entry(role) {
            let acct = &w.accts[name];
            let body = json!({"phone": acct.phone, "password": PW}).to_string();
            let r = request(
                w.addr,
                "POST",
                "/api/login",
                &[("Content-Type", "application/json")],
                body.as_bytes(),
            )
            .await;
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            let cookie = r
                .header("set-cookie")
                .and_then(|c| c.split(';').next())
                .expect("a session cookie")
                .to_owned();
            slot.insert(cookie);
        }
        self.sessions.get(&role).cloned()
    }
}

impl Adapter for Rest {
    const NAME: &'static str = "REST";
    const HAS: &'static [Op] = &[
        Op::SendToGroup,
        Op::ReadGroupFile,
        Op::SendToPeer,
        Op::PeerProfile,
        Op::SendInOthersPrivateChat,
        Op::FriendRequestToPeer,
        Op::CreateGroup,
        Op::GroupHistory,
        Op::Join,
        Op::JoinRequests,
        Op::AnswerJoin,
        Op::SetRemark,
        Op::EndFriendship,
        Op::AddToGroup,
        Op::UploadFile,
        Op::AnswerOthersFriendRequest,
        Op::EditOthersProfile,
        Op::SendFileToGroup,
        Op::ForwardGroupFile,
        Op::PeerContact,
        Op::ReadOthersPrivateChat,
    ];

    async fn perform(&mut self, w: &mut World, op: Op, role: Role, cell: &Cell) -> Outcome {
        let text = json!([{"category": 0, "content": "hi"}]);
        let g = cell.group;
        let pal = w.ocid("pal");
        let (method, path, body) = match op {
            Op::GroupHistory => ("GET", format!("/api/message?chatId={g}"), Value::Null),
            Op::ReadOthersPrivateChat => (
                "GET",
                format!("/api/message?chatId={}", w.others_chat),
                Value::Null,
            ),
            Op::SendFileToGroup => {
                let id = own_picture(w, role).await;
                (
                    "POST",
                    "/api/message".to_owned(),
                    json!({"chatId": g.to_string(), "type": 1,
                           "info": [{"category": 1, "content": format!("/files/{id}")}]}),
                )
            }
            Op::ForwardGroupFile => {
                let id = cell.file.as_deref().expect("a file");
                (
                    "POST",
                    "/api/message".to_owned(),
                    json!({"chatId": "", "toId": w.ocid("outsider").to_string(), "type": 1,
                           "info": [{"category": 1, "content": format!("/files/{id}")}]}),
                )
            }
            Op::Join => (
                "POST",
                format!("/api/group/{g}/join"),
                json!({"request": "me too"}),
            ),
            Op::JoinRequests => ("GET", format!("/api/group/{g}/requests"), Value::Null),
            Op::AnswerJoin => (
                "POST",
                format!("/api/group/{g}/requests/{}", w.ocid("joiner")),
                json!({"accept": true}),
            ),
            Op::SetRemark => (
                "POST",
                format!("/api/friends/{pal}"),
                json!({"alias": "pally"}),
            ),
            Op::EndFriendship => ("DELETE", format!("/api/friends/{pal}"), Value::Null),
            // Says no to a request of `outsider` to the caller: there is none.
            Op::AnswerOthersFriendRequest => (
                "DELETE",
                format!("/api/friends/{}", w.ocid("outsider")),
                Value::Null,
            ),
            Op::EditOthersProfile => (
                "POST",
                "/api/user".to_owned(),
                json!({"userId": w.ocid("peer").to_string(), "desc": "renamed"}),
            ),
            Op::AddToGroup => (
                "POST",
                "/api/group".to_owned(),
                json!({"name": "mine", "members": [pal.to_string()]}),
            ),
            Op::UploadFile => (
                "POST",
                "/api/file".to_owned(),
                json!({"name": "p.png", "content": STANDARD.encode(png(2, 2, 64))}),
            ),
            Op::SendToGroup => (
                "POST",
                "/api/message".to_owned(),
                json!({"chatId": cell.group.to_string(), "type": 1, "info": text}),
            ),
            Op::SendToPeer => (
                "POST",
                "/api/message".to_owned(),
                json!({"toId": w.ocid("peer").to_string(), "type": 1, "info": text}),
            ),
            Op::SendInOthersPrivateChat => (
                "POST",
                "/api/message".to_owned(),
                json!({"chatId": w.others_chat.to_string(), "type": 1, "info": text}),
            ),
            Op::PeerProfile | Op::PeerContact => {
                ("GET", format!("/api/user/{}", w.ocid("peer")), Value::Null)
            }
            Op::FriendRequestToPeer => (
                "GET",
                format!("/api/friends/{}", w.ocid("peer")),
                Value::Null,
            ),
            Op::CreateGroup => (
                "POST",
                "/api/group".to_owned(),
                json!({"name": "mine", "members": []}),
            ),
            Op::ReadGroupFile => (
                "GET",
                format!("/files/{}", cell.file.as_deref().expect("a file")),
                Value::Null,
            ),
            _ => return Outcome::Absent,
        };
        let cookie = self.cookie(w, role).await;
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(c) = &cookie {
            headers.push(("Cookie", c.as_str()));
        }
        let body = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        let r = request(w.addr, method, &path, &headers, body.as_bytes()).await;
        if op == Op::ReadGroupFile {
            return http_outcome(&r);
        }
        let v = r.json();
        match (r.status, v["status"].as_i64()) {
            (200, Some(1)) if op == Op::AddToGroup => {
                let group = v["result"]["id"]
                    .as_str()
                    .and_then(|id| id.parse().ok())
                    .unwrap_or_else(|| panic!("a group id: {v}"));
                let listed = v["result"]["memberIds"]
                    .as_array()
                    .is_some_and(|m| m.contains(&json!(pal.to_string())));
                pal_added(w, group, Some(!listed)).await
            }
            (200, Some(1)) if op == Op::PeerContact => {
                if shows_contact(w, &v) {
                    Outcome::Allowed
                } else {
                    Outcome::Denied
                }
            }
            (200, Some(1)) => Outcome::Allowed,
            // 409: joining a group one is a member of.
            (401 | 403 | 404 | 409, _) => Outcome::Denied,
            _ => panic!("unexpected reply {}: {v}", r.status),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_matrix() {
    run(&mut Rest {
        sessions: HashMap::new(),
    })
    .await;
}

/// The table itself: what no dialect may ever allow.
#[test]
fn the_table_refuses_what_no_role_may_do() {
    for op in OPS {
        assert_eq!(expected(op, Role::Anonymous), Outcome::Denied, "{op:?}");
        assert_eq!(
            expected(op, Role::Banned) == Outcome::Allowed,
            matches!(
                op,
                Op::Join
                    | Op::SendToPeer
                    | Op::PeerProfile
                    | Op::FriendRequestToPeer
                    | Op::AccountInfoOfPeer
                    | Op::OwnChats
                    | Op::CreateGroup
                    | Op::TypeToPeer
                    | Op::AcceptInvitation
                    | Op::SetRemark
                    | Op::EndFriendship
                    | Op::AddToGroup
                    | Op::UploadFile
                    | Op::OfferFileToPeer
            ),
            "{op:?}"
        );
    }
}
