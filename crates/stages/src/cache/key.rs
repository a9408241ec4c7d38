//! Cache keys: a SHA-256 over named, length-prefixed parts, so no two
//! different sets of parts can hash the same bytes, and where each entry's
//! blobs live under `cache/`.

use atelier_core::pipeline::Stage;
use atelier_core::request::GenerateRequest;
use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::StageError;
use crate::load::blocking;

/// The top-level prefix of the cache in the blob store (never under `jobs/`).
pub const PREFIX: &str = "cache/";

/// Bumped when the layout or meaning of entries changes: older entries miss.
const FORMAT: &str = "atelier-cache/1";

/// Request fields that do not change a variation's pixels, left out of the
/// generation key so requests differing only in them share renders:
/// the inputs (the variation's own input enters as its content hash and
/// view, the counts as the plan's ordinal), queueing and webhooks, upscaling
/// (keyed by its own stage), and the request `seed` (the effective seed is
/// keyed instead, where the renderer uses it).
const NOT_PIXELS: [&str; 7] = [
    "inputImages",
    "priority",
    "callbackUrl",
    "callbackEvents",
    "upscale",
    "upscaleFactor",
    "seed",
];

/// An entry's identity: the stage it belongs to and the hex digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheKey {
    stage: Stage,
    digest: String,
}

impl CacheKey {
    /// The stage whose output the entry holds.
    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// The hex digest (64 characters).
    pub fn digest(&self) -> &str {
        &self.digest
    }

    fn base(&self) -> String {
        // Two hex digits of fan-out keep local folders small.
        let (shard, _) = self.digest.split_at(2);
        format!("{PREFIX}{}/{shard}/{}", self.stage.as_str(), self.digest)
    }

    /// The entry's record (written last: its presence makes the entry whole).
    pub fn meta(&self) -> String {
        format!("{}.json", self.base())
    }

    /// The entry's bytes (an image, mask or video), with their extension.
    pub fn payload(&self, ext: &str) -> String {
        format!("{}.{ext}", self.base())
    }

    /// The claim a replica creates while it computes the entry.
    pub fn claim(&self) -> String {
        format!("{}.claim", self.base())
    }
}

/// Builds a [`CacheKey`] from named parts.
#[derive(Debug, Clone)]
pub struct KeyBuilder {
    stage: Stage,
    hasher: Sha256,
}

impl KeyBuilder {
    /// A key of `stage`'s entries.
    pub fn new(stage: Stage) -> Self {
        let builder = Self {
            stage,
            hasher: Sha256::new(),
        };
        builder.part("format", FORMAT).part("stage", stage.as_str())
    }

    /// Adds `name = value`; both are length-prefixed.
    pub fn part(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        let value = value.as_ref();
        for piece in [name.as_bytes(), value] {
            self.hasher.update((piece.len() as u64).to_le_bytes());
            self.hasher.update(piece);
        }
        self
    }

    /// The finished key.
    pub fn finish(self) -> CacheKey {
        CacheKey {
            stage: self.stage,
            digest: hex::encode(self.hasher.finalize()),
        }
    }
}

/// SHA-256 of `bytes` in hex, hashed off the async runtime (inputs are up to
/// tens of megabytes).
pub async fn content_hash(bytes: Bytes) -> Result<String, StageError> {
    blocking("content hash", move || hex::encode(Sha256::digest(&bytes))).await
}

/// The request as canonical JSON (keys sorted) without the fields that do
/// not change pixels ([`NOT_PIXELS`]). Fields added to the request later are
/// keyed automatically, so a new option can never be served a stale render.
pub fn pixel_request(request: &GenerateRequest) -> String {
    let mut value = serde_json::to_value(request).unwrap_or_default();
    if let Some(fields) = value.as_object_mut() {
        for name in NOT_PIXELS {
            fields.remove(name);
        }
    }
    value.to_string()
}

/// The request's `output` object as canonical JSON (`null` without one): the
/// upscale's encoding may depend on it.
pub fn output_request(request: &GenerateRequest) -> String {
    serde_json::to_value(request)
        .ok()
        .and_then(|mut v| v.get_mut("output").map(serde_json::Value::take))
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use atelier_core::request::InputImage;

    fn request() -> GenerateRequest {
        serde_json::from_str(
            r#"{"inputImages":[{"url":"https://a/b.jpg","backgrounds":[1,1,0]}],"text":"linen"}"#,
        )
        .expect("request")
    }

    #[test]
    fn parts_are_unambiguous_and_named() {
        let a = KeyBuilder::new(Stage::Analysis)
            .part("x", "ab")
            .part("y", "c")
            .finish();
        let b = KeyBuilder::new(Stage::Analysis)
            .part("x", "a")
            .part("y", "bc")
            .finish();
        let c = KeyBuilder::new(Stage::Generation)
            .part("x", "ab")
            .part("y", "c")
            .finish();
        let again = KeyBuilder::new(Stage::Analysis)
            .part("x", "ab")
            .part("y", "c")
            .finish();
        assert_eq!(a, again);
        assert_ne!(a, b);
        assert_ne!(a.digest(), c.digest());
        assert_eq!(a.digest().len(), 64);
        let meta = a.meta();
        assert!(meta.starts_with("cache/analysis/"), "{meta}");
        assert!(!meta.starts_with("jobs/"));
        assert_eq!(
            a.payload("png"),
            format!("cache/analysis/{}/{}.png", &a.digest()[..2], a.digest())
        );
    }

    #[test]
    fn the_pixel_request_ignores_what_does_not_change_pixels() {
        let base = request();
        let mut other = base.clone();
        other.input_images[0].url = "upload:elsewhere".into();
        other.input_images[0].backgrounds = [2, 1, 0];
        other.input_images.push(InputImage {
            url: "https://a/c.jpg".into(),
            view: Default::default(),
            backgrounds: [0, 0, 1],
        });
        other.priority = Some(9);
        other.upscale = true;
        other.upscale_factor = Some(4);
        other.callback_url = Some("https://hooks.example/x".into());
        assert_eq!(pixel_request(&base), pixel_request(&other));
        let mut text = base.clone();
        text.text = Some("silk".into());
        assert_ne!(pixel_request(&base), pixel_request(&text));
        let mut gender = base.clone();
        gender.gender = atelier_core::request::Gender::Female;
        assert_ne!(pixel_request(&base), pixel_request(&gender));
        assert_eq!(output_request(&base), "null");
    }
}
