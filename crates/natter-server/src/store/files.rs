//! The files part of the storage contract: uploads in progress, finished files and what makes a
//! file readable (the chats it was sent in, its use as an avatar). Only metadata lives here; the
//! bytes are in a [`crate::files::Blobs`] store, named by their SHA-256.

use super::Result;
use async_trait::async_trait;
use natter_proto::{ChatId, Ocid};

/// An upload being received (tus): its bytes so far are in the staging area, under its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// The public id: the upload's URL now and the file's once it is finished.
    pub id: String,
    pub owner: Ocid,
    /// The name the client gave (`filename` or `name` in `Upload-Metadata`).
    pub name: String,
    /// The type the client declared (`filetype` or `type`), `""` for none.
    pub mime: String,
    /// The announced size in bytes.
    pub length: u64,
    /// The `Upload-Metadata` header as it was sent, answered back on `HEAD`.
    pub metadata: String,
    pub created_at: i64,
    /// When it is given up on if no bytes arrive (moved on by each `PATCH`).
    pub expires_at: i64,
}

/// A finished file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub id: String,
    pub owner: Ocid,
    pub name: String,
    pub size: u64,
    pub mime: String,
    /// Lower-case hex SHA-256 of the bytes: their name in the blob store.
    pub sha256: String,
    /// Pixel size, for images whose header could be read.
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Readable by anyone (it is, or was, an avatar).
    pub public: bool,
    pub created_at: i64,
}

/// A file no message, avatar or upload refers to any more (see [`Files::unreferenced_files`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreferenced {
    pub id: String,
    pub sha256: String,
}

#[async_trait]
pub trait Files {
    /// Record a new upload if the owner's files and uploads stay within `quota` bytes with it.
    /// `false`: over quota, nothing recorded.
    async fn create_upload(&self, upload: &Upload, quota: u64) -> Result<bool>;
    async fn upload(&self, id: &str) -> Result<Option<Upload>>;
    /// Move an upload's expiry on (bytes arrived).
    async fn touch_upload(&self, id: &str, expires_at: i64) -> Result<()>;
    /// The upload is complete: it becomes `file` (same id), in one transaction.
    async fn finish_upload(&self, file: &File) -> Result<()>;
    /// Forget an upload (terminated or expired); `false` if there was none.
    async fn delete_upload(&self, id: &str) -> Result<bool>;
    /// Uploads whose expiry has passed, oldest first.
    async fn expired_uploads(&self, now: i64, limit: u32) -> Result<Vec<String>>;
    /// Bytes an account holds: its files and the announced sizes of its uploads.
    async fn bytes_used(&self, owner: Ocid) -> Result<u64>;

    async fn file(&self, id: &str) -> Result<Option<File>>;
    /// The file was sent in `chat`: its members may read it from now on.
    async fn share_file(&self, id: &str, chat: ChatId) -> Result<()>;
    /// Whether `ocid` is a member of a chat the file was sent in.
    async fn file_shared_with(&self, id: &str, ocid: Ocid) -> Result<bool>;
    /// Make a file readable by anyone (it became an avatar).
    async fn publish_file(&self, id: &str) -> Result<()>;
    /// Files created before `before` that no chat, account avatar or group avatar refers to.
    async fn unreferenced_files(&self, before: i64, limit: u32) -> Result<Vec<Unreferenced>>;
    /// Delete a file's record if it is still unreferenced. Returns whether it was deleted and
    /// whether its bytes are now unused (no other file has the same hash).
    async fn delete_file(&self, id: &str, before: i64) -> Result<(bool, bool)>;

    /// A secret of this installation by name (made at first use, the same on every node).
    async fn server_key(&self, name: &str) -> Result<Vec<u8>>;
}
