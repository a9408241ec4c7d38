//! The generation prompt, built from what we know of the garment and the request.

use atelier_core::analysis::{ImageAnalysis, hex};
use atelier_core::request::BackgroundKind;
use atelier_imaging::generate::plain_color;

use crate::GenerateInput;

/// Palette entries named in the prompt when Gemini gave no colour names.
const PROMPT_PALETTE_COLORS: usize = 3;

/// A product-photo prompt: the garment (Gemini's own prompt when present, else
/// the local palette), the request's product type, gender and text, the view and
/// the background this variation needs.
pub fn generation_prompt(input: &GenerateInput) -> String {
    let ctx = &input.context;
    let garment = garment(&input.analysis, ctx.product_type.as_str());
    let background = match input.plan.background {
        BackgroundKind::White => "on a pure white seamless studio background".to_string(),
        BackgroundKind::Plain => format!(
            "on a plain, evenly lit solid {} background",
            hex(plain_color(&input.analysis, input.plan.ordinal))
        ),
        BackgroundKind::Random => "in a tasteful lifestyle scene that suits the garment".to_string(),
    };
    let mut prompt = format!(
        "Professional e-commerce product photo of {garment}, {} view, for {} customers, {background}, \
         soft studio lighting, sharp focus, the garment unchanged",
        ctx.view.as_str(),
        ctx.gender.as_str(),
    );
    if let Some(text) = ctx.text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        prompt.push_str(". ");
        prompt.push_str(text);
    }
    prompt
}

fn garment(analysis: &ImageAnalysis, product_type: &str) -> String {
    if let Some(ai) = &analysis.ai {
        return ai.generation_prompt.clone();
    }
    let colors: Vec<String> = analysis
        .dominant_colors()
        .into_iter()
        .take(PROMPT_PALETTE_COLORS)
        .collect();
    let kind = if product_type == "general" {
        "garment"
    } else {
        product_type
    };
    if colors.is_empty() {
        format!("a {kind}")
    } else {
        format!("a {kind} in colours {}", colors.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use atelier_core::analysis::{BoundingBox, ColorShare, Exposure, GarmentDescription, MaskSource};
    use atelier_core::pipeline::VariationPlan;
    use atelier_core::request::{Gender, ProductType, View};
    use image::{GrayImage, RgbImage};

    use super::*;
    use crate::PromptContext;

    fn input(background: BackgroundKind, ai: bool, text: Option<&str>) -> GenerateInput {
        let analysis = ImageAnalysis {
            width: 10,
            height: 10,
            mask_source: MaskSource::Backdrop,
            bounding_box: BoundingBox {
                x: 0,
                y: 0,
                width: 5,
                height: 5,
            },
            coverage: 0.25,
            mask_confidence: 1.0,
            backdrop_color: "#ffffff".into(),
            palette: vec![ColorShare {
                hex: "#1f3a5f".into(),
                share: 1.0,
            }],
            exposure: Exposure {
                mean_luminance: 0.5,
                clipped_shadows: 0.0,
                clipped_highlights: 0.0,
            },
            sharpness: 1.0,
            ai: ai.then(|| GarmentDescription {
                category: "t-shirt".into(),
                colors: vec!["navy".into()],
                material: "cotton".into(),
                pattern: "solid".into(),
                style: "casual".into(),
                fit: "regular".into(),
                gender: "unisex".into(),
                description: "A navy t-shirt.".into(),
                generation_prompt: "a navy cotton crew-neck t-shirt".into(),
            }),
        };
        GenerateInput {
            source: Arc::new(RgbImage::new(1, 1)),
            mask: Arc::new(GrayImage::new(1, 1)),
            analysis: Arc::new(analysis),
            plan: VariationPlan {
                index: 0,
                input: 0,
                view: View::Back,
                background,
                ordinal: 0,
            },
            seed: 7,
            output: atelier_core::output::OutputSpec::defaults(&atelier_core::settings::Settings::defaults()),
            context: PromptContext {
                product_type: ProductType::Tops,
                gender: Gender::Female,
                view: View::Back,
                text: text.map(str::to_string),
            },
        }
    }

    #[test]
    fn gemini_prompt_view_gender_background_and_text_all_appear() {
        let p = generation_prompt(&input(BackgroundKind::White, true, Some("summer collection")));
        for part in [
            "a navy cotton crew-neck t-shirt",
            "back view",
            "female",
            "pure white",
            "summer collection",
        ] {
            assert!(p.contains(part), "{part} missing from {p}");
        }
    }

    #[test]
    fn without_gemini_the_palette_and_product_type_describe_it() {
        let p = generation_prompt(&input(BackgroundKind::Plain, false, None));
        assert!(p.contains("a tops in colours #1f3a5f"), "{p}");
        assert!(p.contains("solid #"), "{p}");
        let p = generation_prompt(&input(BackgroundKind::Random, false, None));
        assert!(p.contains("lifestyle scene"), "{p}");
    }
}
