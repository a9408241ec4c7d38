//! The API's routes and its OpenAPI 3.1 document, generated from the same
//! source: every handler is registered with its `#[utoipa::path]` description,
//! so a route cannot be served undocumented or documented but not served.

use std::sync::OnceLock;

use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::{AppState, console, dead, files, jobs, list, ops, queue, stream, submit, webhooks};

#[derive(OpenApi)]
#[openapi(
    // Routed by hand (its path is a wildcard, which the generated route cannot express).
    paths(files::get_file, console::data::console_file),
    info(
        title = "Atelier",
        description = "AI fashion product photos: the garment analysed, rendered on white, plain and scene \
                       backgrounds, upscaled, with a video and an Excel report. The three endpoints of the \
                       old Python service keep their contract.",
        license(name = "Apache-2.0")
    ),
    tags(
        (name = "generate", description = "Submit a job (the old service's endpoints)"),
        (name = "jobs", description = "Follow, stream, cancel a job; fetch its files"),
        (name = "status", description = "The pipeline's load"),
        (name = "ops", description = "Health, readiness, metrics, this document"),
        (name = "admin", description = "Dead letters: list, replay, purge (admin keys only)"),
        (name = "console", description = "The web console's data (admin keys)"),
    )
)]
struct ApiDoc;

/// Where a job's files are served: `{*path}` takes the rest of the path
/// (`upscaled/0.jpg`); the document names it `{path}`.
pub(crate) const FILES_ROUTE: &str = "/api/v1/files/{id}/{*path}";

/// Every route of the API, documented (the files route is added by
/// [`crate::router`] under [`FILES_ROUTE`]).
pub(crate) fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(submit::generate_images))
        .routes(routes!(submit::generate_full))
        .routes(routes!(queue::queue_status))
        .routes(routes!(jobs::get_job, jobs::cancel_job))
        .routes(routes!(list::list_jobs))
        .routes(routes!(dead::list_dead_letters, dead::purge_dead_letters))
        .routes(routes!(dead::get_dead_letter))
        .routes(routes!(dead::replay_dead_letters))
        .routes(routes!(stream::job_events))
        .routes(routes!(webhooks::list_deliveries))
        .routes(routes!(webhooks::retry_delivery))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
        .routes(routes!(ops::openapi))
        .routes(routes!(console::data::console_job))
        .routes(routes!(console::stream::console_events))
}

/// The OpenAPI document served at `/api/v1/openapi.json`.
pub fn document() -> utoipa::openapi::OpenApi {
    let (_, mut api) = api_router().split_for_parts();
    api.info.version = env!("CARGO_PKG_VERSION").to_string();
    api
}

/// [`document`] as JSON, built once.
pub fn document_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| document().to_pretty_json().unwrap_or_else(|_| "{}".to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_has_an_id_and_every_id_is_unique() {
        let api = document();
        let mut ids = Vec::new();
        for (path, item) in &api.paths.paths {
            let operations = [&item.get, &item.post, &item.put, &item.delete, &item.patch];
            for op in operations.into_iter().flatten() {
                let id = op.operation_id.clone().unwrap_or_default();
                assert!(!id.is_empty(), "{path} has an operation without an id");
                assert!(!op.responses.responses.is_empty(), "{path} documents no response");
                ids.push(id);
            }
        }
        let count = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), count, "operation ids are unique");
        assert!(count >= 11, "{count} operations");
        let schemas = api
            .components
            .as_ref()
            .map(|c| c.schemas.len())
            .unwrap_or_default();
        assert!(schemas > 10, "schemas are generated from the types ({schemas})");
    }

    /// Both generate endpoints take the JSON body and the multipart upload
    /// form, whose `request` part is the same schema and whose other parts
    /// are files.
    #[test]
    fn both_generate_endpoints_document_json_and_multipart_bodies() {
        let doc: serde_json::Value = serde_json::from_str(document_json()).expect("JSON");
        for path in ["/api/v1/generate/image", "/api/v1/generate"] {
            let content = &doc["paths"][path]["post"]["requestBody"]["content"];
            assert_eq!(
                content["application/json"]["schema"]["$ref"], "#/components/schemas/GenerateRequest",
                "{path}: {content}"
            );
            assert_eq!(
                content["multipart/form-data"]["schema"]["$ref"], "#/components/schemas/UploadForm",
                "{path}: {content}"
            );
        }
        let form = &doc["components"]["schemas"]["UploadForm"];
        assert_eq!(
            form["properties"]["request"]["$ref"], "#/components/schemas/GenerateRequest",
            "{form}"
        );
        assert!(form["additionalProperties"].is_object(), "file parts: {form}");
    }
}
