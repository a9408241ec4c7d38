//! The whole pipeline in process (analysis → generation → upscaling ×2 →
//! video + report) on one synthetic photo, against an in-memory blob store, for
//! 1024×1024 and 2048×2048 inputs with backgrounds 1,1,1.

use std::sync::Arc;
use std::time::Duration;

use atelier_core::job::{JobId, JobKind, JobSpec, StoredInput};
use atelier_core::request::{GenerateRequest, InputImage, View};
use atelier_core::settings::Settings;
use atelier_fixtures::{GarmentShape, Scene};
use atelier_providers::Providers;
use atelier_stages::runner::{now_ms, run_job};
use atelier_stages::{NoProgress, StageContext};
use atelier_storage::BlobStore;
use criterion::{Criterion, criterion_group, criterion_main};

fn pipeline(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    atelier_video::install();
    let settings = Arc::new(Settings::defaults());
    let ctx = StageContext::new(settings.clone(), Providers::local(&settings).expect("providers"));
    let mut group = c.benchmark_group("pipeline");
    group.sample_size(10).measurement_time(Duration::from_secs(20));
    for side in [1024u32, 2048] {
        let garment = atelier_fixtures::render(&Scene::example(GarmentShape::TShirt, side, side, 7));
        let photo = atelier_fixtures::jpeg(&garment.image, 90);
        group.bench_function(format!("full_111_x2_{side}"), |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let blobs = BlobStore::memory().scoped("");
                    blobs.put("inputs/0.jpg", photo.clone()).await.expect("put");
                    let spec = JobSpec {
                        id: JobId::new(),
                        kind: JobKind::Full,
                        request: GenerateRequest {
                            upscale: true,
                            upscale_factor: Some(2),
                            ..GenerateRequest::for_inputs(vec![InputImage {
                                url: "bench.jpg".into(),
                                view: View::Front,
                                backgrounds: [1, 1, 1],
                            }])
                        },
                        inputs: vec![StoredInput {
                            key: "inputs/0.jpg".into(),
                            source: "bench.jpg".into(),
                        }],
                        submitted_at_ms: now_ms(),
                    };
                    run_job(&ctx, &blobs, spec, &|k: &str| k.to_string(), &NoProgress)
                        .await
                        .expect("job")
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
