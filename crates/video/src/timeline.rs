//! The slideshow's timing, in whole frames: which image (or pair of images, during
//! a crossfade) each output frame shows, and at what zoom.
//!
//! Pure arithmetic, kept apart from pixels and the encoder so the contract (frame
//! count, where each image's slot starts, how crossfades overlap) is tested on its
//! own. Slot `i` starts at frame `round(i × seconds_per_image × fps)`, so the total
//! is exactly `round(images × seconds_per_image × fps)`. Each crossfade is centred
//! on the boundary between two slots, so it eats into both neighbours equally and
//! never lengthens the video.

use atelier_core::settings::VideoSettings;
use atelier_imaging::video::{decimal, frame_count};

/// One image as drawn in a frame: which one, and how far it has zoomed in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Layer {
    /// Index into the slideshow's images.
    pub image: usize,
    /// Magnification of the letterboxed frame, ≥ 1 (1 = the whole frame).
    pub scale: f64,
}

/// What one output frame shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum FrameSpec {
    /// One image alone.
    Single(Layer),
    /// A crossfade step: `to` mixed over `from` with `weight`/256 (never 0 or 256).
    Blend { from: Layer, to: Layer, weight: u16 },
}

/// Frame-exact layout of a slideshow of `images` images.
#[derive(Debug, Clone)]
pub(super) struct Timeline {
    /// First frame of each image's slot, plus the total frame count at the end.
    bounds: Vec<u32>,
    /// Crossfade length in frames (0 = hard cuts).
    fade: u32,
    /// Frames of the fade that fall before a slot boundary.
    lead: u32,
    /// Scale growth per frame.
    zoom_per_frame: f64,
}

impl Timeline {
    /// Lays out `images` slots. The caller has checked that there is at least one
    /// image, that every slot is at least one frame long and that the settings are
    /// finite.
    pub(super) fn new(images: usize, settings: &VideoSettings) -> Self {
        let bounds: Vec<u32> = (0..=images).map(|i| frame_count(i, settings)).collect();
        let shortest = bounds.windows(2).map(|w| w[1] - w[0]).min().unwrap_or(0);
        let wanted = (decimal(settings.transition_seconds) * f64::from(settings.fps)).round() as u32;
        // Keep at least one unblended frame per image, so every image is seen whole.
        let fade = if images > 1 {
            wanted.min(shortest.saturating_sub(1))
        } else {
            0
        };
        let slot_frames = decimal(settings.seconds_per_image) * f64::from(settings.fps);
        Self {
            bounds,
            fade,
            lead: fade / 2,
            zoom_per_frame: decimal(settings.zoom) / slot_frames,
        }
    }

    /// Total number of frames.
    pub(super) fn frames(&self) -> u32 {
        self.bounds.last().copied().unwrap_or(0)
    }

    fn images(&self) -> usize {
        self.bounds.len().saturating_sub(1)
    }

    /// First frame on which image `i` is visible (its fade-in starts before its slot).
    fn appears(&self, i: usize) -> u32 {
        if i == 0 { 0 } else { self.bounds[i] - self.lead }
    }

    /// One past the last frame on which image `i` is visible.
    fn disappears(&self, i: usize) -> u32 {
        if i + 1 >= self.images() {
            self.frames()
        } else {
            self.bounds[i + 1] - self.lead + self.fade
        }
    }

    fn layer(&self, image: usize, frame: u32) -> Layer {
        let age = frame.saturating_sub(self.appears(image));
        Layer {
            image,
            scale: 1.0 + self.zoom_per_frame * f64::from(age),
        }
    }

    /// The largest magnification any frame uses, so images can be prepared at a
    /// resolution that makes every zoom step a downscale (no blur from enlarging).
    pub(super) fn max_scale(&self) -> f64 {
        (0..self.images())
            .map(|i| self.layer(i, self.disappears(i).saturating_sub(1)).scale)
            .fold(1.0, f64::max)
    }

    /// What frame `frame` shows (frames past the end show the last image).
    pub(super) fn frame(&self, frame: u32) -> FrameSpec {
        let n = self.images();
        // Slot containing the frame: the last slot whose start is at or before it.
        let slot = self.bounds[..n]
            .partition_point(|&start| start <= frame)
            .saturating_sub(1);
        if self.fade > 0 {
            // Fade out of this slot into the next one, across the upcoming boundary.
            if slot + 1 < n && frame >= self.bounds[slot + 1] - self.lead {
                return self.blend(slot, frame);
            }
            // Fade into this slot from the previous one, across its own boundary.
            if slot > 0 && frame < self.disappears(slot - 1) {
                return self.blend(slot - 1, frame);
            }
        }
        FrameSpec::Single(self.layer(slot, frame))
    }

    /// A step of the crossfade from image `from` to image `from + 1`.
    fn blend(&self, from: usize, frame: u32) -> FrameSpec {
        let start = self.appears(from + 1);
        let step = frame - start + 1;
        let steps = u64::from(self.fade + 1);
        // Rounded, so the ramp is symmetric: steps k and fade+1-k sum to 256 (±1).
        let weight = ((u64::from(step) * 256 + steps / 2) / steps) as u16;
        FrameSpec::Blend {
            from: self.layer(from, frame),
            to: self.layer(from + 1, frame),
            weight: weight.clamp(1, 255),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(seconds: f32, transition: f32, zoom: f32) -> VideoSettings {
        VideoSettings {
            width: 720,
            height: 960,
            fps: 30,
            seconds_per_image: seconds,
            transition_seconds: transition,
            zoom,
            preset: "veryfast".into(),
            crf: 23,
        }
    }

    fn image_of(spec: FrameSpec) -> usize {
        match spec {
            FrameSpec::Single(l) => l.image,
            FrameSpec::Blend { .. } => usize::MAX,
        }
    }

    #[test]
    fn total_is_images_times_slot_and_rounds_odd_lengths() {
        let s = settings(1.5, 0.4, 0.04);
        assert_eq!(Timeline::new(3, &s).frames(), 135);
        assert_eq!(frame_count(3, &settings(1.55, 0.4, 0.0)), 140); // 139.5 rounds up
        assert_eq!(Timeline::new(1, &s).frames(), 45);
    }

    #[test]
    fn crossfades_are_centred_on_slot_boundaries() {
        let t = Timeline::new(3, &settings(1.5, 0.4, 0.0));
        // 12 fade frames around frame 45: 39..51 blend images 0 and 1.
        assert_eq!(image_of(t.frame(38)), 0);
        for f in 39..51 {
            match t.frame(f) {
                FrameSpec::Blend { from, to, weight } => {
                    assert_eq!((from.image, to.image), (0, 1), "frame {f}");
                    assert!((1..=255).contains(&weight));
                }
                other => panic!("frame {f} should blend, got {other:?}"),
            }
        }
        assert_eq!(image_of(t.frame(51)), 1);
        assert_eq!(image_of(t.frame(67)), 1); // the middle of slot 1
        assert_eq!(image_of(t.frame(134)), 2);
        assert_eq!(image_of(t.frame(500)), 2);
    }

    #[test]
    fn blend_weights_rise_through_the_fade() {
        let t = Timeline::new(2, &settings(1.5, 0.4, 0.0));
        let weights: Vec<u16> = (39..51)
            .map(|f| match t.frame(f) {
                FrameSpec::Blend { weight, .. } => weight,
                FrameSpec::Single(_) => 0,
            })
            .collect();
        assert!(weights.windows(2).all(|w| w[0] < w[1]), "{weights:?}");
        // Symmetric: the first and last steps are equally far from the ends.
        assert_eq!(weights[0] as i32, 256 - weights[11] as i32);
    }

    #[test]
    fn zoom_grows_by_the_setting_over_one_slot_from_when_the_image_appears() {
        let t = Timeline::new(2, &settings(1.5, 0.4, 0.04));
        let scale = |f| match t.frame(f) {
            FrameSpec::Single(l) => l.scale,
            FrameSpec::Blend { to, .. } => to.scale,
        };
        assert_eq!(scale(0), 1.0);
        assert!((scale(45) - (1.0 + 0.04 * 6.0 / 45.0)).abs() < 1e-12); // image 1 appeared at 39
        assert!((scale(30) - 1.0 - 0.04 * 30.0 / 45.0).abs() < 1e-12);
        // Image 1 is visible for frames 39..90: 51 frames.
        assert!((t.max_scale() - (1.0 + 0.04 * 50.0 / 45.0)).abs() < 1e-12);
    }

    #[test]
    fn one_image_has_no_fade_and_short_slots_keep_an_unblended_frame() {
        let one = Timeline::new(1, &settings(1.5, 0.4, 0.0));
        assert!((0..45).all(|f| matches!(one.frame(f), FrameSpec::Single(_))));
        // 3-frame slots with a 2-second fade: the fade shrinks to 2 frames.
        let mut s = settings(0.1, 0.05, 0.0);
        s.transition_seconds = 2.0;
        let t = Timeline::new(3, &s);
        assert_eq!(t.frames(), 9);
        let singles = (0..9)
            .filter(|&f| matches!(t.frame(f), FrameSpec::Single(_)))
            .count();
        assert!(singles >= 3, "every image is seen whole at least once");
    }

    #[test]
    fn static_stretches_repeat_the_same_spec_when_zoom_is_off() {
        let t = Timeline::new(2, &settings(1.5, 0.4, 0.0));
        assert_eq!(t.frame(10), t.frame(11));
        let z = Timeline::new(2, &settings(1.5, 0.4, 0.04));
        assert_ne!(z.frame(10), z.frame(11));
    }
}
