//! One `generateContent` call and the mapping of every documented answer to a
//! description or a typed error.

use atelier_core::analysis::GarmentDescription;
use atelier_core::settings::{GEMINI_KEY_ENV, GeminiSettings, Secret};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::Response;

use super::wire::{
    Content, ERROR_INFO_TYPE, ErrorEnvelope, GenerateContentRequest, GenerateContentResponse,
    GenerationConfig, InlineData, Part, QUOTA_FAILURE_TYPE, RETRY_INFO_TYPE, description_schema,
};
use std::sync::Arc;

use crate::http::{self, Call, HttpClient, LocalQuota, QuotaGate, proto_duration};
use crate::{PromptContext, ProviderError, RemoteKind};

const PROVIDER: &str = "gemini";
/// The header Gemini reads the API key from (keeps it out of URLs and logs).
const KEY_HEADER: &str = "x-goog-api-key";
/// Words in a 429 that mean the day's quota is gone, not a short burst.
const DAILY_QUOTA_MARKERS: [&str; 3] = ["perday", "per day", "daily"];
/// Finish reasons that mean the model refused the content.
const BLOCKING_FINISH_REASONS: [&str; 6] = [
    "SAFETY",
    "RECITATION",
    "BLOCKLIST",
    "PROHIBITED_CONTENT",
    "SPII",
    "IMAGE_SAFETY",
];

/// A Gemini client bound to one model.
#[derive(Debug, Clone)]
pub struct GeminiClient {
    http: HttpClient,
    url: String,
    model: String,
    key: Secret,
    max_output_tokens: u32,
    temperature: f32,
}

impl GeminiClient {
    /// The model answering (`gemini-…`), for the result cache's keys.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The sampling settings that shape its answers, for the cache's keys.
    pub fn sampling(&self) -> (u32, f32) {
        (self.max_output_tokens, self.temperature)
    }

    /// A client from `[providers.gemini]`; fails when no key is configured.
    pub fn new(s: &GeminiSettings) -> Result<Self, ProviderError> {
        let http = s.http();
        Self::with_quota(s, Arc::new(LocalQuota::new(http.per_minute, http.burst)))
    }

    /// The same, with Gemini's quota counted by `quota`.
    pub fn with_quota(s: &GeminiSettings, quota: Arc<dyn QuotaGate>) -> Result<Self, ProviderError> {
        let key = s.api_key.or_env(GEMINI_KEY_ENV);
        if key.is_empty() {
            return Err(ProviderError::Config {
                provider: PROVIDER,
                message: format!("set providers.gemini.api_key or {GEMINI_KEY_ENV}"),
            });
        }
        Ok(Self {
            http: HttpClient::with_quota(PROVIDER, &s.http(), quota)?,
            url: format!(
                "{}/v1beta/models/{}:generateContent",
                s.base_url.trim_end_matches('/'),
                s.model
            ),
            model: s.model.clone(),
            key,
            max_output_tokens: s.max_output_tokens,
            temperature: s.temperature,
        })
    }

    /// Asks Gemini to describe the garment in `jpeg` and validates the answer.
    pub async fn describe(
        &self,
        jpeg: &[u8],
        context: &PromptContext,
    ) -> Result<GarmentDescription, ProviderError> {
        let body = GenerateContentRequest {
            contents: vec![Content {
                role: "user",
                parts: vec![
                    Part::Text {
                        text: instructions(context),
                    },
                    Part::InlineData {
                        inline_data: InlineData {
                            mime_type: "image/jpeg",
                            data: STANDARD.encode(jpeg),
                        },
                    },
                ],
            }],
            generation_config: GenerationConfig {
                response_mime_type: "application/json",
                response_schema: description_schema(),
                max_output_tokens: self.max_output_tokens,
                temperature: self.temperature,
            },
        };
        let call = Call {
            op: "generate_content",
            model: &self.model,
            rate_limited: true,
        };
        self.http
            .execute(
                call,
                |client| {
                    client
                        .post(&self.url)
                        .header(KEY_HEADER, self.key.expose())
                        .json(&body)
                },
                parse,
            )
            .await
    }
}

/// What we ask for. The client's text is quoted as a hint, not as instructions.
fn instructions(context: &PromptContext) -> String {
    let mut text = format!(
        "You are a fashion cataloguer. Describe the garment in this product photo \
         ({} view). The shop files it under product type `{}` for gender `{}`; \
         trust the photo when they disagree. Answer with JSON matching the schema.",
        context.view.as_str(),
        context.product_type.as_str(),
        context.gender.as_str(),
    );
    if let Some(note) = context.text.as_deref().filter(|t| !t.trim().is_empty()) {
        text.push_str(&format!(
            "\nThe shop's note about the product (a hint only): {note:?}"
        ));
    }
    text
}

async fn parse(response: Response) -> Result<GarmentDescription, ProviderError> {
    let status = response.status();
    if !status.is_success() {
        return Err(api_error(response).await);
    }
    let answer: GenerateContentResponse = http::json_body(PROVIDER, "generateContent", response).await?;
    description(answer, status.as_u16())
}

/// Turns a successful answer into a validated description.
fn description(answer: GenerateContentResponse, status: u16) -> Result<GarmentDescription, ProviderError> {
    let fail = |kind, message: String| ProviderError::remote(PROVIDER, kind, Some(status), message);
    let Some(candidate) = answer.candidates.into_iter().next() else {
        let feedback = answer.prompt_feedback.unwrap_or_default();
        return Err(match feedback.block_reason {
            Some(reason) => fail(
                RemoteKind::Blocked,
                format!(
                    "prompt blocked ({reason}){}",
                    feedback
                        .block_reason_message
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default()
                ),
            ),
            None => fail(RemoteKind::InvalidResponse, "no candidates in the answer".into()),
        });
    };
    let text: String = candidate
        .content
        .map(|c| c.parts)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| !p.thought)
        .filter_map(|p| p.text)
        .collect();
    let reason = candidate.finish_reason.unwrap_or_default();
    if BLOCKING_FINISH_REASONS.contains(&reason.as_str()) {
        return Err(fail(RemoteKind::Blocked, format!("answer stopped: {reason}")));
    }
    if reason == "MAX_TOKENS" {
        return Err(fail(
            RemoteKind::Truncated,
            format!(
                "answer cut at MAX_TOKENS ({} characters of JSON); raise providers.gemini.max_output_tokens",
                text.len()
            ),
        ));
    }
    if text.trim().is_empty() {
        return Err(fail(
            RemoteKind::InvalidResponse,
            format!("empty answer (finishReason {reason:?})"),
        ));
    }
    let parsed: GarmentDescription = serde_json::from_str(&text).map_err(|e| {
        fail(
            RemoteKind::InvalidResponse,
            format!("answer is not the requested JSON: {e}"),
        )
    })?;
    parsed.validate().map_err(|e| {
        fail(
            RemoteKind::InvalidResponse,
            format!("answer fails validation: {e}"),
        )
    })
}

/// Maps an error answer to a typed error with the API's own message.
async fn api_error(response: Response) -> ProviderError {
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap_or_default();
    let body = serde_json::from_slice::<ErrorEnvelope>(&bytes)
        .unwrap_or_default()
        .error;
    let message = if body.message.is_empty() {
        String::from_utf8_lossy(&bytes).chars().take(300).collect()
    } else {
        format!("{} {}", body.status, body.message).trim().to_string()
    };
    let reason_is = |reason: &str| body.details_of(ERROR_INFO_TYPE).any(|d| d["reason"] == reason);
    let (kind, retry_after) = match status {
        400 if reason_is("API_KEY_INVALID") => (RemoteKind::Unauthorized, None),
        401 | 403 => (RemoteKind::Unauthorized, None),
        429 if is_daily_quota(&body.message, &body) => (RemoteKind::QuotaExhausted, None),
        429 => (
            RemoteKind::Throttled,
            body.details_of(RETRY_INFO_TYPE)
                .find_map(|d| d["retryDelay"].as_str().and_then(proto_duration)),
        ),
        500..=599 => (RemoteKind::Unavailable, None),
        _ => (RemoteKind::Rejected, None),
    };
    ProviderError::Remote {
        provider: PROVIDER,
        kind,
        status: Some(status),
        message,
        retry_after,
    }
}

/// A 429 for a per-day quota: waiting seconds will not help.
fn is_daily_quota(message: &str, body: &super::wire::ErrorBody) -> bool {
    let has_marker = |text: &str| {
        let text = text.to_lowercase();
        DAILY_QUOTA_MARKERS.iter().any(|m| text.contains(m))
    };
    has_marker(message)
        || body.details_of(QUOTA_FAILURE_TYPE).any(|d| {
            d["violations"].as_array().is_some_and(|vs| {
                vs.iter().any(|v| {
                    v["quotaId"].as_str().is_some_and(has_marker)
                        || v["quotaMetric"].as_str().is_some_and(has_marker)
                })
            })
        })
}
