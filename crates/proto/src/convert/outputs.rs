//! What each stage adds to a job: analyses, variations, upscales, the video
//! and the timings.

use atelier_core::{
    analysis::{BoundingBox, ColorShare, Exposure, GarmentDescription, ImageAnalysis},
    pipeline::{AnalysisOutput, ProcessingTimes, Upscaled, Variation, VariationPlan, VideoOutput},
};

use super::{
    enums::WireEnum,
    wire::{index, to_u8, to_usize},
};
use crate::{ProtoError, v1};

impl From<&AnalysisOutput> for v1::Analysis {
    fn from(out: &AnalysisOutput) -> Self {
        let a = &out.analysis;
        Self {
            input: index(out.input),
            view: v1::View::from(out.view).into(),
            mask_key: out.mask_key.clone(),
            width: a.width,
            height: a.height,
            mask_source: v1::MaskSource::from(a.mask_source).into(),
            bounding_box: Some(a.bounding_box.into()),
            coverage: a.coverage,
            mask_confidence: Some(a.mask_confidence),
            backdrop_color: a.backdrop_color.clone(),
            palette: a.palette.iter().map(Into::into).collect(),
            mean_luminance: a.exposure.mean_luminance,
            clipped_shadows: a.exposure.clipped_shadows,
            clipped_highlights: a.exposure.clipped_highlights,
            sharpness: a.sharpness,
            ai: a.ai.as_ref().map(Into::into),
        }
    }
}

impl TryFrom<&v1::Analysis> for AnalysisOutput {
    type Error = ProtoError;
    fn try_from(msg: &v1::Analysis) -> Result<Self, ProtoError> {
        let bounding_box = msg
            .bounding_box
            .ok_or_else(|| ProtoError::missing("bounding_box"))?;
        Ok(Self {
            input: to_usize(msg.input, "input")?,
            view: WireEnum::from_wire(msg.view, "view")?,
            mask_key: msg.mask_key.clone(),
            analysis: ImageAnalysis {
                width: msg.width,
                height: msg.height,
                mask_source: WireEnum::from_wire(msg.mask_source, "mask_source")?,
                bounding_box: bounding_box.into(),
                coverage: msg.coverage,
                mask_confidence: msg.mask_confidence.unwrap_or(1.0),
                backdrop_color: msg.backdrop_color.clone(),
                palette: msg.palette.iter().map(Into::into).collect(),
                exposure: Exposure {
                    mean_luminance: msg.mean_luminance,
                    clipped_shadows: msg.clipped_shadows,
                    clipped_highlights: msg.clipped_highlights,
                },
                sharpness: msg.sharpness,
                ai: msg.ai.as_ref().map(Into::into),
            },
        })
    }
}

impl From<&GarmentDescription> for v1::GarmentDescription {
    fn from(d: &GarmentDescription) -> Self {
        Self {
            category: d.category.clone(),
            colors: d.colors.clone(),
            material: d.material.clone(),
            pattern: d.pattern.clone(),
            style: d.style.clone(),
            fit: d.fit.clone(),
            gender: d.gender.clone(),
            description: d.description.clone(),
            generation_prompt: d.generation_prompt.clone(),
        }
    }
}

impl From<&v1::GarmentDescription> for GarmentDescription {
    fn from(d: &v1::GarmentDescription) -> Self {
        Self {
            category: d.category.clone(),
            colors: d.colors.clone(),
            material: d.material.clone(),
            pattern: d.pattern.clone(),
            style: d.style.clone(),
            fit: d.fit.clone(),
            gender: d.gender.clone(),
            description: d.description.clone(),
            generation_prompt: d.generation_prompt.clone(),
        }
    }
}

impl From<BoundingBox> for v1::BoundingBox {
    fn from(b: BoundingBox) -> Self {
        Self {
            x: b.x,
            y: b.y,
            width: b.width,
            height: b.height,
        }
    }
}

impl From<v1::BoundingBox> for BoundingBox {
    fn from(b: v1::BoundingBox) -> Self {
        Self {
            x: b.x,
            y: b.y,
            width: b.width,
            height: b.height,
        }
    }
}

impl From<&ColorShare> for v1::Color {
    fn from(c: &ColorShare) -> Self {
        Self {
            hex: c.hex.clone(),
            share: c.share,
        }
    }
}

impl From<&v1::Color> for ColorShare {
    fn from(c: &v1::Color) -> Self {
        Self {
            hex: c.hex.clone(),
            share: c.share,
        }
    }
}

impl From<&Variation> for v1::Variation {
    fn from(v: &Variation) -> Self {
        Self {
            index: index(v.plan.index),
            input: index(v.plan.input),
            view: v1::View::from(v.plan.view).into(),
            background: v1::Background::from(v.plan.background).into(),
            ordinal: v.plan.ordinal.into(),
            key: v.key.clone(),
            width: v.width,
            height: v.height,
            seconds: v.seconds,
            seed: v.seed,
        }
    }
}

impl TryFrom<&v1::Variation> for Variation {
    type Error = ProtoError;
    fn try_from(msg: &v1::Variation) -> Result<Self, ProtoError> {
        Ok(Self {
            plan: VariationPlan {
                index: to_usize(msg.index, "index")?,
                input: to_usize(msg.input, "input")?,
                view: WireEnum::from_wire(msg.view, "view")?,
                background: WireEnum::from_wire(msg.background, "background")?,
                ordinal: to_u8(msg.ordinal, "ordinal")?,
            },
            seed: msg.seed,
            key: msg.key.clone(),
            width: msg.width,
            height: msg.height,
            seconds: msg.seconds,
        })
    }
}

impl From<&Upscaled> for v1::Upscaled {
    fn from(u: &Upscaled) -> Self {
        Self {
            variation: index(u.variation),
            key: u.key.clone(),
            factor: u.factor,
            width: u.width,
            height: u.height,
            fallback: u.fallback.clone(),
            seconds: u.seconds,
        }
    }
}

impl TryFrom<&v1::Upscaled> for Upscaled {
    type Error = ProtoError;
    fn try_from(msg: &v1::Upscaled) -> Result<Self, ProtoError> {
        Ok(Self {
            variation: to_usize(msg.variation, "variation")?,
            key: msg.key.clone(),
            factor: msg.factor,
            width: msg.width,
            height: msg.height,
            fallback: msg.fallback.clone(),
            seconds: msg.seconds,
        })
    }
}

impl From<&VideoOutput> for v1::Video {
    fn from(v: &VideoOutput) -> Self {
        Self {
            key: v.key.clone(),
            width: v.width,
            height: v.height,
            frames: v.frames,
            duration_seconds: v.duration_seconds,
        }
    }
}

impl From<&v1::Video> for VideoOutput {
    fn from(v: &v1::Video) -> Self {
        Self {
            key: v.key.clone(),
            width: v.width,
            height: v.height,
            frames: v.frames,
            duration_seconds: v.duration_seconds,
        }
    }
}

impl From<ProcessingTimes> for v1::ProcessingTimes {
    fn from(t: ProcessingTimes) -> Self {
        Self {
            queue_wait: t.queue_wait,
            analysis: t.analysis,
            generation: t.generation,
            upscaling: t.upscaling,
            post_processing: t.post_processing,
            saving: t.saving,
            total: t.total,
        }
    }
}

impl From<v1::ProcessingTimes> for ProcessingTimes {
    fn from(t: v1::ProcessingTimes) -> Self {
        Self {
            queue_wait: t.queue_wait,
            analysis: t.analysis,
            generation: t.generation,
            upscaling: t.upscaling,
            post_processing: t.post_processing,
            saving: t.saving,
            total: t.total,
        }
    }
}
