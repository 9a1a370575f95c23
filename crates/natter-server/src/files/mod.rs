//! File bytes: the blob store (finished files, named by their SHA-256, each kept once) and the
//! staging area (uploads being received, named by their id). Metadata is the store's
//! (`store::files`); this module never touches SQL.
//!
//! [`DirBlobs`] keeps both under one directory (`<data_dir>/files` unless configured):
//! `blobs/ab/abcdef...` and `staging/<upload id>`. A cluster's nodes share that directory (a
//! network file system); another implementation of [`Blobs`] can keep finished files in an
//! object store instead.

pub mod sniff;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use tokio::io::{AsyncRead, AsyncSeekExt};

/// A readable stream of a blob's bytes.
pub type BlobReader = Pin<Box<dyn AsyncRead + Send>>;

/// Where finished files' bytes are kept.
#[async_trait]
pub trait Blobs: Send + Sync + 'static {
    /// Take the finished upload at `staged` (a local file, consumed) as the blob `sha256`. If
    /// that blob exists already, the staged copy is simply removed.
    async fn put(&self, staged: &Path, sha256: &str) -> io::Result<()>;
    /// `len` bytes of blob `sha256` from `start`.
    async fn read(&self, sha256: &str, start: u64, len: u64) -> io::Result<BlobReader>;
    /// Remove blob `sha256` (no error if it is already gone).
    async fn remove(&self, sha256: &str) -> io::Result<()>;
}

/// Blobs in a directory tree: `<root>/blobs/<first two hex digits>/<sha256>`.
pub struct DirBlobs {
    root: PathBuf,
}

impl DirBlobs {
    /// Blobs under `root` (made if missing).
    ///
    /// # Errors
    /// The directory cannot be made.
    pub fn open(root: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(root.join("blobs"))?;
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    fn path(&self, sha256: &str) -> io::Result<PathBuf> {
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a blob is named by a SHA-256 in hex",
            ));
        }
        Ok(self.root.join("blobs").join(&sha256[..2]).join(sha256))
    }
}

#[async_trait]
impl Blobs for DirBlobs {
    async fn put(&self, staged: &Path, sha256: &str) -> io::Result<()> {
        let path = self.path(sha256)?;
        if tokio::fs::try_exists(&path).await? {
            return tokio::fs::remove_file(staged).await;
        }
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        // The staged file is complete and synced; a rename makes it appear whole.
        tokio::fs::rename(staged, &path).await
    }

    async fn read(&self, sha256: &str, start: u64, len: u64) -> io::Result<BlobReader> {
        use tokio::io::AsyncReadExt;
        let mut file = tokio::fs::File::open(self.path(sha256)?).await?;
        if start > 0 {
            file.seek(io::SeekFrom::Start(start)).await?;
        }
        Ok(Box::pin(file.take(len)))
    }

    async fn remove(&self, sha256: &str) -> io::Result<()> {
        match tokio::fs::remove_file(self.path(sha256)?).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// Uploads being received: one file per upload id, appended to by each `PATCH`.
pub struct Staging {
    dir: PathBuf,
}

impl Staging {
    /// The staging area under `root` (made if missing).
    ///
    /// # Errors
    /// The directory cannot be made.
    pub fn open(root: &Path) -> io::Result<Self> {
        let dir = root.join("staging");
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    /// Where an upload's bytes are; `id` has been checked to be an upload id (see
    /// [`valid_id`]).
    pub fn path(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// How many bytes of an upload have arrived (0 before the first).
    ///
    /// # Errors
    /// The file exists but cannot be read.
    pub async fn offset(&self, id: &str) -> io::Result<u64> {
        match tokio::fs::metadata(self.path(id)).await {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Remove an upload's bytes (no error if there are none).
    ///
    /// # Errors
    /// The file exists but cannot be removed.
    pub async fn remove(&self, id: &str) -> io::Result<()> {
        match tokio::fs::remove_file(self.path(id)).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// A fresh upload (and file) id: 128 random bits, base32 in lower case (26 characters, safe
/// in a path and a URL).
pub fn new_id() -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let bits: u128 = rand::random();
    (0..26)
        .map(|i| char::from(ALPHABET[((bits >> (i * 5)) & 31) as usize]))
        .collect()
}

/// Whether `id` has the form [`new_id`] makes (so it can name a path).
pub fn valid_id(id: &str) -> bool {
    id.len() == 26
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
}

/// The SHA-256 of a whole file, read in blocks on a blocking thread.
///
/// # Errors
/// The file cannot be read.
pub async fn sha256_of(path: PathBuf) -> io::Result<[u8; 32]> {
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut file = std::fs::File::open(path)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Ok(hasher.finalize().into())
    })
    .await
    .map_err(io::Error::other)?
}
