//! Getting the client's photos: `http(s)` URLs fetched with limits, `data:` URIs
//! decoded; the bytes are sniffed (never the declared type) and their header
//! checked against the decode limits before the job is accepted.

use std::time::Duration;

use atelier_core::request::GenerateRequest;
use atelier_core::settings::{DecodeLimits, GatewaySettings};
use atelier_imaging::ImagingError;
use atelier_imaging::decode::{self, InputFormat};
use base64::Engine;
use bytes::{Bytes, BytesMut};
use futures::future::try_join_all;

use crate::ApiError;

/// One input photo, fetched and sniffed.
#[derive(Debug, Clone)]
pub struct FetchedInput {
    pub bytes: Bytes,
    pub format: InputFormat,
}

/// Fetches input photos with one pooled HTTP client.
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    limits: DecodeLimits,
}

impl Fetcher {
    /// A fetcher with the gateway's timeouts and the decode limits.
    pub fn new(gateway: &GatewaySettings, limits: DecodeLimits) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(gateway.fetch_connect_timeout_ms))
            .timeout(Duration::from_millis(gateway.fetch_timeout_ms))
            .redirect(reqwest::redirect::Policy::limited(gateway.fetch_max_redirects))
            .user_agent(concat!("atelier-gateway/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { client, limits })
    }

    /// Every input of `request`, fetched concurrently; the first failure names its URL.
    pub async fn fetch_all(&self, request: &GenerateRequest) -> Result<Vec<FetchedInput>, ApiError> {
        try_join_all(
            request
                .input_images
                .iter()
                .enumerate()
                .map(|(i, image)| self.fetch_one(i, &image.url)),
        )
        .await
    }

    async fn fetch_one(&self, index: usize, url: &str) -> Result<FetchedInput, ApiError> {
        let field = format!("inputImages[{index}].url");
        let downloaded = match url.strip_prefix("data:") {
            Some(_) => None,
            None => Some(self.download(&field, url).await?),
        };
        // Base64 decoding and header parsing are CPU work: off the runtime.
        let this = self.clone();
        let url = url.to_string();
        tokio::task::spawn_blocking(move || {
            let bytes = match downloaded {
                Some(bytes) => bytes,
                None => this.decode_data_uri(&field, url.strip_prefix("data:").unwrap_or_default())?,
            };
            let probe = decode::probe(&bytes, &this.limits).map_err(|e| probe_error(&field, &url, e))?;
            Ok(FetchedInput {
                bytes,
                format: probe.format,
            })
        })
        .await
        .map_err(|e| ApiError::Internal(format!("input check died: {e}")))?
    }

    fn decode_data_uri(&self, field: &str, rest: &str) -> Result<Bytes, ApiError> {
        let invalid = |message: &str| ApiError::InvalidField {
            field: field.to_string(),
            message: message.to_string(),
        };
        let (meta, data) = rest
            .split_once(',')
            .ok_or_else(|| invalid("a data: URI needs a comma before its data"))?;
        if !meta.ends_with(";base64") {
            return Err(invalid(
                "only base64 data: URIs are accepted (data:image/jpeg;base64,...)",
            ));
        }
        let max = self.limits.max_bytes;
        if (data.len() as u64).saturating_mul(3) / 4 > max {
            return Err(too_large(
                field,
                format!("the data: URI holds more than {max} bytes"),
            ));
        }
        let cleaned: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        base64::engine::general_purpose::STANDARD
            .decode(cleaned.as_bytes())
            .map(Bytes::from)
            .map_err(|e| invalid(&format!("the data: URI is not valid base64: {e}")))
    }

    async fn download(&self, field: &str, url: &str) -> Result<Bytes, ApiError> {
        let fetch_err = |message: String| ApiError::Fetch {
            field: field.to_string(),
            message,
        };
        let parsed = reqwest::Url::parse(url).map_err(|e| ApiError::InvalidField {
            field: field.to_string(),
            message: format!("`{url}` is not a valid URL: {e}"),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ApiError::InvalidField {
                field: field.to_string(),
                message: format!(
                    "`{url}`: scheme `{}` is not accepted; use http(s) or a data: URI",
                    parsed.scheme()
                ),
            });
        }
        let mut response = self
            .client
            .get(parsed)
            .send()
            .await
            .map_err(|e| fetch_err(format!("cannot fetch {url}: {}", describe(&e))))?;
        if !response.status().is_success() {
            return Err(fetch_err(format!(
                "fetching {url} answered HTTP {}",
                response.status()
            )));
        }
        let max = self.limits.max_bytes;
        if response.content_length().is_some_and(|n| n > max) {
            return Err(too_large(field, format!("{url} is larger than {max} bytes")));
        }
        let mut body = BytesMut::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| fetch_err(format!("reading {url} failed: {}", describe(&e))))?
        {
            if (body.len() + chunk.len()) as u64 > max {
                return Err(too_large(field, format!("{url} is larger than {max} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }
}

fn too_large(field: &str, message: String) -> ApiError {
    ApiError::TooLarge {
        field: Some(field.to_string()),
        message,
    }
}

/// Why reqwest failed, in words a client can act on.
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else if e.is_redirect() {
        "too many redirects".into()
    } else {
        e.to_string()
    }
}

/// The status an unusable image earns, naming the input.
fn probe_error(field: &str, url: &str, error: ImagingError) -> ApiError {
    let shown = if url.starts_with("data:") {
        "the data: URI"
    } else {
        url
    };
    let message = format!("{shown}: {error}");
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
