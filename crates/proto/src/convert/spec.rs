//! The job spec and the request inside it.

use atelier_core::{
    job::{JobSpec, StoredInput},
    output::OutputOptions,
    request::{GenerateRequest, InputImage},
};

use super::{
    enums::WireEnum,
    wire::{job_id, to_u8},
};
use crate::{ProtoError, v1};

impl From<&JobSpec> for v1::JobSpec {
    fn from(spec: &JobSpec) -> Self {
        Self {
            job_id: spec.id.to_string(),
            kind: v1::JobKind::from(spec.kind).into(),
            request: Some((&spec.request).into()),
            inputs: spec.inputs.iter().map(Into::into).collect(),
            submitted_at_ms: spec.submitted_at_ms,
        }
    }
}

impl TryFrom<&v1::JobSpec> for JobSpec {
    type Error = ProtoError;
    fn try_from(msg: &v1::JobSpec) -> Result<Self, ProtoError> {
        let request = msg
            .request
            .as_ref()
            .ok_or_else(|| ProtoError::missing("request"))?;
        Ok(Self {
            id: job_id(&msg.job_id, "job_id")?,
            kind: WireEnum::from_wire(msg.kind, "kind")?,
            request: GenerateRequest::try_from(request).map_err(|e| e.within("request"))?,
            inputs: msg.inputs.iter().map(StoredInput::from).collect(),
            submitted_at_ms: msg.submitted_at_ms,
        })
    }
}

impl From<&GenerateRequest> for v1::GenerateRequest {
    fn from(req: &GenerateRequest) -> Self {
        Self {
            input_images: req.input_images.iter().map(Into::into).collect(),
            product_type: v1::ProductType::from(req.product_type).into(),
            gender: v1::Gender::from(req.gender).into(),
            text: req.text.clone(),
            upscale: req.upscale,
            upscale_factor: req.upscale_factor.map(u32::from),
            priority: req.priority.map(u32::from),
            callback_url: req.callback_url.clone(),
            callback_events: req.callback_events.clone().unwrap_or_default(),
            seed: req.seed,
            output: req.output.as_ref().map(Into::into),
        }
    }
}

impl From<&OutputOptions> for v1::OutputOptions {
    fn from(o: &OutputOptions) -> Self {
        Self {
            format: o.format.map(|f| v1::ImageFormat::from(f).into()),
            quality: o.quality.map(u32::from),
            size: o.size.clone(),
            preset: o.preset.map(|p| v1::OutputPreset::from(p).into()),
            margin: o.margin,
            background_color: o.background_color.clone(),
            transparent: o.transparent,
        }
    }
}

impl TryFrom<&v1::OutputOptions> for OutputOptions {
    type Error = ProtoError;
    fn try_from(msg: &v1::OutputOptions) -> Result<Self, ProtoError> {
        Ok(Self {
            format: msg.format.map(|f| WireEnum::from_wire(f, "format")).transpose()?,
            quality: msg.quality.map(|q| to_u8(q, "quality")).transpose()?,
            size: msg.size.clone(),
            preset: msg.preset.map(|p| WireEnum::from_wire(p, "preset")).transpose()?,
            margin: msg.margin,
            background_color: msg.background_color.clone(),
            transparent: msg.transparent,
        })
    }
}

/// Decodes the request as sent; it is not re-validated against the API rules
/// (the gateway did that), only checked to fit the core types.
impl TryFrom<&v1::GenerateRequest> for GenerateRequest {
    type Error = ProtoError;
    fn try_from(msg: &v1::GenerateRequest) -> Result<Self, ProtoError> {
        let input_images = msg
            .input_images
            .iter()
            .enumerate()
            .map(|(i, image)| InputImage::try_from(image).map_err(|e| e.at("input_images", i)))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            input_images,
            product_type: WireEnum::from_wire(msg.product_type, "product_type")?,
            gender: WireEnum::from_wire(msg.gender, "gender")?,
            text: msg.text.clone(),
            upscale: msg.upscale,
            upscale_factor: msg
                .upscale_factor
                .map(|f| to_u8(f, "upscale_factor"))
                .transpose()?,
            priority: msg.priority.map(|p| to_u8(p, "priority")).transpose()?,
            callback_url: msg.callback_url.clone(),
            callback_events: (!msg.callback_events.is_empty()).then(|| msg.callback_events.clone()),
            seed: msg.seed,
            output: msg
                .output
                .as_ref()
                .map(|o| OutputOptions::try_from(o).map_err(|e| e.within("output")))
                .transpose()?,
        })
    }
}

impl From<&InputImage> for v1::InputImage {
    fn from(image: &InputImage) -> Self {
        Self {
            url: image.url.clone(),
            view: v1::View::from(image.view).into(),
            backgrounds: image.backgrounds.iter().map(|&n| u32::from(n)).collect(),
        }
    }
}

impl TryFrom<&v1::InputImage> for InputImage {
    type Error = ProtoError;
    fn try_from(msg: &v1::InputImage) -> Result<Self, ProtoError> {
        let [white, plain, random] = *msg.backgrounds.as_slice() else {
            return Err(ProtoError::Length {
                field: "backgrounds".to_owned(),
                expected: 3,
                found: msg.backgrounds.len(),
            });
        };
        Ok(Self {
            url: msg.url.clone(),
            view: WireEnum::from_wire(msg.view, "view")?,
            backgrounds: [
                to_u8(white, "backgrounds[0]")?,
                to_u8(plain, "backgrounds[1]")?,
                to_u8(random, "backgrounds[2]")?,
            ],
        })
    }
}

impl From<&StoredInput> for v1::StoredInput {
    fn from(input: &StoredInput) -> Self {
        Self {
            key: input.key.clone(),
            source: input.source.clone(),
        }
    }
}

impl From<&v1::StoredInput> for StoredInput {
    fn from(msg: &v1::StoredInput) -> Self {
        Self {
            key: msg.key.clone(),
            source: msg.source.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::fixtures;

    fn spec_msg() -> v1::JobSpec {
        v1::JobSpec::from(&fixtures::full_state().spec)
    }

    #[test]
    fn spec_round_trips() {
        let spec = fixtures::full_state().spec;
        assert_eq!(
            JobSpec::try_from(&v1::JobSpec::from(&spec)).expect("decodes"),
            spec
        );
    }

    #[test]
    fn bad_fields_are_named() {
        let mut msg = spec_msg();
        msg.job_id = "nope".into();
        assert_eq!(JobSpec::try_from(&msg).unwrap_err().field(), Some("job_id"));

        let mut msg = spec_msg();
        msg.kind = 0;
        assert_eq!(JobSpec::try_from(&msg).unwrap_err().field(), Some("kind"));

        let mut msg = spec_msg();
        msg.request = None;
        assert_eq!(JobSpec::try_from(&msg).unwrap_err().field(), Some("request"));

        let mut msg = spec_msg();
        let req = msg.request.as_mut().expect("request");
        req.input_images[1].backgrounds.pop();
        let err = JobSpec::try_from(&msg).unwrap_err();
        assert_eq!(err.field(), Some("request.input_images[1].backgrounds"));
        assert!(
            matches!(
                err,
                ProtoError::Length {
                    expected: 3,
                    found: 2,
                    ..
                }
            ),
            "{err}"
        );

        let mut msg = spec_msg();
        msg.request.as_mut().expect("request").input_images[0].backgrounds[2] = 300;
        let err = JobSpec::try_from(&msg).unwrap_err();
        assert_eq!(err.field(), Some("request.input_images[0].backgrounds[2]"));

        let mut msg = spec_msg();
        msg.request.as_mut().expect("request").priority = Some(1000);
        assert_eq!(
            JobSpec::try_from(&msg).unwrap_err().field(),
            Some("request.priority")
        );

        let mut msg = spec_msg();
        msg.request.as_mut().expect("request").gender = 99;
        let err = JobSpec::try_from(&msg).unwrap_err();
        assert_eq!(err.field(), Some("request.gender"));
        assert!(matches!(err, ProtoError::UnknownEnum { value: 99, .. }), "{err}");
    }
}
