//! What a file is: its MIME type from its first bytes (the client's declared type is used only
//! where the bytes say nothing or only narrow it down), and an image's pixel size.

/// Bytes read from the start of a file to decide its type and an image's size (a JPEG's size
/// can follow a large EXIF block).
pub const HEAD_BYTES: usize = 256 * 1024;

/// The type of a file whose first bytes are `head`, given the type the client `declared`.
pub fn mime_type(head: &[u8], declared: &str) -> String {
    let declared = declared.trim().to_ascii_lowercase();
    let sniffed = sniff(head);
    match sniffed {
        // A container that holds sound or pictures: the client knows which it sent.
        Some(container @ ("video/webm" | "video/mp4" | "audio/ogg"))
            if declared.starts_with("audio/") || declared.starts_with("video/") =>
        {
            if valid_mime(&declared) {
                declared
            } else {
                container.to_owned()
            }
        }
        Some(known) => known.to_owned(),
        None if valid_mime(&declared) => declared,
        None => "application/octet-stream".to_owned(),
    }
}

fn sniff(h: &[u8]) -> Option<&'static str> {
    let at = |i: usize, magic: &[u8]| h.get(i..i + magic.len()) == Some(magic);
    Some(if at(0, b"\x89PNG\r\n\x1a\n") {
        "image/png"
    } else if at(0, b"\xff\xd8\xff") {
        "image/jpeg"
    } else if at(0, b"GIF87a") || at(0, b"GIF89a") {
        "image/gif"
    } else if at(0, b"RIFF") && at(8, b"WEBP") {
        "image/webp"
    } else if at(0, b"RIFF") && at(8, b"WAVE") {
        "audio/wav"
    } else if at(0, b"OggS") {
        "audio/ogg"
    } else if at(0, b"ID3") || at(0, b"\xff\xfb") || at(0, b"\xff\xf3") || at(0, b"\xff\xf2") {
        "audio/mpeg"
    } else if at(0, b"#!AMR") {
        "audio/amr"
    } else if at(0, b"fLaC") {
        "audio/flac"
    } else if at(4, b"ftyp") {
        if at(8, b"M4A ") {
            "audio/mp4"
        } else {
            "video/mp4"
        }
    } else if at(0, b"\x1a\x45\xdf\xa3") {
        "video/webm"
    } else if at(0, b"%PDF-") {
        "application/pdf"
    } else if at(0, b"PK\x03\x04") {
        "application/zip"
    } else {
        return None;
    })
}

/// `type/subtype` (with optional parameters) in the characters a MIME type may use.
fn valid_mime(m: &str) -> bool {
    let essence = m.split(';').next().unwrap_or_default().trim();
    let token = |s: &str| {
        !s.is_empty()
            && s.len() <= 100
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    m.len() <= 200
        && m.is_ascii()
        && !m.bytes().any(|b| b.is_ascii_control())
        && essence
            .split_once('/')
            .is_some_and(|(t, s)| token(t) && token(s))
}

/// An image's width and height, if `head` starts one whose header can be read.
pub fn dimensions(mime: &str, head: &[u8]) -> Option<(u32, u32)> {
    if !is_picture(mime) {
        return None;
    }
    let size = imagesize::blob_size(head).ok()?;
    Some((
        u32::try_from(size.width).ok()?,
        u32::try_from(size.height).ok()?,
    ))
}

/// The image types natter shows as pictures (and sends inline).
pub fn is_picture(mime: &str) -> bool {
    matches!(
        mime,
        "image/png" | "image/jpeg" | "image/gif" | "image/webp"
    )
}

/// Whether a browser may show the file in place (`Content-Disposition: inline`): pictures,
/// sound and video. Everything else is downloaded, whatever it claims to be.
pub fn inline(mime: &str) -> bool {
    is_picture(mime) || mime.starts_with("audio/") || mime.starts_with("video/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_decide_the_type_and_the_declared_one_fills_in() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\x01\x00\0\0\0\x80\x08\x06\0\0\0";
        assert_eq!(mime_type(png, "text/html"), "image/png");
        assert_eq!(dimensions("image/png", png), Some((256, 128)));
        assert_eq!(mime_type(b"hello", "text/plain"), "text/plain");
        assert_eq!(
            mime_type(b"hello", "not a type"),
            "application/octet-stream"
        );
        assert_eq!(mime_type(b"hello", ""), "application/octet-stream");
        assert_eq!(
            mime_type(b"\x1a\x45\xdf\xa3....", "audio/webm"),
            "audio/webm"
        );
        assert_eq!(mime_type(b"\x1a\x45\xdf\xa3....", ""), "video/webm");
        assert!(inline("image/gif") && inline("audio/ogg") && !inline("text/html"));
        assert_eq!(dimensions("text/plain", png), None);
    }
}
