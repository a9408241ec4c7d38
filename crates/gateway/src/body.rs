//! Reading the generate request: the body within its size and time limits
//! (one buffer, sized once), JSON errors as 400, contract errors as 422 naming
//! the field the way the client wrote it (`inputImages[0].view`), and `data:`
//! URIs decoded and dropped from the request at once, so only their bytes (and
//! never a second copy of the body) go further.

use std::time::Duration;

use atelier_core::request::GenerateRequest;
use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use serde_json::error::Category;
use sha2::Digest;

use crate::ApiError;
use crate::inputs::{Inline, decode_data_uri};

/// A parsed request, its `data:` inputs decoded (by index) and its fingerprint.
#[derive(Debug)]
pub struct Parsed {
    pub request: GenerateRequest,
    pub inline: Vec<Option<Inline>>,
    /// Hex SHA-256 of the body: an Idempotency-Key reused with another body is refused.
    pub fingerprint: String,
}

/// Reads a whole body of at most `max` bytes within `limit`.
pub async fn read_body(
    body: Body,
    content_length: Option<u64>,
    max: usize,
    limit: Duration,
) -> Result<Bytes, ApiError> {
    let too_large = || ApiError::TooLarge {
        field: None,
        message: format!("the request body is over the gateway's limit of {max} bytes"),
    };
    if content_length.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let read = async {
        let capacity = content_length.map_or(0, |n| usize::try_from(n).unwrap_or(max).min(max));
        let mut buffer = BytesMut::with_capacity(capacity);
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk
                .map_err(|e| ApiError::MalformedJson(format!("the request body could not be read: {e}")))?;
            if buffer.len() + chunk.len() > max {
                return Err(too_large());
            }
            buffer.extend_from_slice(&chunk);
        }
        Ok(buffer.freeze())
    };
    tokio::time::timeout(limit, read)
        .await
        .map_err(|_| ApiError::BodyTimeout)?
}

/// Whether a body may name uploaded files (`upload:NAME` input URLs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uploads {
    /// A `multipart/form-data` request, whose file parts the names refer to.
    Allowed,
    /// A JSON body: there is nothing to refer to.
    Refused,
}

/// Parses a body and takes its `data:` URIs out (CPU work: call it off the
/// runtime). The body is dropped before the URIs are decoded.
pub fn parse_and_take_inputs(
    body: Bytes,
    max_input_bytes: u64,
    uploads: Uploads,
) -> Result<Parsed, ApiError> {
    let fingerprint = hex::encode(sha2::Sha256::digest(&body));
    let mut request = parse_request(&body)?;
    drop(body);
    let mut inline = Vec::with_capacity(request.input_images.len());
    for (i, image) in request.input_images.iter_mut().enumerate() {
        if let Some(name) = crate::uploads::upload_name(&image.url) {
            let field = format!("inputImages[{i}].url");
            match uploads {
                Uploads::Refused => {
                    return Err(ApiError::invalid(
                        &field,
                        "`upload:NAME` refers to a file part of a multipart/form-data request; \
                         a JSON body has none (send the photo as a URL or a data: URI, or send \
                         the request as multipart/form-data)",
                    ));
                }
                Uploads::Allowed => {
                    crate::uploads::check_part_name(name).map_err(|e| ApiError::invalid(&field, e))?
                }
            }
            inline.push(None);
            continue;
        }
        match image.url.strip_prefix("data:") {
            Some(rest) => {
                let decoded = decode_data_uri(&format!("inputImages[{i}].url"), rest, max_input_bytes)?;
                // The URI's text goes now; the job keeps its description.
                image.url = decoded.source.clone();
                inline.push(Some(decoded));
            }
            None => inline.push(None),
        }
    }
    Ok(Parsed {
        request,
        inline,
        fingerprint,
    })
}

/// Parses and validates a generate request body.
pub fn parse_request(body: &[u8]) -> Result<GenerateRequest, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::MalformedJson(
            "the request body is empty; send a JSON object".into(),
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    let request: GenerateRequest = match serde_path_to_error::deserialize(de) {
        Ok(request) => request,
        Err(error) => {
            let path = error.path().to_string();
            let inner = error.into_inner();
            return Err(match inner.classify() {
                Category::Syntax | Category::Eof | Category::Io => {
                    ApiError::MalformedJson(format!("malformed JSON: {inner}"))
                }
                Category::Data => data_error(&path, &inner),
            });
        }
    };
    request.validate()?;
    Ok(request)
}

/// Names the field of a well-formed body that does not fit the contract.
fn data_error(path: &str, error: &serde_json::Error) -> ApiError {
    let text = error.to_string();
    // serde says "unknown field `x`, expected one of ... at line 1 column 9".
    let message = text.split(" at line ").next().unwrap_or(&text).to_string();
    let field = match message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next())
    {
        Some(name) if path == "." || path.is_empty() => name.to_string(),
        Some(name) if !path.ends_with(name) => format!("{path}.{name}"),
        _ => path.to_string(),
    };
    let field = if field.is_empty() || field == "." {
        "body".to_string()
    } else {
        field
    };
    ApiError::InvalidField { field, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(body: &str) -> (u16, Option<String>) {
        match parse_request(body.as_bytes()) {
            Ok(_) => (200, None),
            Err(e) => {
                let status = e.status_and_code().0.as_u16();
                let field = match e {
                    ApiError::InvalidField { field, .. } => Some(field),
                    _ => None,
                };
                (status, field)
            }
        }
    }

    const GOOD: &str = r#"{"inputImages":[{"url":"https://x.test/a.jpg","view":"front","backgrounds":[0,1,1]}],"productType":"general","gender":"male","text":"Test 1","upscale":true}"#;

    #[test]
    fn the_old_clients_body_parses() {
        let req = parse_request(GOOD.as_bytes()).expect("valid");
        assert_eq!(req.input_images.len(), 1);
        assert!(req.upscale);
    }

    #[test]
    fn output_and_seed_errors_name_their_field() {
        for (extra, field) in [
            (r#""output":{"preset":"etsy"}"#, "output.preset"),
            (r#""output":{"format":"gif"}"#, "output.format"),
            (r#""output":{"sise":"1x1"}"#, "output.sise"),
            (r#""output":{"size":"1x1","preset":"amazon"}"#, "output.size"),
            (r#""output":{"quality":101}"#, "output.quality"),
            (r#""output":{"transparent":true}"#, "output.transparent"),
            (r#""seed":-1"#, "seed"),
            (r#""seed":1.5"#, "seed"),
        ] {
            let body = GOOD.replace("\"upscale\":true", &format!("\"upscale\":true,{extra}"));
            assert_eq!(field_of(&body), (422, Some(field.into())), "{extra}");
        }
        let body = GOOD.replace("\"upscale\":true", r##""upscale":true,"seed":7,"output":{"format":"webp","transparent":true,"preset":"zalando","margin":0.1,"backgroundColor":"#ffffff"}"##);
        let req = parse_request(body.as_bytes()).expect("valid");
        assert_eq!(req.seed, Some(7));
    }

    #[test]
    fn syntax_errors_are_400() {
        assert_eq!(field_of("{\"inputImages\": [").0, 400);
        assert_eq!(field_of("").0, 400);
        assert_eq!(field_of("not json").0, 400);
    }

    #[test]
    fn unknown_fields_are_named() {
        let body = GOOD.replace(
            "\"upscale\":true",
            "\"upscale\":true,\"callbakUrl\":\"https://x\"",
        );
        assert_eq!(field_of(&body), (422, Some("callbakUrl".into())));
        let body = GOOD.replace("\"view\":\"front\"", "\"view\":\"front\",\"veiw\":1");
        let (status, field) = field_of(&body);
        assert_eq!(status, 422);
        assert_eq!(field.as_deref(), Some("inputImages[0].veiw"));
    }

    #[test]
    fn upload_names_are_only_taken_from_a_multipart_request() {
        let body = GOOD.replace("https://x.test/a.jpg", "upload:front");
        let refused = parse_and_take_inputs(Bytes::from(body.clone()), 1 << 20, Uploads::Refused)
            .expect_err("a JSON body has no parts");
        assert!(
            matches!(&refused, ApiError::InvalidField { field, .. } if field == "inputImages[0].url"),
            "{refused:?}"
        );
        let parsed = parse_and_take_inputs(Bytes::from(body), 1 << 20, Uploads::Allowed).expect("multipart");
        assert_eq!(parsed.request.input_images[0].url, "upload:front");
        assert!(parsed.inline[0].is_none());
        let bad = GOOD.replace("https://x.test/a.jpg", "upload:../etc");
        assert!(matches!(
            parse_and_take_inputs(Bytes::from(bad), 1 << 20, Uploads::Allowed),
            Err(ApiError::InvalidField { field, .. }) if field == "inputImages[0].url"
        ));
    }

    #[test]
    fn wrong_types_and_values_name_their_field() {
        let body = GOOD.replace("\"view\":\"front\"", "\"view\":\"top\"");
        assert_eq!(field_of(&body), (422, Some("inputImages[0].view".into())));
        let body = GOOD.replace("[0,1,1]", "[0,1,9]");
        let (status, field) = field_of(&body);
        assert_eq!(status, 422);
        assert!(
            field
                .unwrap_or_default()
                .starts_with("inputImages[0].backgrounds")
        );
        let body = GOOD.replace("\"upscale\":true", "\"upscale\":\"yes\"");
        assert_eq!(field_of(&body), (422, Some("upscale".into())));
    }

    mod fuzz {
        //! The parser over arbitrary and mutated bodies: never a panic, only
        //! 400 (not JSON) or 422 (naming a field) for what it refuses, and
        //! nothing it accepts that validation would refuse.

        use proptest::prelude::*;

        use super::*;

        fn check(body: &[u8]) -> Result<(), TestCaseError> {
            match parse_and_take_inputs(Bytes::copy_from_slice(body), 1 << 20, Uploads::Refused) {
                Ok(parsed) => {
                    prop_assert!(parsed.request.validate().is_ok());
                    prop_assert_eq!(parsed.inline.len(), parsed.request.input_images.len());
                    for image in &parsed.request.input_images {
                        prop_assert!(
                            !image.url.contains(";base64,"),
                            "a data: URI stayed in the request"
                        );
                    }
                }
                Err(error) => {
                    let status = error.status_and_code().0.as_u16();
                    prop_assert!(matches!(status, 400 | 413 | 422), "{status}: {error}");
                    if let ApiError::InvalidField { field, .. } = &error {
                        prop_assert!(!field.is_empty());
                    }
                }
            }
            Ok(())
        }

        /// JSON close to the contract: real field names, wild values.
        fn near_valid() -> impl Strategy<Value = String> {
            let text = prop_oneof![any::<String>(), "[a-z ]{0,20}".prop_map(String::from)];
            let url = prop_oneof![
                Just("https://x.test/a.jpg".to_string()),
                "data:image/png;base64,[A-Za-z0-9+/=\\s]{0,64}".prop_map(String::from),
                any::<String>(),
            ];
            let backgrounds = prop::collection::vec(any::<i64>(), 0..5);
            (
                url,
                text,
                backgrounds,
                any::<bool>(),
                prop::sample::select(vec!["front", "back", "side", "x", ""]),
            )
                .prop_map(|(url, text, backgrounds, upscale, view)| {
                    serde_json::json!({
                        "inputImages": [{ "url": url, "view": view, "backgrounds": backgrounds }],
                        "productType": "general",
                        "gender": "male",
                        "text": text,
                        "upscale": upscale,
                    })
                    .to_string()
                })
        }

        proptest! {

            #[test]
            fn fuzz_arbitrary_bodies(body in prop::collection::vec(any::<u8>(), 0..512)) {
                check(&body)?;
            }

            #[test]
            fn fuzz_near_valid_bodies(body in near_valid()) {
                check(body.as_bytes())?;
            }

            #[test]
            fn fuzz_mutated_good_bodies(at in any::<usize>(), byte in any::<u8>(), cut in any::<usize>()) {
                let mut body = GOOD.as_bytes().to_vec();
                let n = body.len();
                body[at % n] = byte;
                body.truncate(n - cut % 8);
                check(&body)?;
            }
        }
    }
}
