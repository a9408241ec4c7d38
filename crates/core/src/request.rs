//! The request body of `POST /api/v1/generate` and `/generate/image`, exactly as
//! the old Python service's clients send it (camelCase, unknown fields refused).

use serde::{Deserialize, Serialize};

use crate::ValidationError;
use crate::output::{OutputOptions, OutputSpec};
use crate::settings::Settings;

/// Most input images one request may carry.
pub const MAX_INPUT_IMAGES: usize = 8;
/// Most images of one background kind per input image.
pub const MAX_PER_BACKGROUND: u8 = 4;
/// Longest accepted free-text prompt, in characters.
pub const MAX_TEXT_CHARS: usize = 2_000;
/// Highest message priority (RabbitMQ `x-max-priority`).
pub const MAX_PRIORITY: u8 = 9;
/// Priority used when the request does not name one.
pub const DEFAULT_PRIORITY: u8 = 5;
/// Longest accepted `callbackUrl`.
pub const MAX_CALLBACK_URL: usize = 2_048;
/// Every webhook event type `callbackEvents` may name.
pub const CALLBACK_EVENTS: [&str; 6] = [
    "job.completed",
    "job.failed",
    "job.cancelled",
    "job.stage_started",
    "job.stage_finished",
    "job.stage_retrying",
];
/// Largest accepted `seed`: 2^53 − 1, the largest integer every JSON client
/// (JavaScript included) reads back exactly, so a reported seed can be sent again.
pub const MAX_SEED: u64 = (1 << 53) - 1;
/// What a `callbackUrl` receives when `callbackEvents` is not given: the job's end.
pub const DEFAULT_CALLBACK_EVENTS: [&str; 2] = ["job.completed", "job.failed"];

/// A generation request as clients send it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GenerateRequest {
    /// The garment photos, 1 to [`MAX_INPUT_IMAGES`].
    pub input_images: Vec<InputImage>,
    /// Kind of product; steers prompts and the report.
    #[serde(default)]
    pub product_type: ProductType,
    /// Who the garment is for; steers prompts and the report.
    #[serde(default)]
    pub gender: Gender,
    /// Optional free text passed to generation as a prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Whether every variation is also upscaled.
    #[serde(default)]
    pub upscale: bool,
    /// Upscale factor, 2 or 4 (new; default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upscale_factor: Option<u8>,
    /// Queue priority 0–9, higher first (new; default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
    /// Where signed webhooks of the job's events go (new): an `http(s)` URL of
    /// a public address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
    /// Which events `callbackUrl` receives (new; default `job.completed` and
    /// `job.failed`): any of `job.completed`, `job.failed`, `job.cancelled`,
    /// `job.stage_started`, `job.stage_finished`, `job.stage_retrying`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_events: Option<Vec<String>>,
    /// Seed of the random (scene) backgrounds, 0 to 2^53 − 1 (new). The n-th
    /// random image of an input uses `seed + n`, reported as
    /// `image_variations[].seed`; the same input, parameters and seed give the
    /// same bytes. Absent: derived from the job id (fresh scenes per job).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// File format, canvas size or marketplace preset, margin, plain background
    /// colour and transparency of the images (new; absent = JPEG on the default
    /// 960×1280 canvas).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<OutputOptions>,
}

/// One photo of the garment and the variations wanted from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InputImage {
    /// `http(s)` URL or `data:image/...;base64,` URI (a file path in `atelier process`).
    pub url: String,
    /// Which side of the garment the photo shows.
    #[serde(default)]
    pub view: View,
    /// How many images to make on white, plain and random backgrounds, in that order.
    #[schema(value_type = Vec<u8>, min_items = 3, max_items = 3)]
    pub backgrounds: [u8; 3],
}

/// The side of the garment a photo shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum View {
    #[default]
    Front,
    Back,
    Side,
    Detail,
}

/// Product category of the garment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProductType {
    #[default]
    General,
    Tops,
    Bottoms,
    Dresses,
    Outerwear,
    Shoes,
    Accessories,
}

/// Target audience of the garment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Gender {
    Male,
    Female,
    #[default]
    Unisex,
}

/// The three background families, in the order of `backgrounds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackgroundKind {
    /// Pure #FFFFFF, the marketplace standard.
    White,
    /// A light solid colour harmonised with the garment.
    Plain,
    /// A seeded procedural studio scene.
    Random,
}

impl BackgroundKind {
    /// All kinds in the order of the request's `backgrounds` array.
    pub const ALL: [BackgroundKind; 3] = [Self::White, Self::Plain, Self::Random];

    /// Lower-case name as used in JSON and file names.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::White => "white",
            Self::Plain => "plain",
            Self::Random => "random",
        }
    }
}

macro_rules! impl_as_str {
    ($ty:ty { $($variant:ident => $name:literal),* $(,)? }) => {
        impl $ty {
            /// Lower-case name as used in JSON.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $name),* }
            }
        }
        impl std::str::FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok(Self::$variant),)*
                    other => Err(format!(
                        "unknown value `{other}`, expected one of: {}",
                        [$($name),*].join(", ")
                    )),
                }
            }
        }
    };
}

impl_as_str!(View { Front => "front", Back => "back", Side => "side", Detail => "detail" });
impl_as_str!(ProductType {
    General => "general", Tops => "tops", Bottoms => "bottoms", Dresses => "dresses",
    Outerwear => "outerwear", Shoes => "shoes", Accessories => "accessories",
});
impl_as_str!(Gender { Male => "male", Female => "female", Unisex => "unisex" });

/// Upscale factors the pipeline supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub enum UpscaleFactor {
    X2,
    X4,
}

impl UpscaleFactor {
    /// The factor as a multiplier.
    pub fn get(self) -> u32 {
        match self {
            Self::X2 => 2,
            Self::X4 => 4,
        }
    }
}

impl TryFrom<u8> for UpscaleFactor {
    type Error = String;
    fn try_from(v: u8) -> Result<Self, Self::Error> {
        match v {
            2 => Ok(Self::X2),
            4 => Ok(Self::X4),
            other => Err(format!("upscale factor must be 2 or 4, got {other}")),
        }
    }
}

impl From<UpscaleFactor> for u8 {
    fn from(f: UpscaleFactor) -> u8 {
        f.get() as u8
    }
}

impl GenerateRequest {
    /// A request over `input_images` with every other field as a JSON body that
    /// leaves it out gets it: the starting point for requests built in code
    /// (`GenerateRequest { upscale: true, ..GenerateRequest::for_inputs(inputs) }`).
    pub fn for_inputs(input_images: Vec<InputImage>) -> Self {
        Self {
            input_images,
            product_type: ProductType::default(),
            gender: Gender::default(),
            text: None,
            upscale: false,
            upscale_factor: None,
            priority: None,
            callback_url: None,
            callback_events: None,
            seed: None,
            output: None,
        }
    }

    /// Checks every rule of the API contract that serde's types cannot express,
    /// naming the first offending field.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.input_images.is_empty() {
            return Err(ValidationError::new(
                "inputImages",
                "at least one input image is required",
            ));
        }
        if self.input_images.len() > MAX_INPUT_IMAGES {
            return Err(ValidationError::new(
                "inputImages",
                format!(
                    "at most {MAX_INPUT_IMAGES} input images are accepted, got {}",
                    self.input_images.len()
                ),
            ));
        }
        for (i, input) in self.input_images.iter().enumerate() {
            if input.url.trim().is_empty() {
                return Err(ValidationError::new(
                    format!("inputImages[{i}].url"),
                    "must not be empty",
                ));
            }
            if let Some(c) = input.url.chars().find(|c| c.is_control()) {
                return Err(ValidationError::new(
                    format!("inputImages[{i}].url"),
                    format!(
                        "must not contain control characters (found U+{:04X})",
                        u32::from(c)
                    ),
                ));
            }
            if let Some(n) = input.backgrounds.iter().find(|&&n| n > MAX_PER_BACKGROUND) {
                return Err(ValidationError::new(
                    format!("inputImages[{i}].backgrounds"),
                    format!("each count must be between 0 and {MAX_PER_BACKGROUND}, got {n}"),
                ));
            }
        }
        if self.variation_count() == 0 {
            return Err(ValidationError::new(
                "inputImages",
                "the request asks for no image: every backgrounds array is [0, 0, 0]",
            ));
        }
        if let Some(text) = &self.text {
            if text.chars().count() > MAX_TEXT_CHARS {
                return Err(ValidationError::new(
                    "text",
                    format!("must be at most {MAX_TEXT_CHARS} characters"),
                ));
            }
            // Line breaks and tabs are text; NUL and other controls are not
            // (and no store or prompt takes them).
            if let Some(c) = text
                .chars()
                .find(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
            {
                return Err(ValidationError::new(
                    "text",
                    format!(
                        "must not contain control characters (found U+{:04X})",
                        u32::from(c)
                    ),
                ));
            }
        }
        if let Some(f) = self.upscale_factor {
            UpscaleFactor::try_from(f).map_err(|m| ValidationError::new("upscaleFactor", m))?;
        }
        if let Some(p) = self.priority
            && p > MAX_PRIORITY
        {
            return Err(ValidationError::new(
                "priority",
                format!("must be between 0 and {MAX_PRIORITY}, got {p}"),
            ));
        }
        if let Some(seed) = self.seed
            && seed > MAX_SEED
        {
            return Err(ValidationError::new(
                "seed",
                format!("must be between 0 and {MAX_SEED}, got {seed}"),
            ));
        }
        if let Some(output) = &self.output {
            output.validate()?;
        }
        self.validate_callback()
    }

    /// The output the stages produce: the request's `output` resolved against
    /// the configured canvas and bounds (a 422 naming the field at intake; the
    /// stages resolve the same request again).
    pub fn output_spec(&self, settings: &Settings) -> Result<OutputSpec, ValidationError> {
        OutputOptions::resolve(
            self.output.as_ref(),
            &settings.generation,
            &settings.output,
            self.effective_upscale().map(UpscaleFactor::get),
        )
    }

    /// `callbackUrl` and `callbackEvents` (the URL's address is the gateway's
    /// to check).
    fn validate_callback(&self) -> Result<(), ValidationError> {
        if let Some(url) = &self.callback_url {
            let lower = url.to_ascii_lowercase();
            if !(lower.starts_with("https://") || lower.starts_with("http://"))
                || url.len() > MAX_CALLBACK_URL
                || url.chars().any(char::is_control)
            {
                return Err(ValidationError::new(
                    "callbackUrl",
                    format!("must be an http(s) URL of at most {MAX_CALLBACK_URL} characters"),
                ));
            }
        }
        if let Some(events) = &self.callback_events {
            if self.callback_url.is_none() {
                return Err(ValidationError::new("callbackEvents", "needs a callbackUrl"));
            }
            if events.is_empty() {
                return Err(ValidationError::new(
                    "callbackEvents",
                    "must name at least one event",
                ));
            }
            for (i, event) in events.iter().enumerate() {
                if !CALLBACK_EVENTS.contains(&event.as_str()) {
                    return Err(ValidationError::new(
                        format!("callbackEvents[{i}]"),
                        format!(
                            "unknown event `{event}`, expected one of: {}",
                            CALLBACK_EVENTS.join(", ")
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The webhook event types `callbackUrl` receives.
    pub fn callback_event_types(&self) -> Vec<String> {
        self.callback_events
            .clone()
            .unwrap_or_else(|| DEFAULT_CALLBACK_EVENTS.iter().map(|e| (*e).to_string()).collect())
    }

    /// Number of variations the request asks for, over all inputs and kinds.
    pub fn variation_count(&self) -> usize {
        self.input_images
            .iter()
            .map(|i| i.backgrounds.iter().map(|&n| n as usize).sum::<usize>())
            .sum()
    }

    /// The upscale factor to apply, or `None` when upscaling is off.
    pub fn effective_upscale(&self) -> Option<UpscaleFactor> {
        if !self.upscale {
            return None;
        }
        Some(
            self.upscale_factor
                .and_then(|f| UpscaleFactor::try_from(f).ok())
                .unwrap_or(UpscaleFactor::X2),
        )
    }

    /// The queue priority, defaulted.
    pub fn effective_priority(&self) -> u8 {
        self.priority.unwrap_or(DEFAULT_PRIORITY).min(MAX_PRIORITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<GenerateRequest, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn for_inputs_is_a_body_with_only_inputs() {
        let req = parse(r#"{"inputImages":[{"url":"https://shop.example/a.jpg","backgrounds":[1,0,0]}]}"#)
            .expect("parses");
        assert_eq!(GenerateRequest::for_inputs(req.input_images.clone()), req);
    }

    #[test]
    fn old_client_request_parses_and_validates() {
        let req = parse(
            r#"{"inputImages":[{"url":"https://shop.example/a.jpg","view":"front","backgrounds":[0,1,1]}],
                "productType":"general","gender":"male","text":"Test 1","upscale":true}"#,
        )
        .expect("parses");
        req.validate().expect("valid");
        assert_eq!(req.variation_count(), 2);
        assert_eq!(req.effective_upscale(), Some(UpscaleFactor::X2));
        assert_eq!(req.effective_priority(), DEFAULT_PRIORITY);
        assert_eq!(req.gender, Gender::Male);
    }

    #[test]
    fn unknown_fields_are_refused_with_their_name() {
        let err = parse(r#"{"inputImages":[],"callbakUrl":"https://x"}"#).unwrap_err();
        assert!(err.to_string().contains("callbakUrl"), "{err}");
        let err = parse(r#"{"inputImages":[{"url":"u","backgrounds":[1,0,0],"bg":1}]}"#).unwrap_err();
        assert!(err.to_string().contains("`bg`"), "{err}");
    }

    #[test]
    fn each_rule_names_its_field() {
        let base = r#"{"url":"https://a/b.jpg","backgrounds":[1,0,0]}"#;
        let cases = [
            (r#"{"inputImages":[]}"#.to_string(), "inputImages"),
            (
                format!(r#"{{"inputImages":[{}]}}"#, [base; 9].join(",")),
                "inputImages",
            ),
            (
                r#"{"inputImages":[{"url":"u","backgrounds":[0,0,0]}]}"#.to_string(),
                "inputImages",
            ),
            (
                r#"{"inputImages":[{"url":"u","backgrounds":[0,5,0]}]}"#.to_string(),
                "inputImages[0].backgrounds",
            ),
            (
                r#"{"inputImages":[{"url":" ","backgrounds":[1,0,0]}]}"#.to_string(),
                "inputImages[0].url",
            ),
            (
                format!(r#"{{"inputImages":[{base}],"upscaleFactor":3}}"#),
                "upscaleFactor",
            ),
            (format!(r#"{{"inputImages":[{base}],"priority":10}}"#), "priority"),
            (
                format!(r#"{{"inputImages":[{base}],"seed":9007199254740992}}"#),
                "seed",
            ),
            (
                format!(r#"{{"inputImages":[{base}],"output":{{"quality":0}}}}"#),
                "output.quality",
            ),
            (format!(r#"{{"inputImages":[{base}],"text":"a\u0000b"}}"#), "text"),
            (
                r#"{"inputImages":[{"url":"https://a/\u0007b.jpg","backgrounds":[1,0,0]}]}"#.to_string(),
                "inputImages[0].url",
            ),
            (
                format!(r#"{{"inputImages":[{base}],"text":"{}"}}"#, "x".repeat(2001)),
                "text",
            ),
        ];
        for (json, field) in cases {
            let err = parse(&json).expect("shape parses").validate().unwrap_err();
            assert_eq!(err.field, field, "{json}");
        }
    }

    #[test]
    fn enum_values_round_trip_through_from_str() {
        for v in ["front", "back", "side", "detail"] {
            assert_eq!(v.parse::<View>().expect("view").as_str(), v);
        }
        assert!("top".parse::<ProductType>().unwrap_err().contains("tops"));
    }
}
