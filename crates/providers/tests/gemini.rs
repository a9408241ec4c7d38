//! The Gemini analyzer against a fake of `generateContent`.

mod fakes;

use std::sync::Arc;
use std::time::{Duration, Instant};

use atelier_core::request::{Gender, ProductType, View};
use atelier_core::settings::{AnalyzerKind, Secret, Settings};
use atelier_fixtures::{GarmentShape, Scene};
use atelier_providers::gemini::{GeminiAnalyzer, GeminiClient};
use atelier_providers::{AnalyzeInput, Analyzer, PromptContext, ProviderError, RemoteKind};
use fakes::gemini::{self, Fake, Reply};
use serde_json::{Value, json};
use wiremock::MockServer;

fn settings(server: &MockServer) -> Settings {
    let mut s = Settings::defaults();
    s.providers.analyzer = AnalyzerKind::Gemini;
    let g = &mut s.providers.gemini;
    g.base_url = server.uri();
    g.api_key = Secret::new(gemini::KEY);
    g.model = gemini::MODEL.into();
    g.max_inline_side = 256;
    g.timeout_ms = 2_000;
    g.retry_base_ms = 5;
    g.retry_max_ms = 1_000;
    g.max_retries = 2;
    s
}

fn context() -> PromptContext {
    PromptContext {
        product_type: ProductType::Tops,
        gender: Gender::Unisex,
        view: View::Front,
        text: Some("organic cotton".into()),
    }
}

fn jpeg() -> Vec<u8> {
    atelier_fixtures::jpeg(&photo(), 85)
}

fn photo() -> image::RgbImage {
    atelier_fixtures::render(&Scene::example(GarmentShape::TShirt, 300, 400, 5)).image
}

async fn describe(s: &Settings) -> Result<atelier_core::analysis::GarmentDescription, ProviderError> {
    GeminiClient::new(&s.providers.gemini)
        .expect("client")
        .describe(&jpeg(), &context())
        .await
}

async fn with(replies: Vec<Reply>) -> MockServer {
    let server = MockServer::start().await;
    Fake::new(replies).mount(&server).await;
    server
}

fn kind(result: Result<impl std::fmt::Debug, ProviderError>) -> (RemoteKind, ProviderError) {
    let error = result.expect_err("fails");
    (error.remote_kind().expect("a remote error"), error)
}

async fn requests(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).expect("json body"))
        .collect()
}

#[tokio::test]
async fn a_description_is_asked_for_with_schema_and_parsed() {
    let server = with(vec![Reply::Describe(gemini::description())]).await;
    let d = describe(&settings(&server)).await.expect("described");
    assert_eq!(d.category, "t-shirt");
    assert_eq!(d.colors, vec!["navy", "white"]);
    assert_eq!(
        d.generation_prompt,
        "navy cotton crew-neck t-shirt with short sleeves"
    );
    let body = &requests(&server).await[0];
    assert_eq!(body["generationConfig"]["responseMimeType"], "application/json");
    assert_eq!(
        body["contents"][0]["parts"][1]["inline_data"]["mime_type"],
        "image/jpeg"
    );
    let prompt = body["contents"][0]["parts"][0]["text"].as_str().expect("text");
    assert!(
        prompt.contains("tops") && prompt.contains("organic cotton"),
        "{prompt}"
    );
}

#[tokio::test]
async fn the_analyzer_enriches_the_local_analysis_and_downscales_the_photo() {
    let server = with(vec![Reply::Describe(gemini::description())]).await;
    let analyzer = GeminiAnalyzer::new(&settings(&server)).expect("analyzer");
    let input = AnalyzeInput {
        rgb: Arc::new(photo()),
        alpha: None,
        context: context(),
    };
    let analyzed = analyzer.analyze(input).await.expect("analysed");
    assert_eq!(
        analyzed.analysis.ai.as_ref().map(|a| a.fit.as_str()),
        Some("regular")
    );
    assert!(
        !analyzed.analysis.palette.is_empty(),
        "the local analysis is still there"
    );
    assert_eq!(analyzed.mask.width().max(analyzed.mask.height()), 400);
    let body = &requests(&server).await[0];
    let data = body["contents"][0]["parts"][1]["inline_data"]["data"]
        .as_str()
        .expect("data");
    let sent = image::load_from_memory(&base64_decode(data)).expect("jpeg");
    assert_eq!(
        (sent.width(), sent.height()),
        (192, 256),
        "sent at max_inline_side"
    );
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("base64")
}

#[tokio::test]
async fn when_gemini_fails_the_local_analysis_stands_unless_required() {
    let server = with(vec![Reply::Blocked]).await;
    let mut s = settings(&server);
    let input = || AnalyzeInput {
        rgb: Arc::new(photo()),
        alpha: None,
        context: context(),
    };
    let analyzed = GeminiAnalyzer::new(&s)
        .expect("analyzer")
        .analyze(input())
        .await
        .expect("local stands");
    assert!(analyzed.analysis.ai.is_none());
    assert!(!analyzed.analysis.palette.is_empty());
    s.providers.gemini.required = true;
    let error = GeminiAnalyzer::new(&s)
        .expect("analyzer")
        .analyze(input())
        .await
        .expect_err("required");
    assert_eq!(error.remote_kind(), Some(RemoteKind::Blocked));
}

#[tokio::test]
async fn a_wrong_key_is_refused_permanently_in_the_apis_words() {
    let server = with(vec![]).await;
    let mut s = settings(&server);
    s.providers.gemini.api_key = Secret::new("wrong");
    let (k, e) = kind(describe(&s).await);
    assert_eq!(k, RemoteKind::Unauthorized);
    assert!(e.is_permanent());
    assert!(e.to_string().contains("API key not valid"), "{e}");
    assert_eq!(requests(&server).await.len(), 1, "not retried");
    assert!(!format!("{s:?}").contains("wrong"), "keys never print");
}

#[tokio::test]
async fn client_errors_400_403_404_are_permanent_with_the_message() {
    for (code, status, message) in [
        (400, "INVALID_ARGUMENT", "Request contains an invalid argument."),
        (
            403,
            "PERMISSION_DENIED",
            "Generative Language API has not been used in project 1 before.",
        ),
        (
            404,
            "NOT_FOUND",
            "models/gemini-2.5-flash is not found for API version v1beta.",
        ),
    ] {
        let server = with(vec![Reply::Error(
            code,
            gemini::error(code, status, message, json!([])),
        )])
        .await;
        let (_, e) = kind(describe(&settings(&server)).await);
        assert!(e.is_permanent(), "{code}");
        assert!(e.to_string().contains(message), "{e}");
        assert!(e.to_string().contains(&format!("HTTP {code}")), "{e}");
        assert_eq!(requests(&server).await.len(), 1, "{code} not retried");
    }
}

#[tokio::test]
async fn a_429_waits_the_retry_delay_then_succeeds() {
    let server = with(vec![
        gemini::throttled("0.3s"),
        Reply::Describe(gemini::description()),
    ])
    .await;
    let started = Instant::now();
    describe(&settings(&server)).await.expect("second try succeeds");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(requests(&server).await.len(), 2);
}

#[tokio::test]
async fn a_daily_quota_fails_fast() {
    let server = with(vec![gemini::daily_quota()]).await;
    let (k, e) = kind(describe(&settings(&server)).await);
    assert_eq!(k, RemoteKind::QuotaExhausted);
    assert!(e.is_permanent());
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn server_errors_are_retried_a_bounded_number_of_times() {
    let unavailable = |code: u16| {
        Reply::Error(
            code,
            gemini::error(
                code,
                "UNAVAILABLE",
                "The model is overloaded. Please try again later.",
                json!([]),
            ),
        )
    };
    let server = with(vec![
        unavailable(503),
        unavailable(500),
        Reply::Describe(gemini::description()),
    ])
    .await;
    describe(&settings(&server)).await.expect("third try succeeds");
    assert_eq!(requests(&server).await.len(), 3);

    let server = with(vec![unavailable(504)]).await;
    let (k, e) = kind(describe(&settings(&server)).await);
    assert_eq!(k, RemoteKind::Unavailable);
    assert!(!e.is_permanent());
    assert_eq!(requests(&server).await.len(), 3, "1 + max_retries");
}

#[tokio::test]
async fn max_tokens_and_blocked_prompts_are_reported() {
    let server = with(vec![Reply::MaxTokens]).await;
    let (k, e) = kind(describe(&settings(&server)).await);
    assert_eq!(k, RemoteKind::Truncated);
    assert!(e.to_string().contains("MAX_TOKENS"), "{e}");

    let server = with(vec![Reply::Blocked]).await;
    let (k, e) = kind(describe(&settings(&server)).await);
    assert_eq!(k, RemoteKind::Blocked);
    assert!(e.to_string().contains("SAFETY"), "{e}");
}

#[tokio::test]
async fn answers_are_validated_not_trusted() {
    let mut bad = gemini::description();
    bad["gender"] = json!("robot");
    for reply in [
        Reply::Text("not json".into()),
        Reply::Describe(bad),
        Reply::Describe(json!({"category": "x"})),
    ] {
        let server = with(vec![reply]).await;
        let (k, _) = kind(describe(&settings(&server)).await);
        assert_eq!(k, RemoteKind::InvalidResponse);
    }
}

#[tokio::test]
async fn a_slow_answer_hits_our_timeout() {
    let server = with(vec![Reply::Slow(Duration::from_secs(5))]).await;
    let mut s = settings(&server);
    s.providers.gemini.timeout_ms = 300;
    s.providers.gemini.max_retries = 1;
    let started = Instant::now();
    let (k, _) = kind(describe(&s).await);
    assert_eq!(k, RemoteKind::Timeout);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        requests(&server).await.len(),
        2,
        "timeouts are retried, boundedly"
    );
}
