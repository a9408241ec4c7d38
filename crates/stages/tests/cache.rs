//! The result cache in process, over a memory store: a repeat reuses what it
//! may, and every change that could change an output (a parameter, a setting,
//! a provider's version, the seed of a scene) misses.

use std::sync::Arc;

use async_trait::async_trait;
use atelier_core::cache::{CacheCounts, CacheUse};
use atelier_core::job::{JobId, JobKind, JobSpec, StoredInput};
use atelier_core::pipeline::{JobState, Stage};
use atelier_core::request::{BackgroundKind, GenerateRequest, InputImage, View};
use atelier_core::settings::Settings;
use atelier_fixtures::{GarmentShape, Scene};
use atelier_providers::local::LocalGenerator;
use atelier_providers::{GenerateInput, Generator, ProviderError, Providers};
use atelier_stages::runner::now_ms;
use atelier_stages::{NoProgress, StageContext, run_stage};
use atelier_storage::BlobStore;
use image::RgbImage;

fn settings() -> Settings {
    let mut s = Settings::defaults();
    // Small outputs keep the suite fast; the code paths are the same.
    s.generation.canvas_width = 240;
    s.generation.canvas_height = 320;
    s
}

fn context(settings: Settings) -> StageContext {
    let providers = Providers::local(&settings).expect("providers");
    StageContext::new(Arc::new(settings), providers)
}

fn request(backgrounds: [u8; 3]) -> GenerateRequest {
    GenerateRequest {
        text: Some("studio".into()),
        upscale: true,
        ..GenerateRequest::for_inputs(vec![InputImage {
            url: "garment.jpg".into(),
            view: View::Front,
            backgrounds,
        }])
    }
}

fn photo() -> Vec<u8> {
    let garment = atelier_fixtures::render(&Scene::example(GarmentShape::TShirt, 320, 420, 7));
    atelier_fixtures::jpeg(&garment.image, 90)
}

/// A new job over `request` through analysis, generation and upscaling, its
/// blobs under its own `jobs/{id}/` as in the services.
async fn run(ctx: &StageContext, store: &BlobStore, request: GenerateRequest, bypass: bool) -> JobState {
    let id = JobId::new();
    let blobs = store.scoped(format!("jobs/{id}/"));
    blobs.put("inputs/0.jpg", photo()).await.expect("input");
    let mut state = JobState::new(JobSpec {
        id,
        kind: JobKind::Images,
        request,
        inputs: vec![StoredInput {
            key: "inputs/0.jpg".into(),
            source: "garment.jpg".into(),
        }],
        submitted_at_ms: now_ms(),
    });
    state.cache.bypassed = bypass;
    for stage in [Stage::Analysis, Stage::Generation, Stage::Upscaling] {
        run_stage(stage, ctx, &blobs, &mut state, &NoProgress)
            .await
            .expect("stage runs");
    }
    state
}

fn counts(hits: u32, misses: u32) -> CacheCounts {
    CacheCounts { hits, misses }
}

fn reused(state: &JobState) -> [CacheCounts; 3] {
    let c: &CacheUse = &state.cache;
    [c.analysis, c.generation, c.upscaling]
}

/// The local generator under a version of our choosing (a model bump).
#[derive(Debug)]
struct Versioned {
    inner: LocalGenerator,
    version: &'static str,
}

#[async_trait]
impl Generator for Versioned {
    fn name(&self) -> &'static str {
        "versioned"
    }
    fn cache_id(&self) -> Option<String> {
        Some(format!("versioned/{}", self.version))
    }
    fn uses_seed(&self, background: BackgroundKind) -> bool {
        self.inner.uses_seed(background)
    }
    async fn generate(&self, input: GenerateInput) -> Result<RgbImage, ProviderError> {
        self.inner.generate(input).await
    }
}

fn versioned(version: &'static str) -> StageContext {
    let settings = settings();
    let mut providers = Providers::local(&settings).expect("providers");
    providers.generator = Arc::new(Versioned {
        inner: LocalGenerator::new(settings.generation.clone()),
        version,
    });
    StageContext::new(Arc::new(settings), providers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeat_reuses_what_does_not_depend_on_the_job() {
    let ctx = context(settings());
    let store = BlobStore::memory();
    let first = run(&ctx, &store, request([1, 1, 1]), false).await;
    assert_eq!(reused(&first), [counts(0, 1), counts(0, 3), counts(0, 3)]);

    let second = run(&ctx, &store, request([1, 1, 1]), false).await;
    // White and plain are shared; the scene is seeded by the job, so another
    // job's scene is another picture (and so is its upscale).
    assert_eq!(reused(&second), [counts(1, 0), counts(2, 1), counts(2, 1)]);
    assert_eq!(second.analyses[0].analysis, first.analyses[0].analysis);
    let bytes = |state: &JobState, key: &str| {
        let blobs = store.scoped(format!("jobs/{}/", state.spec.id));
        let key = key.to_string();
        async move { blobs.get(&key).await.expect("blob") }
    };
    for key in [
        "masks/0.png",
        "variations/0.jpg",
        "variations/1.jpg",
        "upscaled/1.jpg",
    ] {
        assert_eq!(bytes(&first, key).await, bytes(&second, key).await, "{key}");
    }
    assert_ne!(
        bytes(&first, "variations/2.jpg").await,
        bytes(&second, "variations/2.jpg").await
    );

    // More of the same photo: the shared part is reused, the rest made.
    let more = run(&ctx, &store, request([1, 2, 0]), false).await;
    assert_eq!(reused(&more), [counts(1, 0), counts(2, 1), counts(2, 1)]);

    // Cache-Control: no-cache computes everything, and the outputs are equal.
    let fresh = run(&ctx, &store, request([1, 1, 0]), true).await;
    assert!(fresh.cache.bypassed);
    assert_eq!(reused(&fresh), [counts(0, 1), counts(0, 2), counts(0, 2)]);
    assert_eq!(
        bytes(&first, "variations/1.jpg").await,
        bytes(&fresh, "variations/1.jpg").await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_parameter_setting_or_version_misses() {
    let store = BlobStore::memory();
    let ctx = context(settings());
    run(&ctx, &store, request([1, 1, 0]), false).await;
    let again = run(&ctx, &store, request([1, 1, 0]), false).await;
    assert_eq!(reused(&again), [counts(1, 0), counts(2, 0), counts(2, 0)]);

    // Another prompt: the local analysis does not read it, generation keys on it
    // (its pixels are the same here, so their upscales are reused).
    let mut text = request([1, 1, 0]);
    text.text = Some("linen".into());
    let changed = run(&ctx, &store, text, false).await;
    assert_eq!(reused(&changed), [counts(1, 0), counts(0, 2), counts(2, 0)]);

    // Another upscale factor: only the upscales miss.
    let mut factor = request([1, 1, 0]);
    factor.upscale_factor = Some(4);
    let bigger = run(&ctx, &store, factor, false).await;
    assert_eq!(reused(&bigger), [counts(1, 0), counts(2, 0), counts(0, 2)]);

    // A generator setting (the canvas) and an upscaler setting (sharpening).
    let mut canvas = settings();
    canvas.generation.padding = 0.12;
    let wider = run(&context(canvas), &store, request([1, 1, 0]), false).await;
    assert_eq!(reused(&wider).map(|c| c.misses), [0, 2, 2]);
    let mut sharper = settings();
    sharper.upscaler.sharpen = 0.5;
    let sharp = run(&context(sharper), &store, request([1, 1, 0]), false).await;
    assert_eq!(reused(&sharp), [counts(1, 0), counts(2, 0), counts(0, 2)]);
    // An analysis setting: everything downstream of the new mask misses too.
    let mut analysis = settings();
    analysis.analysis.working_max_side = 512;
    let reanalysed = run(&context(analysis), &store, request([1, 1, 0]), false).await;
    assert_eq!(reanalysed.cache.analysis, counts(0, 1));

    // The provider's version: a bump misses, the same version hits.
    let v1 = run(&versioned("1"), &store, request([1, 1, 0]), false).await;
    assert_eq!(v1.cache.generation, counts(0, 2));
    let v1_again = run(&versioned("1"), &store, request([1, 1, 0]), false).await;
    assert_eq!(v1_again.cache.generation, counts(2, 0));
    let v2 = run(&versioned("2"), &store, request([1, 1, 0]), false).await;
    assert_eq!(v2.cache.generation, counts(0, 2));

    // Off: nothing is looked up or stored.
    let mut off = settings();
    off.cache.enabled = false;
    let uncached = run(&context(off), &store, request([1, 1, 0]), false).await;
    assert_eq!(reused(&uncached), [counts(0, 1), counts(0, 2), counts(0, 2)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn identical_jobs_at_once_compute_once_in_a_process() {
    let ctx = context(settings());
    let store = BlobStore::memory();
    let jobs = futures::future::join_all((0..5).map(|_| run(&ctx, &store, request([1, 1, 0]), false))).await;
    let total = |stage: fn(&JobState) -> CacheCounts| {
        jobs.iter()
            .map(stage)
            .fold(counts(0, 0), |a, c| counts(a.hits + c.hits, a.misses + c.misses))
    };
    assert_eq!(total(|s| s.cache.analysis), counts(4, 1));
    assert_eq!(total(|s| s.cache.generation), counts(8, 2));
    assert_eq!(total(|s| s.cache.upscaling), counts(8, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_seed_shares_scenes_and_the_output_keys_every_image() {
    let store = BlobStore::memory();
    let ctx = context(settings());
    let seeded = |seed: u64| GenerateRequest {
        seed: Some(seed),
        ..request([0, 0, 1])
    };
    let first = run(&ctx, &store, seeded(7), false).await;
    assert_eq!(reused(&first), [counts(0, 1), counts(0, 1), counts(0, 1)]);
    // The same seed is the same scene: reused with its upscale.
    let same = run(&ctx, &store, seeded(7), false).await;
    assert_eq!(reused(&same), [counts(1, 0), counts(1, 0), counts(1, 0)]);
    assert_eq!(same.variations[0].seed, Some(7));
    // Another seed is another scene.
    let other = run(&ctx, &store, seeded(8), false).await;
    assert_eq!(reused(&other), [counts(1, 0), counts(0, 1), counts(0, 1)]);

    // Another output format: the same picture encoded otherwise, so a miss,
    // stored under the format's extension.
    let png = GenerateRequest {
        output: Some(atelier_core::output::OutputOptions {
            format: Some(atelier_core::output::ImageFormat::Png),
            ..Default::default()
        }),
        ..seeded(7)
    };
    let as_png = run(&ctx, &store, png.clone(), false).await;
    assert_eq!(reused(&as_png), [counts(1, 0), counts(0, 1), counts(0, 1)]);
    assert!(
        as_png.variations[0].key.ends_with(".png"),
        "{:?}",
        as_png.variations[0]
    );
    let again = run(&ctx, &store, png, false).await;
    assert_eq!(reused(&again), [counts(1, 0), counts(1, 0), counts(1, 0)]);
    assert!(again.variations[0].key.ends_with(".png"));
}
