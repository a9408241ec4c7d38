//! Conditional and partial GETs of artefacts (RFC 9110 §13 and §14): the
//! strong `ETag` a file is served with, `If-None-Match` (→ 304), `Range` with
//! one byte range (→ 206, or 416 when it starts past the end) and `If-Range`.
//!
//! Only one range per request is served: a multi-range request gets the whole
//! file with 200, which RFC 9110 allows (a server may ignore `Range`) and which
//! every download client handles.

use std::ops::Range;

use sha2::{Digest, Sha256};

/// Bytes of the SHA-256 kept in an `ETag`: 128 bits, as unique as the content.
const ETAG_BYTES: usize = 16;

/// The strong entity tag of `content`, quoted: the same bytes give the same
/// tag on every gateway and after a restart.
pub fn etag(content: &[u8]) -> String {
    let digest = Sha256::digest(content);
    format!("\"{}\"", hex::encode(&digest[..ETAG_BYTES]))
}

/// Whether `If-None-Match` holds `etag` (weak comparison, as §13.1.2 asks) or `*`.
pub fn none_match(if_none_match: &str, etag: &str) -> bool {
    if_none_match.trim() == "*" || tags(if_none_match).any(|tag| opaque(tag) == opaque(etag))
}

/// Whether a `Range` may be served under `If-Range`: only when it names this
/// exact (strong) entity tag. A date or another tag means "send it all".
pub fn if_range_holds(if_range: Option<&str>, etag: &str) -> bool {
    if_range.is_none_or(|v| {
        let v = v.trim();
        !v.starts_with("W/") && v == etag
    })
}

/// What a `Range` header asks of a representation of `len` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wanted {
    /// The whole file: no `Range`, another unit, several ranges, or a
    /// malformed one (ignored, as §14.2 allows).
    Full,
    /// These bytes (never empty).
    Part(Range<u64>),
    /// A valid range that starts at or past the end (416).
    Unsatisfiable,
}

/// Reads a `Range` header against a representation of `len` bytes.
pub fn wanted(range: Option<&str>, len: u64) -> Wanted {
    let Some(spec) = range.and_then(|r| r.trim().strip_prefix("bytes=")) else {
        return Wanted::Full;
    };
    if spec.contains(',') {
        return Wanted::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Wanted::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    let number =
        |s: &str| (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse::<u64>().ok());
    match (number(first), number(last)) {
        // `-N`: the last N bytes.
        (None, Some(Some(suffix))) if first.is_empty() => {
            if suffix == 0 || len == 0 {
                Wanted::Unsatisfiable
            } else {
                Wanted::Part(len.saturating_sub(suffix)..len)
            }
        }
        // `A-`: from A to the end (so is `A-B` with B past any u64).
        (Some(Some(start)), None) if last.is_empty() => from(start, len),
        (Some(Some(start)), Some(None)) => from(start, len),
        // `A-B`: inclusive, B clipped to the end.
        (Some(Some(start)), Some(Some(end))) if start <= end => {
            if start >= len {
                Wanted::Unsatisfiable
            } else {
                Wanted::Part(start..end.saturating_add(1).min(len))
            }
        }
        // Numbers too large for u64 are past any end.
        (Some(None), _) => Wanted::Unsatisfiable,
        _ => Wanted::Full,
    }
}

fn from(start: u64, len: u64) -> Wanted {
    if start >= len {
        Wanted::Unsatisfiable
    } else {
        Wanted::Part(start..len)
    }
}

/// The `Content-Range` of a part of a `len`-byte representation.
pub fn content_range(part: &Range<u64>, len: u64) -> String {
    format!("bytes {}-{}/{len}", part.start, part.end.saturating_sub(1))
}

fn tags(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|t| !t.is_empty())
}

/// The tag without its weakness marker.
fn opaque(tag: &str) -> &str {
    tag.strip_prefix("W/").unwrap_or(tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_ranges_as_rfc_9110_reads_them() {
        let len = 1_000;
        assert_eq!(wanted(None, len), Wanted::Full);
        assert_eq!(wanted(Some("bytes=0-99"), len), Wanted::Part(0..100));
        assert_eq!(wanted(Some("bytes=100-"), len), Wanted::Part(100..1_000));
        assert_eq!(wanted(Some("bytes=-10"), len), Wanted::Part(990..1_000));
        assert_eq!(wanted(Some("bytes=-5000"), len), Wanted::Part(0..1_000));
        assert_eq!(wanted(Some("bytes=990-5000"), len), Wanted::Part(990..1_000));
        assert_eq!(wanted(Some("bytes=999-999"), len), Wanted::Part(999..1_000));
        assert_eq!(wanted(Some("bytes=1000-"), len), Wanted::Unsatisfiable);
        assert_eq!(wanted(Some("bytes=1000-1001"), len), Wanted::Unsatisfiable);
        assert_eq!(wanted(Some("bytes=-0"), len), Wanted::Unsatisfiable);
        assert_eq!(
            wanted(Some("bytes=99999999999999999999999-"), len),
            Wanted::Unsatisfiable
        );
        assert_eq!(wanted(Some("bytes=0-"), 0), Wanted::Unsatisfiable);
        // Ignored, so the whole file.
        for ignored in [
            "items=0-1",
            "bytes=5-1",
            "bytes=0-1,5-6",
            "bytes=a-b",
            "bytes=-",
            "bytes=1",
            "bytes=+1-2",
        ] {
            assert_eq!(wanted(Some(ignored), len), Wanted::Full, "{ignored}");
        }
        assert_eq!(
            wanted(Some("bytes=10-99999999999999999999999"), len),
            Wanted::Part(10..1_000)
        );
        assert_eq!(content_range(&(0..100), len), "bytes 0-99/1000");
    }

    #[test]
    fn entity_tags_are_strong_stable_and_compared_as_the_rfc_says() {
        let tag = etag(b"artefact");
        assert_eq!(tag, etag(b"artefact"));
        assert_ne!(tag, etag(b"artefacT"));
        assert!(tag.starts_with('"') && tag.ends_with('"') && tag.len() == 2 + 2 * ETAG_BYTES);
        assert!(none_match(&tag, &tag));
        assert!(none_match(&format!("\"x\", W/{tag}"), &tag));
        assert!(none_match("*", &tag));
        assert!(!none_match("\"other\"", &tag));
        assert!(if_range_holds(None, &tag));
        assert!(if_range_holds(Some(&tag), &tag));
        assert!(
            !if_range_holds(Some(&format!("W/{tag}")), &tag),
            "If-Range needs a strong match"
        );
        assert!(!if_range_holds(Some("Sat, 29 Oct 1994 19:43:31 GMT"), &tag));
    }
}
