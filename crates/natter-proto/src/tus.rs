//! The request headers of file uploads and downloads (tus 1.0 and HTTP ranges), read without
//! any HTTP types: `Upload-Metadata`, `Upload-Checksum`, the numeric `Upload-*` headers and
//! `Range`. The transport answers the errors; the rules live here so they can be tested and
//! fuzzed on their own. Format: `docs/protocol/files.md`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// A numeric header (`Upload-Length`, `Upload-Offset`): a non-negative decimal integer.
pub fn number(value: &str) -> Option<u64> {
    value.parse::<u64>().ok()
}

/// The pairs of `Upload-Metadata` (`key base64,key base64,...`), values decoded.
///
/// # Errors
/// The key whose value is not base64 of UTF-8 text.
pub fn metadata(raw: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    for item in raw.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (key, value) = item.split_once(' ').unwrap_or((item, ""));
        let value = STANDARD
            .decode(value.trim())
            .ok()
            .and_then(|v| String::from_utf8(v).ok())
            .ok_or_else(|| key.to_owned())?;
        pairs.push((key.to_owned(), value));
    }
    Ok(pairs)
}

/// The value of the first of `keys` present in `pairs`, else `""`.
pub fn meta<'a>(pairs: &'a [(String, String)], keys: &[&str]) -> &'a str {
    keys.iter()
        .find_map(|k| pairs.iter().find(|(key, _)| key == k))
        .map_or("", |(_, v)| v.as_str())
}

/// Why an `Upload-Checksum` is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadChecksum {
    /// An algorithm other than `sha256`.
    Algorithm,
    /// A digest that is not base64 of 32 bytes.
    Digest,
}

/// `Upload-Checksum: sha256 <base64>`: the digest a request's body must have.
///
/// # Errors
/// [`BadChecksum`] for another algorithm or a digest that is not 32 bytes of base64.
pub fn checksum(value: &str) -> Result<[u8; 32], BadChecksum> {
    let value = value.trim();
    let (algorithm, digest) = value.split_once(' ').unwrap_or((value, ""));
    if algorithm != "sha256" {
        return Err(BadChecksum::Algorithm);
    }
    STANDARD
        .decode(digest.trim())
        .ok()
        .and_then(|d| <[u8; 32]>::try_from(d).ok())
        .ok_or(BadChecksum::Digest)
}

/// What part of a file a `Range` header asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    Whole,
    /// Bytes `start..=end`, both within the file.
    Part {
        start: u64,
        end: u64,
    },
    Unsatisfiable,
}

/// One `bytes=` range (`a-b`, `a-`, `-n`) of a file of `size` bytes; several ranges, other
/// units or nonsense are served whole, as HTTP allows.
pub fn wanted(range: Option<&str>, size: u64) -> Wanted {
    let Some(spec) = range.and_then(|r| r.trim().strip_prefix("bytes=")) else {
        return Wanted::Whole;
    };
    if spec.contains(',') {
        return Wanted::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Wanted::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(start), Ok(end)) if start <= end => (start, end.min(size.saturating_sub(1))),
        (Ok(_), Ok(_)) => return Wanted::Whole,
        (Ok(start), Err(_)) if b.is_empty() => (start, size.saturating_sub(1)),
        (Err(_), Ok(n)) if a.is_empty() => {
            if n == 0 {
                return Wanted::Unsatisfiable;
            }
            (size.saturating_sub(n), size.saturating_sub(1))
        }
        _ => return Wanted::Whole,
    };
    if start >= size {
        return Wanted::Unsatisfiable;
    }
    Wanted::Part { start, end }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(wanted(None, 10), Wanted::Whole);
        assert_eq!(
            wanted(Some("bytes=0-3"), 10),
            Wanted::Part { start: 0, end: 3 }
        );
        assert_eq!(
            wanted(Some("bytes=4-"), 10),
            Wanted::Part { start: 4, end: 9 }
        );
        assert_eq!(
            wanted(Some("bytes=-3"), 10),
            Wanted::Part { start: 7, end: 9 }
        );
        assert_eq!(
            wanted(Some("bytes=5-100"), 10),
            Wanted::Part { start: 5, end: 9 }
        );
        assert_eq!(wanted(Some("bytes=10-"), 10), Wanted::Unsatisfiable);
        assert_eq!(wanted(Some("bytes=-0"), 10), Wanted::Unsatisfiable);
        assert_eq!(wanted(Some("bytes=0-"), 0), Wanted::Unsatisfiable);
        assert_eq!(wanted(Some("bytes=0-1,4-5"), 10), Wanted::Whole);
        assert_eq!(wanted(Some("items=0-1"), 10), Wanted::Whole);
        assert_eq!(wanted(Some("bytes=5-2"), 10), Wanted::Whole);
    }

    #[test]
    fn metadata_pairs() {
        let pairs =
            metadata("filename aGVsbG8udHh0,filetype dGV4dC9wbGFpbg==, empty").expect("pairs");
        assert_eq!(meta(&pairs, &["filename", "name"]), "hello.txt");
        assert_eq!(meta(&pairs, &["type", "filetype"]), "text/plain");
        assert_eq!(meta(&pairs, &["empty"]), "");
        assert_eq!(meta(&pairs, &["missing"]), "");
        assert_eq!(metadata("name !!!"), Err("name".to_owned()));
        // Base64 of bytes that are not UTF-8.
        assert_eq!(metadata("name /w=="), Err("name".to_owned()));
    }

    #[test]
    fn checksums() {
        let digest =
            checksum("sha256 SG6kYiTRu0+2gPNPfJrZao8k7Ii+c+qOWmxlJg6cuKc=").expect("digest");
        assert_eq!(digest[0], 0x48);
        assert_eq!(checksum("md5 AAAA"), Err(BadChecksum::Algorithm));
        assert_eq!(checksum("sha256 AAAA"), Err(BadChecksum::Digest));
        assert_eq!(checksum("sha256"), Err(BadChecksum::Digest));
    }
}
