//! The whole pipeline in process, on synthetic garments, against a memory store.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use atelier_core::job::{JobId, JobKind, JobSpec, StoredInput};
use atelier_core::pipeline::Stage;
use atelier_core::request::{BackgroundKind, GenerateRequest, InputImage, UpscaleFactor, View};
use atelier_core::settings::Settings;
use atelier_fixtures::{GarmentShape, Scene};
use atelier_imaging::decode;
use atelier_providers::{ProviderError, Providers, UpscaleOutput, Upscaler};
use atelier_stages::runner::{now_ms, run_job};
use atelier_stages::{NoProgress, Progress, StageContext, StageError, run_stage};
use atelier_storage::{BlobStore, JobBlobs};
use image::RgbImage;

fn settings() -> Arc<Settings> {
    // Encode videos in this process (the binaries use the atelier-video helper).
    atelier_video::install();
    let mut s = Settings::defaults();
    // Small outputs keep the suite fast; the code paths are the same.
    s.generation.canvas_width = 360;
    s.generation.canvas_height = 480;
    s.video.width = 240;
    s.video.height = 320;
    Arc::new(s)
}

fn request(inputs: usize, backgrounds: [u8; 3], upscale: bool) -> GenerateRequest {
    GenerateRequest {
        text: Some("studio".into()),
        upscale,
        ..GenerateRequest::for_inputs(
            (0..inputs)
                .map(|i| InputImage {
                    url: format!("garment-{i}.jpg"),
                    view: if i == 0 { View::Front } else { View::Back },
                    backgrounds,
                })
                .collect(),
        )
    }
}

async fn store_inputs(blobs: &JobBlobs, photos: &[Vec<u8>]) -> Vec<StoredInput> {
    let mut stored = Vec::new();
    for (i, bytes) in photos.iter().enumerate() {
        let key = format!("inputs/{i}.jpg");
        blobs.put(&key, bytes.clone()).await.expect("put input");
        stored.push(StoredInput {
            key,
            source: format!("garment-{i}.jpg"),
        });
    }
    stored
}

fn photo(shape: GarmentShape, seed: u64) -> Vec<u8> {
    let garment = atelier_fixtures::render(&Scene::example(shape, 480, 640, seed));
    atelier_fixtures::jpeg(&garment.image, 90)
}

fn spec(kind: JobKind, request: GenerateRequest, inputs: Vec<StoredInput>) -> JobSpec {
    JobSpec {
        id: JobId::new(),
        kind,
        request,
        inputs,
        submitted_at_ms: now_ms(),
    }
}

#[derive(Default)]
struct Recorder(Mutex<Vec<(Stage, &'static str)>>);

impl Progress for Recorder {
    fn stage_started(&self, stage: Stage, _items: usize) {
        self.0.lock().expect("lock").push((stage, "started"));
    }
    fn item_done(&self, stage: Stage) {
        self.0.lock().expect("lock").push((stage, "item"));
    }
    fn stage_finished(&self, stage: Stage, _seconds: f64) {
        self.0.lock().expect("lock").push((stage, "finished"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_job_produces_every_artefact() {
    let settings = settings();
    let ctx = StageContext::new(settings.clone(), Providers::local(&settings).expect("providers"));
    let store = BlobStore::memory();
    let blobs = store.scoped("jobs/test/");
    let inputs = store_inputs(
        &blobs,
        &[photo(GarmentShape::TShirt, 1), photo(GarmentShape::Dress, 2)],
    )
    .await;
    let spec = spec(JobKind::Full, request(2, [1, 1, 1], true), inputs);
    let progress = Recorder::default();

    let state = run_job(&ctx, &blobs, spec, &|k: &str| format!("/files/{k}"), &progress)
        .await
        .expect("job runs");

    assert_eq!(state.analyses.len(), 2);
    assert_eq!(state.variations.len(), 6);
    let kinds: Vec<_> = state.variations.iter().map(|v| v.plan.background).collect();
    assert_eq!(
        &kinds[..3],
        &[
            BackgroundKind::White,
            BackgroundKind::Plain,
            BackgroundKind::Random
        ]
    );
    for v in &state.variations {
        let bytes = blobs.get(&v.key).await.expect("variation stored");
        let img = decode::decode(&bytes, &settings.limits).expect("decodes");
        assert_eq!(img.rgb.dimensions(), (360, 480));
        assert_eq!((v.width, v.height), (360, 480));
    }
    assert_eq!(state.upscaled.len(), 6);
    for u in &state.upscaled {
        assert_eq!(
            (u.factor, u.width, u.height, u.fallback.as_deref()),
            (2, 720, 960, None)
        );
        let bytes = blobs.get(&u.key).await.expect("upscale stored");
        let img = decode::decode(&bytes, &settings.limits).expect("decodes");
        assert_eq!(img.rgb.dimensions(), (720, 960));
    }
    let video = state.post.video.as_ref().expect("video made");
    assert!(blobs.size(&video.key).await.expect("head").unwrap_or(0) > 1000);
    assert_eq!(video.frames, atelier_video::frame_count(6, &settings.video));
    let report = state.post.report_key.as_deref().expect("report made");
    assert!(blobs.size(report).await.expect("head").unwrap_or(0) > 1000);

    let result: serde_json::Value =
        serde_json::from_slice(&blobs.get("result.json").await.expect("result stored")).expect("json");
    assert_eq!(result["status"], "completed");
    assert_eq!(result["video_url"], "/files/video.mp4");
    assert_eq!(result["image_variations"].as_array().map(Vec::len), Some(6));
    let times = &result["metadata"]["processing_times"];
    let t = |k: &str| times[k].as_f64().unwrap_or(-1.0);
    for key in [
        "queue_wait",
        "analysis",
        "generation",
        "upscaling",
        "post_processing",
        "saving",
        "total",
    ] {
        assert!(t(key) >= 0.0, "{key} missing in {times}");
    }
    assert!(t("total") >= t("analysis") + t("generation") + t("upscaling") + t("post_processing"));
    assert!(t("saving") > 0.0);

    let events = progress.0.lock().expect("lock").clone();
    let started: Vec<_> = events
        .iter()
        .filter(|(_, e)| *e == "started")
        .map(|(s, _)| *s)
        .collect();
    assert_eq!(started, Stage::ALL.to_vec());
    let items = |stage| events.iter().filter(|(s, e)| *s == stage && *e == "item").count();
    assert_eq!(
        (
            items(Stage::Analysis),
            items(Stage::Generation),
            items(Stage::Upscaling)
        ),
        (2, 6, 6)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_only_job_skips_media_and_upscaling_when_not_asked() {
    let settings = settings();
    let ctx = StageContext::new(settings.clone(), Providers::local(&settings).expect("providers"));
    let blobs = BlobStore::memory().scoped("");
    let inputs = store_inputs(&blobs, &[photo(GarmentShape::Trousers, 3)]).await;
    let spec = spec(JobKind::Images, request(1, [0, 2, 0], false), inputs);
    let state = run_job(&ctx, &blobs, spec, &|k: &str| k.to_string(), &NoProgress)
        .await
        .expect("runs");
    assert_eq!(state.variations.len(), 2);
    assert!(state.upscaled.is_empty());
    assert_eq!(state.post, Default::default());
    assert_eq!(blobs.size("video.mp4").await.expect("head"), None);
    let result: serde_json::Value =
        serde_json::from_slice(&blobs.get("result.json").await.expect("result")).expect("json");
    assert!(result.get("video_url").is_none() && result.get("excel_url").is_none());
    assert_eq!(result["upscale_image"], serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rerunning_a_stage_overwrites_the_same_keys_with_the_same_pixels() {
    let settings = settings();
    let ctx = StageContext::new(settings.clone(), Providers::local(&settings).expect("providers"));
    let blobs = BlobStore::memory().scoped("");
    let inputs = store_inputs(&blobs, &[photo(GarmentShape::TShirt, 4)]).await;
    let mut state =
        atelier_core::pipeline::JobState::new(spec(JobKind::Images, request(1, [1, 1, 1], false), inputs));
    run_stage(Stage::Analysis, &ctx, &blobs, &mut state, &NoProgress)
        .await
        .expect("analysis");
    run_stage(Stage::Generation, &ctx, &blobs, &mut state, &NoProgress)
        .await
        .expect("generation");
    let first: Vec<_> = futures_bytes(&blobs, &state).await;
    let keys_first: Vec<_> = state.variations.iter().map(|v| v.key.clone()).collect();
    run_stage(Stage::Generation, &ctx, &blobs, &mut state, &NoProgress)
        .await
        .expect("redelivered");
    let keys_again: Vec<_> = state.variations.iter().map(|v| v.key.clone()).collect();
    assert_eq!(keys_first, keys_again);
    assert_eq!(
        first,
        futures_bytes(&blobs, &state).await,
        "a rerun renders identical images"
    );
}

async fn futures_bytes(blobs: &JobBlobs, state: &atelier_core::pipeline::JobState) -> Vec<bytes::Bytes> {
    let mut out = Vec::new();
    for v in &state.variations {
        out.push(blobs.get(&v.key).await.expect("stored"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_input_fails_the_job_permanently_naming_it() {
    let settings = settings();
    let ctx = StageContext::new(settings.clone(), Providers::local(&settings).expect("providers"));
    let blobs = BlobStore::memory().scoped("");
    let mut inputs = store_inputs(&blobs, &[photo(GarmentShape::TShirt, 5)]).await;
    blobs
        .put("inputs/1.jpg", b"not an image at all".to_vec())
        .await
        .expect("put");
    inputs.push(StoredInput {
        key: "inputs/1.jpg".into(),
        source: "https://shop.example/broken.jpg".into(),
    });
    let spec = spec(JobKind::Full, request(2, [1, 0, 0], false), inputs);
    let err = run_job(&ctx, &blobs, spec, &|k: &str| k.to_string(), &NoProgress)
        .await
        .unwrap_err();
    assert!(err.is_permanent(), "{err}");
    assert!(matches!(err, StageError::Input { index: 1, .. }), "{err:?}");
    assert!(
        err.to_string().contains("https://shop.example/broken.jpg"),
        "{err}"
    );
}

/// An upscaler that always fails, standing in for a broken backend.
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
            message: "backend unavailable".into(),
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_upscale_keeps_the_original_and_says_so() {
    let settings = settings();
    let mut providers = Providers::local(&settings).expect("providers");
    providers.upscaler = Arc::new(BrokenUpscaler);
    let ctx = StageContext::new(settings.clone(), providers);
    let blobs = BlobStore::memory().scoped("");
    let inputs = store_inputs(&blobs, &[photo(GarmentShape::Dress, 6)]).await;
    let spec = spec(JobKind::Images, request(1, [1, 0, 0], true), inputs);
    let state = run_job(&ctx, &blobs, spec, &|k: &str| k.to_string(), &NoProgress)
        .await
        .expect("runs");
    let up = &state.upscaled[0];
    assert_eq!((up.factor, up.width, up.height), (1, 360, 480));
    assert!(
        up.fallback
            .as_deref()
            .unwrap_or("")
            .contains("backend unavailable")
    );
    assert_eq!(
        blobs.get(&up.key).await.expect("kept"),
        blobs.get(&state.variations[0].key).await.expect("original")
    );
}
