//! The OpenAPI 3.1 document of the gateway, written out by hand from API.md (a
//! generator would need annotations on every core type). A test checks that
//! every route the router serves is documented here and vice versa.

use serde_json::{Value, json};

/// Every (method, path) the gateway serves, in OpenAPI path syntax.
pub const ROUTES: &[(&str, &str)] = &[
    ("post", "/api/v1/generate/image"),
    ("post", "/api/v1/generate"),
    ("get", "/api/v1/status/queue"),
    ("get", "/api/v1/jobs/{id}"),
    ("delete", "/api/v1/jobs/{id}"),
    ("get", "/api/v1/jobs/{id}/events"),
    ("get", "/api/v1/files/{id}/{path}"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/api/v1/openapi.json"),
];

fn error_response(description: &str) -> Value {
    json!({ "description": description,
            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

fn generate(summary: &str) -> Value {
    json!({
        "summary": summary,
        "parameters": [
            { "name": "Prefer", "in": "header", "schema": { "type": "string", "example": "respond-async" } },
            { "name": "Idempotency-Key", "in": "header", "schema": { "type": "string", "maxLength": 255 } },
            { "name": "wait", "in": "query", "schema": { "type": "boolean" } }
        ],
        "requestBody": { "required": true, "content": { "application/json": {
            "schema": { "$ref": "#/components/schemas/GenerateRequest" } } } },
        "responses": {
            "200": { "description": "The job's result (the call waited for it)",
                     "content": { "application/json": { "schema": { "$ref": "#/components/schemas/GenerateResponse" } } } },
            "202": { "description": "Accepted; poll status_url",
                     "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Accepted" } } } },
            "400": error_response("Malformed JSON"),
            "413": error_response("Body or image too large"),
            "415": error_response("Not an image / unsupported format"),
            "422": error_response("Invalid field or unreachable input URL"),
            "500": error_response("The job failed"),
            "503": error_response("Queue full or broker unavailable (Retry-After)")
        }
    })
}

fn simple(summary: &str, ok: &str) -> Value {
    json!({ "summary": summary, "responses": { "200": { "description": ok }, "404": error_response("Unknown job or file") } })
}

/// The document served at `/api/v1/openapi.json`.
pub fn document() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": { "title": "Atelier", "version": env!("CARGO_PKG_VERSION"),
                  "description": "AI fashion product photos: analysis, backgrounds, upscaling, video and report." },
        "paths": {
            "/api/v1/generate/image": { "post": generate("Images only (existing endpoint)") },
            "/api/v1/generate": { "post": generate("Images, video and Excel report (existing endpoint)") },
            "/api/v1/status/queue": { "get": { "summary": "Queue status (existing endpoint)",
                "responses": { "200": { "description": "Old keys plus stages" }, "503": error_response("Status service unavailable") } } },
            "/api/v1/jobs/{id}": {
                "parameters": [ { "name": "id", "in": "path", "required": true, "schema": { "type": "string", "format": "uuid" } } ],
                "get": simple("A job's status, timings and result", "The job"),
                "delete": { "summary": "Cancel a job", "responses": {
                    "202": { "description": "Cancelled" }, "404": error_response("Unknown job"),
                    "409": error_response("Already finished") } }
            },
            "/api/v1/jobs/{id}/events": {
                "parameters": [ { "name": "id", "in": "path", "required": true, "schema": { "type": "string", "format": "uuid" } } ],
                "get": { "summary": "Server-sent events of a job",
                         "responses": { "200": { "description": "text/event-stream" }, "404": error_response("Unknown job") } }
            },
            "/api/v1/files/{id}/{path}": {
                "parameters": [
                    { "name": "id", "in": "path", "required": true, "schema": { "type": "string", "format": "uuid" } },
                    { "name": "path", "in": "path", "required": true, "schema": { "type": "string" } } ],
                "get": simple("An artefact with its content type", "The file")
            },
            "/healthz": { "get": { "summary": "Liveness", "responses": { "200": { "description": "Alive" } } } },
            "/readyz": { "get": { "summary": "Readiness", "responses": { "200": { "description": "Ready" }, "503": { "description": "Not ready" } } } },
            "/metrics": { "get": { "summary": "Prometheus metrics", "responses": { "200": { "description": "text/plain" } } } },
            "/api/v1/openapi.json": { "get": { "summary": "This document", "responses": { "200": { "description": "OpenAPI 3.1" } } } }
        },
        "components": { "schemas": schemas() }
    })
}

fn schemas() -> Value {
    json!({
        "Error": { "type": "object", "required": ["error"], "properties": { "error": { "type": "object",
            "required": ["code", "message"],
            "properties": { "code": { "type": "string" }, "message": { "type": "string" }, "field": { "type": "string" } } } } },
        "InputImage": { "type": "object", "required": ["url", "backgrounds"], "additionalProperties": false,
            "properties": {
                "url": { "type": "string", "description": "http(s) URL or data:image/...;base64, URI" },
                "view": { "enum": ["front", "back", "side", "detail"] },
                "backgrounds": { "type": "array", "items": { "type": "integer", "minimum": 0, "maximum": 4 },
                                 "minItems": 3, "maxItems": 3, "description": "white, plain, random" } } },
        "GenerateRequest": { "type": "object", "required": ["inputImages"], "additionalProperties": false,
            "properties": {
                "inputImages": { "type": "array", "minItems": 1, "maxItems": 8, "items": { "$ref": "#/components/schemas/InputImage" } },
                "productType": { "enum": ["general", "tops", "bottoms", "dresses", "outerwear", "shoes", "accessories"] },
                "gender": { "enum": ["male", "female", "unisex"] },
                "text": { "type": "string", "maxLength": 2000 },
                "upscale": { "type": "boolean" },
                "upscaleFactor": { "enum": [2, 4] },
                "priority": { "type": "integer", "minimum": 0, "maximum": 9 } } },
        "Accepted": { "type": "object", "properties": { "request_id": { "type": "string" },
            "status": { "type": "string" }, "status_url": { "type": "string" } } },
        "GenerateResponse": { "type": "object",
            "required": ["request_id", "status", "image_variations", "upscale_image", "analysis", "metadata"],
            "properties": {
                "request_id": { "type": "string" }, "status": { "type": "string" },
                "image_variations": { "type": "array", "items": { "type": "object" } },
                "upscale_image": { "type": "array", "items": { "type": "object" } },
                "video_url": { "type": "string" }, "excel_url": { "type": "string" },
                "analysis": { "type": "array", "items": { "type": "object" } },
                "metadata": { "type": "object" } } }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_served_route_is_documented_and_nothing_else() {
        let doc = document();
        let paths = doc["paths"].as_object().expect("paths");
        for (method, path) in ROUTES {
            assert!(
                paths.get(*path).and_then(|p| p.get(*method)).is_some(),
                "{method} {path} undocumented"
            );
        }
        let documented: usize = paths
            .values()
            .map(|p| {
                p.as_object()
                    .map_or(0, |o| o.keys().filter(|k| *k != "parameters").count())
            })
            .sum();
        assert_eq!(
            documented,
            ROUTES.len(),
            "the document lists routes the gateway does not serve"
        );
    }

    #[test]
    fn the_request_schema_refuses_unknown_fields_like_the_gateway() {
        let doc = document();
        let schema = &doc["components"]["schemas"]["GenerateRequest"];
        assert_eq!(schema["additionalProperties"], false);
        assert!(schema["properties"].get("callbackUrl").is_none());
    }
}
