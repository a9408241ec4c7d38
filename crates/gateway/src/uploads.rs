//! Direct uploads: a generate request sent as `multipart/form-data`, with a
//! part `request` holding the usual JSON, where an input's `url` may be
//! `upload:NAME`, and one file part per `NAME`.
//!
//! The body is read as it arrives, never whole: the `request` part is held (it
//! is JSON, at most `gateway.max_body_bytes`), each file part goes straight to
//! the blob store in parts (`atelier_storage::BlobWriter`) under the job's
//! prefix (`jobs/{id}/uploads/NAME`), keeping only its first bytes to sniff its
//! format and read its header. Every limit is applied while the bytes come in:
//! a file over `limits.max_bytes`, a body over `gateway.uploads.max_body_bytes`,
//! more than `gateway.uploads.max_parts` parts are refused (413) the moment
//! they are passed, naming the part. Each file gets the checks a fetched input
//! gets (its bytes sniffed, its header held to the decode limits) as soon as it
//! ends. When the job is created its inputs are moved to their usual keys;
//! whatever is left under `uploads/` (a refused request, a client gone
//! midway) is deleted when the request ends, and the retention sweeper
//! removes what a crashed gateway left.
//!
//! An `Idempotency-Key` already used is looked up before the body is read: the
//! repeat is then only hashed (nothing stored) and compared with the first
//! request by a fingerprint of its `request` part and of each file's content
//! (not of the raw body, whose boundary each client picks afresh).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use atelier_core::job::JobId;
use atelier_core::keys;
use atelier_core::settings::CorsSettings;
use atelier_imaging::ImagingError;
use atelier_imaging::decode::{self, InputFormat};
use atelier_storage::{BlobStore, BlobWriter};
use axum::body::Body;
use axum::http::HeaderMap;
use bytes::{Bytes, BytesMut};
use sha2::{Digest, Sha256};

use crate::body::{Parsed, Uploads, parse_and_take_inputs};
use crate::inputs::{Uploaded, probe_error};
use crate::{ApiError, AppState};

/// Name of the part holding the request's JSON.
pub const REQUEST_PART: &str = "request";
/// How an input's `url` names a file part: `upload:NAME`.
pub const UPLOAD_PREFIX: &str = "upload:";
/// Longest part name.
const MAX_PART_NAME: usize = 64;
/// First bytes of each file kept in memory to sniff its format and read its
/// header (dimensions, orientation): every header Atelier reads fits,
/// metadata included. A file whose header is longer is read back whole.
const PROBE_BYTES: usize = 1024 * 1024;
/// Folder of a job's staged uploads, below its prefix.
const STAGING_FOLDER: &str = "uploads/";

/// The part name an input's `url` refers to (`upload:NAME` → `NAME`).
pub fn upload_name(url: &str) -> Option<&str> {
    url.strip_prefix(UPLOAD_PREFIX)
}

/// Part names are short and plain (`[A-Za-z0-9._-]`, not starting with a
/// dot), so a name is safe as a blob key and in a message.
pub fn check_part_name(name: &str) -> Result<(), String> {
    let plain = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if name.is_empty() || name.len() > MAX_PART_NAME || !plain || name.starts_with('.') {
        return Err(format!(
            "a part name is 1 to {MAX_PART_NAME} letters, digits, `.`, `_` or `-`, not starting with `.`"
        ));
    }
    if name == REQUEST_PART {
        return Err(format!(
            "`{REQUEST_PART}` is the part holding the JSON, not a file"
        ));
    }
    Ok(())
}

/// A browser may post a form cross-site without asking (no preflight, unlike
/// JSON): a form from another site is refused unless its origin is one the
/// CORS settings allow. Browsers say where a request comes from in
/// `Sec-Fetch-Site`; API clients send none.
pub fn refuse_cross_site(headers: &HeaderMap, cors: &CorsSettings) -> Result<(), ApiError> {
    let site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none");
    if matches!(site, "none" | "same-origin") {
        return Ok(());
    }
    let origin = headers
        .get("origin")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let allowed = cors
        .allowed_origins
        .iter()
        .any(|o| o == "*" || o.eq_ignore_ascii_case(origin));
    if allowed {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "a form posted from another site is refused; allow its origin in gateway.cors.allowed_origins"
                .into(),
        ))
    }
}

/// A generate request with its photos uploaded, as `multipart/form-data`.
/// The part `request` holds the JSON request of the same endpoint (any part
/// `Content-Type`; `application/json` is fine), in which an input's `url` may
/// be `upload:NAME`; each such `NAME` is a file part holding that photo (JPEG,
/// PNG or WebP, recognised from its bytes). Every file part must be named by
/// an input, each name sent once; names are 1 to 64 of `A-Z a-z 0-9 . _ -`.
/// Limits: each file `limits.max_bytes`, the whole body
/// `gateway.uploads.max_body_bytes`, at most `gateway.uploads.max_parts` parts.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[allow(
    dead_code,
    reason = "documents the multipart body for OpenAPI; read by `read_form`"
)]
pub struct UploadForm {
    /// The generate request, as the JSON body would be.
    request: atelier_core::request::GenerateRequest,
    /// The photos, one part per `upload:NAME`.
    #[serde(flatten)]
    files: HashMap<String, UploadedPhoto>,
}

/// An uploaded photo's bytes.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[schema(content_media_type = "application/octet-stream")]
#[allow(dead_code, reason = "documents the multipart body for OpenAPI")]
pub struct UploadedPhoto(String);

/// Whether the files are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// Streamed to the blob store and checked: a new job's inputs.
    Stage,
    /// Only hashed: a repeat of an idempotent request, compared with the first.
    Compare,
}

/// A multipart request, read.
#[derive(Debug)]
pub struct Form {
    /// The `request` part, parsed; its fingerprint covers every part.
    pub parsed: Parsed,
    /// The staged files by part name (empty when only compared).
    pub files: HashMap<String, Uploaded>,
    /// Deletes what is still staged when dropped: keep it until the answer.
    pub staging: Staging,
}

/// A job's staging folder: deleted when this is dropped (the files the job
/// took were moved out of it by then). Dropping it inside the request's task
/// cleans up after refusals, errors and clients that went away.
#[derive(Debug)]
pub struct Staging {
    blobs: BlobStore,
    prefix: String,
    used: bool,
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.used {
            return;
        }
        let (blobs, prefix) = (self.blobs.clone(), std::mem::take(&mut self.prefix));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = blobs.delete_prefix(&prefix).await {
                    tracing::warn!(%prefix, error = %atelier_core::error::error_chain(&e), "staged uploads not deleted; the retention sweeper will");
                }
            });
        }
    }
}

/// Reads a multipart generate request of job `id` within the body timeout.
pub async fn read_form(
    app: &AppState,
    id: JobId,
    boundary: String,
    body: Body,
    content_length: Option<u64>,
    store: Store,
) -> Result<Form, ApiError> {
    let limits = &app.settings.gateway.uploads;
    if content_length.is_some_and(|n| n > limits.max_body_bytes) {
        return Err(body_too_large(None, limits.max_body_bytes));
    }
    let mut reader = FormReader {
        app,
        store,
        staging: Staging {
            blobs: app.blobs.clone(),
            prefix: format!("{}{STAGING_FOLDER}", keys::job_prefix(&id)),
            used: false,
        },
        seen: HashSet::new(),
        request: None,
        digests: Vec::new(),
        files: HashMap::new(),
    };
    let timeout = Duration::from_secs(app.settings.gateway.body_timeout_seconds);
    tokio::time::timeout(timeout, reader.read(boundary, body))
        .await
        .map_err(|_| ApiError::BodyTimeout)??;
    reader.finish().await
}

/// The state of one multipart read.
struct FormReader<'a> {
    app: &'a AppState,
    store: Store,
    staging: Staging,
    /// Every part name so far (duplicates are refused).
    seen: HashSet<String>,
    /// The `request` part once read, and the part names its inputs refer to.
    request: Option<(Parsed, HashSet<String>)>,
    /// SHA-256 of each file by part name, for the fingerprint.
    digests: Vec<(String, [u8; 32])>,
    files: HashMap<String, Uploaded>,
}

impl FormReader<'_> {
    async fn read(&mut self, boundary: String, body: Body) -> Result<(), ApiError> {
        let app = self.app;
        let limits = &app.settings.gateway.uploads;
        let constraints = multer::Constraints::new()
            .size_limit(multer::SizeLimit::new().whole_stream(limits.max_body_bytes));
        let mut multipart =
            multer::Multipart::with_constraints(body.into_data_stream(), boundary, constraints);
        let mut parts = 0_usize;
        while let Some(mut part) = multipart
            .next_field()
            .await
            .map_err(|e| multipart_error(e, None, limits.max_body_bytes))?
        {
            parts += 1;
            let Some(name) = part.name().map(str::to_string) else {
                return Err(ApiError::invalid(
                    &format!("part {parts}"),
                    "every part needs a name (Content-Disposition: form-data; name=\"...\")",
                ));
            };
            let shown = shown_name(&name);
            if parts > limits.max_parts {
                return Err(ApiError::TooLarge {
                    field: Some(shown),
                    message: format!("a request has at most {} parts", limits.max_parts),
                });
            }
            if !self.seen.insert(name.clone()) {
                return Err(ApiError::invalid(&shown, "this part name appears twice"));
            }
            if name == REQUEST_PART {
                self.read_request(&mut part).await?;
            } else {
                check_part_name(&name).map_err(|e| ApiError::invalid(&shown, e))?;
                if let Some((_, referenced)) = &self.request
                    && !referenced.contains(&name)
                {
                    return Err(unreferenced(&name));
                }
                self.read_file(&name, &mut part).await?;
            }
        }
        Ok(())
    }

    /// The `request` part: held (it is the JSON) and parsed off the runtime.
    async fn read_request(&mut self, part: &mut multer::Field<'_>) -> Result<(), ApiError> {
        let gateway = &self.app.settings.gateway;
        let max = gateway.max_body_bytes;
        let mut json = BytesMut::new();
        while let Some(chunk) = part
            .chunk()
            .await
            .map_err(|e| multipart_error(e, Some(REQUEST_PART), gateway.uploads.max_body_bytes))?
        {
            if json.len() + chunk.len() > max {
                return Err(ApiError::TooLarge {
                    field: Some(REQUEST_PART.into()),
                    message: format!("the request part is over the gateway's limit of {max} bytes"),
                });
            }
            json.extend_from_slice(&chunk);
        }
        let max_input = self.app.settings.limits.max_bytes;
        let json = json.freeze();
        let parsed =
            tokio::task::spawn_blocking(move || parse_and_take_inputs(json, max_input, Uploads::Allowed))
                .await??;
        let referenced: HashSet<String> = parsed
            .request
            .input_images
            .iter()
            .filter_map(|image| upload_name(&image.url))
            .map(str::to_string)
            .collect();
        // Files sent before the request part must be ones it names.
        if let Some((name, _)) = self.digests.iter().find(|(name, _)| !referenced.contains(name)) {
            return Err(unreferenced(name));
        }
        self.request = Some((parsed, referenced));
        Ok(())
    }

    /// A file part: streamed to the blob store (or only hashed), then checked.
    async fn read_file(&mut self, name: &str, part: &mut multer::Field<'_>) -> Result<(), ApiError> {
        let key = format!("{}{name}", self.staging.prefix);
        let mut writer = match self.store {
            Store::Stage => {
                self.staging.used = true;
                Some(self.app.blobs.writer(&key).await?)
            }
            Store::Compare => None,
        };
        let read = self.pump(name, part, writer.as_mut()).await;
        let read = match (read, writer) {
            (Ok(read), Some(writer)) => {
                writer.finish().await?;
                read
            }
            (Ok(read), None) => read,
            (Err(error), writer) => {
                if let Some(writer) = writer
                    && let Err(e) = writer.abort().await
                {
                    tracing::warn!(%key, error = %atelier_core::error::error_chain(&e), "aborted upload not cleaned up");
                }
                return Err(error);
            }
        };
        self.digests.push((name.to_string(), read.digest));
        if self.store == Store::Stage {
            let source = format!("{UPLOAD_PREFIX}{name} ({} bytes)", read.size);
            let format = self.probe(name, &key, read).await?;
            self.files
                .insert(name.to_string(), Uploaded { key, format, source });
        }
        Ok(())
    }

    /// Moves one part's bytes into `writer`, counting them against the file
    /// limit as they come, hashing them and keeping the first ones.
    async fn pump(
        &self,
        name: &str,
        part: &mut multer::Field<'_>,
        mut writer: Option<&mut BlobWriter>,
    ) -> Result<FileRead, ApiError> {
        let max = self.app.settings.limits.max_bytes;
        let mut size = 0_u64;
        let mut hasher = Sha256::new();
        let mut head = BytesMut::new();
        while let Some(chunk) = part
            .chunk()
            .await
            .map_err(|e| multipart_error(e, Some(name), self.app.settings.gateway.uploads.max_body_bytes))?
        {
            size += chunk.len() as u64;
            if size > max {
                return Err(ApiError::TooLarge {
                    field: Some(name.to_string()),
                    message: format!("the file is over the limit of {max} bytes per input"),
                });
            }
            hasher.update(&chunk);
            if head.len() < PROBE_BYTES {
                let take = chunk.len().min(PROBE_BYTES - head.len());
                head.extend_from_slice(&chunk[..take]);
            }
            if let Some(writer) = writer.as_deref_mut() {
                writer.write(chunk).await?;
            }
        }
        Ok(FileRead {
            size,
            head: head.freeze(),
            digest: hasher.finalize().into(),
        })
    }

    /// The checks a fetched input gets (sniffed bytes, header within the
    /// decode limits), on the file's first bytes; a header longer than those
    /// is read back whole from the store.
    async fn probe(&self, name: &str, key: &str, read: FileRead) -> Result<InputFormat, ApiError> {
        let field = name.to_string();
        let source = format!("{UPLOAD_PREFIX}{name}");
        let limits = self.app.settings.limits.clone();
        let whole = read.head.len() as u64 == read.size;
        let head = read.head;
        let first = {
            let limits = limits.clone();
            tokio::task::spawn_blocking(move || decode::probe(&head, &limits)).await?
        };
        let probed = match first {
            Err(ImagingError::Corrupt(_)) if !whole => {
                let bytes = self.app.blobs.get(key).await?;
                tokio::task::spawn_blocking(move || decode::probe(&bytes, &limits)).await?
            }
            other => other,
        };
        probed
            .map(|probe| probe.format)
            .map_err(|e| probe_error(&field, &source, false, e))
    }

    /// After the last part: the request is there, every file it names came,
    /// and the fingerprint covers the JSON and every file's content.
    async fn finish(mut self) -> Result<Form, ApiError> {
        let Some((mut parsed, referenced)) = self.request.take() else {
            return Err(ApiError::invalid(
                REQUEST_PART,
                "a multipart request needs a part named `request` holding the JSON request",
            ));
        };
        let mut missing: Vec<&String> = referenced
            .iter()
            .filter(|name| !self.digests.iter().any(|(sent, _)| sent == *name))
            .collect();
        missing.sort();
        if let Some(name) = missing.first() {
            return Err(ApiError::invalid(
                name,
                format!("an input's url is `{UPLOAD_PREFIX}{name}`, but no file part is named `{name}`"),
            ));
        }
        self.digests.sort();
        let mut hasher = Sha256::new();
        hasher.update(b"multipart/form-data\n");
        hasher.update(parsed.fingerprint.as_bytes());
        for (name, digest) in &self.digests {
            hasher.update(b"\n");
            hasher.update(name.as_bytes());
            hasher.update(b"=");
            hasher.update(digest);
        }
        parsed.fingerprint = hex::encode(hasher.finalize());
        Ok(Form {
            parsed,
            files: std::mem::take(&mut self.files),
            staging: Staging {
                blobs: self.staging.blobs.clone(),
                prefix: std::mem::take(&mut self.staging.prefix),
                used: std::mem::replace(&mut self.staging.used, false),
            },
        })
    }
}

/// One file part as read.
struct FileRead {
    size: u64,
    /// Its first [`PROBE_BYTES`].
    head: Bytes,
    digest: [u8; 32],
}

/// A part name for a message: as sent when it is plain, cut and cleaned when not.
fn shown_name(name: &str) -> String {
    name.chars()
        .take(MAX_PART_NAME)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn unreferenced(name: &str) -> ApiError {
    ApiError::invalid(
        name,
        format!("no input's url is `{UPLOAD_PREFIX}{name}`; every file part must be an input"),
    )
}

fn body_too_large(part: Option<&str>, max: u64) -> ApiError {
    ApiError::TooLarge {
        field: part.map(str::to_string),
        message: format!("the multipart body is over the gateway's limit of {max} bytes"),
    }
}

/// What multer's errors mean for the client, naming the part being read.
fn multipart_error(error: multer::Error, part: Option<&str>, max_body: u64) -> ApiError {
    match error {
        multer::Error::StreamSizeExceeded { .. } => body_too_large(part, max_body),
        multer::Error::StreamReadFailed(e) => {
            ApiError::MalformedMultipart(format!("the request body could not be read: {e}"))
        }
        other => ApiError::MalformedMultipart(match part {
            Some(part) => format!("part `{}`: {other}", shown_name(part)),
            None => format!("malformed multipart/form-data: {other}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_names_are_plain_and_never_the_request() {
        for good in ["front", "shirt.jpg", "a_b-c", "0"] {
            assert!(check_part_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            ".hidden",
            "../x",
            "a/b",
            "a b",
            "request",
            &"x".repeat(65),
            "é",
        ] {
            assert!(check_part_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(upload_name("upload:front"), Some("front"));
        assert_eq!(upload_name("https://x/upload:front"), None);
    }

    #[test]
    fn forms_from_other_sites_are_refused_unless_their_origin_is_allowed() {
        let cors = |origins: &[&str]| CorsSettings {
            allowed_origins: origins.iter().map(|o| o.to_string()).collect(),
            max_age_seconds: 0,
        };
        let headers = |site: Option<&str>| {
            let mut h = HeaderMap::new();
            if let Some(site) = site {
                h.insert("sec-fetch-site", site.parse().expect("header"));
            }
            h.insert("origin", "https://shop.example".parse().expect("header"));
            h
        };
        assert!(
            refuse_cross_site(&headers(None), &cors(&[])).is_ok(),
            "API clients"
        );
        assert!(refuse_cross_site(&headers(Some("same-origin")), &cors(&[])).is_ok());
        assert!(matches!(
            refuse_cross_site(&headers(Some("cross-site")), &cors(&[])),
            Err(ApiError::Forbidden(_))
        ));
        assert!(refuse_cross_site(&headers(Some("cross-site")), &cors(&["https://shop.example"])).is_ok());
        assert!(refuse_cross_site(&headers(Some("same-site")), &cors(&["*"])).is_ok());
    }

    #[test]
    fn multipart_errors_name_the_part_being_read() {
        let e = multipart_error(multer::Error::StreamSizeExceeded { limit: 10 }, Some("front"), 10);
        assert!(
            matches!(&e, ApiError::TooLarge { field: Some(f), .. } if f == "front"),
            "{e:?}"
        );
        assert_eq!(e.status_and_code().0.as_u16(), 413);
        let e = multipart_error(multer::Error::IncompleteStream, None, 10);
        assert_eq!(e.status_and_code().0.as_u16(), 400);
    }
}
