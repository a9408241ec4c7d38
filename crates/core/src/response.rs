//! The response body of the generate endpoints (and `atelier process`'s
//! result.json), snake_case as the old service had it.

use serde::{Deserialize, Serialize};

use crate::analysis::ImageAnalysis;
use crate::cache::CacheUse;
use crate::job::JobKind;
use crate::pipeline::{JobState, ProcessingTimes};
use crate::request::{BackgroundKind, View};

/// Final state of a finished job as the generate endpoints report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResultStatus {
    Completed,
}

/// `POST /api/v1/generate` response body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GenerateResponse {
    pub request_id: String,
    pub status: ResultStatus,
    pub image_variations: Vec<ImageVariation>,
    pub upscale_image: Vec<UpscaleImage>,
    /// Present for `/api/v1/generate` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video_url: Option<String>,
    /// Present for `/api/v1/generate` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excel_url: Option<String>,
    pub analysis: Vec<AnalysisEntry>,
    pub metadata: Metadata,
}

/// One generated image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImageVariation {
    pub url: String,
    pub input: usize,
    pub view: View,
    pub background: BackgroundKind,
    pub width: u32,
    pub height: u32,
    /// The seed of a random (scene) background: send it back as the request's
    /// `seed` to get the same scene again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// One upscaled image, pointing at the variation it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UpscaleImage {
    pub url: String,
    pub variation: usize,
    pub factor: u32,
    pub width: u32,
    pub height: u32,
    /// Why the original was kept instead, when upscaling failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
}

/// Analysis of one input, with the old API's `dominant_colors` list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AnalysisEntry {
    pub input: usize,
    pub view: View,
    pub dominant_colors: Vec<String>,
    #[serde(flatten)]
    pub analysis: ImageAnalysis,
}

/// Timing metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Metadata {
    pub processing_times: ProcessingTimes,
    /// What the result cache reused per stage (see docs/api.md).
    #[serde(default)]
    pub cache: CacheUse,
}

impl GenerateResponse {
    /// Builds the response of a completed job; `url_for` turns a job-relative blob
    /// key into the URL the client should fetch (a relative path in
    /// `atelier process`, `/api/v1/files/{id}/...` behind the gateway).
    pub fn from_state(state: &JobState, url_for: impl Fn(&str) -> String) -> Self {
        let media = state.spec.kind == JobKind::Full;
        Self {
            request_id: state.spec.id.to_string(),
            status: ResultStatus::Completed,
            image_variations: state
                .variations
                .iter()
                .map(|v| ImageVariation {
                    url: url_for(&v.key),
                    input: v.plan.input,
                    view: v.plan.view,
                    background: v.plan.background,
                    width: v.width,
                    height: v.height,
                    seed: v.seed,
                })
                .collect(),
            upscale_image: state
                .upscaled
                .iter()
                .map(|u| UpscaleImage {
                    url: url_for(&u.key),
                    variation: u.variation,
                    factor: u.factor,
                    width: u.width,
                    height: u.height,
                    fallback: u.fallback.clone(),
                })
                .collect(),
            video_url: media
                .then(|| state.post.video.as_ref().map(|v| url_for(&v.key)))
                .flatten(),
            excel_url: media
                .then(|| state.post.report_key.as_deref().map(&url_for))
                .flatten(),
            analysis: state
                .analyses
                .iter()
                .map(|a| AnalysisEntry {
                    input: a.input,
                    view: a.view,
                    dominant_colors: a.analysis.dominant_colors(),
                    analysis: a.analysis.clone(),
                })
                .collect(),
            metadata: Metadata {
                processing_times: state.times,
                cache: state.cache,
            },
        }
    }
}
