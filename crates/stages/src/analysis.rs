//! Stage 1: decode every input photo with limits and analyse it; store its mask.

use std::sync::Arc;
use std::time::Instant;

use atelier_core::analysis::ImageAnalysis;
use atelier_core::job::JobSpec;
use atelier_core::keys;
use atelier_core::pipeline::{AnalysisOutput, Stage};
use atelier_core::settings::{AnalyzerKind, GeneratorKind, Settings};
use atelier_imaging::encode;
use atelier_imaging::{ImagingError, decode};
use atelier_providers::{AnalyzeInput, PromptContext};
use atelier_storage::JobBlobs;
use futures::future::try_join_all;

use crate::cache::{self, CacheKey, KeyBuilder, Lookup, Made};
use crate::error::ProviderOrImaging;
use crate::load::blocking;
use crate::{Progress, StageContext, StageError, Timed};

/// Analyses every input of `spec`, in parallel, and stores one mask per input.
pub async fn run(
    ctx: &StageContext,
    blobs: &JobBlobs,
    spec: &JobSpec,
    bypass_cache: bool,
    progress: &dyn Progress,
) -> Result<Timed<Vec<AnalysisOutput>>, StageError> {
    let started = Instant::now();
    progress.stage_started(Stage::Analysis, spec.inputs.len());
    let outputs = try_join_all((0..spec.inputs.len()).map(|index| async move {
        let out = analyse_one(ctx, blobs, spec, index, bypass_cache).await?;
        progress.item_done(Stage::Analysis);
        Ok::<_, StageError>(out)
    }))
    .await?;
    let (outputs, hits): (Vec<_>, Vec<_>) = outputs.into_iter().unzip();
    Ok(Timed::since(started, blobs.write_seconds(), outputs).reusing(hits))
}

/// The analysis cache key of a photo: its content, the analyzer's identity
/// (model, version, settings), the decode limits it passed, and the request's
/// context when the analyzer reads it (a prompt).
pub(crate) fn key(ctx: &StageContext, content_hash: &str, context: &PromptContext) -> Option<CacheKey> {
    let analyzer = &ctx.providers.analyzer;
    let mut key = KeyBuilder::new(Stage::Analysis)
        .part("input", content_hash)
        .part("analyzer", analyzer.cache_id()?)
        .part("limits", format!("{:?}", ctx.settings.limits));
    if analyzer.uses_context() {
        key = key.part("context", format!("{context:?}"));
    }
    Some(key.finish())
}

/// Analyses input `index` (or reuses an identical photo's analysis); true
/// when reused.
async fn analyse_one(
    ctx: &StageContext,
    blobs: &JobBlobs,
    spec: &JobSpec,
    index: usize,
    bypass: bool,
) -> Result<(AnalysisOutput, bool), StageError> {
    let stored = spec
        .inputs
        .get(index)
        .ok_or_else(|| StageError::State(format!("no stored input {index}")))?;
    let request = spec
        .request
        .input_images
        .get(index)
        .ok_or_else(|| StageError::State(format!("no request entry for input {index}")))?;
    let input_error = |error: ProviderOrImaging| StageError::Input {
        index,
        source_name: stored.source.clone(),
        error,
    };

    let bytes = blobs.get(&stored.key).await?;
    let context = PromptContext {
        product_type: spec.request.product_type,
        gender: spec.request.gender,
        view: request.view,
        text: spec.request.text.clone(),
    };
    let key = if ctx.cache.enabled() {
        key(ctx, &cache::key::content_hash(bytes.clone()).await?, &context)
    } else {
        None
    };
    let mask_key = keys::mask(index);
    let lookup = Lookup {
        key: key.as_ref(),
        target: &mask_key,
        ext: "png",
        bypass,
    };
    let (target, input_error) = (&mask_key, &input_error);
    let (analysis, hit) = ctx
        .cache
        .reuse_or_make(blobs, lookup, move || async move {
            let analysis = analyse_bytes(ctx, blobs, bytes, context, target, input_error).await?;
            // Gemini's part missing (a tolerated failure) is not worth keeping.
            let degraded = ctx.settings.providers.analyzer == AnalyzerKind::Gemini && analysis.ai.is_none();
            Ok(Made {
                meta: analysis,
                reusable: !degraded,
            })
        })
        .await?;
    // Checked on reuse too: the threshold or the generator may have changed.
    refuse_unsuitable(&ctx.settings, &analysis).map_err(|e| input_error(e.into()))?;
    Ok((
        AnalysisOutput {
            input: index,
            view: request.view,
            analysis,
            mask_key,
        },
        hit,
    ))
}

/// Decodes and analyses one photo's bytes and stores its mask under `mask_key`.
async fn analyse_bytes(
    ctx: &StageContext,
    blobs: &JobBlobs,
    bytes: bytes::Bytes,
    context: PromptContext,
    mask_key: &str,
    input_error: &(dyn Fn(ProviderOrImaging) -> StageError + Sync),
) -> Result<ImageAnalysis, StageError> {
    let limits = ctx.settings.limits.clone();
    let (bytes, probe) = blocking("probe", move || {
        let probe = decode::probe(&bytes, &limits);
        (bytes, probe)
    })
    .await?;
    let probe = probe.map_err(|e| input_error(e.into()))?;
    // Held until this input is analysed: its pixels live that long.
    let _room = ctx.decode_room(probe.decoded_bytes).await?;
    let limits = ctx.settings.limits.clone();
    let decoded = blocking("decode", move || decode::decode(&bytes, &limits))
        .await?
        .map_err(|e| input_error(e.into()))?;

    let input = AnalyzeInput {
        rgb: Arc::new(decoded.rgb),
        alpha: decoded.alpha.map(Arc::new),
        context,
    };
    let analyzed = ctx.providers.analyzer.analyze(input).await.map_err(|e| {
        // A refused key or a spent quota is permanent too, but not the photo's
        // fault: those fail as provider errors, which keep their permanence.
        if e.is_input_error() {
            input_error(e.into())
        } else {
            StageError::Provider {
                stage: "analysis",
                error: e,
            }
        }
    })?;

    // An unsuitable photo fails before its mask is stored (or cached).
    refuse_unsuitable(&ctx.settings, &analyzed.analysis).map_err(|e| input_error(e.into()))?;

    let mask = analyzed.mask;
    let png = blocking("encode mask", move || encode::png_gray(&mask)).await??;
    blobs.put(mask_key, png).await?;
    Ok(analyzed.analysis)
}

/// Never a silently broken composite: a mask the cut-out does not trust (a scene,
/// not a plain-backdrop product shot) fails the input as `unsuitable_photo` when
/// the local generator would composite it. A remote generator redraws the
/// garment from the photo itself, so the photo goes on to it.
fn refuse_unsuitable(settings: &Settings, analysis: &ImageAnalysis) -> Result<(), ImagingError> {
    let minimum = settings.analysis.min_mask_confidence;
    let local = settings.providers.generator == GeneratorKind::Local;
    if local && analysis.mask_confidence < minimum {
        return Err(ImagingError::UnsuitablePhoto {
            confidence: analysis.mask_confidence,
            minimum,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use atelier_core::analysis::{BoundingBox, Exposure, MaskSource};

    fn analysis(confidence: f32) -> ImageAnalysis {
        ImageAnalysis {
            width: 10,
            height: 10,
            mask_source: MaskSource::Backdrop,
            bounding_box: BoundingBox {
                x: 1,
                y: 1,
                width: 5,
                height: 5,
            },
            coverage: 0.25,
            mask_confidence: confidence,
            backdrop_color: "#ffffff".into(),
            palette: vec![],
            exposure: Exposure {
                mean_luminance: 0.5,
                clipped_shadows: 0.0,
                clipped_highlights: 0.0,
            },
            sharpness: 10.0,
            ai: None,
        }
    }

    #[test]
    fn low_confidence_is_refused_locally_and_handed_to_a_remote_generator() {
        let mut settings = Settings::defaults();
        let minimum = settings.analysis.min_mask_confidence;
        assert!(refuse_unsuitable(&settings, &analysis(minimum + 0.01)).is_ok());
        let refused = refuse_unsuitable(&settings, &analysis(minimum - 0.01));
        assert!(
            matches!(refused, Err(ImagingError::UnsuitablePhoto { .. })),
            "{refused:?}"
        );
        settings.providers.generator = GeneratorKind::Replicate;
        assert!(refuse_unsuitable(&settings, &analysis(0.0)).is_ok());
    }
}
