//! The parts of Replicate's HTTP API shapes we use (public reference:
//! replicate.com/docs/reference/http).

use serde::Deserialize;
use serde_json::Value;

/// A prediction as `POST /v1/predictions` and `GET /v1/predictions/{id}` return it.
#[derive(Debug, Clone, Deserialize)]
pub struct Prediction {
    pub id: String,
    pub status: String,
    /// A URL, a list of URLs, or whatever the model returns; set when succeeded.
    #[serde(default)]
    pub output: Value,
    /// The model's error when failed.
    #[serde(default)]
    pub error: Value,
}

/// Where a prediction stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Starting,
    Processing,
    Succeeded,
    Failed,
    Canceled,
    Aborted,
    /// A status this client does not know: keep polling until our deadline.
    Unknown,
}

impl Status {
    /// Parses the API's status word.
    pub fn parse(s: &str) -> Self {
        match s {
            "starting" => Self::Starting,
            "processing" => Self::Processing,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "canceled" => Self::Canceled,
            "aborted" => Self::Aborted,
            _ => Self::Unknown,
        }
    }

    /// True once the prediction will not change any more.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Canceled | Self::Aborted
        )
    }
}

/// Answer of `POST /v1/files`.
#[derive(Debug, Deserialize)]
pub struct UploadedFile {
    pub urls: FileUrls,
}

#[derive(Debug, Deserialize)]
pub struct FileUrls {
    pub get: String,
}

/// Replicate's error body (RFC 7807 style): `detail` is the human message.
#[derive(Debug, Default, Deserialize)]
pub struct Problem {
    #[serde(default)]
    pub detail: Value,
    #[serde(default)]
    pub title: String,
}

impl Problem {
    /// `title: detail`, whichever parts are present.
    pub fn message(&self) -> String {
        let detail = match &self.detail {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        };
        match (self.title.is_empty(), detail.is_empty()) {
            (false, false) => format!("{}: {detail}", self.title),
            (false, true) => self.title.clone(),
            _ => detail,
        }
    }
}

/// The first output URL: models return a URL or a list of them.
pub fn first_output_url(output: &Value) -> Option<&str> {
    match output {
        Value::String(s) => Some(s),
        Value::Array(items) => items.iter().find_map(Value::as_str),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn outputs_are_a_url_or_a_list() {
        assert_eq!(
            first_output_url(&json!("https://x/1.png")),
            Some("https://x/1.png")
        );
        assert_eq!(
            first_output_url(&json!(["https://x/1.png", "https://x/2.png"])),
            Some("https://x/1.png")
        );
        assert_eq!(first_output_url(&json!(null)), None);
        assert_eq!(first_output_url(&json!({"a": 1})), None);
    }

    #[test]
    fn statuses() {
        assert!(Status::parse("aborted").is_terminal());
        assert!(!Status::parse("processing").is_terminal());
        assert_eq!(Status::parse("queued-somewhere-new"), Status::Unknown);
    }
}
