//! Secrets: Argon2id password hashes (computed off the async runtime) and session tokens
//! (random, handed to the client once, stored only as a BLAKE2b-256 hash).

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use blake2::{Blake2b256, Digest};
use rand::RngExt;

/// Hash a password with Argon2id (the crate's default algorithm and parameters).
///
/// # Errors
/// Only if the hasher rejects its input (e.g. an absurd length), or the blocking pool is gone.
pub async fn hash_password(password: String) -> Result<String, String> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Check a password against a stored hash; false on any mismatch or malformed hash.
pub async fn verify_password(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .verify_password(password.as_bytes(), hash.as_str())
            .is_ok()
    })
    .await
    .unwrap_or(false)
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

fn base64url(bytes: &[u8]) -> String {
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

    #[tokio::test]
    async fn password_round_trip() {
        let h = hash_password("secret".into()).await.expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("secret".into(), h.clone()).await);
        assert!(!verify_password("Secret".into(), h).await);
    }
}
