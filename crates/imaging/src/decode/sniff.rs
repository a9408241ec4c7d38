//! Format detection from content. A client's file name, extension or declared MIME
//! type is never trusted: only the first bytes decide which decoder runs, and
//! anything we do not read is named as precisely as we can so the error tells the
//! client what they actually sent (a GIF, an iPhone HEIC, a PDF, a web page…).

use super::InputFormat;
use crate::ImagingError;

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// Identifies the format of `bytes` from its magic numbers.
///
/// Returns `UnsupportedFormat` (with a description of what the bytes look like when
/// recognisable) for everything but JPEG, PNG and WebP.
pub(crate) fn sniff(bytes: &[u8]) -> Result<InputFormat, ImagingError> {
    if bytes.starts_with(&[0xFF, 0xD8]) {
        return Ok(InputFormat::Jpeg);
    }
    // A prefix of the signature counts, so a PNG cut short inside its
    // signature is reported as truncated rather than as an unknown format.
    if bytes.len() >= 4 && (bytes.starts_with(PNG_SIGNATURE) || PNG_SIGNATURE.starts_with(bytes)) {
        return Ok(InputFormat::Png);
    }
    // A RIFF cut before its form type is most likely a truncated WebP: let the
    // decoder call it corrupt rather than guess "unsupported".
    if bytes.starts_with(b"RIFF") && bytes.get(8..12).is_none_or(|form| form == b"WEBP") {
        return Ok(InputFormat::WebP);
    }
    Err(ImagingError::UnsupportedFormat(Some(describe(bytes))))
}

/// Says what an unsupported input looks like, for the error message.
fn describe(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "the input is empty (0 bytes)".into();
    }
    let at = |range: std::ops::Range<usize>| bytes.get(range).unwrap_or_default();
    let known: Option<&str> = if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("GIF")
    } else if at(4..8) == b"ftyp" {
        Some(iso_media_kind(at(8..12)))
    } else if bytes.starts_with(b"%PDF") {
        Some("PDF document")
    } else if bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*") {
        Some("TIFF (or camera raw)")
    } else if bytes.starts_with(b"BM") && at(6..10) == [0, 0, 0, 0] {
        Some("BMP")
    } else if bytes.starts_with(&[0, 0, 1, 0]) {
        Some("ICO")
    } else if bytes.starts_with(b"8BPS") {
        Some("Photoshop PSD")
    } else if bytes.starts_with(&[0xFF, 0x0A]) || at(4..8) == b"JXL " {
        Some("JPEG XL")
    } else if bytes.starts_with(&[0xFF, 0x4F, 0xFF, 0x51]) || at(4..8) == b"jP  " {
        Some("JPEG 2000")
    } else if bytes.starts_with(b"PK\x03\x04") {
        Some("ZIP archive")
    } else if bytes.starts_with(b"\x1f\x8b") {
        Some("gzip data")
    } else if bytes.starts_with(b"RIFF") {
        Some("RIFF container (AVI or WAV, not WebP)")
    } else {
        None
    };
    if let Some(kind) = known {
        return format!("the data looks like {kind}; Atelier reads JPEG, PNG and WebP");
    }
    if let Some(kind) = text_kind(bytes) {
        return format!("the data is {kind}, not an image");
    }
    let head: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("unrecognised data starting with {}", head.join(" "))
}

/// Names the ISO base media file (`ftyp` box) by its major brand.
fn iso_media_kind(brand: &[u8]) -> &'static str {
    match brand {
        b"heic" | b"heix" | b"hevc" | b"hevx" | b"heim" | b"heis" | b"mif1" | b"msf1" => "HEIC/HEIF",
        b"avif" | b"avis" => "AVIF",
        b"qt  " => "a QuickTime video",
        _ => "an MP4/ISO media file",
    }
}

/// Recognises text (HTML, SVG, XML, JSON or plain) from the first kilobyte.
fn text_kind(bytes: &[u8]) -> Option<&'static str> {
    let head = &bytes[..bytes.len().min(1024)];
    // The cut may split a multi-byte character: accept an error only at the very end.
    let text = match std::str::from_utf8(head) {
        Ok(t) => t,
        Err(e) if e.error_len().is_none() => std::str::from_utf8(&head[..e.valid_up_to()]).ok()?,
        Err(_) => return None,
    };
    if text.chars().any(|c| c.is_control() && !c.is_whitespace()) {
        return None;
    }
    let start = text
        .trim_start_matches('\u{feff}')
        .trim_start()
        .to_ascii_lowercase();
    Some(
        if start.starts_with("<svg") || (start.starts_with("<?xml") && start.contains("<svg")) {
            "SVG (vector graphics)"
        } else if start.starts_with("<!doctype html") || start.starts_with("<html") {
            "an HTML page"
        } else if start.starts_with("<?xml") {
            "XML"
        } else if start.starts_with('{') || start.starts_with('[') {
            "JSON or other text"
        } else {
            "plain text"
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unsupported(bytes: &[u8]) -> String {
        match sniff(bytes) {
            Err(ImagingError::UnsupportedFormat(Some(d))) => d,
            other => panic!("expected UnsupportedFormat, got {other:?}"),
        }
    }

    #[test]
    fn recognises_the_three_supported_formats() {
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0]).ok(), Some(InputFormat::Jpeg));
        assert_eq!(
            sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR").ok(),
            Some(InputFormat::Png)
        );
        assert_eq!(
            sniff(b"\x89PNG").ok(),
            Some(InputFormat::Png),
            "a cut signature is a truncated PNG"
        );
        assert_eq!(sniff(b"RIFF\x10\0\0\0WEBPVP8L").ok(), Some(InputFormat::WebP));
    }

    #[test]
    fn names_what_it_does_not_read() {
        assert!(unsupported(b"").contains("empty"));
        assert!(unsupported(b"GIF89a\x01\0\x01\0").contains("GIF"));
        assert!(unsupported(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic").contains("HEIC"));
        assert!(unsupported(b"\0\0\0\x1cftypavif\0\0\0\0").contains("AVIF"));
        assert!(unsupported(b"%PDF-1.7\n").contains("PDF"));
        assert!(unsupported(b"II*\0\x08\0\0\0").contains("TIFF"));
        assert!(unsupported(b"RIFF\x10\0\0\0AVI LIST").contains("RIFF"));
        assert!(unsupported(b"<!DOCTYPE html><html>").contains("HTML"));
        assert!(unsupported(b"  <svg xmlns=\"http://www.w3.org/2000/svg\">").contains("SVG"));
        assert!(unsupported("hello, wörld".as_bytes()).contains("plain text"));
        assert!(unsupported(&[0x00, 0x13, 0x37, 0xFE, 0x01]).contains("00 13 37 fe 01"));
    }

    #[test]
    fn text_cut_inside_a_multibyte_character_is_still_text() {
        let mut bytes = "é".repeat(600).into_bytes();
        bytes.truncate(1023);
        assert!(unsupported(&bytes).contains("text"));
    }
}
