//! Files over HTTP: uploads by the tus 1.0 resumable-upload protocol (core, creation,
//! creation-with-upload, termination, checksum with sha256) at `/files/`, and downloads with
//! ranges at `/files/{id}`. Wire details: `docs/protocol/files.md`.
//!
//! Uploads and links are authenticated by `Authorization: Bearer <login token>`; a download is
//! allowed by the same header, by the REST dialect's session cookie (`sessionid`, a login token
//! too), by a signed link (`?exp=..&sig=..`), or to anyone for an avatar.
//! Every refusal is a JSON body `{"error", "code", "message"}`.

use crate::app::App;
use crate::domain::DomainError;
use crate::files::sniff;
use crate::store::files::{File, Upload};
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use natter_proto::tus::{self, BadChecksum, Wanted, wanted};
use natter_proto::{ErrorCode, Ocid};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

const TUS_VERSION: &str = "1.0.0";
const TUS_EXTENSIONS: &str = "creation,creation-with-upload,termination,checksum";
const OFFSET_TYPE: &str = "application/offset+octet-stream";
/// How long a `PATCH` waits for an earlier one on the same upload (a client resuming after a
/// dropped connection may arrive before the server has noticed the drop).
const LOCK_WAIT: Duration = Duration::from_secs(5);
/// Longest `Upload-Metadata` header kept, in bytes.
const MAX_METADATA: usize = 4096;
/// Bytes read from disk per chunk of a download.
const READ_CHUNK: usize = 64 * 1024;

static TUS_RESUMABLE: HeaderName = HeaderName::from_static("tus-resumable");
static UPLOAD_OFFSET: HeaderName = HeaderName::from_static("upload-offset");
static UPLOAD_LENGTH: HeaderName = HeaderName::from_static("upload-length");

struct Files {
    app: Arc<App>,
    /// Uploads a `PATCH` is writing to now (one at a time per upload).
    busy: Mutex<HashSet<String>>,
}

/// The routes under `/files`.
pub fn routes(app: Arc<App>) -> Router {
    let state = Arc::new(Files {
        app,
        busy: Mutex::new(HashSet::new()),
    });
    Router::new()
        .route("/files", post(create).options(discover))
        .route("/files/", post(create).options(discover))
        .route(
            "/files/{id}",
            get(download)
                .head(head)
                .patch(patch)
                .delete(terminate)
                .options(discover),
        )
        .route("/files/{id}/link", get(link))
        .with_state(state)
}

/// A refusal: an HTTP status and the JSON body every file route answers with.
struct Refused {
    status: StatusCode,
    error: &'static str,
    code: Option<u32>,
    message: String,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Refused {
    fn new(status: StatusCode, error: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            error,
            code: None,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    fn with(mut self, name: &HeaderName, value: impl ToString) -> Self {
        if let Ok(v) = HeaderValue::from_str(&value.to_string()) {
            self.headers.push((name.clone(), v));
        }
        self
    }
}

impl From<DomainError> for Refused {
    fn from(e: DomainError) -> Self {
        let (status, code, message) = match &e {
            DomainError::NoSuchFile => (
                StatusCode::NOT_FOUND,
                ErrorCode::NoSuchFile,
                "no file or upload with that id, or none you may read".to_owned(),
            ),
            DomainError::FileTooLarge { max } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::FileTooLarge,
                format!("a file may be at most {max} bytes"),
            ),
            DomainError::OverQuota { quota } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::OverQuota,
                format!("your files and uploads would exceed your quota of {quota} bytes"),
            ),
            DomainError::InvalidToken => (
                StatusCode::UNAUTHORIZED,
                ErrorCode::InvalidToken,
                "the login token is unknown, expired or revoked".to_owned(),
            ),
            DomainError::AccountDisabled => (
                StatusCode::UNAUTHORIZED,
                ErrorCode::AccountDisabled,
                "this account is banned or deleted".to_owned(),
            ),
            _ => (
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                "the server failed; try again".to_owned(),
            ),
        };
        Self {
            status,
            error: code.name(),
            code: Some(code.number()),
            message,
            headers: Vec::new(),
        }
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let mut body = json!({"error": self.error, "message": self.message});
        if let Some(code) = self.code {
            body["code"] = json!(code);
        }
        let mut response = (self.status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(&TUS_RESUMABLE, HeaderValue::from_static(TUS_VERSION));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        for (name, value) in self.headers {
            headers.insert(name, value);
        }
        response
    }
}

type Answer = Result<Response, Refused>;

fn bad_header(message: impl Into<String>) -> Refused {
    Refused::new(StatusCode::BAD_REQUEST, "bad_header", message)
}

/// The account of `Authorization: Bearer <token>`; `None` without the header.
async fn bearer(app: &App, headers: &HeaderMap) -> Result<Option<Ocid>, Refused> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            Refused::new(
                StatusCode::UNAUTHORIZED,
                "bad_authorization",
                "the Authorization header must be `Bearer <login token>`",
            )
        })?;
    let login = app.domain.resume(token).await?;
    Ok(Some(login.account.ocid))
}

/// The account of a download: `Authorization: Bearer <token>`, else the REST dialect's
/// session cookie (a login token too); `None` with neither, or with a cookie whose login has
/// ended (the download is then anonymous: an avatar is still served).
async fn downloader(app: &App, headers: &HeaderMap) -> Result<Option<Ocid>, Refused> {
    if let Some(who) = bearer(app, headers).await? {
        return Ok(Some(who));
    }
    let Some(token) = crate::dialect::rest::cookie_token(headers) else {
        return Ok(None);
    };
    Ok(app.domain.resume(&token).await.ok().map(|l| l.account.ocid))
}

/// The account of a request that needs one.
async fn account(app: &App, headers: &HeaderMap) -> Result<Ocid, Refused> {
    bearer(app, headers).await?.ok_or_else(|| {
        Refused::new(
            StatusCode::UNAUTHORIZED,
            "not_logged_in",
            "send `Authorization: Bearer <login token>`",
        )
        .with(&header::WWW_AUTHENTICATE, "Bearer")
    })
}

/// Every tus request but `OPTIONS` names the protocol version.
fn tus_version(headers: &HeaderMap) -> Result<(), Refused> {
    match headers.get(&TUS_RESUMABLE).map(HeaderValue::as_bytes) {
        Some(b"1.0.0") => Ok(()),
        _ => Err(Refused::new(
            StatusCode::PRECONDITION_FAILED,
            "unsupported_version",
            "send `Tus-Resumable: 1.0.0`",
        )
        .with(&HeaderName::from_static("tus-version"), TUS_VERSION)),
    }
}

fn number(headers: &HeaderMap, name: &HeaderName) -> Result<Option<u64>, Refused> {
    headers
        .get(name)
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(tus::number)
                .ok_or_else(|| bad_header(format!("`{name}` must be a non-negative integer")))
        })
        .transpose()
}

fn tus_headers(response: &mut Response) {
    response
        .headers_mut()
        .insert(&TUS_RESUMABLE, HeaderValue::from_static(TUS_VERSION));
}

fn set(response: &mut Response, name: &HeaderName, value: impl ToString) {
    if let Ok(v) = HeaderValue::from_str(&value.to_string()) {
        response.headers_mut().insert(name.clone(), v);
    }
}

/// `OPTIONS`: what this server supports.
async fn discover(State(files): State<Arc<Files>>) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    tus_headers(&mut response);
    set(
        &mut response,
        &HeaderName::from_static("tus-version"),
        TUS_VERSION,
    );
    set(
        &mut response,
        &HeaderName::from_static("tus-extension"),
        TUS_EXTENSIONS,
    );
    set(
        &mut response,
        &HeaderName::from_static("tus-max-size"),
        files.app.domain.limits().files.max_file_bytes,
    );
    set(
        &mut response,
        &HeaderName::from_static("tus-checksum-algorithm"),
        "sha256",
    );
    response
}

/// The values of `Upload-Metadata` (`key base64,key base64,...`) by key.
fn metadata(raw: &str) -> Result<Vec<(String, String)>, Refused> {
    tus::metadata(raw).map_err(|key| {
        bad_header(format!(
            "`Upload-Metadata` value of `{key}` must be base64 of UTF-8 text"
        ))
    })
}

/// `POST /files/`: create an upload (tus creation), with its first bytes if the body has any
/// (creation-with-upload).
async fn create(State(files): State<Arc<Files>>, headers: HeaderMap, body: Body) -> Answer {
    tus_version(&headers)?;
    let me = account(&files.app, &headers).await?;
    if headers.contains_key("upload-defer-length") || headers.contains_key("upload-concat") {
        return Err(bad_header(
            "`Upload-Defer-Length` and `Upload-Concat` are not supported: send `Upload-Length`",
        ));
    }
    let length = number(&headers, &UPLOAD_LENGTH)?
        .ok_or_else(|| bad_header("`Upload-Length` is required"))?;
    let raw_meta = headers
        .get("upload-metadata")
        .map(|v| v.to_str().unwrap_or_default())
        .unwrap_or_default();
    if raw_meta.len() > MAX_METADATA {
        return Err(bad_header(format!(
            "`Upload-Metadata` may be at most {MAX_METADATA} bytes"
        )));
    }
    let pairs = metadata(raw_meta)?;
    let upload = files
        .app
        .domain
        .create_upload(
            me,
            length,
            tus::meta(&pairs, &["filename", "name"]),
            tus::meta(&pairs, &["filetype", "type", "contentType"]),
            raw_meta,
        )
        .await?;
    let with_body = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes() == OFFSET_TYPE.as_bytes());
    let offset = if with_body || length == 0 {
        let checksum = checksum(&headers)?;
        let _busy = files.hold(&upload.id).await?;
        receive(&files.app, &upload, 0, checksum, body).await?
    } else {
        0
    };
    let mut response = StatusCode::CREATED.into_response();
    tus_headers(&mut response);
    set(
        &mut response,
        &header::LOCATION,
        format!("/files/{}", upload.id),
    );
    set(&mut response, &UPLOAD_OFFSET, offset);
    Ok(response)
}

/// `Upload-Checksum: sha256 <base64>`: the digest this request's body must have.
fn checksum(headers: &HeaderMap) -> Result<Option<[u8; 32]>, Refused> {
    let Some(value) = headers.get("upload-checksum") else {
        return Ok(None);
    };
    match tus::checksum(value.to_str().unwrap_or_default()) {
        Ok(digest) => Ok(Some(digest)),
        Err(BadChecksum::Algorithm) => Err(bad_header(
            "`Upload-Checksum` algorithm must be sha256 (see Tus-Checksum-Algorithm)",
        )),
        Err(BadChecksum::Digest) => Err(bad_header(
            "`Upload-Checksum` must be `sha256 <base64 of 32 bytes>`",
        )),
    }
}

/// The right to write to an upload, held for one request.
struct Busy<'a> {
    files: &'a Files,
    id: String,
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        if let Ok(mut busy) = self.files.busy.lock() {
            busy.remove(&self.id);
        }
    }
}

impl Files {
    /// Wait (a little) until no other request writes to upload `id`, and hold it.
    async fn hold(&self, id: &str) -> Result<Busy<'_>, Refused> {
        let deadline = tokio::time::Instant::now() + LOCK_WAIT;
        loop {
            let taken = self
                .busy
                .lock()
                .map(|mut busy| busy.insert(id.to_owned()))
                .unwrap_or(false);
            if taken {
                return Ok(Busy {
                    files: self,
                    id: id.to_owned(),
                });
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Refused::new(
                    StatusCode::LOCKED,
                    "upload_locked",
                    "another request is writing to this upload; try again",
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Append `body` to `upload` at `offset` (which must be where its bytes end), and finish the
/// upload when its last byte arrived. Returns the new offset.
async fn receive(
    app: &App,
    upload: &Upload,
    offset: u64,
    checksum: Option<[u8; 32]>,
    body: Body,
) -> Result<u64, Refused> {
    let domain = &app.domain;
    let staging = domain.staging()?;
    let path = staging.path(&upload.id);
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .await
        .map_err(|e| io_failure("opening an upload", &e))?;
    let room = upload.length - offset;
    let mut written: u64 = 0;
    let mut hasher = checksum.map(|_| Sha256::new());
    let mut stream = body.into_data_stream();
    let mut outcome: Result<(), Refused> = Ok(());
    loop {
        // A body that stops coming is cut as a dropped connection is: what arrived is kept,
        // and the client resumes from `HEAD`.
        let next = tokio::time::timeout(app.config.body_idle_timeout, stream.next()).await;
        let Ok(next) = next else {
            outcome = Err(Refused::new(
                StatusCode::REQUEST_TIMEOUT,
                "incomplete_body",
                format!(
                    "the request body stalled for {} s",
                    app.config.body_idle_timeout.as_secs()
                ),
            ));
            break;
        };
        let Some(chunk) = next else { break };
        let chunk = match chunk {
            Ok(c) => c,
            Err(_) => {
                // The client went away: what arrived is kept (without a checksum to check).
                outcome = Err(Refused::new(
                    StatusCode::BAD_REQUEST,
                    "incomplete_body",
                    "the request body ended early",
                ));
                break;
            }
        };
        if written + chunk.len() as u64 > room {
            outcome = Err(Refused::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "beyond_length",
                format!("the upload is {} bytes long", upload.length),
            ));
            break;
        }
        if let Some(h) = &mut hasher {
            h.update(&chunk);
        }
        if let Err(e) = file.write_all(&chunk).await {
            outcome = Err(io_failure("writing an upload", &e));
            break;
        }
        written += chunk.len() as u64;
    }
    let flushed = async {
        file.flush().await?;
        file.sync_data().await
    };
    if let Err(e) = flushed.await {
        outcome = Err(io_failure("syncing an upload", &e));
    }
    let checked = match (hasher, checksum) {
        (Some(h), Some(want)) if outcome.is_ok() => Some(<[u8; 32]>::from(h.finalize()) == want),
        _ => None,
    };
    let keep = if checked == Some(false) {
        outcome = Err(Refused::new(
            StatusCode::from_u16(460).unwrap_or(StatusCode::BAD_REQUEST),
            "checksum_mismatch",
            "the body's sha256 differs from `Upload-Checksum`; nothing of it was kept",
        ));
        false
    } else {
        // With a checksum, nothing unchecked is kept; without, what arrived whole is.
        outcome.is_ok() || (checksum.is_none() && outcome_keeps(&outcome))
    };
    if !keep && written > 0 {
        file.set_len(offset)
            .await
            .map_err(|e| io_failure("truncating an upload", &e))?;
        written = 0;
    }
    drop(file);
    let now = offset + written;
    if written > 0 {
        domain.touch_upload(upload).await?;
    }
    outcome?;
    if now == upload.length {
        domain.finish_upload(upload).await?;
    }
    Ok(now)
}

/// Whether a failed body still leaves its bytes in place: a connection cut mid-way keeps them
/// (the client resumes from `HEAD`); a body past the upload's length keeps none of itself.
fn outcome_keeps(outcome: &Result<(), Refused>) -> bool {
    matches!(outcome, Err(r) if r.error == "incomplete_body")
}

fn io_failure(context: &str, e: &std::io::Error) -> Refused {
    tracing::error!(error = %e, "{context} failed");
    Refused::from(DomainError::Internal)
}

/// `PATCH /files/{id}`: the next bytes of an upload, at the offset it has reached.
async fn patch(
    State(files): State<Arc<Files>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    tus_version(&headers)?;
    let me = account(&files.app, &headers).await?;
    if headers
        .get(header::CONTENT_TYPE)
        .is_none_or(|t| t.as_bytes() != OFFSET_TYPE.as_bytes())
    {
        return Err(Refused::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "wrong_content_type",
            format!("a PATCH body must be `Content-Type: {OFFSET_TYPE}`"),
        ));
    }
    let offset = number(&headers, &UPLOAD_OFFSET)?
        .ok_or_else(|| bad_header("`Upload-Offset` is required"))?;
    let checksum = checksum(&headers)?;
    let upload = files.app.domain.upload_of(me, &id).await?;
    let _busy = files.hold(&upload.id).await?;
    let staging = files.app.domain.staging()?;
    let current = staging
        .offset(&upload.id)
        .await
        .map_err(|e| io_failure("reading an upload's offset", &e))?;
    if offset != current {
        return Err(Refused::new(
            StatusCode::CONFLICT,
            "offset_mismatch",
            format!("the upload is at offset {current}"),
        )
        .with(&UPLOAD_OFFSET, current));
    }
    let now = receive(&files.app, &upload, offset, checksum, body).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    tus_headers(&mut response);
    set(&mut response, &UPLOAD_OFFSET, now);
    Ok(response)
}

/// `HEAD /files/{id}`: an upload's offset, or a finished file's headers.
async fn head(
    State(files): State<Arc<Files>>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Answer {
    let who = bearer(&files.app, &headers).await?;
    if let Some(me) = who {
        match files.app.domain.upload_of(me, &id).await {
            Ok(upload) => {
                let offset = files
                    .app
                    .domain
                    .staging()?
                    .offset(&upload.id)
                    .await
                    .map_err(|e| io_failure("reading an upload's offset", &e))?;
                let mut response = StatusCode::OK.into_response();
                tus_headers(&mut response);
                set(&mut response, &UPLOAD_OFFSET, offset);
                set(&mut response, &UPLOAD_LENGTH, upload.length);
                if !upload.metadata.is_empty() {
                    set(
                        &mut response,
                        &HeaderName::from_static("upload-metadata"),
                        &upload.metadata,
                    );
                }
                set(&mut response, &header::CACHE_CONTROL, "no-store");
                return Ok(response);
            }
            Err(DomainError::NoSuchFile) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let who = match who {
        Some(me) => Some(me),
        None => downloader(&files.app, &headers).await?,
    };
    let file = readable(&files.app, &id, who, query.as_deref()).await?;
    let mut response = file_headers(&file, StatusCode::OK, file.size);
    tus_headers(&mut response);
    set(&mut response, &UPLOAD_OFFSET, file.size);
    set(&mut response, &UPLOAD_LENGTH, file.size);
    Ok(response)
}

/// `DELETE /files/{id}`: end an upload before it finished (tus termination).
async fn terminate(
    State(files): State<Arc<Files>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Answer {
    tus_version(&headers)?;
    let me = account(&files.app, &headers).await?;
    let _busy = files.hold(&id).await?;
    files.app.domain.terminate_upload(me, &id).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    tus_headers(&mut response);
    Ok(response)
}

/// The file `id` if this request may read it: by its bearer's account, by a signed link in
/// the query, or as an avatar. A token in the query is refused, not ignored.
async fn readable(
    app: &App,
    id: &str,
    who: Option<Ocid>,
    query: Option<&str>,
) -> Result<File, Refused> {
    let (mut exp, mut sig) = (None, None);
    for pair in query.unwrap_or_default().split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "exp" => exp = value.parse::<i64>().ok(),
            "sig" => sig = Some(value),
            "token" | "access_token" | "auth" => {
                return Err(Refused::new(
                    StatusCode::BAD_REQUEST,
                    "token_in_url",
                    "tokens are not accepted in URLs: send `Authorization: Bearer <token>` or use a signed link",
                ));
            }
            _ => {}
        }
    }
    // A genuine link opens the file whoever follows it (a browser sends its cookie along with
    // an `<img>` request); otherwise the caller's own access decides.
    if let (Some(exp), Some(sig)) = (exp, sig) {
        match app.domain.file_by_link(id, exp, sig).await {
            Ok(file) => return Ok(file),
            Err(DomainError::NoSuchFile) if who.is_some() => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(app.domain.readable_file(who, id).await?)
}

/// The headers of a file's download: type, length, validator, how a browser shows it, and no
/// chance for the bytes to run as a page of this origin.
fn file_headers(file: &File, status: StatusCode, length: u64) -> Response {
    let mut response = status.into_response();
    set(&mut response, &header::CONTENT_TYPE, &file.mime);
    set(&mut response, &header::CONTENT_LENGTH, length);
    set(&mut response, &header::ETAG, format!("\"{}\"", file.sha256));
    set(&mut response, &header::ACCEPT_RANGES, "bytes");
    set(
        &mut response,
        &header::CONTENT_DISPOSITION,
        disposition(&file.name, sniff::inline(&file.mime)),
    );
    set(&mut response, &header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(
        &mut response,
        &header::CONTENT_SECURITY_POLICY,
        "sandbox; default-src 'none'",
    );
    set(
        &mut response,
        &header::CACHE_CONTROL,
        if file.public {
            "public, max-age=3600"
        } else {
            "private, max-age=3600"
        },
    );
    response
}

/// `inline` or `attachment`, with the name as ASCII (`filename`) and as UTF-8 (`filename*`).
fn disposition(name: &str, inline: bool) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    let kind = if inline { "inline" } else { "attachment" };
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// `GET /files/{id}`: a file's bytes, whole or a range, streamed from the blob store.
async fn download(
    State(files): State<Arc<Files>>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Answer {
    let who = downloader(&files.app, &headers).await?;
    let file = readable(&files.app, &id, who, query.as_deref()).await?;
    let etag = format!("\"{}\"", file.sha256);
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        set(&mut response, &header::ETAG, &etag);
        return Ok(response);
    }
    // A range only applies to the version the client has (`If-Range`).
    let range_applies = headers
        .get(header::IF_RANGE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.trim() == etag);
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .filter(|_| range_applies);
    let (status, start, len) = match wanted(range, file.size) {
        Wanted::Whole => (StatusCode::OK, 0, file.size),
        Wanted::Part { start, end } => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        Wanted::Unsatisfiable => {
            return Err(Refused::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                format!("the file is {} bytes long", file.size),
            )
            .with(&header::CONTENT_RANGE, format!("bytes */{}", file.size)));
        }
    };
    let reader = files.app.domain.file_bytes(&file, start, len).await?;
    let mut response = file_headers(&file, status, len);
    if status == StatusCode::PARTIAL_CONTENT {
        set(
            &mut response,
            &header::CONTENT_RANGE,
            format!("bytes {start}-{}/{}", start + len - 1, file.size),
        );
    }
    let stream = tokio_util::io::ReaderStream::with_capacity(reader, READ_CHUNK);
    *response.body_mut() = Body::from_stream(stream);
    Ok(response)
}

/// `GET /files/{id}/link`: a signed link to a file the caller may read, for `<img src>`.
async fn link(
    State(files): State<Arc<Files>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Answer {
    let me = account(&files.app, &headers).await?;
    let (url, expires) = files.app.domain.file_link(me, &id).await?;
    let mut response = axum::Json(json!({"url": url, "expires": expires})).into_response();
    set(&mut response, &header::CACHE_CONTROL, "no-store");
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_survive_in_content_disposition() {
        assert_eq!(
            disposition("a b.png", true),
            "inline; filename=\"a b.png\"; filename*=UTF-8''a%20b.png"
        );
        assert_eq!(
            disposition("отчёт\".pdf", false),
            "attachment; filename=\"______.pdf\"; filename*=UTF-8''%D0%BE%D1%82%D1%87%D1%91%D1%82%22.pdf"
        );
    }
}
