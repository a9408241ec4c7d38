//! Requests, photos and a local image server.

use std::path::Path;

use atelier_fixtures::{GarmentShape, Scene};
use base64::Engine;
use serde_json::{Value, json};

/// A synthetic garment photo as JPEG bytes.
pub fn photo(shape: GarmentShape, seed: u64) -> Vec<u8> {
    photo_sized(shape, seed, 480, 640)
}

/// A synthetic garment photo of the given size as JPEG bytes.
pub fn photo_sized(shape: GarmentShape, seed: u64, width: u32, height: u32) -> Vec<u8> {
    let garment = atelier_fixtures::render(&Scene::example(shape, width, height, seed));
    atelier_fixtures::jpeg(&garment.image, 88)
}

/// `bytes` as a data: URI.
pub fn data_uri(bytes: &[u8]) -> String {
    format!(
        "data:image/jpeg;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// The old clients' request body over `url`.
pub fn request(url: &str, backgrounds: [u8; 3], upscale: bool) -> Value {
    json!({
        "inputImages": [ { "url": url, "view": "front", "backgrounds": backgrounds } ],
        "productType": "general",
        "gender": "male",
        "text": "Test 1",
        "upscale": upscale
    })
}

/// Serves `bytes` at `/shirt.jpg` (and 404 elsewhere) on a local port; returns the base URL.
pub async fn serve_photo(bytes: Vec<u8>) -> String {
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let body = bytes::Bytes::from(bytes);
    let app = axum::Router::new()
        .route(
            "/shirt.jpg",
            get(move || {
                let b = body.clone();
                async move { ([("content-type", "image/jpeg")], b) }
            }),
        )
        .route(
            "/not-an-image.jpg",
            get(|| async { ([("content-type", "image/jpeg")], "<html>hello</html>") }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    format!("http://{addr}")
}

/// Every file under `dir`, relative, sorted.
pub fn files_under(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(base, &p, out);
                } else {
                    out.push(p.strip_prefix(base).expect("under").display().to_string());
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}
