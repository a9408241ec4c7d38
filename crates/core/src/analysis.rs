//! What the analysis stage learns about one input photo.

use serde::{Deserialize, Serialize};

/// An sRGB colour written as `#rrggbb`.
pub fn hex(rgb: [u8; 3]) -> String {
    format!("#{:02x}{:02x}{:02x}", rgb[0], rgb[1], rgb[2])
}

/// Parses `#rrggbb` back into bytes.
pub fn parse_hex(s: &str) -> Option<[u8; 3]> {
    let s = s.strip_prefix('#')?;
    if s.len() != 6 {
        return None;
    }
    let byte = |i: usize| u8::from_str_radix(s.get(i..i + 2)?, 16).ok();
    Some([byte(0)?, byte(2)?, byte(4)?])
}

/// One cluster of the garment's palette.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ColorShare {
    /// The cluster centre as `#rrggbb`.
    pub hex: String,
    /// Fraction of the garment's pixels in this cluster (0–1).
    pub share: f32,
}

/// Axis-aligned box in the pixel coordinates of the (orientation-corrected) input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BoundingBox {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// Where the foreground mask came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MaskSource {
    /// The image's own alpha channel.
    Alpha,
    /// Separation from a backdrop model fitted to the borders.
    Backdrop,
    /// A segmentation model's map (`analysis.segmenter = "onnx"`), refined by the
    /// backdrop separation's colour models, smoothness term and guided filter.
    Model,
}

/// Confidence of analyses stored before `mask_confidence` existed.
fn full_confidence() -> f32 {
    1.0
}

/// Brightness statistics of the whole photo.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Exposure {
    /// Mean relative luminance (0–1, Rec. 709 weights on sRGB values).
    pub mean_luminance: f32,
    /// Share of pixels at or below the shadow clip level.
    pub clipped_shadows: f32,
    /// Share of pixels at or above the highlight clip level.
    pub clipped_highlights: f32,
}

/// The local analysis of one photo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImageAnalysis {
    /// Width of the orientation-corrected photo.
    pub width: u32,
    /// Height of the orientation-corrected photo.
    pub height: u32,
    pub mask_source: MaskSource,
    /// The garment's extent.
    pub bounding_box: BoundingBox,
    /// Fraction of the photo covered by the garment (0–1).
    pub coverage: f32,
    /// How far the mask can be trusted, 0–1: 1 for the photo's own alpha; for a
    /// cut-out, from the backdrop's uniformity, the mask outline's agreement with
    /// the photo's edges, the coverage and the fragmentation. Below
    /// `analysis.min_mask_confidence` the local path refuses the photo.
    #[serde(default = "full_confidence")]
    pub mask_confidence: f32,
    /// Estimated backdrop colour at the photo's centre, `#rrggbb`.
    pub backdrop_color: String,
    /// Dominant garment colours, largest share first.
    pub palette: Vec<ColorShare>,
    pub exposure: Exposure,
    /// Variance of the Laplacian of the grey image: higher is sharper.
    pub sharpness: f64,
    /// What an AI analyzer (Gemini) said about the garment, when one is switched
    /// on and answered; absent from the JSON otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ai: Option<GarmentDescription>,
}

/// Longest accepted text field of a [`GarmentDescription`], in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 600;
/// Longest accepted generation prompt, in characters.
pub const MAX_PROMPT_CHARS: usize = 1_200;
/// Most colour names a description may list.
pub const MAX_DESCRIPTION_COLORS: usize = 8;
/// The genders a description may name (the request's own vocabulary).
pub const DESCRIPTION_GENDERS: [&str; 3] = ["male", "female", "unisex"];

/// A model's structured description of a garment. It comes from outside, so it
/// is validated ([`GarmentDescription::validate`]) before anything uses it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GarmentDescription {
    /// Kind of garment (`t-shirt`, `dress`, ...).
    pub category: String,
    /// Colour names, most prominent first.
    pub colors: Vec<String>,
    pub material: String,
    /// `solid`, `striped`, `floral`, ...
    pub pattern: String,
    /// `casual`, `formal`, ...
    pub style: String,
    /// `regular`, `slim`, `oversized`, ...
    pub fit: String,
    /// One of [`DESCRIPTION_GENDERS`].
    pub gender: String,
    /// One line for people.
    pub description: String,
    /// A prompt for an image model describing the garment faithfully.
    pub generation_prompt: String,
}

impl GarmentDescription {
    /// Trims every field, lower-cases the vocabulary fields and checks sizes, so
    /// a malformed or runaway answer is refused instead of reaching a prompt.
    pub fn validate(mut self) -> Result<Self, String> {
        let tidy = |s: &mut String| *s = s.trim().to_string();
        for field in [
            &mut self.category,
            &mut self.material,
            &mut self.pattern,
            &mut self.style,
            &mut self.fit,
            &mut self.gender,
        ] {
            tidy(field);
            *field = field.to_lowercase();
        }
        tidy(&mut self.description);
        tidy(&mut self.generation_prompt);
        self.colors.iter_mut().for_each(tidy);
        self.colors.retain(|c| !c.is_empty());
        let fields = [
            ("category", &self.category),
            ("material", &self.material),
            ("pattern", &self.pattern),
            ("style", &self.style),
            ("fit", &self.fit),
            ("description", &self.description),
        ];
        for (name, value) in fields {
            if value.chars().count() > MAX_DESCRIPTION_CHARS {
                return Err(format!(
                    "{name} is longer than {MAX_DESCRIPTION_CHARS} characters"
                ));
            }
            if value.chars().any(char::is_control) {
                return Err(format!("{name} contains control characters"));
            }
        }
        if self.category.is_empty() || self.description.is_empty() || self.generation_prompt.is_empty() {
            return Err("category, description and generation_prompt must not be empty".into());
        }
        if self.generation_prompt.chars().count() > MAX_PROMPT_CHARS {
            return Err(format!(
                "generation_prompt is longer than {MAX_PROMPT_CHARS} characters"
            ));
        }
        if self.colors.is_empty() || self.colors.len() > MAX_DESCRIPTION_COLORS {
            return Err(format!("colors must list 1 to {MAX_DESCRIPTION_COLORS} colours"));
        }
        if self
            .colors
            .iter()
            .any(|c| c.chars().count() > MAX_DESCRIPTION_CHARS)
        {
            return Err("a colour name is too long".into());
        }
        if !DESCRIPTION_GENDERS.contains(&self.gender.as_str()) {
            return Err(format!(
                "gender `{}` is not one of {}",
                self.gender,
                DESCRIPTION_GENDERS.join(", ")
            ));
        }
        Ok(self)
    }
}

impl ImageAnalysis {
    /// The palette's colours alone, largest share first (the old API's `dominant_colors`).
    pub fn dominant_colors(&self) -> Vec<String> {
        self.palette.iter().map(|c| c.hex.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        assert_eq!(hex([31, 58, 95]), "#1f3a5f");
        assert_eq!(parse_hex("#1f3a5f"), Some([31, 58, 95]));
        assert_eq!(parse_hex("1f3a5f"), None);
        assert_eq!(parse_hex("#1f3a5"), None);
    }

    fn description() -> GarmentDescription {
        GarmentDescription {
            category: " T-Shirt ".into(),
            colors: vec!["navy".into(), " ".into()],
            material: "Cotton".into(),
            pattern: "solid".into(),
            style: "casual".into(),
            fit: "regular".into(),
            gender: "Unisex".into(),
            description: "A navy cotton t-shirt.".into(),
            generation_prompt: "navy cotton crew-neck t-shirt".into(),
        }
    }

    #[test]
    fn descriptions_are_tidied_and_checked() {
        let d = description().validate().expect("valid");
        assert_eq!((d.category.as_str(), d.gender.as_str()), ("t-shirt", "unisex"));
        assert_eq!(d.colors, vec!["navy".to_string()]);
        let mut bad = description();
        bad.gender = "robot".into();
        assert!(bad.validate().unwrap_err().contains("gender"));
        let mut bad = description();
        bad.generation_prompt = "x".repeat(MAX_PROMPT_CHARS + 1);
        assert!(bad.validate().is_err());
        let mut bad = description();
        bad.colors.clear();
        assert!(bad.validate().is_err());
        let mut bad = description();
        bad.description = "line\u{7}".into();
        assert!(bad.validate().is_err());
    }

    #[test]
    fn analysis_json_omits_a_missing_description() {
        let mut a = ImageAnalysis {
            width: 1,
            height: 1,
            mask_source: MaskSource::Alpha,
            bounding_box: BoundingBox {
                x: 0,
                y: 0,
                width: 1,
                height: 1,
            },
            coverage: 1.0,
            mask_confidence: 1.0,
            backdrop_color: "#ffffff".into(),
            palette: vec![],
            exposure: Exposure {
                mean_luminance: 0.5,
                clipped_shadows: 0.0,
                clipped_highlights: 0.0,
            },
            sharpness: 1.0,
            ai: None,
        };
        let json = serde_json::to_value(&a).expect("json");
        assert!(json.get("ai").is_none());
        a.ai = Some(description());
        let json = serde_json::to_value(&a).expect("json");
        assert_eq!(json["ai"]["generation_prompt"], "navy cotton crew-neck t-shirt");
        let back: ImageAnalysis = serde_json::from_value(json).expect("back");
        assert_eq!(back, a);
    }
}
