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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColorShare {
    /// The cluster centre as `#rrggbb`.
    pub hex: String,
    /// Fraction of the garment's pixels in this cluster (0–1).
    pub share: f32,
}

/// Axis-aligned box in the pixel coordinates of the (orientation-corrected) input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoundingBox {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// Where the foreground mask came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaskSource {
    /// The image's own alpha channel.
    Alpha,
    /// Separation from a backdrop model fitted to the borders.
    Backdrop,
}

/// Brightness statistics of the whole photo.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Exposure {
    /// Mean relative luminance (0–1, Rec. 709 weights on sRGB values).
    pub mean_luminance: f32,
    /// Share of pixels at or below the shadow clip level.
    pub clipped_shadows: f32,
    /// Share of pixels at or above the highlight clip level.
    pub clipped_highlights: f32,
}

/// The local analysis of one photo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// Estimated backdrop colour at the photo's centre, `#rrggbb`.
    pub backdrop_color: String,
    /// Dominant garment colours, largest share first.
    pub palette: Vec<ColorShare>,
    pub exposure: Exposure,
    /// Variance of the Laplacian of the grey image: higher is sharper.
    pub sharpness: f64,
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
}
