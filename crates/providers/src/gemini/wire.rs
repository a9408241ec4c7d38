//! The parts of the Gemini `generateContent` REST shapes we use (public API
//! reference: ai.google.dev/api/generate-content), and our response schema.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Request body of `models/{model}:generateContent`.
#[derive(Debug, Serialize)]
pub struct GenerateContentRequest {
    pub contents: Vec<Content>,
    #[serde(rename = "generationConfig")]
    pub generation_config: GenerationConfig,
}

#[derive(Debug, Serialize)]
pub struct Content {
    pub role: &'static str,
    pub parts: Vec<Part>,
}

/// A request part: text or inline bytes (snake_case as in the REST examples).
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Part {
    Text { text: String },
    InlineData { inline_data: InlineData },
}

#[derive(Debug, Serialize)]
pub struct InlineData {
    pub mime_type: &'static str,
    /// Base64 (standard alphabet, padded).
    pub data: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerationConfig {
    pub response_mime_type: &'static str,
    pub response_schema: Value,
    pub max_output_tokens: u32,
    pub temperature: f32,
}

/// Response body of `generateContent` (fields we read; others are ignored).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateContentResponse {
    #[serde(default)]
    pub candidates: Vec<Candidate>,
    pub prompt_feedback: Option<PromptFeedback>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    pub content: Option<ResponseContent>,
    pub finish_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ResponseContent {
    #[serde(default)]
    pub parts: Vec<ResponsePart>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ResponsePart {
    pub text: Option<String>,
    /// Thinking models mark their thought summaries; those are not the answer.
    #[serde(default)]
    pub thought: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromptFeedback {
    pub block_reason: Option<String>,
    pub block_reason_message: Option<String>,
}

/// Google's error envelope: `{"error": {code, message, status, details}}`.
#[derive(Debug, Default, Deserialize)]
pub struct ErrorEnvelope {
    #[serde(default)]
    pub error: ErrorBody,
}

#[derive(Debug, Default, Deserialize)]
pub struct ErrorBody {
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub details: Vec<Value>,
}

/// `@type` of the detail carrying the server's retry delay.
pub const RETRY_INFO_TYPE: &str = "type.googleapis.com/google.rpc.RetryInfo";
/// `@type` of the detail naming the exhausted quota.
pub const QUOTA_FAILURE_TYPE: &str = "type.googleapis.com/google.rpc.QuotaFailure";
/// `@type` of the detail naming the error reason (`API_KEY_INVALID`, ...).
pub const ERROR_INFO_TYPE: &str = "type.googleapis.com/google.rpc.ErrorInfo";

impl ErrorBody {
    /// Details of one `@type`.
    pub fn details_of<'a>(&'a self, type_url: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.details.iter().filter(move |d| d["@type"] == type_url)
    }
}

/// The OpenAPI-subset schema Gemini constrains its JSON answer to; it mirrors
/// `atelier_core::analysis::GarmentDescription`.
pub fn description_schema() -> Value {
    let text = |about: &str| json!({"type": "STRING", "description": about});
    json!({
        "type": "OBJECT",
        "properties": {
            "category": text("Kind of garment, e.g. t-shirt, jeans, dress, sneakers."),
            "colors": {
                "type": "ARRAY",
                "items": {"type": "STRING"},
                "description": "Colour names, most prominent first (1 to 8)."
            },
            "material": text("Main fabric or material."),
            "pattern": text("solid, striped, checked, floral, printed, ..."),
            "style": text("casual, formal, sporty, ..."),
            "fit": text("regular, slim, relaxed, oversized, ..."),
            "gender": {"type": "STRING", "format": "enum", "enum": ["male", "female", "unisex"]},
            "description": text("One sentence for a shop listing."),
            "generation_prompt": text(
                "A prompt for an image model that describes this exact garment faithfully \
                 (colour, material, cut, details), without background or model."
            )
        },
        "required": ["category", "colors", "material", "pattern", "style", "fit", "gender",
                     "description", "generation_prompt"],
        "propertyOrdering": ["category", "colors", "material", "pattern", "style", "fit", "gender",
                             "description", "generation_prompt"]
    })
}
