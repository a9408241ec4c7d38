//! Mask priors: a foreground map from outside the classic cut-out (a segmentation
//! model), which the cut-out's refinement starts from instead of its own region
//! labelling.
//!
//! Imaging knows nothing of models: a [`PriorSource`] is handed the analysis'
//! working copy and returns a [`MaskPrior`] of any size; the analysis brings it to
//! the working copy's size (bilinear, through [`crate::resize`]) and passes it to
//! the cut-out, where it replaces the first labelling (see `cutout::cut`).

use image::{GrayImage, Luma, RgbImage};

use crate::ImagingError;
use crate::resize::{self, Filter};

/// A foreground probability map, 0 (backdrop) to 1 (garment), stored as 8-bit
/// levels: a prior is refined by the cut-out, so 1/255 steps lose nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct MaskPrior {
    map: GrayImage,
}

impl MaskPrior {
    /// A prior from row-major probabilities (`width × height` of them; values
    /// outside 0–1 and NaN are clamped, NaN to 0).
    ///
    /// # Errors
    ///
    /// [`ImagingError::Segmentation`] when the count does not match the size.
    pub fn from_probabilities(width: u32, height: u32, values: &[f32]) -> Result<Self, ImagingError> {
        let expected = width as usize * height as usize;
        if values.len() != expected || expected == 0 {
            return Err(ImagingError::Segmentation(format!(
                "a {width}x{height} prior needs {expected} values, got {}",
                values.len()
            )));
        }
        let level = |p: f32| {
            let p = if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) };
            (p * 255.0).round() as u8
        };
        let map = GrayImage::from_fn(width, height, |x, y| {
            Luma([level(values[y as usize * width as usize + x as usize])])
        });
        Ok(Self { map })
    }

    /// The map as 8-bit levels (255 = garment).
    pub fn map(&self) -> &GrayImage {
        &self.map
    }

    /// Probabilities at `width × height`, row-major.
    pub(super) fn probabilities_at(&self, width: u32, height: u32) -> Result<Vec<f32>, ImagingError> {
        let resized;
        let map = if self.map.dimensions() == (width, height) {
            &self.map
        } else {
            resized = resize::gray(&self.map, width, height, Filter::Bilinear)?;
            &resized
        };
        Ok(map.as_raw().iter().map(|&v| f32::from(v) / 255.0).collect())
    }
}

/// Something that gives a mask prior for a photo: a segmentation model. Called on
/// the analysis' thread (a rayon worker) with the working copy, only when the
/// cut-out runs (not when the photo's own alpha is the mask).
pub trait PriorSource: Send + Sync {
    /// The prior for `work`, at any size (it is resized to `work`'s).
    ///
    /// # Errors
    ///
    /// [`ImagingError::Segmentation`] when the model fails.
    fn prior(&self, work: &RgbImage) -> Result<MaskPrior, ImagingError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probabilities_are_clamped_and_resized_bilinearly() {
        let values = [0.0, 1.0, f32::NAN, 2.0];
        let prior = MaskPrior::from_probabilities(2, 2, &values).expect("prior");
        assert_eq!(prior.map().as_raw(), &vec![0, 255, 0, 255]);
        let same = prior.probabilities_at(2, 2).expect("same size");
        assert_eq!(same, vec![0.0, 1.0, 0.0, 1.0]);
        let big = prior.probabilities_at(8, 8).expect("resized");
        assert_eq!(big.len(), 64);
        // Left column backdrop, right column garment, a ramp between.
        assert!(big[0] < 0.1 && big[7] > 0.9, "{big:?}");
        assert!(big[3] > big[2] && big[4] > big[3]);
    }

    #[test]
    fn a_wrong_count_is_an_error() {
        assert!(matches!(
            MaskPrior::from_probabilities(3, 3, &[0.5; 8]),
            Err(ImagingError::Segmentation(_))
        ));
        assert!(MaskPrior::from_probabilities(0, 3, &[]).is_err());
    }
}
