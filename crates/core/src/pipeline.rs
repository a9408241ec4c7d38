//! What each stage produces, and the state a job accumulates as it moves from
//! stage to stage. Stage messages carry this state (blob keys and results so far,
//! never pixels), so any worker can pick up any job.

use serde::{Deserialize, Serialize};

use crate::analysis::ImageAnalysis;
use crate::cache::CacheUse;
use crate::job::{JobId, JobSpec};
use crate::request::{BackgroundKind, GenerateRequest, MAX_SEED, View};

/// The four stages, in pipeline order.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Analysis,
    Generation,
    Upscaling,
    PostProcessing,
}

impl Stage {
    /// Every stage in the order a job passes through them.
    pub const ALL: [Stage; 4] = [
        Self::Analysis,
        Self::Generation,
        Self::Upscaling,
        Self::PostProcessing,
    ];

    /// Snake-case name, as in `processing_times`, events and stored rows.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Analysis => "analysis",
            Self::Generation => "generation",
            Self::Upscaling => "upscaling",
            Self::PostProcessing => "post_processing",
        }
    }

    /// One-word name of the stage's service: its queue (`atelier.postprocess`),
    /// its binary (`atelier-postprocess`) and its deployment.
    pub fn service_name(self) -> &'static str {
        match self {
            Self::Analysis => "analysis",
            Self::Generation => "generation",
            Self::Upscaling => "upscaling",
            Self::PostProcessing => "postprocess",
        }
    }

    /// The stage named `s` (as produced by [`Stage::as_str`]).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// The stage after this one, or `None` after the last.
    pub fn next(self) -> Option<Self> {
        match self {
            Self::Analysis => Some(Self::Generation),
            Self::Generation => Some(Self::Upscaling),
            Self::Upscaling => Some(Self::PostProcessing),
            Self::PostProcessing => None,
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Analysis of input `input`, with the key of its stored mask.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisOutput {
    pub input: usize,
    pub view: View,
    pub analysis: ImageAnalysis,
    /// Blob key of the foreground mask (relative to the job prefix).
    pub mask_key: String,
}

/// One variation the request asks for, before it is rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VariationPlan {
    /// Global index over the job, which also names the output file.
    pub index: usize,
    /// Which input photo it is made from.
    pub input: usize,
    pub view: View,
    pub background: BackgroundKind,
    /// Position among the same input's variations of the same kind (0-based), so
    /// several plain images of one garment get distinct tones.
    pub ordinal: u8,
}

/// Lays out every variation a request asks for: inputs in order, then white,
/// plain and random, each repeated by its count.
pub fn plan_variations(request: &GenerateRequest) -> Vec<VariationPlan> {
    let mut plans = Vec::with_capacity(request.variation_count());
    for (input, image) in request.input_images.iter().enumerate() {
        for (kind, &count) in BackgroundKind::ALL.iter().zip(image.backgrounds.iter()) {
            for ordinal in 0..count {
                plans.push(VariationPlan {
                    index: plans.len(),
                    input,
                    view: image.view,
                    background: *kind,
                    ordinal,
                });
            }
        }
    }
    plans
}

/// The seed variation `plan` of job `job` is rendered with: the one place it
/// is computed (generation uses it; the cache keys on it).
///
/// With the request's `seed`, the n-th variation of a kind of one input gets
/// `seed + n` (so a reported seed sent back with one random background gives
/// that very scene again, and the views of one garment share their scenes).
/// Without, it is derived from the job id and the variation's index, so every
/// job gets fresh scenes, as before. Always at most [`MAX_SEED`], so the
/// reported value survives any JSON client.
pub fn variation_seed(job: &JobId, request_seed: Option<u64>, plan: &VariationPlan) -> u64 {
    match request_seed {
        Some(seed) => seed.wrapping_add(u64::from(plan.ordinal)) & MAX_SEED,
        None => job.seed(plan.index as u64) & MAX_SEED,
    }
}

/// A rendered variation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Variation {
    #[serde(flatten)]
    pub plan: VariationPlan,
    /// The seed of its random (scene) background; `None` for white and plain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Blob key relative to the job prefix.
    pub key: String,
    pub width: u32,
    pub height: u32,
    /// Seconds spent rendering and saving this image.
    pub seconds: f64,
}

/// An upscaled variation, or the reason the original stands in for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Upscaled {
    /// Index of the variation it was made from.
    pub variation: usize,
    /// Blob key relative to the job prefix.
    pub key: String,
    pub factor: u32,
    pub width: u32,
    pub height: u32,
    /// Set when upscaling failed and the original was kept (the old service's fallback).
    pub fallback: Option<String>,
    /// Seconds spent upscaling and saving this image.
    pub seconds: f64,
}

/// The encoded slideshow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoOutput {
    pub key: String,
    pub width: u32,
    pub height: u32,
    pub frames: u32,
    pub duration_seconds: f64,
}

/// What post-processing made (nothing for an images-only job).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PostOutput {
    pub video: Option<VideoOutput>,
    /// Blob key of the Excel report.
    pub report_key: Option<String>,
}

/// Seconds each part of a job took. The old keys are always present.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProcessingTimes {
    /// From submission until the first stage started.
    pub queue_wait: f64,
    pub analysis: f64,
    pub generation: f64,
    pub upscaling: f64,
    pub post_processing: f64,
    /// Time spent writing artefacts to the blob store (inside the stages above).
    pub saving: f64,
    /// From submission until the result was complete.
    pub total: f64,
}

impl ProcessingTimes {
    /// Records `seconds` against `stage`.
    pub fn set(&mut self, stage: Stage, seconds: f64) {
        match stage {
            Stage::Analysis => self.analysis = seconds,
            Stage::Generation => self.generation = seconds,
            Stage::Upscaling => self.upscaling = seconds,
            Stage::PostProcessing => self.post_processing = seconds,
        }
    }

    /// Seconds recorded against `stage`.
    pub fn get(&self, stage: Stage) -> f64 {
        match stage {
            Stage::Analysis => self.analysis,
            Stage::Generation => self.generation,
            Stage::Upscaling => self.upscaling,
            Stage::PostProcessing => self.post_processing,
        }
    }

    /// Every row with its JSON name, in the order tables and reports show them.
    pub fn entries(&self) -> [(&'static str, f64); 7] {
        [
            ("queue_wait", self.queue_wait),
            (Stage::Analysis.as_str(), self.analysis),
            (Stage::Generation.as_str(), self.generation),
            (Stage::Upscaling.as_str(), self.upscaling),
            (Stage::PostProcessing.as_str(), self.post_processing),
            ("saving", self.saving),
            ("total", self.total),
        ]
    }
}

/// A job and all it has produced so far. Each stage reads what earlier stages
/// left here and adds its own part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobState {
    pub spec: JobSpec,
    pub analyses: Vec<AnalysisOutput>,
    pub variations: Vec<Variation>,
    pub upscaled: Vec<Upscaled>,
    pub post: PostOutput,
    pub times: ProcessingTimes,
    /// Whether the request bypassed the result cache, and what each stage
    /// reused from it (absent in states stored before the cache existed).
    #[serde(default)]
    pub cache: CacheUse,
}

impl JobState {
    /// A job that has not started any stage.
    pub fn new(spec: JobSpec) -> Self {
        Self {
            spec,
            analyses: Vec::new(),
            variations: Vec::new(),
            upscaled: Vec::new(),
            post: PostOutput::default(),
            times: ProcessingTimes::default(),
            cache: CacheUse::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::InputImage;

    #[test]
    fn stage_names_and_order() {
        for stage in Stage::ALL {
            assert_eq!(Stage::parse(stage.as_str()), Some(stage));
        }
        assert_eq!(Stage::PostProcessing.service_name(), "postprocess");
        let chain: Vec<_> = std::iter::successors(Some(Stage::Analysis), |s| s.next()).collect();
        assert_eq!(chain, Stage::ALL);
    }

    #[test]
    fn times_entries_match_their_json() {
        let times = ProcessingTimes {
            queue_wait: 1.0,
            analysis: 2.0,
            generation: 3.0,
            upscaling: 4.0,
            post_processing: 5.0,
            saving: 6.0,
            total: 7.0,
        };
        let json = serde_json::to_value(times).expect("json");
        for (name, value) in times.entries() {
            assert_eq!(json[name].as_f64(), Some(value), "{name}");
        }
        assert_eq!(json.as_object().map(|o| o.len()), Some(times.entries().len()));
    }

    #[test]
    fn seeds_follow_the_request_or_the_job() {
        let job: JobId = "0190f5c4-7b2a-7cc0-9a51-3f4f0e2d9c11".parse().expect("uuid");
        let other: JobId = "0190f5c4-7b2a-7cc0-9a51-3f4f0e2d9c12".parse().expect("uuid");
        let plan = |index, ordinal| VariationPlan {
            index,
            input: 0,
            view: View::Front,
            background: BackgroundKind::Random,
            ordinal,
        };
        // Given: the same across jobs, `seed + ordinal`, whatever the index.
        assert_eq!(variation_seed(&job, Some(42), &plan(3, 0)), 42);
        assert_eq!(variation_seed(&other, Some(42), &plan(0, 0)), 42);
        assert_eq!(variation_seed(&job, Some(42), &plan(4, 1)), 43);
        assert_eq!(variation_seed(&job, Some(MAX_SEED), &plan(1, 1)), 0);
        // Derived: stable per job and index, distinct across jobs and indices.
        let derived = variation_seed(&job, None, &plan(0, 0));
        assert_eq!(derived, variation_seed(&job, None, &plan(0, 0)));
        assert_ne!(derived, variation_seed(&job, None, &plan(1, 0)));
        assert_ne!(derived, variation_seed(&other, None, &plan(0, 0)));
        assert!(derived <= MAX_SEED);
    }

    #[test]
    fn plans_follow_input_then_kind_order() {
        let req = GenerateRequest::for_inputs(vec![
            InputImage {
                url: "a".into(),
                view: View::Front,
                backgrounds: [1, 2, 0],
            },
            InputImage {
                url: "b".into(),
                view: View::Back,
                backgrounds: [0, 0, 1],
            },
        ]);
        let plans = plan_variations(&req);
        let got: Vec<_> = plans
            .iter()
            .map(|p| (p.index, p.input, p.background, p.ordinal))
            .collect();
        assert_eq!(
            got,
            vec![
                (0, 0, BackgroundKind::White, 0),
                (1, 0, BackgroundKind::Plain, 0),
                (2, 0, BackgroundKind::Plain, 1),
                (3, 1, BackgroundKind::Random, 0),
            ]
        );
        assert_eq!(plans[3].view, View::Back);
    }
}
