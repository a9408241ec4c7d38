//! Running one prediction: create (waiting up to `Prefer: wait`), poll to a
//! terminal status within our deadline, cancel past it, download the output.

use std::time::Duration;

use atelier_core::settings::{
    REPLICATE_MIN_DEADLINE_SECONDS, REPLICATE_TOKEN_ENV, ReplicateModel, ReplicateSettings, Secret,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::Response;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::wire::{Prediction, Problem, Status, UploadedFile, first_output_url};
use std::sync::Arc;

use crate::http::{self, Call, HttpClient, LocalQuota, QuotaGate, retry_after_header};
use crate::{ProviderError, RemoteKind};

pub(crate) const PROVIDER: &str = "replicate";

/// A Replicate client shared by the generator and the upscaler.
#[derive(Debug, Clone)]
pub struct ReplicateClient {
    http: HttpClient,
    base: String,
    token: Secret,
    wait: Duration,
    deadline: Duration,
    poll_interval: Duration,
    request_timeout: Duration,
    data_url_max_bytes: usize,
}

impl ReplicateClient {
    /// A client from `[providers.replicate]`; fails when no token is configured.
    pub fn new(s: &ReplicateSettings) -> Result<Self, ProviderError> {
        let http = s.http();
        Self::with_quota(s, Arc::new(LocalQuota::new(http.per_minute, http.burst)))
    }

    /// The same, with Replicate's quota counted by `quota`.
    pub fn with_quota(s: &ReplicateSettings, quota: Arc<dyn QuotaGate>) -> Result<Self, ProviderError> {
        let token = s.api_token.or_env(REPLICATE_TOKEN_ENV);
        if token.is_empty() {
            return Err(ProviderError::Config {
                provider: PROVIDER,
                message: format!("set providers.replicate.api_token or {REPLICATE_TOKEN_ENV}"),
            });
        }
        Ok(Self {
            http: HttpClient::with_quota(PROVIDER, &s.http(), quota)?,
            base: s.base_url.trim_end_matches('/').to_string(),
            token,
            wait: Duration::from_secs(s.wait_seconds),
            deadline: Duration::from_secs(s.deadline_seconds),
            poll_interval: Duration::from_millis(s.poll_interval_ms),
            request_timeout: Duration::from_millis(s.timeout_ms),
            data_url_max_bytes: s.data_url_max_bytes,
        })
    }

    /// Runs `model` on `input` and returns the bytes of its first output file.
    pub async fn run(
        &self,
        model: &ReplicateModel,
        input: Map<String, Value>,
    ) -> Result<Vec<u8>, ProviderError> {
        let deadline = Instant::now() + self.deadline;
        let mut prediction = self.create(model, input).await?;
        let mut guard = CancelOnDrop {
            client: Some(self.clone()),
            id: prediction.id.clone(),
        };
        loop {
            let status = Status::parse(&prediction.status);
            if status.is_terminal() {
                guard.disarm();
                return self.finish(model, prediction, status).await;
            }
            let now = Instant::now();
            if now >= deadline {
                guard.disarm();
                self.cancel(&model.model, &prediction.id).await;
                return Err(ProviderError::remote(
                    PROVIDER,
                    RemoteKind::Timeout,
                    None,
                    format!(
                        "prediction {} still {} after {}s; cancelled",
                        prediction.id,
                        prediction.status,
                        self.deadline.as_secs()
                    ),
                ));
            }
            tokio::time::sleep(self.poll_interval.min(deadline - now)).await;
            prediction = self.get(&model.model, &prediction.id).await?;
        }
    }

    /// `POST /v1/predictions` (with a version) or the official model's endpoint.
    async fn create(
        &self,
        model: &ReplicateModel,
        input: Map<String, Value>,
    ) -> Result<Prediction, ProviderError> {
        let (url, body) = if model.version.is_empty() {
            let (owner, name) = model.owner_name().ok_or_else(|| ProviderError::Config {
                provider: PROVIDER,
                message: format!("model `{}` is not owner/name", model.model),
            })?;
            (
                format!("{}/v1/models/{owner}/{name}/predictions", self.base),
                json!({ "input": input }),
            )
        } else {
            (
                format!("{}/v1/predictions", self.base),
                json!({ "version": model.version, "input": input }),
            )
        };
        let call = Call {
            op: "create_prediction",
            model: &model.model,
            rate_limited: true,
        };
        let wait = self.wait.as_secs();
        // Replicate's backstop in case we cannot cancel ourselves; it refuses
        // values under its minimum, and we cancel at our own deadline anyway.
        let cancel_after = format!("{}s", self.deadline.as_secs().max(REPLICATE_MIN_DEADLINE_SECONDS));
        self.http
            .execute(
                call,
                |client| {
                    let mut request = client
                        .post(&url)
                        .bearer_auth(self.token.expose())
                        .header("Cancel-After", &cancel_after)
                        // The server may hold the request for `wait`: give it that long.
                        .timeout(self.wait + self.request_timeout)
                        .json(&body);
                    if wait > 0 {
                        request = request.header("Prefer", format!("wait={wait}"));
                    }
                    request
                },
                |response| prediction(response, "create prediction"),
            )
            .await
    }

    async fn get(&self, model: &str, id: &str) -> Result<Prediction, ProviderError> {
        let url = format!("{}/v1/predictions/{id}", self.base);
        let call = Call {
            op: "get_prediction",
            model,
            rate_limited: false,
        };
        self.http
            .execute(
                call,
                |client| client.get(&url).bearer_auth(self.token.expose()),
                |response| prediction(response, "get prediction"),
            )
            .await
    }

    /// Best effort: a failed cancel is logged; the prediction then ends at
    /// `Cancel-After` on its own.
    async fn cancel(&self, model: &str, id: &str) {
        let url = format!("{}/v1/predictions/{id}/cancel", self.base);
        let call = Call {
            op: "cancel_prediction",
            model,
            rate_limited: false,
        };
        let result = self
            .http
            .execute(
                call,
                |client| client.post(&url).bearer_auth(self.token.expose()),
                |response| async move {
                    if response.status().is_success() {
                        Ok(())
                    } else {
                        Err(problem(response, "cancel prediction").await)
                    }
                },
            )
            .await;
        if let Err(error) = result {
            tracing::warn!(%error, prediction = id, "cancelling the prediction failed");
        }
    }

    async fn finish(
        &self,
        model: &ReplicateModel,
        p: Prediction,
        status: Status,
    ) -> Result<Vec<u8>, ProviderError> {
        let error_text = || match &p.error {
            Value::String(s) => s.clone(),
            Value::Null => "no error message".to_string(),
            other => other.to_string(),
        };
        match status {
            Status::Succeeded => {
                let url = first_output_url(&p.output).ok_or_else(|| {
                    ProviderError::remote(
                        PROVIDER,
                        RemoteKind::InvalidResponse,
                        None,
                        format!(
                            "prediction {} succeeded without an output URL: {}",
                            p.id, p.output
                        ),
                    )
                })?;
                self.download(&model.model, url).await
            }
            Status::Failed => Err(ProviderError::remote(
                PROVIDER,
                RemoteKind::Failed,
                None,
                format!("prediction {} failed: {}", p.id, error_text()),
            )),
            _ => Err(ProviderError::remote(
                PROVIDER,
                RemoteKind::Canceled,
                None,
                format!("prediction {} {}: {}", p.id, p.status, error_text()),
            )),
        }
    }

    /// Fetches an output at once (Replicate deletes outputs after about an hour).
    /// Our token goes only to the API's own host, never to a file CDN.
    async fn download(&self, model: &str, url: &str) -> Result<Vec<u8>, ProviderError> {
        if let Some(data) = url.strip_prefix("data:") {
            let (_, b64) = data.split_once(";base64,").ok_or_else(|| {
                ProviderError::remote(
                    PROVIDER,
                    RemoteKind::InvalidResponse,
                    None,
                    "output data URL is not base64",
                )
            })?;
            return STANDARD.decode(b64).map_err(|e| {
                ProviderError::remote(
                    PROVIDER,
                    RemoteKind::InvalidResponse,
                    None,
                    format!("output data URL: {e}"),
                )
            });
        }
        let call = Call {
            op: "download_output",
            model,
            rate_limited: false,
        };
        let ours = url.starts_with(&format!("{}/", self.base));
        let bytes = self
            .http
            .execute(
                call,
                |client| {
                    let request = client.get(url);
                    if ours {
                        request.bearer_auth(self.token.expose())
                    } else {
                        request
                    }
                },
                |response| async move {
                    let status = response.status().as_u16();
                    match status {
                        200..=299 => http::body_bytes(PROVIDER, "download output", response).await,
                        404 | 410 => Err(ProviderError::remote(
                            PROVIDER,
                            RemoteKind::OutputExpired,
                            Some(status),
                            format!(
                                "output {} is gone (Replicate deletes outputs after about an hour)",
                                response.url()
                            ),
                        )),
                        _ => Err(problem(response, "download output").await),
                    }
                },
            )
            .await?;
        Ok(bytes.to_vec())
    }

    /// An input file for a model: a data URL when small, else an upload through
    /// `POST /v1/files` and its `urls.get`.
    pub async fn file_input(
        &self,
        model: &str,
        bytes: Vec<u8>,
        mime: &'static str,
    ) -> Result<String, ProviderError> {
        if bytes.len() <= self.data_url_max_bytes {
            return Ok(format!("data:{mime};base64,{}", STANDARD.encode(&bytes)));
        }
        let url = format!("{}/v1/files", self.base);
        let boundary = super::multipart::boundary();
        let body = bytes::Bytes::from(super::multipart::file_body(&boundary, "content", mime, &bytes));
        let call = Call {
            op: "upload_file",
            model,
            rate_limited: false,
        };
        let uploaded: UploadedFile = self
            .http
            .execute(
                call,
                |client| {
                    client
                        .post(&url)
                        .bearer_auth(self.token.expose())
                        .header(
                            reqwest::header::CONTENT_TYPE,
                            format!("multipart/form-data; boundary={boundary}"),
                        )
                        .body(body.clone())
                },
                |response| async move {
                    if response.status().is_success() {
                        http::json_body(PROVIDER, "upload file", response).await
                    } else {
                        Err(problem(response, "upload file").await)
                    }
                },
            )
            .await?;
        Ok(uploaded.urls.get)
    }
}

/// Cancels the prediction when the caller stops waiting (the job was cancelled
/// or its worker shut down), so Replicate stops billing for it.
struct CancelOnDrop {
    client: Option<ReplicateClient>,
    id: String,
}

impl CancelOnDrop {
    fn disarm(&mut self) {
        self.client = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let (Some(client), Ok(runtime)) = (self.client.take(), tokio::runtime::Handle::try_current()) else {
            return;
        };
        let id = std::mem::take(&mut self.id);
        runtime.spawn(async move { client.cancel("dropped", &id).await });
    }
}

async fn prediction(response: Response, what: &str) -> Result<Prediction, ProviderError> {
    if response.status().is_success() {
        http::json_body(PROVIDER, what, response).await
    } else {
        Err(problem(response, what).await)
    }
}

/// Maps an error answer to a typed error with Replicate's own `detail`.
async fn problem(response: Response, what: &str) -> ProviderError {
    let status = response.status().as_u16();
    let retry_after = retry_after_header(response.headers());
    let bytes = response.bytes().await.unwrap_or_default();
    let message = serde_json::from_slice::<Problem>(&bytes)
        .map(|p| p.message())
        .ok()
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| String::from_utf8_lossy(&bytes).chars().take(300).collect());
    let kind = match status {
        401 | 403 => RemoteKind::Unauthorized,
        429 => RemoteKind::Throttled,
        500..=599 => RemoteKind::Unavailable,
        _ => RemoteKind::Rejected,
    };
    ProviderError::Remote {
        provider: PROVIDER,
        kind,
        status: Some(status),
        message: format!("{what}: {message}"),
        retry_after,
    }
}
