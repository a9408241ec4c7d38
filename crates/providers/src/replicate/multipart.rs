//! A one-file `multipart/form-data` body (RFC 7578), enough for `POST /v1/files`.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

/// A boundary that cannot plausibly occur in image bytes by chance.
pub fn boundary() -> String {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u8(0);
    format!(
        "atelier-{:016x}{:016x}",
        hasher.finish(),
        RandomState::new().build_hasher().finish()
    )
}

/// The body with one file part named `field`.
pub fn file_body(boundary: &str, field: &str, mime: &str, bytes: &[u8]) -> Vec<u8> {
    let extension = mime.rsplit('/').next().unwrap_or("bin");
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"input.{extension}\"\r\n\
         Content-Type: {mime}\r\n\r\n"
    );
    let tail = format!("\r\n--{boundary}--\r\n");
    let mut body = Vec::with_capacity(head.len() + bytes.len() + tail.len());
    body.extend_from_slice(head.as_bytes());
    body.extend_from_slice(bytes);
    body.extend_from_slice(tail.as_bytes());
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_frames_the_file() {
        let b = boundary();
        assert_ne!(b, boundary());
        let body = file_body(&b, "content", "image/jpeg", b"\xff\xd8jpeg");
        let text = String::from_utf8_lossy(&body);
        assert!(text.starts_with(&format!(
            "--{b}\r\nContent-Disposition: form-data; name=\"content\"; filename=\"input.jpeg\""
        )));
        assert!(text.ends_with(&format!("jpeg\r\n--{b}--\r\n")));
    }
}
