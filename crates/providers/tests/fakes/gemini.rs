//! `POST /v1beta/models/{model}:generateContent`.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub const KEY: &str = "test-gemini-key";
pub const MODEL: &str = "gemini-2.5-flash";

/// One answer of the fake.
#[derive(Debug, Clone)]
pub enum Reply {
    /// 200 with this description as the JSON text of the first candidate.
    Describe(Value),
    /// 200 with raw text in the first candidate (for malformed answers).
    Text(String),
    /// 200, `finishReason: MAX_TOKENS` and no text.
    MaxTokens,
    /// 200, no candidates, `promptFeedback.blockReason`.
    Blocked,
    /// An error status with Google's error envelope.
    Error(u16, Value),
    /// `Describe` after a delay (to hit our timeout).
    Slow(Duration),
}

/// A description that passes validation.
pub fn description() -> Value {
    json!({
        "category": "t-shirt",
        "colors": ["navy", "white"],
        "material": "cotton jersey",
        "pattern": "solid",
        "style": "casual",
        "fit": "regular",
        "gender": "unisex",
        "description": "A navy cotton crew-neck t-shirt.",
        "generation_prompt": "navy cotton crew-neck t-shirt with short sleeves"
    })
}

/// Google's error envelope.
pub fn error(code: u16, status: &str, message: &str, details: Value) -> Value {
    json!({"error": {"code": code, "message": message, "status": status, "details": details}})
}

/// A 429 asking to retry after `delay` (a protobuf duration like "0.05s").
pub fn throttled(delay: &str) -> Reply {
    Reply::Error(
        429,
        error(
            429,
            "RESOURCE_EXHAUSTED",
            "Resource has been exhausted (e.g. check quota).",
            json!([
                {"@type": "type.googleapis.com/google.rpc.QuotaFailure",
                 "violations": [{"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                                 "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}]},
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}
            ]),
        ),
    )
}

/// A 429 for the per-day quota.
pub fn daily_quota() -> Reply {
    Reply::Error(
        429,
        error(
            429,
            "RESOURCE_EXHAUSTED",
            "You exceeded your current quota, please check your plan and billing details.",
            json!([
                {"@type": "type.googleapis.com/google.rpc.QuotaFailure",
                 "violations": [{"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                                 "quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]},
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "36s"}
            ]),
        ),
    )
}

/// Answers in order; the last one repeats.
#[derive(Debug)]
pub struct Fake {
    replies: Mutex<VecDeque<Reply>>,
}

impl Fake {
    pub fn new(replies: impl IntoIterator<Item = Reply>) -> Self {
        Self {
            replies: Mutex::new(replies.into_iter().collect()),
        }
    }

    fn next(&self) -> Reply {
        let mut replies = self.replies.lock().expect("lock");
        if replies.len() > 1 {
            replies.pop_front().expect("reply")
        } else {
            replies.front().cloned().unwrap_or(Reply::Describe(description()))
        }
    }

    /// Mounts the fake for `MODEL` on `server`.
    pub async fn mount(self, server: &MockServer) {
        Mock::given(method("POST"))
            .and(path(format!("/v1beta/models/{MODEL}:generateContent")))
            .respond_with(self)
            .mount(server)
            .await;
    }
}

fn invalid(message: &str) -> ResponseTemplate {
    ResponseTemplate::new(400).set_body_json(error(400, "INVALID_ARGUMENT", message, json!([])))
}

/// What the real API refuses, in its words.
fn validate(req: &Request) -> Result<(), ResponseTemplate> {
    match req.headers.get("x-goog-api-key").and_then(|v| v.to_str().ok()) {
        None => {
            return Err(ResponseTemplate::new(403).set_body_json(error(
                403,
                "PERMISSION_DENIED",
                "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
                json!([]),
            )));
        }
        Some(key) if key != KEY => {
            return Err(ResponseTemplate::new(400).set_body_json(error(
                400,
                "INVALID_ARGUMENT",
                "API key not valid. Please pass a valid API key.",
                json!([{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com"}]),
            )));
        }
        Some(_) => {}
    }
    let body: Value =
        serde_json::from_slice(&req.body).map_err(|_| invalid("Invalid JSON payload received."))?;
    let parts = body["contents"][0]["parts"]
        .as_array()
        .ok_or_else(|| invalid("* GenerateContentRequest.contents: contents is not specified"))?;
    if !parts
        .iter()
        .any(|p| p["text"].as_str().is_some_and(|t| !t.is_empty()))
    {
        return Err(invalid(
            "* GenerateContentRequest.contents[0].parts: a text part is expected",
        ));
    }
    let inline = parts
        .iter()
        .find_map(|p| p.get("inline_data").or_else(|| p.get("inlineData")))
        .ok_or_else(|| invalid("* GenerateContentRequest.contents[0].parts: the image is missing"))?;
    let mime = inline
        .get("mime_type")
        .or_else(|| inline.get("mimeType"))
        .and_then(Value::as_str);
    if !matches!(mime, Some("image/jpeg" | "image/png" | "image/webp")) {
        return Err(invalid(
            "* GenerateContentRequest.contents[0].parts[1].inline_data.mime_type: unsupported MIME type",
        ));
    }
    let data = inline["data"]
        .as_str()
        .and_then(|d| STANDARD.decode(d).ok())
        .ok_or_else(|| invalid("Invalid value at 'contents[0].parts[1].inline_data.data' (TYPE_BYTES), Base64 decoding failed"))?;
    if image::load_from_memory(&data).is_err() {
        return Err(invalid(
            "Unable to process input image. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
        ));
    }
    let config = &body["generationConfig"];
    if config["responseSchema"].is_object() && config["responseMimeType"] != "application/json" {
        return Err(invalid(
            "* GenerateContentRequest.generation_config.response_schema: you can only set response_schema when response_mime_type is application/json",
        ));
    }
    if config["responseSchema"]["type"] != "OBJECT"
        || config["responseSchema"]["properties"]["generation_prompt"].is_null()
    {
        return Err(invalid("the test fake expects our description schema"));
    }
    Ok(())
}

fn candidate(text: Value, finish: &str) -> Value {
    json!({
        "candidates": [{
            "content": {"parts": text.is_string().then(|| json!([{"text": text}])).unwrap_or(json!([])), "role": "model"},
            "finishReason": finish,
            "index": 0
        }],
        "usageMetadata": {"promptTokenCount": 1290, "candidatesTokenCount": 80, "totalTokenCount": 1370},
        "modelVersion": MODEL
    })
}

impl Respond for Fake {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        if let Err(refusal) = validate(req) {
            return refusal;
        }
        match self.next() {
            Reply::Describe(d) => {
                ResponseTemplate::new(200).set_body_json(candidate(Value::String(d.to_string()), "STOP"))
            }
            Reply::Text(t) => ResponseTemplate::new(200).set_body_json(candidate(Value::String(t), "STOP")),
            Reply::MaxTokens => {
                ResponseTemplate::new(200).set_body_json(candidate(Value::Null, "MAX_TOKENS"))
            }
            Reply::Blocked => ResponseTemplate::new(200).set_body_json(json!({
                "promptFeedback": {"blockReason": "SAFETY", "safetyRatings": [
                    {"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "probability": "HIGH"}]},
                "usageMetadata": {"promptTokenCount": 1290, "totalTokenCount": 1290}
            })),
            Reply::Error(code, body) => ResponseTemplate::new(code).set_body_json(body),
            Reply::Slow(delay) => ResponseTemplate::new(200)
                .set_body_json(candidate(Value::String(description().to_string()), "STOP"))
                .set_delay(delay),
        }
    }
}
