//! Which AI backend each stage uses, and how the remote ones are reached.
//!
//! Local providers are the default: they need no key and no network. Gemini and
//! Replicate are switched on per stage (`providers.analyzer = "gemini"`, ...).

use serde::Deserialize;

use crate::CoreError;

/// A secret read from configuration or the environment. Its `Debug` prints `***`,
/// so settings can be logged whole without leaking keys.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that sends it (an HTTP header).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when nothing was configured.
    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }

    /// This secret, or the environment variable `var` when this one is empty.
    pub fn or_env(&self, var: &str) -> Secret {
        if self.is_empty() {
            Secret(std::env::var(var).unwrap_or_default())
        } else {
            self.clone()
        }
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Environment variable read when `providers.gemini.api_key` is empty.
pub const GEMINI_KEY_ENV: &str = "GEMINI_API_KEY";
/// Environment variable read when `providers.replicate.api_token` is empty.
pub const REPLICATE_TOKEN_ENV: &str = "REPLICATE_API_TOKEN";
/// Replicate holds a `Prefer: wait` request open for at most this long.
pub const REPLICATE_MAX_WAIT_SECONDS: u64 = 60;
/// Replicate refuses `Cancel-After` deadlines shorter than this.
pub const REPLICATE_MIN_DEADLINE_SECONDS: u64 = 5;

/// Backend of the analysis stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnalyzerKind {
    /// On-CPU analysis only.
    #[default]
    Local,
    /// On-CPU analysis enriched by a Gemini description of the garment.
    Gemini,
}

/// Backend of the generation stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GeneratorKind {
    /// On-CPU cut-out and composite.
    #[default]
    Local,
    /// A Replicate model.
    Replicate,
}

/// Backend of the upscaling stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpscalerKind {
    /// On-CPU Lanczos3.
    #[default]
    Local,
    /// A Replicate model, falling back to the local upscaler.
    Replicate,
}

/// `[providers]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSettings {
    pub analyzer: AnalyzerKind,
    pub generator: GeneratorKind,
    pub upscaler: UpscalerKind,
    pub gemini: GeminiSettings,
    pub replicate: ReplicateSettings,
}

/// Limits and retries every HTTP provider shares (the same keys appear in
/// `[providers.gemini]` and `[providers.replicate]`; serde cannot flatten into a
/// `deny_unknown_fields` struct, so each section lists them and hands out this).
#[derive(Debug, Clone, PartialEq)]
pub struct HttpSettings {
    /// TCP + TLS connect timeout.
    pub connect_timeout_ms: u64,
    /// Longest one HTTP request may take, body included.
    pub timeout_ms: u64,
    /// Calls in flight at once from this process.
    pub max_concurrency: usize,
    /// Retries after the first attempt for retryable failures (429, 5xx, timeouts).
    pub max_retries: u32,
    /// First backoff; doubles each retry, with jitter.
    pub retry_base_ms: u64,
    /// Longest backoff (and longest server-requested delay we honour).
    pub retry_max_ms: u64,
    /// Requests that may start at once before the rate limit spaces them.
    pub burst: u32,
    /// Request starts allowed per minute.
    pub per_minute: u32,
}

/// `[providers.gemini]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeminiSettings {
    pub base_url: String,
    pub model: String,
    /// Empty = the `GEMINI_API_KEY` environment variable.
    pub api_key: Secret,
    /// Requests per minute (the project's quota for the model).
    pub requests_per_minute: u32,
    /// Longest side of the copy sent inline (keeps requests far below 20 MB).
    pub max_inline_side: u32,
    /// `generationConfig.maxOutputTokens`.
    pub max_output_tokens: u32,
    /// `generationConfig.temperature`.
    pub temperature: f32,
    /// When true a Gemini failure fails the analysis; when false the local
    /// analysis stands and the failure is logged and counted.
    pub required: bool,
    /// TCP + TLS connect timeout.
    pub connect_timeout_ms: u64,
    /// Longest one HTTP request may take, body included.
    pub timeout_ms: u64,
    /// Calls in flight at once from this process.
    pub max_concurrency: usize,
    /// Retries after the first attempt for retryable failures (429, 5xx, timeouts).
    pub max_retries: u32,
    /// First backoff; doubles each retry, with jitter.
    pub retry_base_ms: u64,
    /// Longest backoff (and longest server-requested delay we honour).
    pub retry_max_ms: u64,
    /// Requests that may start at once before the rate limit spaces them.
    pub burst: u32,
}

/// `[providers.replicate]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicateSettings {
    pub base_url: String,
    /// Empty = the `REPLICATE_API_TOKEN` environment variable.
    pub api_token: Secret,
    /// Prediction creations per minute (Replicate allows 600).
    pub creations_per_minute: u32,
    /// `Prefer: wait=N`: how long creation may block for a finished prediction.
    pub wait_seconds: u64,
    /// Our deadline for one prediction, also sent as `Cancel-After`.
    pub deadline_seconds: u64,
    /// Pause between status polls once the wait is over.
    pub poll_interval_ms: u64,
    /// Inputs up to this size go inline as data URLs; larger ones are uploaded.
    pub data_url_max_bytes: usize,
    /// TCP + TLS connect timeout.
    pub connect_timeout_ms: u64,
    /// Longest one HTTP request may take, body included.
    pub timeout_ms: u64,
    /// Calls in flight at once from this process.
    pub max_concurrency: usize,
    /// Retries after the first attempt for retryable failures (429, 5xx, timeouts).
    pub max_retries: u32,
    /// First backoff; doubles each retry, with jitter.
    pub retry_base_ms: u64,
    /// Longest backoff (and longest server-requested delay we honour).
    pub retry_max_ms: u64,
    /// Requests that may start at once before the rate limit spaces them.
    pub burst: u32,
    pub generator: ReplicateModel,
    pub upscaler: ReplicateModel,
}

/// A Replicate model and how our inputs map onto its input fields. An empty field
/// name means "do not send".
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicateModel {
    /// `owner/name`.
    pub model: String,
    /// A version id; empty = the model's own endpoint (official models).
    pub version: String,
    pub image_field: String,
    pub mask_field: String,
    pub prompt_field: String,
    pub negative_prompt_field: String,
    pub negative_prompt: String,
    pub seed_field: String,
    pub scale_field: String,
    /// Extra constant inputs, a JSON object (`{"num_outputs": 1}`).
    pub extra_input: String,
}

impl ReplicateModel {
    /// `(owner, name)` of `model`, when it has that shape.
    pub fn owner_name(&self) -> Option<(&str, &str)> {
        let (owner, name) = self.model.split_once('/')?;
        (!owner.is_empty() && !name.is_empty() && !name.contains('/')).then_some((owner, name))
    }
}

macro_rules! http_settings {
    ($ty:ty, $per_minute:ident) => {
        impl $ty {
            /// The client limits of this section.
            pub fn http(&self) -> HttpSettings {
                HttpSettings {
                    connect_timeout_ms: self.connect_timeout_ms,
                    timeout_ms: self.timeout_ms,
                    max_concurrency: self.max_concurrency,
                    max_retries: self.max_retries,
                    retry_base_ms: self.retry_base_ms,
                    retry_max_ms: self.retry_max_ms,
                    burst: self.burst,
                    per_minute: self.$per_minute,
                }
            }
        }
    };
}
http_settings!(GeminiSettings, requests_per_minute);
http_settings!(ReplicateSettings, creations_per_minute);

impl ProviderSettings {
    /// Rejects values that parse but cannot work, for the providers switched on.
    pub fn validate(&self) -> Result<(), CoreError> {
        let bad = |m: &str| Err(CoreError::InvalidSetting(m.to_string()));
        if self.analyzer == AnalyzerKind::Gemini {
            let g = &self.gemini;
            validate_http("providers.gemini", &g.http())?;
            if g.model.is_empty() || g.base_url.is_empty() {
                return bad("providers.gemini.model and base_url must be set");
            }
            if g.max_inline_side < 64 {
                return bad("providers.gemini.max_inline_side must be at least 64");
            }
        }
        let r = &self.replicate;
        let models = [
            (
                self.generator == GeneratorKind::Replicate,
                "generator",
                &r.generator,
            ),
            (self.upscaler == UpscalerKind::Replicate, "upscaler", &r.upscaler),
        ];
        if models.iter().any(|(on, _, _)| *on) {
            validate_http("providers.replicate", &r.http())?;
            if r.poll_interval_ms == 0 {
                return bad("providers.replicate.poll_interval_ms must be positive");
            }
            if r.wait_seconds > REPLICATE_MAX_WAIT_SECONDS {
                return bad("providers.replicate.wait_seconds must be at most 60 (Replicate's limit)");
            }
            if r.deadline_seconds < REPLICATE_MIN_DEADLINE_SECONDS {
                return bad("providers.replicate.deadline_seconds must be at least 5");
            }
        }
        for (on, which, model) in models {
            if on && model.owner_name().is_none() {
                return Err(CoreError::InvalidSetting(format!(
                    "providers.replicate.{which}.model must be `owner/name` when providers.{which} = \"replicate\""
                )));
            }
            if on && model.image_field.is_empty() {
                return Err(CoreError::InvalidSetting(format!(
                    "providers.replicate.{which}.image_field must be set"
                )));
            }
            if on && !model.extra_input.trim().is_empty() {
                let parsed: Result<serde_json::Map<String, serde_json::Value>, _> =
                    serde_json::from_str(&model.extra_input);
                if let Err(e) = parsed {
                    return Err(CoreError::InvalidSetting(format!(
                        "providers.replicate.{which}.extra_input must be a JSON object: {e}"
                    )));
                }
            }
        }
        Ok(())
    }
}

fn validate_http(section: &str, h: &HttpSettings) -> Result<(), CoreError> {
    if h.max_concurrency == 0
        || h.burst == 0
        || h.timeout_ms == 0
        || h.connect_timeout_ms == 0
        || h.per_minute == 0
    {
        return Err(CoreError::InvalidSetting(format!(
            "{section}: max_concurrency, burst, timeouts and the per-minute rate must be positive"
        )));
    }
    if h.retry_base_ms > h.retry_max_ms {
        return Err(CoreError::InvalidSetting(format!(
            "{section}: retry_base_ms must not exceed retry_max_ms"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("r8_live_key");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(s.expose(), "r8_live_key");
        assert!(Secret::default().is_empty());
    }

    #[test]
    fn model_names_split() {
        let mut m = ReplicateModel {
            model: "nightmareai/real-esrgan".into(),
            version: String::new(),
            image_field: "image".into(),
            mask_field: String::new(),
            prompt_field: String::new(),
            negative_prompt_field: String::new(),
            negative_prompt: String::new(),
            seed_field: String::new(),
            scale_field: "scale".into(),
            extra_input: String::new(),
        };
        assert_eq!(m.owner_name(), Some(("nightmareai", "real-esrgan")));
        m.model = "no-owner".into();
        assert_eq!(m.owner_name(), None);
        m.model = "a/b/c".into();
        assert_eq!(m.owner_name(), None);
    }
}
