//! Files: uploads within a size limit and a per-account quota, finished files (hashed, typed,
//! stored once per content), who may read them, signed links for `<img>`, files in messages,
//! avatars, and the background sweep of abandoned uploads and unreferenced files.

use super::error::internal;
use super::messages::PendingSend;
use super::{Domain, DomainError, Sent, To, now_ms};
use crate::event::Origin;
use crate::files::{Blobs, Staging, sniff};
use crate::store::files::{File, Upload};
use crate::store::{Category, NewMessage, Part, kind};
use blake2::{Blake2b256, Digest};
use natter_proto::Ocid;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// Longest file name kept, in characters (longer ones are cut).
pub const MAX_FILE_NAME: usize = 255;
/// Longest voice note, in milliseconds (an hour).
pub const MAX_VOICE_MS: u64 = 3_600_000;
/// Rows the sweep handles per round.
const SWEEP_BATCH: u32 = 500;

/// Limits and periods of file storage; all configurable.
#[derive(Debug, Clone)]
pub struct FileLimits {
    /// Largest file, in bytes (`Tus-Max-Size`).
    pub max_file_bytes: u64,
    /// Bytes one account may hold in files and uploads in progress.
    pub quota_bytes: u64,
    /// An upload no byte reaches for this long is given up on.
    pub upload_ttl: Duration,
    /// A file no message or avatar refers to is removed once this old.
    pub orphan_grace: Duration,
    /// How long a signed link (`GET /files/{id}?exp=..&sig=..`) works.
    pub link_ttl: Duration,
}

impl Default for FileLimits {
    fn default() -> Self {
        Self {
            max_file_bytes: 256 * 1024 * 1024,
            quota_bytes: 4 * 1024 * 1024 * 1024,
            upload_ttl: Duration::from_secs(24 * 3600),
            orphan_grace: Duration::from_secs(24 * 3600),
            link_ttl: Duration::from_secs(3600),
        }
    }
}

/// Where file bytes go: finished files and uploads in progress.
pub struct FileStorage {
    pub blobs: Arc<dyn Blobs>,
    pub staging: Staging,
}

pub use natter_proto::view::FileKind;

/// The content category of a message part that carries a file of `kind`.
pub fn category(kind: FileKind) -> Category {
    match kind {
        FileKind::Emoji => Category::EMOJI,
        FileKind::Image => Category::IMAGE,
        FileKind::Voice => Category::VOICE,
        FileKind::File => Category::FILE,
    }
}

/// A file to attach to a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub file: String,
    pub kind: FileKind,
    /// A voice note's length (required for `Voice`, refused for the others).
    pub duration_ms: Option<u64>,
}

/// What one sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    pub uploads: u64,
    pub files: u64,
    pub blobs: u64,
}

/// The `/files/...` reference an avatar holds for an uploaded picture.
pub fn avatar_ref(file: &str) -> String {
    format!("/files/{file}")
}

impl Domain {
    fn storage(&self) -> Result<&FileStorage, DomainError> {
        self.files
            .as_ref()
            .ok_or_else(|| internal("file storage is not configured", &"files"))
    }

    /// Where uploads in progress keep their bytes.
    ///
    /// # Errors
    /// `Internal` when this domain has no file storage (an operator command).
    pub fn staging(&self) -> Result<&Staging, DomainError> {
        Ok(&self.storage()?.staging)
    }

    /// Start an upload of `length` bytes for `me`.
    ///
    /// # Errors
    /// `FileTooLarge`, `OverQuota`, `Internal`.
    pub async fn create_upload(
        &self,
        me: Ocid,
        length: u64,
        name: &str,
        mime: &str,
        metadata: &str,
    ) -> Result<Upload, DomainError> {
        let limits = &self.limits.files;
        if length > limits.max_file_bytes {
            return Err(DomainError::FileTooLarge {
                max: limits.max_file_bytes,
            });
        }
        let now = now_ms();
        let name: String = name.trim().chars().take(MAX_FILE_NAME).collect();
        let upload = Upload {
            id: crate::files::new_id(),
            owner: me,
            name: if name.is_empty() { "file".into() } else { name },
            mime: mime.trim().chars().take(200).collect(),
            length,
            metadata: metadata.to_owned(),
            created_at: now,
            expires_at: now + limits.upload_ttl.as_millis() as i64,
        };
        let stored = self
            .store
            .create_upload(&upload, limits.quota_bytes)
            .await
            .map_err(|e| internal("upload create failed", &e))?;
        if !stored {
            return Err(DomainError::OverQuota {
                quota: limits.quota_bytes,
            });
        }
        Ok(upload)
    }

    /// `me`'s upload `id` (someone else's is as unknown as a missing one).
    ///
    /// # Errors
    /// `NoSuchFile`, `Internal`.
    pub async fn upload_of(&self, me: Ocid, id: &str) -> Result<Upload, DomainError> {
        if !crate::files::valid_id(id) {
            return Err(DomainError::NoSuchFile);
        }
        match self.store.upload(id).await {
            Ok(Some(u)) if u.owner == me => Ok(u),
            Ok(_) => Err(DomainError::NoSuchFile),
            Err(e) => Err(internal("upload read failed", &e)),
        }
    }

    /// Bytes arrived for an upload: it lives on.
    ///
    /// # Errors
    /// `Internal`.
    pub async fn touch_upload(&self, upload: &Upload) -> Result<(), DomainError> {
        let expires = now_ms() + self.limits.files.upload_ttl.as_millis() as i64;
        self.store
            .touch_upload(&upload.id, expires)
            .await
            .map_err(|e| internal("upload touch failed", &e))
    }

    /// Every byte of `upload` has arrived: hash it, find its type and size, keep its bytes
    /// in the blob store (once per content) and record the file.
    ///
    /// # Errors
    /// `Internal`.
    pub async fn finish_upload(&self, upload: &Upload) -> Result<File, DomainError> {
        let storage = self.storage()?;
        let path = storage.staging.path(&upload.id);
        let sha256 = crate::files::sha256_of(path.clone())
            .await
            .map(|digest| super::auth::hex(&digest))
            .map_err(|e| internal("hashing an upload failed", &e))?;
        let head = read_head(&path)
            .await
            .map_err(|e| internal("reading an upload failed", &e))?;
        let mime = sniff::mime_type(&head, &upload.mime);
        let dims = sniff::dimensions(&mime, &head);
        let _turn = self.blob_turn.lock().await;
        storage
            .blobs
            .put(&path, &sha256)
            .await
            .map_err(|e| internal("storing an upload failed", &e))?;
        let file = File {
            id: upload.id.clone(),
            owner: upload.owner,
            name: upload.name.clone(),
            size: upload.length,
            mime,
            sha256,
            width: dims.map(|d| d.0),
            height: dims.map(|d| d.1),
            public: false,
            created_at: now_ms(),
        };
        self.store
            .finish_upload(&file)
            .await
            .map_err(|e| internal("recording a file failed", &e))?;
        tracing::info!(owner = %file.owner, size = file.size, mime = %file.mime, "file uploaded");
        Ok(file)
    }

    /// Store `bytes` as a finished file of `me` in one step, within the same size limit and
    /// quota as an upload: for dialects that carry a file's bytes inside a request.
    ///
    /// # Errors
    /// `FileTooLarge`, `OverQuota`, `Internal`.
    pub async fn put_file(
        &self,
        me: Ocid,
        name: &str,
        mime: &str,
        bytes: &[u8],
    ) -> Result<File, DomainError> {
        let upload = self
            .create_upload(me, bytes.len() as u64, name, mime, "")
            .await?;
        let path = self.staging()?.path(&upload.id);
        let written = async {
            let mut file = tokio::fs::File::create(&path).await?;
            tokio::io::AsyncWriteExt::write_all(&mut file, bytes).await?;
            file.sync_data().await
        };
        if let Err(e) = written.await {
            let _ = self.store.delete_upload(&upload.id).await;
            let _ = self.staging()?.remove(&upload.id).await;
            return Err(internal("writing a file failed", &e));
        }
        self.finish_upload(&upload).await
    }

    /// End `me`'s upload before it finished (tus termination).
    ///
    /// # Errors
    /// `NoSuchFile`, `Internal`.
    pub async fn terminate_upload(&self, me: Ocid, id: &str) -> Result<(), DomainError> {
        let upload = self.upload_of(me, id).await?;
        self.store
            .delete_upload(&upload.id)
            .await
            .map_err(|e| internal("upload delete failed", &e))?;
        self.staging()?
            .remove(&upload.id)
            .await
            .map_err(|e| internal("upload remove failed", &e))
    }

    /// A finished file as `who` may read it: an avatar by anyone, any other file by its
    /// uploader and by the members of a chat it was sent in.
    ///
    /// # Errors
    /// `NoSuchFile` (also for a file `who` may not read), `Internal`.
    pub async fn readable_file(&self, who: Option<Ocid>, id: &str) -> Result<File, DomainError> {
        let file = self.file_record(id).await?;
        if file.public || who == Some(file.owner) {
            return Ok(file);
        }
        let Some(who) = who else {
            return Err(DomainError::NoSuchFile);
        };
        match self.store.file_shared_with(id, who).await {
            Ok(true) => Ok(file),
            Ok(false) => Err(DomainError::NoSuchFile),
            Err(e) => Err(internal("file access check failed", &e)),
        }
    }

    async fn file_record(&self, id: &str) -> Result<File, DomainError> {
        if !crate::files::valid_id(id) {
            return Err(DomainError::NoSuchFile);
        }
        self.store
            .file(id)
            .await
            .map_err(|e| internal("file read failed", &e))?
            .ok_or(DomainError::NoSuchFile)
    }

    /// A finished file's bytes, `len` of them from `start`.
    ///
    /// # Errors
    /// `Internal`.
    pub async fn file_bytes(
        &self,
        file: &File,
        start: u64,
        len: u64,
    ) -> Result<crate::files::BlobReader, DomainError> {
        self.storage()?
            .blobs
            .read(&file.sha256, start, len)
            .await
            .map_err(|e| internal("file bytes unreadable", &e))
    }

    async fn link_key(&self) -> Result<&[u8], DomainError> {
        self.link_key
            .get_or_try_init(|| self.installation_key(crate::store::server_key::FILE_LINKS))
            .await
            .map(<[u8; 32]>::as_slice)
    }

    fn signature(key: &[u8], id: &str, expires_s: i64) -> String {
        let mac = Blake2b256::new()
            .chain_update((key.len() as u64).to_le_bytes())
            .chain_update(key)
            .chain_update(id.as_bytes())
            .chain_update(expires_s.to_le_bytes())
            .finalize();
        super::auth::base64url(&mac[..18])
    }

    /// A link to file `id` that works without a login until it expires (for `<img src>`):
    /// the path with its query, and when it expires (Unix seconds).
    ///
    /// # Errors
    /// `NoSuchFile` (also for a file `me` may not read), `Internal`.
    pub async fn file_link(&self, me: Ocid, id: &str) -> Result<(String, i64), DomainError> {
        self.readable_file(Some(me), id).await?;
        let expires = now_ms() / 1000 + self.limits.files.link_ttl.as_secs() as i64;
        let sig = Self::signature(self.link_key().await?, id, expires);
        Ok((format!("/files/{id}?exp={expires}&sig={sig}"), expires))
    }

    /// The file a signed link names, if the link is genuine and has not expired.
    ///
    /// # Errors
    /// `NoSuchFile` for a wrong or expired link, `Internal`.
    pub async fn file_by_link(
        &self,
        id: &str,
        expires_s: i64,
        sig: &str,
    ) -> Result<File, DomainError> {
        if expires_s < now_ms() / 1000 {
            return Err(DomainError::NoSuchFile);
        }
        let good = Self::signature(self.link_key().await?, id, expires_s);
        if !super::auth::same(good.as_bytes(), sig.as_bytes()) {
            return Err(DomainError::NoSuchFile);
        }
        self.file_record(id).await
    }

    /// Check a file message and queue it, like [`Domain::queue_typed`]: the sender must be
    /// able to read the file (its uploader, or a member of a chat it was sent in: a forward),
    /// and the file must suit its kind (a picture for an emoji or an image, sound for a voice
    /// note). Once queued, the chat's members may read the file.
    ///
    /// # Errors
    /// As [`Domain::queue_typed`]; `NoSuchFile`; `WrongFileKind`; `Invalid` for a voice note
    /// without a duration or a duration on anything else.
    pub async fn queue_file(
        &self,
        me: Ocid,
        to: To,
        attachment: &Attachment,
        caption: String,
        client_id: Option<String>,
        origin: Option<Origin>,
    ) -> Result<PendingSend, DomainError> {
        let file = self.readable_file(Some(me), &attachment.file).await?;
        match attachment.kind {
            FileKind::Emoji | FileKind::Image if !sniff::is_picture(&file.mime) => {
                return Err(DomainError::WrongFileKind {
                    need: "a picture (PNG, JPEG, GIF or WebP)",
                });
            }
            FileKind::Voice if !file.mime.starts_with("audio/") && file.mime != "video/webm" => {
                return Err(DomainError::WrongFileKind {
                    need: "a sound file (audio/*)",
                });
            }
            _ => {}
        }
        let duration = match (attachment.kind, attachment.duration_ms) {
            (FileKind::Voice, Some(d)) if d > 0 && d <= MAX_VOICE_MS => Some(d),
            (FileKind::Voice, _) => {
                return Err(super::Invalid::VoiceDuration { max: MAX_VOICE_MS }.into());
            }
            (_, None) => None,
            (_, Some(_)) => return Err(super::Invalid::VoiceDuration { max: MAX_VOICE_MS }.into()),
        };
        let max = self.limits.max_text_bytes;
        if caption.len() > max {
            return Err(DomainError::TextTooLong { max });
        }
        let mut parts = vec![Part {
            category: category(attachment.kind),
            content: file_json(&file, attachment.kind, duration),
        }];
        if !caption.is_empty() {
            parts.push(Part {
                category: Category::TEXT,
                content: caption,
            });
        }
        let chat = self.checked_send(me, to, client_id.as_deref()).await?;
        self.store
            .share_file(&file.id, chat.id)
            .await
            .map_err(|e| internal("file share failed", &e))?;
        let new = NewMessage {
            chat: chat.id,
            sender: me,
            kind: kind::NORMAL,
            parts,
            client_id,
            created_at: now_ms(),
        };
        let receipt = self.queue_message(chat.clone(), new, origin).await?;
        Ok(PendingSend { chat, receipt })
    }

    /// [`Domain::queue_file`], waiting until the message is durable (a request without a
    /// connection).
    ///
    /// # Errors
    /// As [`Domain::queue_file`] and [`Domain::finish_send`].
    pub async fn send_file(
        &self,
        me: Ocid,
        to: To,
        attachment: &Attachment,
        caption: String,
        client_id: Option<String>,
    ) -> Result<Sent, DomainError> {
        let pending = self
            .queue_file(me, to, attachment, caption, client_id, None)
            .await?;
        Self::finish_send(pending.chat.id, pending.receipt.await)
    }

    /// An avatar that names an uploaded file (`/files/{id}`) must be a picture `me` may read;
    /// it becomes readable by anyone. Any other avatar text is kept as it is.
    ///
    /// # Errors
    /// `NoSuchFile`, `WrongFileKind`, `Internal`.
    pub(super) async fn check_avatar(&self, me: Ocid, avatar: &str) -> Result<(), DomainError> {
        let Some(id) = avatar.strip_prefix("/files/") else {
            return Ok(());
        };
        let file = self.readable_file(Some(me), id).await?;
        if !sniff::is_picture(&file.mime) {
            return Err(DomainError::WrongFileKind {
                need: "a picture (PNG, JPEG, GIF or WebP)",
            });
        }
        self.store
            .publish_file(id)
            .await
            .map_err(|e| internal("file publish failed", &e))
    }

    /// Remove abandoned uploads and files nothing refers to (older than the grace period),
    /// with their bytes when no other file has the same content.
    ///
    /// # Errors
    /// `Internal`.
    pub async fn sweep_files(&self) -> Result<Swept, DomainError> {
        let storage = self.storage()?;
        let mut swept = Swept::default();
        let now = now_ms();
        loop {
            let expired = self
                .store
                .expired_uploads(now, SWEEP_BATCH)
                .await
                .map_err(|e| internal("expired uploads read failed", &e))?;
            for id in &expired {
                if self.store.delete_upload(id).await.unwrap_or(false) {
                    swept.uploads += 1;
                }
                if let Err(e) = storage.staging.remove(id).await {
                    tracing::warn!(error = %e, "an expired upload's bytes could not be removed");
                }
            }
            if (expired.len() as u32) < SWEEP_BATCH {
                break;
            }
        }
        let before = now - self.limits.files.orphan_grace.as_millis() as i64;
        loop {
            let orphans = self
                .store
                .unreferenced_files(before, SWEEP_BATCH)
                .await
                .map_err(|e| internal("unreferenced files read failed", &e))?;
            for orphan in &orphans {
                let _turn = self.blob_turn.lock().await;
                let (deleted, unused) = self
                    .store
                    .delete_file(&orphan.id, before)
                    .await
                    .map_err(|e| internal("file delete failed", &e))?;
                swept.files += u64::from(deleted);
                if deleted && unused {
                    match storage.blobs.remove(&orphan.sha256).await {
                        Ok(()) => swept.blobs += 1,
                        Err(e) => tracing::warn!(error = %e, "a file's bytes could not be removed"),
                    }
                }
            }
            if (orphans.len() as u32) < SWEEP_BATCH {
                break;
            }
        }
        if swept != Swept::default() {
            tracing::info!(
                uploads = swept.uploads,
                files = swept.files,
                blobs = swept.blobs,
                "file sweep"
            );
        }
        Ok(swept)
    }
}

/// The JSON a message part holds for its file (`docs/protocol/files.md`).
fn file_json(file: &File, kind: FileKind, duration_ms: Option<u64>) -> String {
    let mut v = json!({
        "id": file.id,
        "kind": kind.name(),
        "name": file.name,
        "size": file.size,
        "mime": file.mime,
    });
    if let (Some(w), Some(h)) = (file.width, file.height) {
        v["width"] = json!(w);
        v["height"] = json!(h);
    }
    if let Some(d) = duration_ms {
        v["duration_ms"] = json!(d);
    }
    v.to_string()
}

/// The first bytes of a file (for its type and an image's size).
async fn read_head(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let file = tokio::fs::File::open(path).await?;
    let mut head = Vec::with_capacity(sniff::HEAD_BYTES.min(64 * 1024));
    file.take(sniff::HEAD_BYTES as u64)
        .read_to_end(&mut head)
        .await?;
    Ok(head)
}
