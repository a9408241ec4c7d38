//! Getting the client's photos: `data:` URIs decoded at intake, `http(s)` URLs
//! fetched under the address policy (see `fetch`), a per-request download
//! budget and a per-gateway cap on fetches in flight. The bytes are sniffed
//! (never the declared type) and their header checked against the decode
//! limits before the job is accepted. Uploaded files (`upload:NAME`) arrive
//! already checked and staged in the blob store (see `uploads`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use atelier_core::request::GenerateRequest;
use atelier_core::settings::{DecodeLimits, FetchSettings};
use atelier_imaging::ImagingError;
use atelier_imaging::decode::{self, InputFormat};
use base64::Engine;
use bytes::{Bytes, BytesMut};
use futures::future::try_join_all;
use reqwest::Url;
use tokio::sync::Semaphore;

use crate::ApiError;
use atelier_egress::{AddressPolicy, shown};

/// One input photo, fetched and sniffed.
#[derive(Debug, Clone)]
pub struct FetchedInput {
    pub data: InputData,
    pub format: InputFormat,
    /// Where it came from, safe to store and show (no credentials or query).
    pub source: String,
}

/// Where an input's bytes are.
#[derive(Debug, Clone)]
pub enum InputData {
    /// In memory (a `data:` URI, a fetched URL).
    Bytes(Bytes),
    /// Already in the blob store under this full key (an uploaded file,
    /// staged while the request was read).
    Staged(String),
}

/// An input the request carried itself, found before any fetch.
#[derive(Debug, Clone)]
pub enum Carried {
    /// A `data:` URI, decoded.
    Inline(Inline),
    /// A file part, streamed to the blob store and checked.
    Uploaded(Uploaded),
}

/// An uploaded file part, staged and checked.
#[derive(Debug, Clone)]
pub struct Uploaded {
    /// Full blob key it is staged under.
    pub key: String,
    pub format: InputFormat,
    /// `upload:NAME (1234 bytes)`.
    pub source: String,
}

/// A `data:` URI's bytes, decoded while the request is parsed.
#[derive(Debug, Clone)]
pub struct Inline {
    pub bytes: Bytes,
    /// `data:image/jpeg (1234 bytes)`.
    pub source: String,
}

/// Fetches input photos with one pooled HTTP client.
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    policy: AddressPolicy,
    limits: DecodeLimits,
    max_total_bytes: u64,
    slots: Arc<Semaphore>,
}

impl Fetcher {
    /// A fetcher with the gateway's fetch settings and the decode limits.
    pub fn new(settings: &FetchSettings, limits: DecodeLimits) -> Result<Self, reqwest::Error> {
        let policy = AddressPolicy::new(settings);
        let client = atelier_egress::client(
            settings,
            &policy,
            concat!("atelier-gateway/", env!("CARGO_PKG_VERSION")),
        )?;
        Ok(Self {
            client,
            policy,
            limits,
            max_total_bytes: settings.max_total_bytes,
            slots: Arc::new(Semaphore::new(settings.max_concurrent)),
        })
    }

    /// Every input of `request`, concurrently; `inline` holds the inputs the
    /// request carried (`data:` URIs decoded, files uploaded; by index). The
    /// first failure names its input.
    pub async fn fetch_all(
        &self,
        request: &GenerateRequest,
        mut inline: Vec<Option<Carried>>,
    ) -> Result<Vec<FetchedInput>, ApiError> {
        let budget = Arc::new(AtomicU64::new(self.max_total_bytes));
        inline.resize(request.input_images.len(), None);
        try_join_all(
            request
                .input_images
                .iter()
                .zip(inline)
                .enumerate()
                .map(|(i, (image, inline))| self.fetch_one(i, &image.url, inline, budget.clone())),
        )
        .await
    }

    async fn fetch_one(
        &self,
        index: usize,
        url: &str,
        inline: Option<Carried>,
        budget: Arc<AtomicU64>,
    ) -> Result<FetchedInput, ApiError> {
        let field = format!("inputImages[{index}].url");
        let (bytes, source, remote) = match inline {
            // Checked as it arrived, and counted against the upload limits.
            Some(Carried::Uploaded(upload)) => {
                return Ok(FetchedInput {
                    data: InputData::Staged(upload.key),
                    format: upload.format,
                    source: upload.source,
                });
            }
            Some(Carried::Inline(inline)) => {
                take_budget(&budget, inline.bytes.len() as u64, &field)?;
                (inline.bytes, inline.source, false)
            }
            None => {
                let (bytes, source) = self.download(&field, url, &budget).await?;
                (bytes, source, true)
            }
        };
        // Header parsing is CPU work: off the runtime.
        let limits = self.limits.clone();
        tokio::task::spawn_blocking(move || {
            let probe =
                decode::probe(&bytes, &limits).map_err(|e| probe_error(&field, &source, remote, e))?;
            Ok(FetchedInput {
                data: InputData::Bytes(bytes),
                format: probe.format,
                source,
            })
        })
        .await?
    }

    async fn download(
        &self,
        field: &str,
        raw: &str,
        budget: &AtomicU64,
    ) -> Result<(Bytes, String), ApiError> {
        let url = Url::parse(raw).map_err(|e| ApiError::InvalidField {
            field: field.to_string(),
            message: format!("not a valid URL: {e}"),
        })?;
        let source = shown(&url);
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ApiError::InvalidField {
                field: field.to_string(),
                message: format!(
                    "scheme `{}` is not accepted; use http(s) or a data: URI",
                    url.scheme()
                ),
            });
        }
        // One answer for every way a fetch can fail, so the gateway cannot be
        // used to probe a network; the cause is in the logs.
        let unreachable = |cause: &dyn std::fmt::Display| {
            tracing::info!(%field, url = %source, %cause, "input fetch refused or failed");
            ApiError::Fetch {
                field: field.to_string(),
                message: format!("{source} could not be fetched"),
            }
        };
        self.policy.check_url(&url).map_err(|e| unreachable(&e))?;
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|e| ApiError::Internal(format!("fetch slots closed: {e}")))?;
        let mut response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| unreachable(&atelier_core::error::error_chain(&e)))?;
        if !response.status().is_success() {
            return Err(unreachable(&format!("HTTP {}", response.status())));
        }
        let max = self.limits.max_bytes;
        if response.content_length().is_some_and(|n| n > max) {
            return Err(too_large(field, format!("{source} is larger than {max} bytes")));
        }
        let mut body = BytesMut::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| unreachable(&atelier_core::error::error_chain(&e)))?
        {
            if (body.len() + chunk.len()) as u64 > max {
                return Err(too_large(field, format!("{source} is larger than {max} bytes")));
            }
            take_budget(budget, chunk.len() as u64, field)?;
            body.extend_from_slice(&chunk);
        }
        Ok((body.freeze(), source))
    }
}

/// Counts `n` bytes against the request's download budget.
fn take_budget(budget: &AtomicU64, n: u64, field: &str) -> Result<(), ApiError> {
    budget
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| left.checked_sub(n))
        .map(drop)
        .map_err(|_| {
            too_large(
                field,
                "the request's inputs are over the gateway's download budget".to_string(),
            )
        })
}

/// Decodes a `data:` URI's base64 payload (`rest` follows `data:`), checking
/// its size before allocating.
pub fn decode_data_uri(field: &str, rest: &str, max_bytes: u64) -> Result<Inline, ApiError> {
    let invalid = |message: &str| ApiError::InvalidField {
        field: field.to_string(),
        message: message.to_string(),
    };
    let (meta, data) = rest
        .split_once(',')
        .ok_or_else(|| invalid("a data: URI needs a comma before its data"))?;
    let Some(media_type) = meta.strip_suffix(";base64") else {
        return Err(invalid(
            "only base64 data: URIs are accepted (data:image/jpeg;base64,...)",
        ));
    };
    if (data.len() as u64).saturating_mul(3) / 4 > max_bytes {
        return Err(too_large(
            field,
            format!("the data: URI holds more than {max_bytes} bytes"),
        ));
    }
    let engine = &base64::engine::general_purpose::STANDARD;
    let decoded = if data.bytes().any(|b| b.is_ascii_whitespace()) {
        let cleaned: Vec<u8> = data.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        engine.decode(cleaned)
    } else {
        engine.decode(data)
    }
    .map_err(|e| invalid(&format!("the data: URI is not valid base64: {e}")))?;
    let media_type: String = media_type
        .chars()
        .take(64)
        .filter(|c| c.is_ascii_graphic())
        .collect();
    Ok(Inline {
        source: format!("data:{media_type} ({} bytes)", decoded.len()),
        bytes: Bytes::from(decoded),
    })
}

fn too_large(field: &str, message: String) -> ApiError {
    ApiError::TooLarge {
        field: Some(field.to_string()),
        message,
    }
}

/// The status an unusable image earns, naming the input. A fetched body that
/// is not an image is not described (it may be an internal page).
pub(crate) fn probe_error(field: &str, source: &str, remote: bool, error: ImagingError) -> ApiError {
    let message = match &error {
        ImagingError::UnsupportedFormat(_) if remote => format!("{source} is not a JPEG, PNG or WebP image"),
        _ => format!("{source}: {error}"),
    };
    match error {
        ImagingError::UnsupportedFormat(_) => ApiError::UnsupportedMedia {
            field: field.to_string(),
            message,
        },
        ImagingError::TooLarge(_) => too_large(field, message),
        _ => ApiError::InvalidField {
            field: field.to_string(),
            message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_uris_decode_and_name_their_source_without_the_data() {
        let inline = decode_data_uri("f", "image/png;base64,aGVsbG8=", 100).expect("decodes");
        assert_eq!(inline.bytes.as_ref(), b"hello");
        assert_eq!(inline.source, "data:image/png (5 bytes)");
        let spaced = decode_data_uri("f", "image/png;base64,aGVs\n bG8=", 100).expect("decodes");
        assert_eq!(spaced.bytes.as_ref(), b"hello");
        assert!(matches!(
            decode_data_uri("f", "image/png;base64,aGVsbG8=", 2),
            Err(ApiError::TooLarge { .. })
        ));
        assert!(matches!(
            decode_data_uri("f", "image/png,raw", 100),
            Err(ApiError::InvalidField { .. })
        ));
    }

    #[test]
    fn the_budget_is_shared_by_every_input() {
        let budget = AtomicU64::new(10);
        assert!(take_budget(&budget, 6, "a").is_ok());
        assert!(take_budget(&budget, 5, "b").is_err());
        assert!(take_budget(&budget, 4, "b").is_ok());
    }

    #[test]
    fn a_fetched_non_image_is_not_described() {
        let e = probe_error(
            "inputImages[0].url",
            "http://internal/secret",
            true,
            ImagingError::UnsupportedFormat(Some("starts with 53 45 43 52".into())),
        );
        let ApiError::UnsupportedMedia { message, .. } = e else {
            panic!("415 expected")
        };
        assert!(!message.contains("53 45"), "{message}");
    }

    mod fuzz {
        //! `data:` URIs of any shape: never a panic, never more bytes than the
        //! limit, and a source that names the media type without the data.

        use proptest::prelude::*;

        use super::*;

        proptest! {

            #[test]
            fn fuzz_data_uris(rest in any::<String>(), max in 0_u64..256) {
                if let Ok(inline) = decode_data_uri("f", &rest, max) {
                    prop_assert!(inline.bytes.len() as u64 <= max);
                    prop_assert!(inline.source.len() < 100, "{}", inline.source);
                }
            }

            #[test]
            fn fuzz_base64_payloads(
                media in "[ -~]{0,80}",
                payload in prop::collection::vec(any::<u8>(), 0..300),
                noise in "[A-Za-z0-9+/=\\s]{0,20}",
            ) {
                use base64::Engine;
                let encoded = base64::engine::general_purpose::STANDARD.encode(&payload);
                let rest = format!("{media};base64,{encoded}");
                match decode_data_uri("f", &rest, 1 << 20) {
                    Ok(inline) => prop_assert_eq!(inline.bytes.as_ref(), &payload[..]),
                    Err(e) => prop_assert!(media.contains(','), "{e}"),
                }
                let noisy = format!("{media};base64,{encoded}{noise}");
                let _ = decode_data_uri("f", &noisy, 1 << 20);
            }
        }
    }
}
