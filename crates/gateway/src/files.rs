//! `GET /api/v1/files/{id}/{path}`: a job's artefact with its content type.

use atelier_core::job::JobId;
use atelier_core::keys;
use atelier_storage::StorageError;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::auth::Caller;
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
    ),
    responses(
        (status = 200, description = "The file, with its content type", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 404, description = "Unknown job or file", body = crate::error::ErrorBody),
    )
)]
pub async fn get_file(
    State(app): State<AppState>,
    caller: Caller,
    Path((id, path)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::NotFound(format!("no file {path} for job {id}"));
    let job: JobId = id.parse().map_err(|_| not_found())?;
    // Another tenant's files are as unknown as its jobs.
    load_for(&app, &caller, job).await.map_err(|_| not_found())?;
    serve_file(&app, job, &path).await
}

/// Job `job`'s artefact at `path` (relative to the job's folder), for a caller
/// already allowed to see the job.
pub(crate) async fn serve_file(app: &AppState, job: JobId, path: &str) -> Result<Response, ApiError> {
    let not_found = || ApiError::NotFound(format!("no file {path} for job {job}"));
    let safe = !path.is_empty()
        && path
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != ".." && !seg.starts_with('.'));
    if !safe || path == keys::CANCELLED {
        return Err(not_found());
    }
    let key = format!("{}{path}", keys::job_prefix(&job));
    match app.blobs.get(&key).await {
        Ok(bytes) => Ok((
            [
                (header::CONTENT_TYPE, keys::content_type(path)),
                (header::CACHE_CONTROL, "private, max-age=3600"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (header::CONTENT_DISPOSITION, disposition(path).as_str()),
            ],
            bytes,
        )
            .into_response()),
        Err(StorageError::NotFound { .. } | StorageError::InvalidKey { .. }) => Err(not_found()),
        Err(e) => Err(e.into()),
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
