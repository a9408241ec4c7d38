//! The Replicate generator and upscaler against a fake of the predictions API.

mod fakes;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use atelier_core::analysis::ImageAnalysis;
use atelier_core::pipeline::VariationPlan;
use atelier_core::request::{BackgroundKind, Gender, ProductType, UpscaleFactor, View};
use atelier_core::settings::{GeneratorKind, Secret, Settings, UpscalerKind};
use atelier_fixtures::{GarmentShape, Scene};
use atelier_imaging::analysis;
use atelier_providers::replicate::{ReplicateClient, ReplicateGenerator, ReplicateUpscaler};
use atelier_providers::{
    GenerateInput, Generator, PromptContext, ProviderError, Providers, RemoteKind, UpscaleOutput, Upscaler,
};
use fakes::replicate::{Fake, Output, Script, Size, TOKEN, throttled};
use image::RgbImage;
use serde_json::json;
use wiremock::MockServer;

const VERSION: &str = "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa";

fn settings(server: &MockServer) -> Settings {
    let mut s = Settings::defaults();
    s.providers.generator = GeneratorKind::Replicate;
    s.providers.upscaler = UpscalerKind::Replicate;
    let r = &mut s.providers.replicate;
    r.base_url = server.uri();
    r.api_token = Secret::new(TOKEN);
    r.wait_seconds = 1;
    r.deadline_seconds = 10;
    r.poll_interval_ms = 20;
    r.timeout_ms = 2_000;
    r.retry_base_ms = 5;
    r.retry_max_ms = 2_000;
    r.max_retries = 2;
    r.generator.model = "owner/model".into();
    r.generator.version = VERSION.into();
    r.upscaler.model = "nightmareai/real-esrgan".into();
    r.upscaler.version = VERSION.into();
    s
}

async fn start(script: Script) -> (MockServer, Fake) {
    let server = MockServer::start().await;
    let fake = Fake::new(script);
    fake.mount(&server).await;
    (server, fake)
}

fn photo() -> RgbImage {
    atelier_fixtures::render(&Scene::example(GarmentShape::Dress, 240, 320, 9)).image
}

fn generate_input(background: BackgroundKind) -> GenerateInput {
    let s = Settings::defaults();
    let rgb = photo();
    let analyzed = analysis::analyze(&rgb, None, &s.analysis).expect("analysis");
    let analysis: ImageAnalysis = analyzed.analysis;
    GenerateInput {
        source: Arc::new(rgb),
        mask: Arc::new(analyzed.mask),
        analysis: Arc::new(analysis),
        plan: VariationPlan {
            index: 0,
            input: 0,
            view: View::Front,
            background,
            ordinal: 0,
        },
        seed: u64::MAX,
        output: atelier_core::output::OutputSpec::defaults(&s),
        context: PromptContext {
            product_type: ProductType::Dresses,
            gender: Gender::Female,
            view: View::Front,
            text: Some("summer linen".into()),
        },
    }
}

fn generator(s: &Settings) -> ReplicateGenerator {
    ReplicateGenerator::new(ReplicateClient::new(&s.providers.replicate).expect("client"), s)
        .expect("generator")
}

fn upscaler(s: &Settings, fallback: Arc<dyn Upscaler>) -> ReplicateUpscaler {
    ReplicateUpscaler::new(
        ReplicateClient::new(&s.providers.replicate).expect("client"),
        s,
        fallback,
    )
    .expect("upscaler")
}

fn local(s: &Settings) -> Arc<dyn Upscaler> {
    Providers::local(s).expect("local").upscaler
}

fn remote_kind(error: &ProviderError) -> RemoteKind {
    error
        .remote_kind()
        .unwrap_or_else(|| panic!("not a remote error: {error}"))
}

#[tokio::test]
async fn a_versioned_model_runs_through_starting_processing_succeeded() {
    let (server, fake) = start(Script::succeeding(Size::Fixed(300, 400))).await;
    let s = settings(&server);
    let image = generator(&s)
        .generate(generate_input(BackgroundKind::White))
        .await
        .expect("generated");
    assert_eq!(image.dimensions(), (300, 400));
    fake.seen(|seen| {
        assert_eq!((seen.creates, seen.polls, seen.uploads), (1, 2, 0));
        assert!(
            seen.paths.iter().any(|p| p == "POST /v1/predictions"),
            "{:?}",
            seen.paths
        );
        let input = &seen.inputs[0];
        assert!(
            input["image"]
                .as_str()
                .is_some_and(|u| u.starts_with("data:image/jpeg;base64,"))
        );
        let prompt = input["prompt"].as_str().expect("prompt");
        for part in ["dresses", "front view", "female", "pure white", "summer linen"] {
            assert!(prompt.contains(part), "{part} missing: {prompt}");
        }
        assert!(input["seed"].as_u64().is_some_and(|seed| seed < 1 << 31));
        assert!(input["negative_prompt"].is_string());
    });
    let sent = &server.received_requests().await.expect("recorded")[0];
    assert_eq!(
        sent.headers.get("prefer").and_then(|v| v.to_str().ok()),
        Some("wait=1")
    );
    assert_eq!(
        sent.headers.get("cancel-after").and_then(|v| v.to_str().ok()),
        Some("10s")
    );
}

#[tokio::test]
async fn official_models_use_the_model_endpoint_and_list_outputs_work() {
    let mut script = Script::succeeding(Size::Fixed(64, 64));
    script.output = Output::List;
    script.statuses = vec!["succeeded"];
    let (server, fake) = start(script).await;
    let mut s = settings(&server);
    s.providers.replicate.generator.version = String::new();
    let image = generator(&s)
        .generate(generate_input(BackgroundKind::Random))
        .await
        .expect("generated");
    assert_eq!(image.dimensions(), (64, 64));
    fake.seen(|seen| {
        assert!(
            seen.paths
                .iter()
                .any(|p| p == "POST /v1/models/owner/model/predictions"),
            "{:?}",
            seen.paths
        );
        assert_eq!(
            seen.polls, 0,
            "Prefer: wait answered with the finished prediction"
        );
    });
}

#[tokio::test]
async fn inputs_over_the_data_url_limit_are_uploaded_first() {
    let (server, fake) = start(Script::succeeding(Size::Fixed(64, 64))).await;
    let mut s = settings(&server);
    s.providers.replicate.data_url_max_bytes = 1_000;
    generator(&s)
        .generate(generate_input(BackgroundKind::Plain))
        .await
        .expect("generated");
    fake.seen(|seen| {
        assert_eq!(seen.uploads, 1);
        let url = seen.inputs[0]["image"].as_str().expect("url");
        assert!(url.starts_with(&format!("{}/v1/files/", server.uri())), "{url}");
    });
}

#[tokio::test]
async fn failed_canceled_and_aborted_predictions_are_errors() {
    for (statuses, kind, words) in [
        (
            vec!["starting", "processing", "failed"],
            RemoteKind::Failed,
            "CUDA out of memory",
        ),
        (vec!["starting", "canceled"], RemoteKind::Canceled, "canceled"),
        (vec!["starting", "aborted"], RemoteKind::Canceled, "aborted"),
    ] {
        let mut script = Script::succeeding(Size::Fixed(64, 64));
        script.statuses = statuses;
        script.error = "CUDA out of memory";
        let (server, _fake) = start(script).await;
        let error = generator(&settings(&server))
            .generate(generate_input(BackgroundKind::White))
            .await
            .expect_err("fails");
        assert_eq!(remote_kind(&error), kind);
        assert!(error.to_string().contains(words), "{error}");
        assert!(!error.is_permanent());
    }
}

#[tokio::test]
async fn an_unknown_status_keeps_polling() {
    let mut script = Script::succeeding(Size::Fixed(64, 64));
    script.statuses = vec!["starting", "warming", "processing", "succeeded"];
    let (server, fake) = start(script).await;
    generator(&settings(&server))
        .generate(generate_input(BackgroundKind::White))
        .await
        .expect("generated");
    assert_eq!(fake.seen(|s| s.polls), 3);
}

#[tokio::test]
async fn past_our_deadline_the_prediction_is_cancelled() {
    let mut script = Script::succeeding(Size::Fixed(64, 64));
    script.statuses = vec!["starting", "processing"];
    let (server, fake) = start(script).await;
    let mut s = settings(&server);
    s.providers.replicate.deadline_seconds = 1;
    let started = Instant::now();
    let error = generator(&s)
        .generate(generate_input(BackgroundKind::White))
        .await
        .expect_err("times out");
    assert_eq!(remote_kind(&error), RemoteKind::Timeout);
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(fake.seen(|s| s.cancels.clone()), vec!["pred0001".to_string()]);
}

#[tokio::test]
async fn an_expired_output_url_is_a_clear_error() {
    let mut script = Script::succeeding(Size::Fixed(64, 64));
    script.output = Output::Expired;
    let (server, _fake) = start(script).await;
    let error = generator(&settings(&server))
        .generate(generate_input(BackgroundKind::White))
        .await
        .expect_err("expired");
    assert_eq!(remote_kind(&error), RemoteKind::OutputExpired);
    assert!(error.to_string().contains("is gone"), "{error}");
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried() {
    let mut script = Script::succeeding(Size::Fixed(64, 64));
    script.create_failures = vec![
        throttled(),
        (503, json!({"detail": "Service Unavailable", "status": 503}), None),
    ];
    let (server, fake) = start(script).await;
    let started = Instant::now();
    generator(&settings(&server))
        .generate(generate_input(BackgroundKind::White))
        .await
        .expect("third try");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );
    assert_eq!(fake.seen(|s| s.creates), 3);
}

#[tokio::test]
async fn validation_errors_and_bad_tokens_are_permanent() {
    let mut script = Script::succeeding(Size::Fixed(64, 64));
    script.image_field = "input_image";
    let (server, fake) = start(script).await;
    let error = generator(&settings(&server))
        .generate(generate_input(BackgroundKind::White))
        .await
        .expect_err("422");
    assert_eq!(remote_kind(&error), RemoteKind::Rejected);
    assert!(error.is_permanent());
    assert!(error.to_string().contains("input_image is required"), "{error}");
    assert_eq!(fake.seen(|s| s.creates), 1, "not retried");

    let (server, _fake) = start(Script::succeeding(Size::Fixed(64, 64))).await;
    let mut s = settings(&server);
    s.providers.replicate.api_token = Secret::new("r8_wrong");
    let error = generator(&s)
        .generate(generate_input(BackgroundKind::White))
        .await
        .expect_err("401");
    assert_eq!(remote_kind(&error), RemoteKind::Unauthorized);
    assert!(
        error.to_string().contains("valid authentication token"),
        "{error}"
    );
}

#[tokio::test]
async fn a_slow_poll_hits_our_timeout() {
    let mut script = Script::succeeding(Size::Fixed(64, 64));
    script.poll_delay = Some(Duration::from_secs(5));
    let (server, _fake) = start(script).await;
    let mut s = settings(&server);
    s.providers.replicate.timeout_ms = 300;
    s.providers.replicate.max_retries = 0;
    let error = generator(&s)
        .generate(generate_input(BackgroundKind::White))
        .await
        .expect_err("slow");
    assert_eq!(remote_kind(&error), RemoteKind::Timeout);
}

#[tokio::test]
async fn the_upscaler_sends_the_scale_and_checks_the_size() {
    let (server, fake) = start(Script::succeeding(Size::Scaled)).await;
    let s = settings(&server);
    let out = upscaler(&s, local(&s))
        .upscale(Arc::new(photo()), UpscaleFactor::X4)
        .await
        .expect("upscaled");
    assert_eq!(out.image.dimensions(), (960, 1280));
    assert_eq!(out.fallback, None);
    assert_eq!(fake.seen(|s| s.inputs[0]["scale"].clone()), json!(4));
}

#[tokio::test]
async fn a_failed_remote_upscale_falls_back_to_local_and_says_so() {
    let mut script = Script::succeeding(Size::Scaled);
    script.statuses = vec!["starting", "failed"];
    script.error = "GPU fell over";
    let (server, _fake) = start(script).await;
    let s = settings(&server);
    let out = upscaler(&s, local(&s))
        .upscale(Arc::new(photo()), UpscaleFactor::X2)
        .await
        .expect("local");
    assert_eq!(out.image.dimensions(), (480, 640));
    let reason = out.fallback.expect("reason");
    assert!(
        reason.starts_with("replicate failed: ") && reason.contains("GPU fell over"),
        "{reason}"
    );
    assert!(reason.ends_with("; upscaled locally"), "{reason}");
}

#[tokio::test]
async fn a_timed_out_remote_upscale_falls_back_too() {
    let mut script = Script::succeeding(Size::Scaled);
    script.statuses = vec!["starting"];
    let (server, fake) = start(script).await;
    let mut s = settings(&server);
    s.providers.replicate.deadline_seconds = 1;
    let out = upscaler(&s, local(&s))
        .upscale(Arc::new(photo()), UpscaleFactor::X2)
        .await
        .expect("local");
    assert!(out.fallback.is_some_and(|r| r.contains("timeout")));
    assert_eq!(fake.seen(|s| s.cancels.len()), 1);
}

#[derive(Debug)]
struct BrokenUpscaler;

#[async_trait]
impl Upscaler for BrokenUpscaler {
    fn name(&self) -> &'static str {
        "broken"
    }
    async fn upscale(
        &self,
        _image: Arc<RgbImage>,
        _factor: UpscaleFactor,
    ) -> Result<UpscaleOutput, ProviderError> {
        Err(ProviderError::Task {
            provider: "broken",
            message: "out of threads".into(),
        })
    }
}

#[tokio::test]
async fn when_both_fail_the_error_names_both() {
    let mut script = Script::succeeding(Size::Scaled);
    script.output = Output::Expired;
    let (server, _fake) = start(script).await;
    let s = settings(&server);
    let error = upscaler(&s, Arc::new(BrokenUpscaler))
        .upscale(Arc::new(photo()), UpscaleFactor::X2)
        .await
        .expect_err("both fail");
    assert!(matches!(error, ProviderError::Fallback { .. }));
    let text = error.to_string();
    assert!(
        text.contains("output_expired") && text.contains("out of threads"),
        "{text}"
    );
}

#[tokio::test]
async fn providers_are_selected_by_settings() {
    let (server, _fake) = start(Script::succeeding(Size::Scaled)).await;
    let s = settings(&server);
    let p = Providers::from_settings(&s).expect("providers");
    assert_eq!(
        (p.analyzer.name(), p.generator.name(), p.upscaler.name()),
        ("local", "replicate", "replicate")
    );
    let p = Providers::from_settings(&Settings::defaults()).expect("local");
    assert_eq!(
        (p.analyzer.name(), p.generator.name(), p.upscaler.name()),
        ("local", "local", "local")
    );
}

/// Polls `check` until it holds, failing after a generous deadline (no fixed sleeps).
async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_cancelled_job_cancels_its_prediction() {
    let mut script = Script::succeeding(Size::Fixed(64, 64));
    script.statuses = vec!["starting", "processing"];
    let (server, fake) = start(script).await;
    let generator = generator(&settings(&server));
    let task = tokio::spawn(async move { generator.generate(generate_input(BackgroundKind::White)).await });
    eventually("a poll", || fake.seen(|s| s.polls) > 0).await;
    task.abort();
    eventually("the cancel request", || !fake.seen(|s| s.cancels.is_empty())).await;
    assert_eq!(fake.seen(|s| s.cancels.clone()), vec!["pred0001".to_string()]);
}
