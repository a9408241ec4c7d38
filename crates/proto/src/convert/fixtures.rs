//! Fully populated core values for the round-trip tests: every `Option` both
//! `Some` and `None` and every enum variant somewhere across [`variants`].

use atelier_core::{
    analysis::{BoundingBox, ColorShare, Exposure, GarmentDescription, ImageAnalysis, MaskSource},
    cache::{CacheCounts, CacheUse},
    job::{JobId, JobKind, JobSpec, StoredInput},
    output::{ImageFormat, OutputOptions, Preset},
    pipeline::{
        AnalysisOutput, JobState, PostOutput, ProcessingTimes, Upscaled, Variation, VideoOutput,
        plan_variations,
    },
    request::{BackgroundKind, Gender, GenerateRequest, InputImage, ProductType, View},
};

pub(crate) const JOB_ID: &str = "0190f5c4-7b2a-7cc0-9a51-3f4f0e2d9c11";

/// A job of four inputs (one per view) part-way through post-processing, with
/// odd-looking floats so a lossy conversion would show.
pub(crate) fn full_state() -> JobState {
    let views = [View::Front, View::Back, View::Side, View::Detail];
    let request = GenerateRequest {
        input_images: views
            .iter()
            .enumerate()
            .map(|(i, &view)| InputImage {
                url: format!("https://shop.example/{i}.jpg"),
                view,
                // 255 checks the widest count; every kind appears.
                backgrounds: [1, u8::from(i % 2 == 0) * 2, if i == 0 { 255 } else { 1 }],
            })
            .collect(),
        product_type: ProductType::Outerwear,
        gender: Gender::Female,
        text: Some("linen coat, «warm» light ✓".into()),
        upscale: true,
        upscale_factor: Some(4),
        priority: Some(0),
        callback_url: Some("https://hooks.example/atelier".into()),
        callback_events: Some(vec!["job.completed".into(), "job.stage_finished".into()]),
        seed: Some(9_007_199_254_740_991),
        output: Some(OutputOptions {
            format: Some(ImageFormat::Webp),
            quality: Some(77),
            size: Some("1200x1600".into()),
            preset: Some(Preset::Zalando),
            margin: Some(0.123_456_7),
            background_color: Some("#F4F1EC".into()),
            transparent: Some(true),
        }),
    };
    let spec = JobSpec {
        id: JOB_ID.parse::<JobId>().expect("uuid"),
        kind: JobKind::Full,
        inputs: (0..views.len())
            .map(|i| StoredInput {
                key: format!("inputs/{i}.jpg"),
                source: format!("https://shop.example/{i}.jpg"),
            })
            .collect(),
        request,
        submitted_at_ms: 1_722_000_000_123,
    };
    let analyses = views
        .iter()
        .enumerate()
        .map(|(i, &view)| AnalysisOutput {
            input: i,
            view,
            mask_key: format!("masks/{i}.png"),
            analysis: ImageAnalysis {
                width: 1024 + u32::try_from(i).unwrap_or(0),
                height: 1536,
                mask_source: if i % 2 == 0 {
                    MaskSource::Alpha
                } else {
                    MaskSource::Backdrop
                },
                bounding_box: BoundingBox {
                    x: 12,
                    y: 34,
                    width: 567,
                    height: 890,
                },
                coverage: 0.1 + f32::EPSILON,
                mask_confidence: 0.75,
                backdrop_color: "#f0eee9".into(),
                palette: vec![
                    ColorShare {
                        hex: "#1f3a5f".into(),
                        share: 0.625,
                    },
                    ColorShare {
                        hex: "#c0ffee".into(),
                        share: 1.0 / 3.0,
                    },
                ],
                exposure: Exposure {
                    mean_luminance: 0.456_789,
                    clipped_shadows: f32::MIN_POSITIVE,
                    clipped_highlights: 0.0,
                },
                sharpness: std::f64::consts::PI * 1e6,
                // Even inputs carry a Gemini description, odd ones none, so the
                // round trips cover both.
                ai: (i % 2 == 0).then(|| GarmentDescription {
                    category: "t-shirt".into(),
                    colors: vec!["navy".into(), "white".into()],
                    material: "cotton jersey".into(),
                    pattern: "striped".into(),
                    style: "casual".into(),
                    fit: "regular".into(),
                    gender: "unisex".into(),
                    description: format!("A striped t-shirt, photo {i}."),
                    generation_prompt: "navy and white striped cotton t-shirt, crew neck".into(),
                }),
            },
        })
        .collect();
    let variations: Vec<Variation> = plan_variations(&spec.request)
        .into_iter()
        .map(|plan| Variation {
            seed: (plan.background == BackgroundKind::Random).then_some(plan.index as u64 + 7),
            key: format!("variations/{}.jpg", plan.index),
            width: 2048,
            height: 2048,
            seconds: 0.1 + plan.index as f64 / 7.0,
            plan,
        })
        .collect();
    let upscaled = variations
        .iter()
        .map(|v| Upscaled {
            variation: v.plan.index,
            key: format!("upscaled/{}.jpg", v.plan.index),
            factor: 4,
            width: 8192,
            height: 8192,
            fallback: (v.plan.index % 3 == 0).then(|| format!("model timed out on {}", v.plan.index)),
            seconds: 1.0 / 3.0,
        })
        .collect();
    JobState {
        spec,
        analyses,
        variations,
        upscaled,
        post: PostOutput {
            video: Some(VideoOutput {
                key: "video.mp4".into(),
                width: 1080,
                height: 1920,
                frames: 480,
                duration_seconds: 16.000_000_000_000_004,
            }),
            report_key: Some("report.xlsx".into()),
        },
        times: ProcessingTimes {
            queue_wait: 0.001,
            analysis: 1.5,
            generation: 12.345_678_901_234,
            upscaling: f64::MIN_POSITIVE,
            post_processing: 3.25,
            saving: 0.75,
            total: 1e9 + 0.5,
        },
        cache: CacheUse {
            bypassed: true,
            analysis: CacheCounts { hits: 1, misses: 0 },
            generation: CacheCounts { hits: 2, misses: 3 },
            upscaling: CacheCounts { hits: 0, misses: 5 },
            post_processing: CacheCounts {
                hits: u32::MAX,
                misses: 1,
            },
        },
    }
}

/// [`full_state`] and copies with each optional part left out and each enum
/// of the spec set to every variant.
pub(crate) fn variants() -> Vec<JobState> {
    let full = full_state();
    let mut out = vec![full.clone()];
    let mut sparse = full.clone();
    sparse.spec.kind = JobKind::Images;
    sparse.spec.request.text = None;
    sparse.spec.request.upscale = false;
    sparse.spec.request.upscale_factor = None;
    sparse.spec.request.priority = None;
    sparse.spec.request.seed = None;
    sparse.spec.request.output = Some(OutputOptions::default());
    sparse.post = PostOutput::default();
    sparse.upscaled.iter_mut().for_each(|u| u.fallback = None);
    sparse.times = ProcessingTimes::default();
    sparse.cache = CacheUse::default();
    out.push(sparse);
    let mut empty_strings = full.clone();
    empty_strings.spec.request.text = Some(String::new());
    empty_strings.post.report_key = Some(String::new());
    empty_strings.upscaled[0].fallback = Some(String::new());
    out.push(empty_strings);
    for (format, preset) in [
        (ImageFormat::Jpeg, Preset::Default),
        (ImageFormat::Png, Preset::Amazon),
        (ImageFormat::Webp, Preset::Shopify),
    ] {
        let mut s = full.clone();
        s.spec.request.output = Some(OutputOptions {
            format: Some(format),
            preset: Some(preset),
            ..OutputOptions::default()
        });
        out.push(s);
    }
    let mut no_output = full.clone();
    no_output.spec.request.output = None;
    out.push(no_output);
    for product_type in [
        ProductType::General,
        ProductType::Tops,
        ProductType::Bottoms,
        ProductType::Dresses,
        ProductType::Outerwear,
        ProductType::Shoes,
        ProductType::Accessories,
    ] {
        let mut s = full.clone();
        s.spec.request.product_type = product_type;
        out.push(s);
    }
    for gender in [Gender::Male, Gender::Female, Gender::Unisex] {
        let mut s = full.clone();
        s.spec.request.gender = gender;
        out.push(s);
    }
    out
}
