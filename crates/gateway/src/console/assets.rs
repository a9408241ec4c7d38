//! The console's page, script and style, compiled into the binary, and the
//! little it must know before it asks for data.

use std::sync::OnceLock;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::AppState;

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// Only this origin's own script, style and data; images and the video may be
/// `blob:` URLs (files fetched with the key in a header); never framed.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// The jobs list (`GET /api/v1/jobs`) and dead-letter routes the console uses
/// when this gateway serves them; without them it shows the jobs it sees live.
const JOBS_LIST_PATH: &str = "/api/v1/jobs";
const DEAD_LETTERS_PATH: &str = "/api/v1/admin/dead-letters";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

/// `GET /console`: the page.
pub async fn page() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

/// `GET /console/app.js`.
pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

/// `GET /console/app.css`.
pub async fn style() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

/// What the page needs before its first data call: whether to ask for a key,
/// how often snapshots come, and which optional APIs this gateway has.
#[derive(Debug, Clone, Serialize)]
pub struct ConsoleConfig {
    pub auth_required: bool,
    pub refresh_ms: u64,
    pub jobs_list: bool,
    pub dead_letters: bool,
}

/// `GET /console/config.json` (public: it holds no data).
pub async fn config(State(app): State<AppState>) -> Json<ConsoleConfig> {
    let (jobs_list, dead_letters) = optional_apis();
    Json(ConsoleConfig {
        auth_required: app.settings.gateway.auth.required,
        refresh_ms: app.settings.console.refresh_ms,
        jobs_list,
        dead_letters,
    })
}

/// Whether this build documents (and so serves) the jobs list and the
/// dead-letter routes.
fn optional_apis() -> (bool, bool) {
    static FOUND: OnceLock<(bool, bool)> = OnceLock::new();
    *FOUND.get_or_init(|| {
        let paths = crate::openapi::document().paths.paths;
        (
            paths.contains_key(JOBS_LIST_PATH),
            paths.contains_key(DEAD_LETTERS_PATH),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_its_own_assets() {
        // The SVG namespace is a name, not a fetch.
        const SVG_NS: &str = "http://www.w3.org/2000/svg";
        for (name, text) in [
            ("index.html", INDEX_HTML),
            ("app.js", APP_JS),
            ("app.css", APP_CSS),
        ] {
            assert!(
                !text.replace(SVG_NS, "").contains("://"),
                "{name} refers to another origin"
            );
        }
        assert!(INDEX_HTML.contains("/console/app.js") && INDEX_HTML.contains("/console/app.css"));
    }
}
