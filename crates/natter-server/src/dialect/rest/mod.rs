//! The REST + push dialect (seed 003), served under `/api/`: JSON requests answered in the
//! envelope `{"status", "result", "message", "date"}` with the seed's status codes, a session
//! cookie (`sessionid`, a natter login token) set by `POST /api/login` and read by every other
//! route, and the push channel at `GET /api/push` ([`push`]). Wire details:
//! `natter_proto::rest` and `docs/protocol/rest.md`.
//!
//! Each request is authenticated on its own (`Domain::resume_from` with the cookie's token,
//! under the guessing limits), handled with the domain and answered; a send awaits the durable
//! append. This module never touches the store and never logs a password or a token.

mod push;

use crate::app::App;
use crate::domain::files::Attachment;
use crate::domain::groups::Joined;
use crate::domain::profiles::{phone_wrong_length, username_wrong_length};
use crate::domain::{Domain, DomainError, Invalid, LoginKey, To};
use crate::event::{ChatInfo, view};
use crate::store::{Account, Befriend, Identity, ProfileEdit, Range, SearchBy};
use crate::transport::{ClientAddr, ws};
use axum::Router;
use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, get, on};
use natter_proto::rest::{self, Outgoing, category, status};
use natter_proto::view::FileKind;
use natter_proto::{ChatId, Index, Ocid};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// The session cookie's name.
pub const COOKIE: &str = "sessionid";
/// Friends per page of `GET /api/friends/{field}/{page}`.
const FRIENDS_PAGE: usize = 20;
/// Largest file `POST /api/file` takes (see [`max_file`]).
const MAX_FILE: u64 = 12 * 1024 * 1024;
/// Most accounts or groups one search answers.
const MAX_FOUND: u32 = 50;
/// Messages in a page of history when the client names no `limit`.
const HISTORY_PAGE: u32 = 50;
/// Most messages in a page of history.
const MAX_HISTORY: u32 = 500;

/// Every route of the dialect, each also with a trailing slash, to be nested at `/api`.
pub fn routes(app: &App) -> Router<Arc<App>> {
    let open = app.metrics.connections("rest_push");
    let push = get(
        move |State(app): State<Arc<App>>,
              ConnectInfo(ClientAddr(peer)): ConnectInfo<ClientAddr>,
              headers: HeaderMap,
              ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>| {
            let open = open.clone();
            async move {
                let token = match session(&app, peer.ip(), &headers).await {
                    Ok((token, _)) => token,
                    Err(f) => return f.reply().into_response(),
                };
                let Ok(ws) = ws else {
                    let f = Failure::new(400, status::FAILURE, "push is a WebSocket upgrade");
                    return f.reply().into_response();
                };
                let push_id = login_of(&token);
                let dialect = Arc::new(push::Push::new(token, push_id));
                ws::upgrade(app, ws, dialect, peer, open)
            }
        },
    );
    let mut router = Router::new();
    let mut both = |path: &str, route: MethodRouter<Arc<App>>| {
        let r = std::mem::take(&mut router);
        router = r
            .route(path, route.clone())
            .route(&format!("{path}/"), route);
    };
    both("/register", handler(MethodFilter::POST, register));
    both("/login", handler(MethodFilter::POST, login));
    both("/logout", handler(MethodFilter::POST, logout));
    both(
        "/user",
        handler(MethodFilter::GET, own_user).merge(handler(MethodFilter::POST, complete_profile)),
    );
    both("/user/{id}", handler(MethodFilter::GET, user));
    both("/search", handler(MethodFilter::GET, search));
    both(
        "/friends/{id}",
        handler(MethodFilter::GET, befriend)
            .merge(handler(MethodFilter::POST, set_alias))
            .merge(handler(MethodFilter::DELETE, unfriend)),
    );
    both(
        "/friends/{field}/{page}",
        handler(MethodFilter::GET, friends),
    );
    both(
        "/group",
        handler(MethodFilter::GET, find_groups).merge(handler(MethodFilter::POST, create_group)),
    );
    both("/group/{id}/join", handler(MethodFilter::POST, join_group));
    both(
        "/group/{id}/requests",
        handler(MethodFilter::GET, join_requests),
    );
    both(
        "/group/{id}/requests/{userId}",
        handler(MethodFilter::POST, answer_join),
    );
    both(
        "/message",
        handler(MethodFilter::POST, send_message).merge(handler(MethodFilter::GET, history)),
    );
    both(
        "/file",
        handler_with(MethodFilter::POST, max_file_body, upload),
    );
    both("/push", push);
    router
}

// ---------------------------------------------------------------------------------------------
// Replies.

/// A refusal: the HTTP status, the seed's status code and the sentence for `message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    http: u16,
    status: i64,
    message: String,
    retry_after_s: Option<u64>,
}

impl Failure {
    fn new(http: u16, status: i64, message: impl Into<String>) -> Self {
        Self {
            http,
            status,
            message: message.into(),
            retry_after_s: None,
        }
    }

    fn reply(self) -> Reply {
        Reply {
            http: self.http,
            status: self.status,
            result: json!([]),
            message: self.message,
            cookie: None,
            retry_after_s: self.retry_after_s,
        }
    }
}

/// One answer: the envelope, under an HTTP status, perhaps setting the session cookie.
struct Reply {
    http: u16,
    status: i64,
    result: Value,
    message: String,
    cookie: Option<String>,
    retry_after_s: Option<u64>,
}

fn ok(result: Value, message: &str) -> Reply {
    Reply {
        http: 200,
        status: status::SUCCESS,
        result,
        message: message.to_owned(),
        cookie: None,
        retry_after_s: None,
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let http = StatusCode::from_u16(self.http).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = rest::envelope(
            self.status,
            self.result,
            &self.message,
            crate::domain::now_ms(),
        );
        let mut response = (http, body).into_response();
        let h = response.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(c) = self.cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
            h.insert(header::SET_COOKIE, c);
        }
        if let Some(s) = self.retry_after_s {
            h.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        response
    }
}

/// A domain refusal as this dialect answers it (see docs/protocol/rest.md for the table).
pub(crate) fn failure(e: &DomainError) -> Failure {
    let f = |http, status, message: &str| Failure::new(http, status, message);
    match e {
        DomainError::Invalid(i) => invalid(*i, None),
        DomainError::PhoneTaken => f(409, status::SAME_PHONE, "that phone number is registered"),
        DomainError::UsernameTaken => f(409, status::SAME_USERNAME, "that username is taken"),
        DomainError::BadCredentials => f(401, status::ERROR_PASSWORD, "wrong phone or password"),
        DomainError::InvalidToken => f(401, status::FAILURE, "not logged in"),
        DomainError::NoSuchAccount(_) => f(404, status::NULL_USER, "no such user"),
        DomainError::TooManyAttempts { retry_after_s } => Failure {
            retry_after_s: Some(*retry_after_s),
            ..f(
                429,
                status::FAILURE,
                &format!("too many failed attempts; try again in {retry_after_s} s"),
            )
        },
        DomainError::LimitReached { retry_after_s, .. } => Failure {
            retry_after_s: Some(*retry_after_s),
            ..f(429, status::FAILURE, &e.to_string())
        },
        DomainError::TooManyConnections { max } => f(
            429,
            status::FAILURE,
            &format!("this account has {max} connections to this server already"),
        ),
        DomainError::FileTooLarge { max } => f(
            413,
            status::FORMAT_ERROR_FILE,
            &format!("a file may be at most {max} bytes"),
        ),
        DomainError::OverQuota { quota } => f(
            413,
            status::FORMAT_ERROR_FILE,
            &format!("your files would exceed your quota of {quota} bytes"),
        ),
        DomainError::NoSuchFile => f(404, status::FORMAT_ERROR_FILE, "no such file"),
        DomainError::WrongFileKind { need } => f(
            400,
            status::FORMAT_ERROR_FILE,
            &format!("the file is not {need}"),
        ),
        DomainError::Internal => f(500, status::ERROR_NET, "the server failed; try again"),
        DomainError::AccountDisabled
        | DomainError::RegistrationClosed
        | DomainError::InvalidInvite
        | DomainError::Blocking(_)
        | DomainError::NotAccepted(_)
        | DomainError::Forbidden { .. } => f(403, status::FAILURE, &e.to_string()),
        DomainError::NoSuchChat(_)
        | DomainError::NoSuchGroup(_)
        | DomainError::NotAMember(_)
        | DomainError::NotFriends(_)
        | DomainError::NoSuchRequest(_)
        | DomainError::NoSuchJoinRequest { .. } => f(404, status::FAILURE, &e.to_string()),
        DomainError::AlreadyMember(_) => f(409, status::FAILURE, &e.to_string()),
        other => f(400, status::FAILURE, &other.to_string()),
    }
}

/// Input the domain's rules refuse, with the input when the code depends on it (a wrong length
/// of a phone number or a username has its own code).
fn invalid(i: Invalid, input: Option<&str>) -> Failure {
    let f = |status, message: String| Failure::new(400, status, message);
    match i {
        Invalid::Phone if input.is_some_and(phone_wrong_length) => f(
            status::FORMAT_ERROR_PHONE_LENGTH,
            "field `phone` must have 6 to 15 digits".into(),
        ),
        Invalid::Phone => f(
            status::FORMAT_ERROR_PHONE,
            "field `phone` must be an optional + and 6 to 15 digits".into(),
        ),
        Invalid::Username { max } if input.is_some_and(username_wrong_length) => f(
            status::FORMAT_ERROR_USER_LENGTH,
            format!("field `username` must be 3 to {max} characters"),
        ),
        Invalid::Username { .. } => f(
            status::ILLEGAL_USERNAME,
            "field `username` may hold only a-z, 0-9, _ and ., starting with a letter".into(),
        ),
        Invalid::Password { max } => f(
            status::FORMAT_ERROR_PASSWORD_LENGTH,
            format!("field `password` must be 1 to {max} bytes"),
        ),
        Invalid::TooLong { field, max } => f(
            status::FAILURE,
            format!(
                "field `{}` must be at most {max} characters",
                rest_field(field)
            ),
        ),
        Invalid::Sex => f(status::FAILURE, "field `sex` must be 0, 1, 2 or 3".into()),
        Invalid::EmptyText => f(status::FAILURE, "a message needs some `info`".into()),
        Invalid::EmptyEdit => f(status::FAILURE, "nothing to change".into()),
        Invalid::OwnAccount | Invalid::PrivateChatWithSelf => {
            f(status::FAILURE, "that is your own account".into())
        }
        Invalid::RequestNote { max } => f(
            status::FAILURE,
            format!("field `request` must be at most {max} characters"),
        ),
        Invalid::GroupName { max } => f(
            status::FAILURE,
            format!("field `name` must be at most {max} characters"),
        ),
        Invalid::GroupSize { max } => f(
            status::FAILURE,
            format!("a group may have at most {max} members"),
        ),
        Invalid::Query { max } => f(
            status::FAILURE,
            format!("a search must be 1 to {max} characters"),
        ),
        Invalid::ClientId { max } => f(
            status::FAILURE,
            format!("field `clientId` must be 1 to {max} bytes"),
        ),
        Invalid::MessageType => f(
            status::FAILURE,
            "field `type` must be 1 to 7 (0 is the server's)".into(),
        ),
        Invalid::VoiceDuration { max } => f(
            status::FORMAT_ERROR_FILE,
            format!("a voice part needs a `duration` of 1 to {max} ms"),
        ),
        other => f(status::FAILURE, format!("invalid input: {other:?}")),
    }
}

/// A profile field as this dialect names it.
fn rest_field(field: crate::domain::TextField) -> &'static str {
    use crate::domain::TextField as T;
    match field {
        T::Description => "desc",
        T::Remark => "alias",
        T::JoinNote => "request",
        other => other.name(),
    }
}

// ---------------------------------------------------------------------------------------------
// Requests.

/// What a handler gets: the app, the client's address, the request's headers, path and query
/// parameters, and its body (read whole, up to the dialect's limit).
struct Req {
    app: Arc<App>,
    ip: IpAddr,
    headers: HeaderMap,
    path: Vec<String>,
    query: HashMap<String, String>,
    body: Vec<u8>,
}

impl Req {
    fn domain(&self) -> &Domain {
        &self.app.domain
    }

    /// The body's JSON object.
    fn object(&self) -> Result<Map<String, Value>, Failure> {
        rest::object(&self.body).map_err(|why| Failure::new(400, status::FAILURE, why))
    }

    /// The body's JSON object, or an empty one for an empty body.
    fn object_or_empty(&self) -> Result<Map<String, Value>, Failure> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Map::new());
        }
        self.object()
    }

    /// A query parameter as an id: `None` when absent or empty.
    fn query_id(&self, name: &str) -> Result<Option<u64>, Failure> {
        match self.query.get(name).map(|v| v.trim()) {
            None | Some("") => Ok(None),
            Some(v) => rest::read_id(Some(&json!(v))).map(Some).ok_or_else(|| {
                Failure::new(
                    400,
                    status::FAILURE,
                    format!("`{name}` must be a number from 1"),
                )
            }),
        }
    }

    /// The logged-in account (by the session cookie).
    async fn me(&self) -> Result<Account, Failure> {
        session(&self.app, self.ip, &self.headers)
            .await
            .map(|(_, a)| a)
    }
}

/// Largest JSON body of any route but `POST /api/file`.
fn max_body(app: &App) -> usize {
    app.config.svc_max_body_bytes
}

/// Largest file `POST /api/file` takes: 12 MiB, or the server's file limit if lower. Larger
/// files are uploaded with tus at `/files/`.
fn max_file(app: &App) -> usize {
    app.domain.limits().files.max_file_bytes.min(MAX_FILE) as usize
}

/// Largest body of `POST /api/file`: [`max_file`] in base64, with room for the name.
fn max_file_body(app: &App) -> usize {
    max_file(app).div_ceil(3) * 4 + 64 * 1024
}

/// A route of the dialect for `method` from an `async fn(Req) -> Result<Reply, Failure>`,
/// reading a JSON body of up to [`max_body`].
fn handler<F, Fut>(method: MethodFilter, f: F) -> MethodRouter<Arc<App>>
where
    F: Fn(Req) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Reply, Failure>> + Send + 'static,
{
    handler_with(method, max_body, f)
}

/// [`handler`] with its own limit on the body.
fn handler_with<F, Fut>(
    method: MethodFilter,
    limit: fn(&App) -> usize,
    f: F,
) -> MethodRouter<Arc<App>>
where
    F: Fn(Req) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Reply, Failure>> + Send + 'static,
{
    let handle = move |State(app): State<Arc<App>>,
                       ConnectInfo(ClientAddr(peer)): ConnectInfo<ClientAddr>,
                       Path(path): Path<HashMap<String, String>>,
                       Query(query): Query<HashMap<String, String>>,
                       headers: HeaderMap,
                       body: Body| {
        let f = f.clone();
        async move {
            let limit = limit(&app);
            let Ok(body) = axum::body::to_bytes(body, limit).await else {
                let why = format!("the body may be at most {limit} bytes");
                return Failure::new(413, status::FAILURE, why)
                    .reply()
                    .into_response();
            };
            let mut path: Vec<(String, String)> = path.into_iter().collect();
            path.sort();
            let req = Req {
                app,
                ip: peer.ip(),
                headers,
                path: path.into_iter().map(|(_, v)| v).collect(),
                query,
                body: body.to_vec(),
            };
            match f(req).await {
                Ok(reply) => reply.into_response(),
                Err(failure) => failure.reply().into_response(),
            }
        }
    };
    on(method, handle)
}

/// The session token of the request's cookie, if any (file downloads accept it too).
pub fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// The login the request's session cookie names: its token and account.
async fn session(app: &App, ip: IpAddr, headers: &HeaderMap) -> Result<(String, Account), Failure> {
    let Some(token) = cookie_token(headers) else {
        return Err(Failure::new(401, status::FAILURE, "not logged in"));
    };
    match app.domain.resume_from(&token, Some(ip)).await {
        Ok(login) => Ok((token, login.account)),
        Err(e) => Err(failure(&e)),
    }
}

/// The id of the login a session token proves (the push channel's `pushId`).
fn login_of(token: &str) -> String {
    crate::domain::profiles::login_id(&crate::domain::auth::token_hash(token))
}

/// The `Set-Cookie` value of a login's cookie (`None`: the one that removes it).
fn set_cookie(app: &App, token: Option<&str>) -> String {
    let secure = if app.config.tls.is_some() {
        "; Secure"
    } else {
        ""
    };
    let (value, age) = match token {
        Some(t) => (t, app.domain.limits().session_ttl.as_secs()),
        None => ("", 0),
    };
    format!("{COOKIE}={value}; Path=/; Max-Age={age}; HttpOnly; SameSite=Lax{secure}")
}

/// A required text field: `empty` when absent or empty, `wrong` when not a string (or number).
fn required(
    m: &Map<String, Value>,
    field: &str,
    empty: i64,
    wrong: i64,
) -> Result<String, Failure> {
    match m.get(field) {
        None | Some(Value::Null) => Err(Failure::new(
            400,
            empty,
            format!("field `{field}` is empty"),
        )),
        Some(v) => match rest::read_text(Some(v)) {
            Some(s) if s.trim().is_empty() => Err(Failure::new(
                400,
                empty,
                format!("field `{field}` is empty"),
            )),
            Some(s) => Ok(s),
            None => Err(Failure::new(
                400,
                wrong,
                format!("field `{field}` must be a string"),
            )),
        },
    }
}

/// `phone` and `password` of a register or login body.
fn phone_and_password(m: &Map<String, Value>) -> Result<(String, String), Failure> {
    let phone = required(m, "phone", status::NULL_PHONE, status::FORMAT_ERROR_PHONE)?;
    let password = match m.get("password") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(Failure::new(
                400,
                status::NULL_PASSWORD,
                "field `password` is empty",
            ));
        }
        Some(_) => {
            return Err(Failure::new(
                400,
                status::FORMAT_ERROR_PASSWORD,
                "field `password` must be a string",
            ));
        }
    };
    Ok((phone, password))
}

// ---------------------------------------------------------------------------------------------
// Accounts and profiles.

/// The seed's account information of `account` as `me` sees it: `{user: {...}, account,
/// isBind}`. `friend` is `me`'s remark for `account` when they are friends.
async fn account_info(
    domain: &Domain,
    me: Ocid,
    account: &Account,
    friend: Option<&str>,
) -> Result<Value, Failure> {
    let own = me == account.ocid;
    let friends = domain
        .friend_ids(account.ocid)
        .await
        .map_err(|e| failure(&e))?
        .len();
    // A phone number is shown to its owner and to friends.
    let phone = if own || friend.is_some() {
        account.phone.clone().unwrap_or_default()
    } else {
        String::new()
    };
    let modified = if account.modified_at > 0 {
        account.modified_at
    } else {
        account.created_at
    };
    Ok(json!({
        "user": {
            "id": rest::id(account.ocid.0),
            "username": account.username.clone().unwrap_or_default(),
            "nickname": account.nickname,
            "phone": phone,
            "avatar": account.avatar,
            "desc": account.description,
            "sex": account.sex,
            "alias": friend.unwrap_or_default(),
            "friends": friends,
            "isFriend": friend.is_some(),
            "modifyAt": rest::date(modified),
        },
        "account": if own { phone.clone() } else { String::new() },
        "isBind": account.phone.is_some(),
    }))
}

/// `ocid`'s account information as `me` sees it.
async fn info_of(domain: &Domain, me: Ocid, ocid: Ocid) -> Result<Value, Failure> {
    let profile = domain.profile(me, ocid).await.map_err(|e| failure(&e))?;
    if profile.account.deleted {
        return Err(failure(&DomainError::NoSuchAccount(ocid)));
    }
    account_info(domain, me, &profile.account, profile.remark.as_deref()).await
}

/// `POST /api/register {phone, password}`.
async fn register(req: Req) -> Result<Reply, Failure> {
    let m = req.object()?;
    let (phone, password) = phone_and_password(&m)?;
    let invite = m.get("invite").and_then(Value::as_str);
    let account = req
        .domain()
        .register(&Identity::Phone(phone.clone()), &password, None, invite)
        .await
        .map_err(|e| match e {
            DomainError::Invalid(i) => invalid(i, Some(&phone)),
            e => failure(&e),
        })?;
    let info = account_info(req.domain(), account.ocid, &account, None).await?;
    Ok(ok(info, "registered"))
}

/// `POST /api/login {phone, password}`: sets the session cookie.
async fn login(req: Req) -> Result<Reply, Failure> {
    let m = req.object()?;
    let (phone, password) = phone_and_password(&m)?;
    // The cookie is checked as any session cookie is, under the guessing limits.
    if let Some(token) = cookie_token(&req.headers) {
        match req.domain().resume_from(&token, Some(req.ip)).await {
            Ok(_) => {
                return Err(Failure::new(
                    409,
                    status::ERROR_REPEAT_LOGIN,
                    "already logged in; log out first",
                ));
            }
            Err(e @ (DomainError::TooManyAttempts { .. } | DomainError::Internal)) => {
                return Err(failure(&e));
            }
            // An ended login's cookie is no login: this one replaces it.
            Err(_) => {}
        }
    }
    let key = LoginKey::Identity(Identity::Phone(phone));
    let login = req.domain().login_from(key, &password, Some(req.ip)).await;
    let login = match login {
        Ok(l) => l,
        Err(e) => {
            if !matches!(e, DomainError::Internal) {
                tracing::info!(client = %req.ip, account = "(a phone number)", reason = %e, "login failed");
            }
            return Err(failure(&e));
        }
    };
    let info = account_info(req.domain(), login.account.ocid, &login.account, None).await?;
    let mut reply = ok(info, "logged in");
    reply.cookie = Some(set_cookie(&req.app, Some(&login.token)));
    Ok(reply)
}

/// `POST /api/logout`: ends the cookie's login, closing its push channels, and removes the
/// cookie.
async fn logout(req: Req) -> Result<Reply, Failure> {
    let (token, me) = session(&req.app, req.ip, &req.headers).await?;
    req.domain()
        .revoke_login(me.ocid, &login_of(&token))
        .await
        .map_err(|e| failure(&e))?;
    let mut reply = ok(json!([]), "logged out");
    reply.cookie = Some(set_cookie(&req.app, None));
    Ok(reply)
}

/// `GET /api/user`: the caller's own account information.
async fn own_user(req: Req) -> Result<Reply, Failure> {
    let me = req.me().await?;
    Ok(ok(
        account_info(req.domain(), me.ocid, &me, None).await?,
        "ok",
    ))
}

/// `GET /api/user/{id}`: another account's information, with `isFriend` and `alias`.
async fn user(req: Req) -> Result<Reply, Failure> {
    let me = req.me().await?;
    let id = path_id(&req, 0)?;
    if Ocid(id) != me.ocid {
        req.domain().look_up(me.ocid).map_err(|e| failure(&e))?;
    }
    Ok(ok(info_of(req.domain(), me.ocid, Ocid(id)).await?, "ok"))
}

/// The `n`th path parameter (in the order of their names) as an id.
fn path_id(req: &Req, n: usize) -> Result<u64, Failure> {
    let raw = req.path.get(n).map(String::as_str).unwrap_or_default();
    rest::read_id(Some(&json!(raw)))
        .ok_or_else(|| Failure::new(404, status::NULL_USER, "no such user"))
}

/// `POST /api/user {userId, avatar, username, desc, sex}`: complete (change) the profile;
/// absent fields are left as they are.
async fn complete_profile(req: Req) -> Result<Reply, Failure> {
    let me = req.me().await?;
    let m = req.object()?;
    if let Some(v) = m.get("userId").filter(|v| !matches!(v, Value::Null))
        && !matches!(v, Value::String(s) if s.is_empty())
        && rest::read_id(Some(v)) != Some(me.ocid.0)
    {
        return Err(Failure::new(
            403,
            status::FAILURE,
            "field `userId` must be your own id",
        ));
    }
    let text = |field: &str| -> Result<Option<String>, Failure> {
        match m.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(Failure::new(
                400,
                status::FAILURE,
                format!("field `{field}` must be a string"),
            )),
        }
    };
    let username = text("username")?;
    let avatar = text("avatar")?;
    if username.as_deref().is_some_and(|u| u.trim().is_empty()) {
        return Err(Failure::new(
            400,
            status::NULL_USERNAME,
            "field `username` is empty",
        ));
    }
    if avatar.as_deref().is_some_and(|a| a.trim().is_empty()) {
        return Err(Failure::new(
            400,
            status::NULL_AVATAR,
            "field `avatar` is empty",
        ));
    }
    let sex = match m.get("sex") {
        None | Some(Value::Null) => None,
        v => Some(rest::read_small(v).ok_or_else(|| {
            Failure::new(400, status::FAILURE, "field `sex` must be 0, 1, 2 or 3")
        })?),
    };
    let edit = ProfileEdit {
        avatar,
        description: text("desc")?,
        sex,
        username: username.clone().map(Some),
        ..ProfileEdit::default()
    };
    let account = req
        .domain()
        .update_profile(me.ocid, &edit)
        .await
        .map_err(|e| match e {
            DomainError::Invalid(i) => invalid(i, username.as_deref()),
            e => failure(&e),
        })?;
    Ok(ok(
        account_info(req.domain(), me.ocid, &account, None).await?,
        "saved",
    ))
}

/// `GET /api/search?username=` or `?phone=`: the accounts found (exactly), as account
/// information; none found is `status` 0 with an empty `result` and the message "ok", as the
/// seed shows it.
async fn search(req: Req) -> Result<Reply, Failure> {
    let me = req.me().await?;
    let param = |k: &str| req.query.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let by = match (param("username"), param("phone")) {
        (Some(u), _) => SearchBy::Identity(Identity::Username(u.to_owned())),
        (None, Some(p)) => SearchBy::Identity(Identity::Phone(p.to_owned())),
        (None, None) => {
            return Err(Failure::new(
                400,
                status::FAILURE,
                "search with `?username=` or `?phone=`",
            ));
        }
    };
    req.domain().look_up(me.ocid).map_err(|e| failure(&e))?;
    let found = req.domain().search(&by, Ocid(0), MAX_FOUND).await;
    let found = match found {
        Ok((found, _)) => found,
        // A malformed name or number names nobody.
        Err(DomainError::Invalid(_)) => Vec::new(),
        Err(e) => return Err(failure(&e)),
    };
    let mut result = Vec::with_capacity(found.len());
    for a in &found {
        result.push(info_of(req.domain(), me.ocid, a.ocid).await?);
    }
    if result.is_empty() {
        return Ok(Reply {
            status: status::FAILURE,
            ..ok(json!([]), "ok")
        });
    }
    Ok(ok(Value::Array(result), "ok"))
}

// ---------------------------------------------------------------------------------------------
// Friends.

/// `GET /api/friends/{id}?request=`: ask `id` for friendship (asking someone who asked you
/// accepts); answers their account information.
async fn befriend(req: Req) -> Result<Reply, Failure> {
    let me = req.me().await?;
    let other = Ocid(path_id(&req, 0)?);
    let note = req.query.get("request").cloned().unwrap_or_default();
    let outcome = req
        .domain()
        .request_friend(me.ocid, other, &note, None)
        .await
        .map_err(|e| failure(&e))?;
    let message = match outcome {
        Befriend::Requested => "requested",
        Befriend::Accepted => "accepted",
        Befriend::AlreadyFriends => "already friends",
    };
    Ok(ok(info_of(req.domain(), me.ocid, other).await?, message))
}

/// `POST /api/friends/{id} {alias}`: set the caller's alias (remark) for friend `id` (`""`
/// removes it); answers the friend's account information with it.
async fn set_alias(req: Req) -> Result<Reply, Failure> {
    let me = req.me().await?;
    let other = Ocid(path_id(&req, 0)?);
    let m = req.object()?;
    let Some(Value::String(alias)) = m.get("alias") else {
        return Err(Failure::new(
            400,
            status::FAILURE,
            "field `alias` must be a string",
        ));
    };
    // An unknown account is 6004, not "not friends".
    info_of(req.domain(), me.ocid, other).await?;
    req.domain()
        .set_remark(me.ocid, other, alias)
        .await
        .map_err(|e| failure(&e))?;
    Ok(ok(info_of(req.domain(), me.ocid, other).await?, "saved"))
}

/// `DELETE /api/friends/{id}`: say no to `id`: end the friendship, or, when they are not
/// friends, reject `id`'s request; answers `id`'s account information.
async fn unfriend(req: Req) -> Result<Reply, Failure> {
    let me = req.me().await?;
    let other = Ocid(path_id(&req, 0)?);
    info_of(req.domain(), me.ocid, other).await?;
    let d = req.domain();
    let message = match d.remove_friend(me.ocid, other, None).await {
        Ok(()) => "removed",
        Err(DomainError::NotFriends(_)) => match d.answer_friend(me.ocid, other, false, None).await
        {
            Ok(()) => "rejected",
            Err(DomainError::NoSuchRequest(_)) => {
                return Err(Failure::new(
                    404,
                    status::FAILURE,
                    "not friends, and no request from that user",
                ));
            }
            Err(e) => return Err(failure(&e)),
        },
        Err(e) => return Err(failure(&e)),
    };
    Ok(ok(info_of(d, me.ocid, other).await?, message))
}

/// `GET /api/friends/{field}/{page}`: the caller's friends as account information, ordered by
/// `field` (`id`, `username`, `phone`, `alias` or `modifyAt`), [`FRIENDS_PAGE`] per page from
/// page 1.
async fn friends(req: Req) -> Result<Reply, Failure> {
    let me = req.me().await?;
    // Path parameters in the order of their names: field, page.
    let field = req.path.first().cloned().unwrap_or_default();
    let page: usize = req
        .path
        .get(1)
        .and_then(|p| p.parse().ok())
        .filter(|p| *p >= 1)
        .ok_or_else(|| Failure::new(400, status::FAILURE, "the page is a number from 1"))?;
    if !matches!(
        field.as_str(),
        "id" | "username" | "phone" | "alias" | "modifyAt"
    ) {
        return Err(Failure::new(
            400,
            status::FAILURE,
            "list friends by `id`, `username`, `phone`, `alias` or `modifyAt`",
        ));
    }
    let contacts = req
        .domain()
        .contacts(me.ocid)
        .await
        .map_err(|e| failure(&e))?;
    let mut rows = Vec::with_capacity(contacts.friends.len());
    for f in &contacts.friends {
        let a = req
            .domain()
            .account(f.ocid)
            .await
            .map_err(|e| failure(&e))?;
        if !a.deleted {
            rows.push((a, f.remark.clone()));
        }
    }
    rows.sort_by(|(a, ra), (b, rb)| {
        let by = match field.as_str() {
            "username" => a.username.cmp(&b.username),
            "phone" => a.phone.cmp(&b.phone),
            "alias" => ra.cmp(rb),
            "modifyAt" => a.modified_at.cmp(&b.modified_at),
            _ => std::cmp::Ordering::Equal,
        };
        by.then(a.ocid.cmp(&b.ocid))
    });
    let mut result = Vec::new();
    for (a, remark) in rows
        .iter()
        .skip((page - 1) * FRIENDS_PAGE)
        .take(FRIENDS_PAGE)
    {
        result.push(account_info(req.domain(), me.ocid, a, Some(remark)).await?);
    }
    Ok(ok(Value::Array(result), "ok"))
}

// ---------------------------------------------------------------------------------------------
// Groups.

/// A group as this dialect lists it.
fn group_value(id: ChatId, name: &str, avatar: &str, members: u64, member: bool) -> Value {
    json!({
        "id": rest::id(id.0),
        "name": name,
        "avatar": avatar,
        "members": members,
        "isMember": member,
    })
}

/// `GET /api/group?name=`: groups whose name starts with `name`; none found is answered as a
/// search that found nobody.
async fn find_groups(req: Req) -> Result<Reply, Failure> {
    let me = req.me().await?;
    let name = req.query.get("name").cloned().unwrap_or_default();
    let (found, _) = req
        .domain()
        .find_groups(me.ocid, &name, ChatId(0), MAX_FOUND)
        .await
        .map_err(|e| failure(&e))?;
    let result: Vec<Value> = found
        .iter()
        .map(|g| group_value(g.id, &g.name, &g.avatar, g.member_count, g.role.is_some()))
        .collect();
    if result.is_empty() {
        return Ok(Reply {
            status: status::FAILURE,
            ..ok(json!([]), "ok")
        });
    }
    Ok(ok(Value::Array(result), "ok"))
}

/// `POST /api/group {name, members}`: a group of the caller (its owner) and `members`.
async fn create_group(req: Req) -> Result<Reply, Failure> {
    let me = req.me().await?;
    let m = req.object()?;
    let name = match m.get("name") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
        _ => return Err(Failure::new(400, status::FAILURE, "field `name` is empty")),
    };
    let members = match m.get("members") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => list
            .iter()
            .map(|v| rest::read_id(Some(v)).map(Ocid))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                Failure::new(
                    400,
                    status::FAILURE,
                    "field `members` must be a list of user ids",
                )
            })?,
        Some(_) => {
            return Err(Failure::new(
                400,
                status::FAILURE,
                "field `members` must be a list of user ids",
            ));
        }
    };
    let chat: Arc<ChatInfo> = req
        .domain()
        .create_group(me.ocid, &members, &name)
        .await
        .map_err(|e| failure(&e))?;
    let mut v = group_value(chat.id, &name, "", chat.members.len() as u64, true);
    v["memberIds"] = json!(
        chat.members
            .iter()
            .map(|o| rest::id(o.0))
            .collect::<Vec<_>>()
    );
    Ok(ok(v, "created"))
}

/// The group `id` as this dialect lists it, for `me`.
async fn group_of(domain: &Domain, me: Ocid, id: ChatId) -> Result<Value, Failure> {
    let g = domain.group(me, id).await.map_err(|e| failure(&e))?;
    let c = &g.chat;
    Ok(group_value(
        c.id,
        &c.name,
        &c.avatar,
        c.members.len() as u64,
        g.role.is_some(),
    ))
}

/// `POST /api/group/{id}/join {request}`: join group `id`: at once when it is open (or the
/// caller is invited), else by a request its admins answer.
async fn join_group(req: Req) -> Result<Reply, Failure> {
    let me = req.me().await?;
    let id = ChatId(group_id(&req)?);
    let m = req.object_or_empty()?;
    let note = match m.get("request") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            return Err(Failure::new(
                400,
                status::FAILURE,
                "field `request` must be a string",
            ));
        }
    };
    let joined = req
        .domain()
        .join_group(me.ocid, id, &note, None)
        .await
        .map_err(|e| failure(&e))?;
    let message = match joined {
        Joined::Member => "joined",
        Joined::Requested => "requested",
    };
    Ok(ok(group_of(req.domain(), me.ocid, id).await?, message))
}

/// `GET /api/group/{id}/requests`: the requests to join group `id` waiting for an answer
/// (its owner and admins), oldest first, as the push channel shows them.
async fn join_requests(req: Req) -> Result<Reply, Failure> {
    let me = req.me().await?;
    let id = ChatId(group_id(&req)?);
    let requests = req
        .domain()
        .join_requests(me.ocid, id)
        .await
        .map_err(|e| failure(&e))?;
    let items: Vec<Value> = requests
        .iter()
        .map(|r| push::join_request_item(r.chat, r.ocid, &r.message, r.created_at))
        .collect();
    Ok(ok(Value::Array(items), "ok"))
}

/// `POST /api/group/{id}/requests/{userId} {accept}`: accept or reject `userId`'s request to
/// join group `id` (its owner and admins).
async fn answer_join(req: Req) -> Result<Reply, Failure> {
    let me = req.me().await?;
    let id = ChatId(group_id(&req)?);
    // Path parameters in the order of their names: id, userId.
    let who = path_id(&req, 1)?;
    let m = req.object()?;
    let Some(Value::Bool(accept)) = m.get("accept") else {
        return Err(Failure::new(
            400,
            status::FAILURE,
            "field `accept` must be true or false",
        ));
    };
    req.domain()
        .answer_join(me.ocid, id, Ocid(who), *accept, None)
        .await
        .map_err(|e| failure(&e))?;
    let message = if *accept { "accepted" } else { "rejected" };
    Ok(ok(group_of(req.domain(), me.ocid, id).await?, message))
}

/// The group id of the path (its first parameter).
fn group_id(req: &Req) -> Result<u64, Failure> {
    let raw = req.path.first().map(String::as_str).unwrap_or_default();
    rest::read_id(Some(&json!(raw)))
        .ok_or_else(|| Failure::new(404, status::FAILURE, "no such group"))
}

// ---------------------------------------------------------------------------------------------
// Messages and files.

/// `GET /api/message?chatId=` (or `?toId=` for a private chat) with `before` or `after` (an
/// index) and `limit`: a page of the chat's history, ascending, as message items; `more` says
/// whether the chat has more in the direction read.
async fn history(req: Req) -> Result<Reply, Failure> {
    let me = req.me().await?;
    let to = match (req.query_id("chatId")?, req.query_id("toId")?) {
        (Some(chat), _) => To::Chat(ChatId(chat)),
        (None, Some(to)) => To::Account(Ocid(to)),
        (None, None) => {
            return Err(Failure::new(
                400,
                status::FAILURE,
                "name the chat with `?chatId=` or `?toId=`",
            ));
        }
    };
    let range = match (req.query_id("before")?, req.query_id("after")?) {
        (None, None) => Range::Latest,
        (Some(b), None) => Range::Before(Index(b)),
        (None, Some(a)) => Range::After(Index(a)),
        (Some(_), Some(_)) => {
            return Err(Failure::new(
                400,
                status::FAILURE,
                "only one of `before` or `after` may be given",
            ));
        }
    };
    let limit = match req.query_id("limit")? {
        None => HISTORY_PAGE,
        Some(n) if n <= u64::from(MAX_HISTORY) => n as u32,
        Some(_) => {
            return Err(Failure::new(
                400,
                status::FAILURE,
                format!("`limit` must be 1 to {MAX_HISTORY}"),
            ));
        }
    };
    let (chat, messages, more) = req
        .domain()
        .history(me.ocid, to, range, limit)
        .await
        .map_err(|e| failure(&e))?;
    let items: Vec<Value> = match &chat {
        Some(chat) => messages
            .iter()
            .map(|m| {
                let text = m.text();
                rest::message_item(&view(m, chat, &text))
            })
            .collect(),
        None => Vec::new(),
    };
    let chat_id = chat.map(|c| rest::id(c.id.0)).unwrap_or_default();
    Ok(ok(
        json!({"chatId": chat_id, "messages": items, "more": more}),
        "ok",
    ))
}

/// A message item as the domain sends it.
pub(crate) struct Composed {
    to: To,
    kind: u8,
    text: String,
    file: Option<Attachment>,
    client_id: Option<String>,
}

/// Turn a message item into a send: its text parts joined by a newline, and at most one file
/// part (category 1 image, 2 voice, 3 file) naming a file by its path.
pub(crate) fn compose(item: &Outgoing) -> Result<Composed, Failure> {
    let to = match (item.chat, item.to) {
        (Some(chat), _) => To::Chat(ChatId(chat)),
        (None, Some(to)) => To::Account(Ocid(to)),
        (None, None) => return Err(Failure::new(400, status::FAILURE, "no `chatId` or `toId`")),
    };
    let mut texts = Vec::new();
    let mut file = None;
    for part in &item.info {
        let kind = match part.category {
            category::TEXT => {
                texts.push(part.content.as_str());
                continue;
            }
            category::IMAGE => FileKind::Image,
            category::VOICE => FileKind::Voice,
            _ => FileKind::File,
        };
        if file.is_some() {
            return Err(Failure::new(
                400,
                status::FORMAT_ERROR_FILE,
                "a message carries at most one file",
            ));
        }
        let id = rest::file_id(&part.content);
        if id.is_empty() {
            return Err(Failure::new(
                400,
                status::FORMAT_ERROR_FILE,
                "a file part's `content` is its path",
            ));
        }
        file = Some(Attachment {
            file: id.to_owned(),
            kind,
            duration_ms: part.duration_ms,
        });
    }
    Ok(Composed {
        to,
        kind: item.kind,
        text: texts.join("\n"),
        file,
        client_id: item.client_id.clone(),
    })
}

/// `POST /api/message {chatId | toId, type, info, clientId}`: send one message (for a client
/// without its push channel open); answers the acknowledgement shape once it is stored.
async fn send_message(req: Req) -> Result<Reply, Failure> {
    let me = req.me().await?;
    let body: Value = serde_json::from_slice(&req.body)
        .map_err(|e| Failure::new(400, status::FAILURE, format!("the body is not JSON: {e}")))?;
    let item = rest::outgoing(&body).map_err(|why| Failure::new(400, status::FAILURE, why))?;
    let m = compose(&item)?;
    let sent = match &m.file {
        Some(file) => {
            req.domain()
                .send_file(me.ocid, m.to, file, m.text, m.client_id)
                .await
        }
        None => {
            if m.kind != rest::kind::NORMAL {
                req.domain()
                    .send_typed(me.ocid, m.to, m.kind, m.text, m.client_id)
                    .await
            } else {
                req.domain()
                    .send_text(me.ocid, m.to, m.text, m.client_id)
                    .await
            }
        }
    }
    .map_err(|e| failure(&e))?;
    let mut ack = rest::ack(me.ocid.0, item.to, Some(sent.chat.0), "ok");
    ack.insert("index".into(), json!(sent.index.0));
    ack.insert("msgId".into(), json!(rest::id(sent.id.0)));
    Ok(ok(Value::Object(ack), "ok"))
}

/// `POST /api/file {name, content, md5}`: store a file of the caller. `content` is the file's
/// bytes in base64 (standard alphabet, padding optional); `md5`, when given, is their MD5 in
/// hex and must match. Answers `{path}`: where the file is downloaded (`GET /files/{id}`, with
/// the session cookie) and what a message's file part names.
async fn upload(req: Req) -> Result<Reply, Failure> {
    use base64::Engine;
    use md5::Digest;
    let me = req.me().await?;
    let m = req.object()?;
    let bad = |why: &str| Failure::new(400, status::FORMAT_ERROR_FILE, why);
    let name = match m.get("name") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
        _ => return Err(bad("field `name` is empty")),
    };
    let Some(Value::String(content)) = m.get("content") else {
        return Err(bad("field `content` must be the file's bytes in base64"));
    };
    let content: String = content.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(content.trim_end_matches('='))
        .map_err(|_| bad("field `content` is not base64"))?;
    if bytes.is_empty() {
        return Err(bad("the file is empty"));
    }
    let max = max_file(&req.app);
    if bytes.len() > max {
        return Err(Failure::new(
            413,
            status::FORMAT_ERROR_FILE,
            format!("a file sent here may be at most {max} bytes; upload larger ones at /files/"),
        ));
    }
    match m.get("md5") {
        None | Some(Value::Null) => {}
        Some(Value::String(want)) => {
            let got: String = md5::Md5::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            if !got.eq_ignore_ascii_case(want.trim()) {
                return Err(bad("field `md5` does not match the content"));
            }
        }
        Some(_) => return Err(bad("field `md5` must be a hex string")),
    }
    let file = req
        .domain()
        .put_file(me.ocid, &name, "application/octet-stream", &bytes)
        .await
        .map_err(|e| failure(&e))?;
    let mut result = json!({"path": rest::file_path(&file.id)});
    result["name"] = json!(file.name);
    result["size"] = json!(file.size);
    result["mime"] = json!(file.mime);
    Ok(ok(result, "stored"))
}
