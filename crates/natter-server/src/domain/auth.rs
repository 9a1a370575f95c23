//! Secrets: Argon2id password hashes (computed off the async runtime) and session tokens
//! (random, handed to the client once, stored only as a BLAKE2b-256 hash).
//!
//! A check against something that is no hash (an unknown or deleted account) costs the same as
//! a real one: it verifies against a dummy hash made with the same parameters, so that the time
//! of a refusal does not tell which accounts exist.

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use blake2::{Blake2b256, Digest};
use rand::RngExt;

/// Password jobs waiting for a hasher thread before callers are told the server is busy.
const HASH_QUEUE: usize = 1024;

/// A job runs on a hasher thread with that thread's reusable Argon2 memory.
type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

/// The hash checked in place of one that is missing or malformed: a hash of a random password
/// with the parameters of every new hash, made once per process (at the hasher's start).
static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn dummy(blocks: &mut Vec<Block>) -> &'static str {
    DUMMY.get_or_init(|| {
        let random: [u8; 32] = rand::rng().random();
        hash_with(blocks, &random).unwrap_or_default()
    })
}

/// A fixed pool of threads for Argon2id work.
///
/// Each hash needs ~19 MiB (the crate's default memory cost). Allocating it per hash, glibc's
/// dynamic mmap threshold moves these buffers onto the heap where fragmentation pins them
/// (measured: ~380 MB RSS after 40 registrations and logins). Each hasher thread instead owns
/// one buffer for its whole life, so the memory is bounded by the thread count.
pub struct Hasher {
    jobs: tokio::sync::mpsc::Sender<Job>,
}

impl Hasher {
    /// Start `threads` hasher threads (at least one).
    pub fn new(threads: usize) -> Self {
        let (tx, rx) = tokio::sync::mpsc::channel::<Job>(HASH_QUEUE);
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("natter-hash-{i}"))
                .spawn(move || {
                    let mut blocks = Vec::new();
                    loop {
                        let job = rx.lock().unwrap_or_else(|p| p.into_inner()).blocking_recv();
                        match job {
                            Some(job) => job(&mut blocks),
                            None => break,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password hasher thread");
            }
        }
        let hasher = Self { jobs: tx };
        // Made now, so that the first check for an unknown account costs no more than others.
        if DUMMY.get().is_none() {
            let job: Job = Box::new(|blocks| {
                dummy(blocks);
            });
            let _ = hasher.jobs.try_send(job);
        }
        hasher
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, String> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |blocks| {
            let _ = tx.send(f(blocks));
        });
        self.jobs
            .try_send(job)
            .map_err(|_| "too many password checks queued".to_owned())?;
        rx.await
            .map_err(|_| "the password hasher stopped".to_owned())
    }

    /// Hash a password with Argon2id (the crate's default parameters) into a PHC string.
    ///
    /// # Errors
    /// The hasher rejects its input, or the queue is full.
    pub async fn hash(&self, password: String) -> Result<String, String> {
        self.run(move |blocks| hash_with(blocks, password.as_bytes()))
            .await?
    }

    /// Check a password against a stored PHC hash; false on any mismatch or a malformed hash
    /// (empty for an unknown account), which costs as much as a real check.
    ///
    /// # Errors
    /// The queue is full (the server is busy, not the password wrong).
    pub async fn verify(&self, password: String, hash: String) -> Result<bool, String> {
        self.run(move |blocks| verify_with(blocks, password.as_bytes(), &hash))
            .await
    }
}

/// `blocks` grown (once) to `n` blocks.
fn memory(blocks: &mut Vec<Block>, n: usize) -> &mut [Block] {
    if blocks.len() < n {
        blocks.resize(n, Block::default());
    }
    &mut blocks[..n]
}

fn hash_with(blocks: &mut Vec<Block>, password: &[u8]) -> Result<String, String> {
    let params = Params::default();
    let salt: [u8; 16] = rand::rng().random();
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    let n = params.block_count();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(password, &salt, &mut out, memory(blocks, n))
        .map_err(|e| e.to_string())?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| e.to_string())?,
        salt: Some(Salt::new(&salt).map_err(|e| e.to_string())?),
        hash: Some(Output::new(&out).map_err(|e| e.to_string())?),
    };
    Ok(phc.to_string())
}

/// Most Argon2 memory a stored hash may ask for (64 MiB), so a corrupt row cannot make a
/// hasher thread allocate without bound.
const MAX_VERIFY_BLOCKS: usize = 64 * 1024;

fn verify_with(blocks: &mut Vec<Block>, password: &[u8], hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(phc) => verify_phc(blocks, password, phc),
        Err(_) => {
            let dummy = dummy(blocks).to_owned();
            if let Ok(phc) = PasswordHash::new(&dummy) {
                verify_phc(blocks, password, phc);
            }
            false
        }
    }
}

fn verify_phc(blocks: &mut Vec<Block>, password: &[u8], phc: PasswordHash) -> bool {
    let (Ok(algorithm), Ok(params)) = (
        Algorithm::try_from(phc.algorithm.as_str()),
        Params::try_from(&phc),
    ) else {
        return false;
    };
    let version = match phc.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let (Some(salt), Some(expected)) = (phc.salt, phc.hash) else {
        return false;
    };
    let n = params.block_count();
    if n > MAX_VERIFY_BLOCKS {
        return false;
    }
    let mut out = vec![0u8; expected.as_bytes().len()];
    let computed = Argon2::new(algorithm, version, params).hash_password_into_with_memory(
        password,
        salt.as_ref(),
        &mut out,
        memory(blocks, n),
    );
    // Constant-time comparison of the two outputs.
    computed.is_ok()
        && out.len() == expected.as_bytes().len()
        && out
            .iter()
            .zip(expected.as_bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// A fresh session token: 32 random bytes, base64url without padding (43 characters).
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    base64url(&bytes)
}

/// The stored form of a token.
pub fn token_hash(token: &str) -> [u8; 32] {
    Blake2b256::digest(token.as_bytes()).into()
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// 32 bytes from 64 hex digits.
pub(crate) fn unhex(s: &str) -> Option<[u8; 32]> {
    let bytes = s.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let digit = |c: u8| char::from(c).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        out[i] = (digit(pair[0])? << 4) | digit(pair[1])?;
    }
    Some(out)
}

/// Whether two secrets are equal, in time that depends only on their lengths.
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_matches_rfc4648() {
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
        assert_eq!(new_token().len(), 43);
    }

    #[test]
    fn verifies_hashes_made_by_the_crate_api() {
        use argon2::password_hash::PasswordHasher;
        let stored = Argon2::default()
            .hash_password(b"pw")
            .expect("hash")
            .to_string();
        let mut blocks = Vec::new();
        assert!(verify_with(&mut blocks, b"pw", &stored));
        assert!(!verify_with(&mut blocks, b"pW", &stored));
        assert!(!verify_with(&mut blocks, b"pw", "not a hash"));
    }

    /// Checking a password for an unknown account (no hash) does the same work as for a known
    /// one (without the dummy it took a fiftieth of the time; the bound is generous).
    #[test]
    fn a_check_without_a_hash_costs_as_much_as_a_real_one() {
        let mut blocks = Vec::new();
        let real = hash_with(&mut blocks, b"right").expect("hash");
        dummy(&mut blocks);
        let time = |blocks: &mut Vec<Block>, hash: &str| {
            let start = std::time::Instant::now();
            for _ in 0..3 {
                assert!(!verify_with(blocks, b"wrong", hash));
            }
            start.elapsed()
        };
        let known = time(&mut blocks, &real);
        let unknown = time(&mut blocks, "");
        assert!(unknown * 10 > known, "known {known:?}, unknown {unknown:?}");
        assert!(dummy(&mut blocks).starts_with("$argon2id$"));
    }

    #[tokio::test]
    async fn password_round_trip() {
        let hasher = Hasher::new(1);
        let h = hasher.hash("secret".into()).await.expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert_eq!(hasher.verify("secret".into(), h.clone()).await, Ok(true));
        assert_eq!(hasher.verify("Secret".into(), h).await, Ok(false));
    }
}
