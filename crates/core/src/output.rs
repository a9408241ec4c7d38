//! What the client wants its images to be: file format, canvas size (or a
//! marketplace preset), margin, plain background colour and transparency.
//!
//! The request carries [`OutputOptions`] as sent; [`OutputOptions::resolve`] turns
//! them, with the configured defaults and bounds, into the one [`OutputSpec`] the
//! generation and upscaling stages follow. The gateway resolves at intake (so a
//! bad value is a 422 naming its field) and the stages resolve again from the
//! same request, so every service agrees without carrying a second copy.

use serde::{Deserialize, Serialize};

use crate::ValidationError;
use crate::settings::{GenerationSettings, OutputSettings};

/// Largest margin: leaves at least a tenth of the canvas for the garment (the
/// same bound the renderer clamps `generation.padding` to).
pub const MAX_MARGIN: f32 = 0.45;
/// Quality bounds of lossy encodings.
pub const QUALITY_RANGE: std::ops::RangeInclusive<u8> = 1..=100;

/// File format of the generated and upscaled images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    /// Baseline JPEG, 4:2:0 chroma; `quality` applies. No alpha.
    #[default]
    Jpeg,
    /// Lossless PNG; `quality` is ignored. Alpha with `transparent`.
    Png,
    /// Lossless WebP; `quality` is ignored. Alpha with `transparent`.
    Webp,
}

impl ImageFormat {
    /// File extension of the stored blob (and so of the served URL).
    pub fn extension(self) -> &'static str {
        match self {
            Self::Jpeg => "jpg",
            Self::Png => "png",
            Self::Webp => "webp",
        }
    }

    /// Lower-case name as used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jpeg => "jpeg",
            Self::Png => "png",
            Self::Webp => "webp",
        }
    }

    /// Whether the format can carry an alpha channel.
    pub fn has_alpha(self) -> bool {
        !matches!(self, Self::Jpeg)
    }
}

/// Canvas rules of a marketplace (see docs/api.md for each source).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// The configured canvas (`generation.canvas_width`×`canvas_height`, 960×1280
    /// by default) and margin.
    Default,
    /// Amazon main image: pure white #FFFFFF, square 2000×2000 (longest side at
    /// least 1600 px enables zoom), product filling about 85 % of the frame.
    Amazon,
    /// Shopify: square 2048×2048, the size Shopify recommends for zoomable images.
    Shopify,
    /// Zalando (and fashion portrait in general): 3:4, 1800×2400.
    Zalando,
}

/// What a preset fixes. `None` leaves the configured default.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PresetRule {
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub margin: Option<f32>,
    /// Plain-background colour the preset demands.
    pub background: Option<[u8; 3]>,
}

/// Amazon's product fill: "the product should fill 85 % or more of the image";
/// the margin on the garment's tighter axis is half the rest.
pub const AMAZON_FILL: f32 = 0.85;
/// Amazon's canvas side: above the 1600 px zoom threshold, below the 10 000 px cap.
pub const AMAZON_SIDE: u32 = 2000;
/// Shopify's recommended square side for zoomable product images.
pub const SHOPIFY_SIDE: u32 = 2048;
/// Zalando's portrait product image, 3:4.
pub const ZALANDO_SIZE: (u32, u32) = (1800, 2400);
const WHITE: [u8; 3] = [255, 255, 255];

impl Preset {
    /// The canvas rules of this preset.
    pub fn rule(self) -> PresetRule {
        let size = |w, h| PresetRule {
            width: Some(w),
            height: Some(h),
            margin: None,
            background: None,
        };
        match self {
            Self::Default => PresetRule {
                width: None,
                height: None,
                margin: None,
                background: None,
            },
            Self::Amazon => PresetRule {
                margin: Some((1.0 - AMAZON_FILL) / 2.0),
                background: Some(WHITE),
                ..size(AMAZON_SIDE, AMAZON_SIDE)
            },
            Self::Shopify => size(SHOPIFY_SIDE, SHOPIFY_SIDE),
            Self::Zalando => size(ZALANDO_SIZE.0, ZALANDO_SIZE.1),
        }
    }

    /// Lower-case name as used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Amazon => "amazon",
            Self::Shopify => "shopify",
            Self::Zalando => "zalando",
        }
    }
}

impl std::str::FromStr for Preset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Default, Self::Amazon, Self::Shopify, Self::Zalando]
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                format!("unknown preset `{s}`, expected one of: default, amazon, shopify, zalando")
            })
    }
}

impl std::str::FromStr for ImageFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Jpeg, Self::Png, Self::Webp]
            .into_iter()
            .find(|f| f.as_str() == s || (s == "jpg" && *f == Self::Jpeg))
            .ok_or_else(|| format!("unknown format `{s}`, expected one of: jpeg, png, webp"))
    }
}

/// The request's optional `output` object, as sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutputOptions {
    /// `jpeg` (default), `png` or `webp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<ImageFormat>,
    /// JPEG quality 1–100 (default `output.jpeg_quality`, 90). PNG and WebP are
    /// lossless and ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 100)]
    pub quality: Option<u8>,
    /// Canvas size `"WxH"` in pixels (not with `preset`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "1200x1600")]
    pub size: Option<String>,
    /// A marketplace's canvas rules (not with `size`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<Preset>,
    /// Margin around the garment on its tighter axis, as a fraction of that
    /// canvas side, 0–0.45 (default `generation.padding`, 0.08).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0.0, maximum = 0.45)]
    pub margin: Option<f32>,
    /// Colour of plain backgrounds, `#RRGGBB` (default: a light tone harmonised
    /// with the garment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "#F4F1EC")]
    pub background_color: Option<String>,
    /// A cut-out with the garment's alpha and no background (`png` or `webp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transparent: Option<bool>,
}

/// The resolved output every stage follows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutputSpec {
    pub format: ImageFormat,
    /// Encoder quality (JPEG only).
    pub quality: u8,
    pub width: u32,
    pub height: u32,
    /// Margin on the garment's tighter axis, fraction of that canvas side.
    pub margin: f32,
    /// Colour of plain backgrounds, when fixed by the request or the preset.
    pub background: Option<[u8; 3]>,
    /// No background: the garment's alpha over transparency.
    pub transparent: bool,
}

impl OutputSpec {
    /// The output of a request without `output`: today's JPEG on the configured canvas.
    pub fn defaults(settings: &crate::settings::Settings) -> Self {
        Self {
            format: ImageFormat::Jpeg,
            quality: settings.output.jpeg_quality,
            width: settings.generation.canvas_width,
            height: settings.generation.canvas_height,
            margin: settings.generation.padding,
            background: None,
            transparent: false,
        }
    }
}

fn invalid(field: &str, message: impl Into<String>) -> ValidationError {
    ValidationError::new(format!("output.{field}"), message)
}

/// Parses `"WxH"` (ASCII `x` or `X`, positive integers).
pub fn parse_size(s: &str) -> Option<(u32, u32)> {
    let (w, h) = s.split_once(['x', 'X'])?;
    let digits = |t: &str| !t.is_empty() && t.len() <= 9 && t.bytes().all(|b| b.is_ascii_digit());
    if !digits(w) || !digits(h) {
        return None;
    }
    let (w, h) = (w.parse().ok()?, h.parse().ok()?);
    (w > 0 && h > 0).then_some((w, h))
}

/// Parses `#RRGGBB` (either case).
pub fn parse_hex_color(s: &str) -> Option<[u8; 3]> {
    let hex = s.strip_prefix('#')?;
    if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
    Some([byte(0)?, byte(2)?, byte(4)?])
}

impl OutputOptions {
    /// The rules that need no configuration, naming the offending field
    /// (`output.size`, …).
    pub fn validate(&self) -> Result<(), ValidationError> {
        if let Some(q) = self.quality
            && !QUALITY_RANGE.contains(&q)
        {
            return Err(invalid("quality", format!("must be between 1 and 100, got {q}")));
        }
        if let Some(size) = &self.size {
            if self.preset.is_some() {
                return Err(invalid("size", "give either size or preset, not both"));
            }
            if parse_size(size).is_none() {
                return Err(invalid(
                    "size",
                    format!("must be \"WxH\" with positive whole pixels, like \"1200x1600\", got {size:?}"),
                ));
            }
        }
        if let Some(m) = self.margin
            && !(0.0..=MAX_MARGIN).contains(&m)
        {
            return Err(invalid(
                "margin",
                format!("must be between 0 and {MAX_MARGIN}, got {m}"),
            ));
        }
        if let Some(c) = &self.background_color
            && parse_hex_color(c).is_none()
        {
            return Err(invalid(
                "backgroundColor",
                format!("must be a hex colour #RRGGBB, got {c:?}"),
            ));
        }
        if self.transparent == Some(true) && self.format.unwrap_or_default() == ImageFormat::Jpeg {
            return Err(invalid(
                "transparent",
                "JPEG has no alpha channel: ask for format png or webp",
            ));
        }
        Ok(())
    }

    /// Resolves `options` (absent = all defaults) against the configured canvas
    /// and bounds. Fails naming the field when the size breaks
    /// `output.max_side` or `output.max_pixels`, or when upscaling it by
    /// `upscale` would break `output.max_upscaled_pixels`.
    pub fn resolve(
        options: Option<&Self>,
        generation: &GenerationSettings,
        output: &OutputSettings,
        upscale: Option<u32>,
    ) -> Result<OutputSpec, ValidationError> {
        let default = Self::default();
        let o = options.unwrap_or(&default);
        o.validate()?;
        let rule = o.preset.unwrap_or(Preset::Default).rule();
        let (width, height) = match o.size.as_deref().and_then(parse_size) {
            Some(size) => size,
            None => (
                rule.width.unwrap_or(generation.canvas_width),
                rule.height.unwrap_or(generation.canvas_height),
            ),
        };
        let field = if o.size.is_some() { "size" } else { "preset" };
        if width.max(height) > output.max_side || u64::from(width) * u64::from(height) > output.max_pixels {
            return Err(invalid(
                field,
                format!(
                    "{width}x{height} is too large: at most {} px a side and {} pixels",
                    output.max_side, output.max_pixels
                ),
            ));
        }
        if width.min(height) < output.min_side {
            return Err(invalid(
                field,
                format!(
                    "{width}x{height} is too small: at least {} px a side",
                    output.min_side
                ),
            ));
        }
        if let Some(factor) = upscale {
            let f = u64::from(factor);
            let upscaled = (u64::from(width) * u64::from(height)).saturating_mul(f.saturating_mul(f));
            if upscaled > output.max_upscaled_pixels {
                return Err(ValidationError::new(
                    "upscaleFactor",
                    format!(
                        "{width}x{height} upscaled {factor}x makes {upscaled} pixels, more than {}",
                        output.max_upscaled_pixels
                    ),
                ));
            }
        }
        Ok(OutputSpec {
            format: o.format.unwrap_or_default(),
            quality: o.quality.unwrap_or(output.jpeg_quality),
            width,
            height,
            margin: o.margin.or(rule.margin).unwrap_or(generation.padding),
            background: o
                .background_color
                .as_deref()
                .and_then(parse_hex_color)
                .or(rule.background),
            transparent: o.transparent.unwrap_or(false),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Settings;

    fn opts(json: &str) -> OutputOptions {
        serde_json::from_str(json).expect("parses")
    }

    fn resolve(json: &str) -> Result<OutputSpec, ValidationError> {
        let s = Settings::defaults();
        OutputOptions::resolve(Some(&opts(json)), &s.generation, &s.output, None)
    }

    #[test]
    fn sizes_and_colours_parse_strictly() {
        assert_eq!(parse_size("1200x1600"), Some((1200, 1600)));
        assert_eq!(parse_size("10X20"), Some((10, 20)));
        for bad in [
            "",
            "x",
            "12x",
            "0x10",
            "-1x10",
            "1.5x2",
            "12 x 16",
            "12x16x2",
            "99999999999x1",
            "+1x2",
        ] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
        assert_eq!(parse_hex_color("#F4f1eC"), Some([0xF4, 0xF1, 0xEC]));
        for bad in ["F4F1EC", "#F4F1E", "#F4F1ECC", "#GGGGGG", "#+1+1+1", "#ééé"] {
            assert_eq!(parse_hex_color(bad), None, "{bad}");
        }
    }

    #[test]
    fn defaults_are_todays_output() {
        let s = Settings::defaults();
        let spec = OutputOptions::resolve(None, &s.generation, &s.output, Some(4)).expect("defaults");
        assert_eq!(
            spec,
            OutputSpec {
                format: ImageFormat::Jpeg,
                quality: s.output.jpeg_quality,
                width: s.generation.canvas_width,
                height: s.generation.canvas_height,
                margin: s.generation.padding,
                background: None,
                transparent: false,
            }
        );
        assert_eq!(OutputSpec::defaults(&s), spec);
        assert_eq!(resolve(r#"{"preset":"default"}"#).expect("default"), spec);
    }

    #[test]
    fn presets_fix_their_marketplace_rules() {
        let amazon = resolve(r#"{"preset":"amazon"}"#).expect("amazon");
        assert_eq!((amazon.width, amazon.height), (AMAZON_SIDE, AMAZON_SIDE));
        assert!(amazon.width.max(amazon.height) >= 1600);
        assert!((1.0 - 2.0 * amazon.margin - AMAZON_FILL).abs() < 1e-6);
        assert_eq!(amazon.background, Some([255, 255, 255]));
        let shopify = resolve(r#"{"preset":"shopify","format":"png"}"#).expect("shopify");
        assert_eq!(
            (shopify.width, shopify.height, shopify.format),
            (2048, 2048, ImageFormat::Png)
        );
        let zalando = resolve(r#"{"preset":"zalando","margin":0.2}"#).expect("zalando");
        assert_eq!((zalando.width, zalando.height, zalando.margin), (1800, 2400, 0.2));
        let own = resolve(r##"{"size":"800x600","backgroundColor":"#102030","quality":70}"##).expect("own");
        assert_eq!((own.width, own.height, own.quality), (800, 600, 70));
        assert_eq!(own.background, Some([0x10, 0x20, 0x30]));
    }

    #[test]
    fn each_bad_value_names_its_field() {
        let cases = [
            (r#"{"size":"800x600","preset":"amazon"}"#, "output.size"),
            (r#"{"size":"800by600"}"#, "output.size"),
            (r#"{"size":"100000x100"}"#, "output.size"),
            (r#"{"size":"20x20"}"#, "output.size"),
            (r#"{"quality":0}"#, "output.quality"),
            (r#"{"quality":101}"#, "output.quality"),
            (r#"{"margin":0.5}"#, "output.margin"),
            (r#"{"margin":-0.01}"#, "output.margin"),
            (r#"{"backgroundColor":"white"}"#, "output.backgroundColor"),
            (r#"{"transparent":true}"#, "output.transparent"),
            (r#"{"transparent":true,"format":"jpeg"}"#, "output.transparent"),
        ];
        for (json, field) in cases {
            assert_eq!(resolve(json).unwrap_err().field, field, "{json}");
        }
        assert!(
            resolve(r#"{"transparent":true,"format":"webp"}"#)
                .expect("webp")
                .transparent
        );
        let s = Settings::defaults();
        let big = opts(r#"{"preset":"shopify"}"#);
        let err = OutputOptions::resolve(Some(&big), &s.generation, &s.output, Some(u32::MAX)).unwrap_err();
        assert_eq!(err.field, "upscaleFactor");
    }

    #[test]
    fn unknown_names_are_refused_by_serde() {
        assert!(serde_json::from_str::<OutputOptions>(r#"{"preset":"etsy"}"#).is_err());
        assert!(serde_json::from_str::<OutputOptions>(r#"{"format":"gif"}"#).is_err());
        assert!(serde_json::from_str::<OutputOptions>(r#"{"sise":"1x1"}"#).is_err());
        assert_eq!("jpg".parse::<ImageFormat>(), Ok(ImageFormat::Jpeg));
        assert!("etsy".parse::<Preset>().unwrap_err().contains("amazon"));
    }
}
