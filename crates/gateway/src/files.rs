//! `GET /api/v1/files/{id}/{path}`: a job's artefact with its content type,
//! a strong `ETag`, conditional (`If-None-Match` → 304) and partial (`Range`
//! → 206 / 416) answers. A finished job's artefacts never change, so they are
//! cached for a year as `immutable`; a running job's are revalidated.

use atelier_core::job::JobId;
use atelier_core::keys;
use atelier_storage::StorageError;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::auth::Caller;
use crate::ranges::{self, Wanted};
use crate::wait::load_for;
use crate::{ApiError, AppState};

/// One artefact of a job.
#[utoipa::path(
    get,
    path = "/api/v1/files/{id}/{path}",
    operation_id = "getFile",
    tag = "jobs",
    params(
        ("id" = String, Path, description = "The job's request_id"),
        ("path" = String, Path, description = "The artefact's path, as the result's URLs give it"),
        ("Range" = Option<String>, Header, description = "One byte range (`bytes=0-1023`, `bytes=1024-`, `bytes=-512`)"),
        ("If-Range" = Option<String>, Header, description = "Serve the Range only while the file still has this ETag"),
        ("If-None-Match" = Option<String>, Header, description = "ETags the client holds: 304 when one matches"),
    ),
    responses(
        (status = 200, description = "The file, with its content type, ETag and Cache-Control", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 206, description = "The requested byte range (Content-Range)", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 304, description = "The client's copy (If-None-Match) is current"),
        (status = 404, description = "Unknown job or file", body = crate::error::ErrorBody),
        (status = 416, description = "The range starts past the end (Content-Range: bytes */LENGTH)", body = crate::error::ErrorBody),
    )
)]
pub async fn get_file(
    State(app): State<AppState>,
    caller: Caller,
    Path((id, path)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::NotFound(format!("no file {path} for job {id}"));
    let job: JobId = id.parse().map_err(|_| not_found())?;
    // Another tenant's files are as unknown as its jobs.
    let record = load_for(&app, &caller, job).await.map_err(|_| not_found())?;
    serve_file(&app, job, &path, &headers, record.status.is_terminal()).await
}

/// Job `job`'s artefact at `path` (relative to the job's folder), for a caller
/// already allowed to see the job; `finished` jobs' artefacts are immutable.
pub(crate) async fn serve_file(
    app: &AppState,
    job: JobId,
    path: &str,
    headers: &HeaderMap,
    finished: bool,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::NotFound(format!("no file {path} for job {job}"));
    let safe = !path.is_empty()
        && path
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != ".." && !seg.starts_with('.'));
    if !safe || path == keys::CANCELLED {
        return Err(not_found());
    }
    let key = format!("{}{path}", keys::job_prefix(&job));
    let bytes = match app.blobs.get(&key).await {
        Ok(bytes) => bytes,
        Err(StorageError::NotFound { .. } | StorageError::InvalidKey { .. }) => return Err(not_found()),
        Err(e) => return Err(e.into()),
    };
    // Hashing a video of several megabytes is CPU work: off the runtime.
    let (etag, bytes) = tokio::task::spawn_blocking(move || (ranges::etag(&bytes), bytes)).await?;
    let cache = if finished { IMMUTABLE } else { REVALIDATE };
    let mut response = answer(headers, &etag, bytes)?;
    let modified = response.status() != StatusCode::NOT_MODIFIED;
    let out = response.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, cache),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::ACCEPT_RANGES, "bytes"),
    ] {
        out.insert(name, HeaderValue::from_static(value));
    }
    if let Ok(v) = HeaderValue::from_str(&etag) {
        out.insert(header::ETAG, v);
    }
    if modified {
        out.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(keys::content_type(path)),
        );
        if let Ok(v) = HeaderValue::from_str(&disposition(path)) {
            out.insert(header::CONTENT_DISPOSITION, v);
        }
    }
    Ok(response)
}

/// A finished job's artefacts never change: a year, never revalidated. They
/// stay `private`: they are behind the tenant's key.
const IMMUTABLE: &str = "private, max-age=31536000, immutable";
/// A running job's artefacts may still be rewritten (a retried stage).
const REVALIDATE: &str = "private, no-cache";

/// 304, 206, 416 or 200 with the whole file, as the request's conditions ask.
fn answer(headers: &HeaderMap, etag: &str, bytes: Bytes) -> Result<Response, ApiError> {
    let text = |name| headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    if text(header::IF_NONE_MATCH).is_some_and(|list| ranges::none_match(list, etag)) {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    let len = bytes.len() as u64;
    let range = text(header::RANGE).filter(|_| ranges::if_range_holds(text(header::IF_RANGE), etag));
    match ranges::wanted(range, len) {
        Wanted::Full => Ok(Body::from(bytes).into_response()),
        Wanted::Unsatisfiable => Err(ApiError::RangeNotSatisfiable { length: len }),
        Wanted::Part(part) => {
            let content_range = ranges::content_range(&part, len);
            // Both ends are within `len`, itself a slice length.
            let slice = bytes.slice(part.start as usize..part.end as usize);
            let mut response = (StatusCode::PARTIAL_CONTENT, slice).into_response();
            if let Ok(v) = HeaderValue::from_str(&content_range) {
                response.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            Ok(response)
        }
    }
}

/// `attachment` with a plain file name: a browser opening the URL downloads
/// the file instead of rendering it in the API's origin.
fn disposition(path: &str) -> String {
    let name: String = path
        .rsplit('/')
        .next()
        .unwrap_or("file")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .collect();
    format!("attachment; filename=\"{name}\"")
}

#[cfg(test)]
mod tests {
    use super::disposition;

    #[test]
    fn file_names_are_plain() {
        assert_eq!(disposition("upscaled/0.jpg"), "attachment; filename=\"0.jpg\"");
        assert_eq!(disposition("a\"b;c.jpg"), "attachment; filename=\"abc.jpg\"");
    }
}
