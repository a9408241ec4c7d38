//! Replicate's predictions and files endpoints, with a scripted status
//! progression per prediction.

use std::collections::{HashMap, VecDeque};
use std::io::Cursor;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use image::{ImageFormat, RgbImage};
use serde_json::{Value, json};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub const TOKEN: &str = "r8_test_token";

/// How a succeeded prediction reports its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// `"output": "https://…/x.png"`.
    Url,
    /// `"output": ["https://…/x.png"]`.
    List,
    /// A URL that answers 404 (deleted after an hour).
    Expired,
}

/// Size of the output image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    Fixed(u32, u32),
    /// The input image's size times the input field `scale` (1 when absent).
    Scaled,
}

/// What the fake does with every prediction.
#[derive(Debug, Clone)]
pub struct Script {
    /// Status at creation, then after each poll; the last one repeats.
    pub statuses: Vec<&'static str>,
    /// `error` of a failed prediction.
    pub error: &'static str,
    pub output: Output,
    pub size: Size,
    /// Input field that must hold an image.
    pub image_field: &'static str,
    /// Errors answered to the first creations, in order: status, body, Retry-After.
    pub create_failures: Vec<(u16, Value, Option<&'static str>)>,
    /// Delay of every poll answer (to hit our timeout).
    pub poll_delay: Option<Duration>,
}

impl Script {
    /// Succeeds after starting → processing, with a URL output.
    pub fn succeeding(size: Size) -> Self {
        Self {
            statuses: vec!["starting", "processing", "succeeded"],
            error: "",
            output: Output::Url,
            size,
            image_field: "image",
            create_failures: Vec::new(),
            poll_delay: None,
        }
    }
}

#[derive(Debug, Default)]
struct Prediction {
    polls: usize,
    canceled: bool,
    input_size: (u32, u32),
    scale: u32,
}

/// Everything the fake saw.
#[derive(Debug, Default)]
pub struct Seen {
    pub creates: usize,
    pub polls: usize,
    pub cancels: Vec<String>,
    pub uploads: usize,
    pub inputs: Vec<Value>,
    pub paths: Vec<String>,
}

#[derive(Debug)]
struct State {
    predictions: HashMap<String, Prediction>,
    files: HashMap<String, Vec<u8>>,
    failures: VecDeque<(u16, Value, Option<&'static str>)>,
    seen: Seen,
    next_id: usize,
    /// The server's own URL, for the URLs the fake hands out.
    base: String,
}

/// The fake; clone it to keep a handle on what it saw.
#[derive(Debug, Clone)]
pub struct Fake {
    script: Arc<Script>,
    state: Arc<Mutex<State>>,
}

fn problem(status: u16, title: &str, detail: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({"title": title, "detail": detail, "status": status}))
}

/// Replicate's answer to a throttled request.
pub fn throttled() -> (u16, Value, Option<&'static str>) {
    (
        429,
        json!({"detail": "Request was throttled. Expected available in 1 second.", "status": 429}),
        Some("1"),
    )
}

impl Fake {
    pub fn new(script: Script) -> Self {
        let failures = script.create_failures.iter().cloned().collect();
        Self {
            script: Arc::new(script),
            state: Arc::new(Mutex::new(State {
                predictions: HashMap::new(),
                files: HashMap::new(),
                failures,
                seen: Seen::default(),
                next_id: 0,
                base: String::new(),
            })),
        }
    }

    /// Mounts the fake for every path on `server`.
    pub async fn mount(&self, server: &MockServer) {
        self.state.lock().expect("lock").base = server.uri();
        Mock::given(any()).respond_with(self.clone()).mount(server).await;
    }

    /// Reads what the fake saw.
    pub fn seen<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.state.lock().expect("lock").seen)
    }

    fn base(&self) -> String {
        self.state.lock().expect("lock").base.clone()
    }

    fn authorized(req: &Request) -> Result<(), ResponseTemplate> {
        let auth = req.headers.get("authorization").and_then(|v| v.to_str().ok());
        if auth == Some(&format!("Bearer {TOKEN}")) {
            Ok(())
        } else {
            Err(problem(
                401,
                "Unauthenticated",
                "You did not pass a valid authentication token",
            ))
        }
    }

    /// Size of an input image given as a data URL or one of our file URLs.
    fn image_size(&self, state: &State, value: &Value, base: &str) -> Option<(u32, u32)> {
        let text = value.as_str()?;
        let bytes = if let Some(data) = text.strip_prefix("data:") {
            let (mime, b64) = data.split_once(";base64,")?;
            if !mime.starts_with("image/") {
                return None;
            }
            STANDARD.decode(b64).ok()?
        } else {
            let id = text.strip_prefix(&format!("{base}/v1/files/"))?;
            state.files.get(id)?.clone()
        };
        let img = image::load_from_memory(&bytes).ok()?;
        Some((img.width(), img.height()))
    }

    fn prediction_json(&self, base: &str, id: &str, p: &Prediction) -> Value {
        let statuses = &self.script.statuses;
        let status = if p.canceled {
            "canceled"
        } else {
            statuses
                .get(p.polls)
                .or(statuses.last())
                .copied()
                .unwrap_or("starting")
        };
        let url = format!("{base}/output/{id}.png");
        let output = match (status, self.script.output) {
            ("succeeded", Output::List) => json!([url]),
            ("succeeded", _) => json!(url),
            _ => Value::Null,
        };
        let error = if status == "failed" {
            json!(self.script.error)
        } else {
            Value::Null
        };
        json!({
            "id": id,
            "model": "owner/model",
            "version": "hidden",
            "status": status,
            "output": output,
            "error": error,
            "logs": "",
            "created_at": "2026-01-01T00:00:00.000Z",
            "urls": {
                "get": format!("{base}/v1/predictions/{id}"),
                "cancel": format!("{base}/v1/predictions/{id}/cancel"),
                "stream": format!("{base}/stream/{id}")
            }
        })
    }

    fn create(&self, req: &Request, official: bool) -> ResponseTemplate {
        let base = self.base();
        let mut state = self.state.lock().expect("lock");
        state.seen.creates += 1;
        if let Some((status, body, retry_after)) = state.failures.pop_front() {
            let mut reply = ResponseTemplate::new(status).set_body_json(body);
            if let Some(after) = retry_after {
                reply = reply.insert_header("Retry-After", after);
            }
            return reply;
        }
        if let Some(prefer) = req.headers.get("prefer").and_then(|v| v.to_str().ok()) {
            let ok = prefer
                .strip_prefix("wait=")
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|n| (1..=60).contains(&n));
            if !ok {
                return problem(
                    400,
                    "Invalid Prefer header",
                    "Prefer must be wait=N with N from 1 to 60",
                );
            }
        }
        if let Some(after) = req.headers.get("cancel-after").and_then(|v| v.to_str().ok()) {
            let secs = after.strip_suffix('s').and_then(|n| n.parse::<u64>().ok());
            if secs.is_none_or(|s| s < 5) {
                return problem(
                    400,
                    "Invalid Cancel-After header",
                    "Cancel-After must be a duration of at least 5s",
                );
            }
        }
        let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
            return problem(400, "Bad request", "request body is not JSON");
        };
        if !official && body["version"].as_str().is_none_or(str::is_empty) {
            return problem(422, "Input validation failed", "version: version is required");
        }
        let Some(input) = body["input"].as_object() else {
            return problem(422, "Input validation failed", "input: input is required");
        };
        let field = self.script.image_field;
        let Some(input_size) = input.get(field).and_then(|v| self.image_size(&state, v, &base)) else {
            return ResponseTemplate::new(422).set_body_json(json!({
                "title": "Input validation failed", "status": 422,
                "detail": format!("- input: {field} is required"),
                "invalid_fields": [{"type": "required", "field": format!("input.{field}"),
                                    "description": format!("{field} is required")}]
            }));
        };
        // A Real-ESRGAN style model takes `scale` 2 or 4; without one the output
        // keeps the input's size (a generation model).
        let scale = match input.get("scale") {
            None => 1,
            Some(v) => match v.as_u64() {
                Some(s @ (2 | 4)) => s as u32,
                _ => return problem(422, "Input validation failed", "- input.scale: Must be 2 or 4"),
            },
        };
        state.seen.inputs.push(Value::Object(input.clone()));
        state.next_id += 1;
        let id = format!("pred{:04}", state.next_id);
        let p = Prediction {
            input_size,
            scale,
            ..Prediction::default()
        };
        let json = self.prediction_json(&base, &id, &p);
        state.predictions.insert(id, p);
        ResponseTemplate::new(201).set_body_json(json)
    }

    fn get(&self, id: &str, cancel: bool) -> ResponseTemplate {
        let base = self.base();
        let mut state = self.state.lock().expect("lock");
        if cancel {
            state.seen.cancels.push(id.to_string());
        } else {
            state.seen.polls += 1;
        }
        let Some(p) = state.predictions.get_mut(id) else {
            return problem(404, "Not found", "The requested resource could not be found.");
        };
        if cancel {
            p.canceled = true;
        } else {
            p.polls += 1;
        }
        let p = std::mem::take(p);
        let json = self.prediction_json(&base, id, &p);
        state.predictions.insert(id.to_string(), p);
        let mut reply = ResponseTemplate::new(200).set_body_json(json);
        if let (Some(delay), false) = (self.script.poll_delay, cancel) {
            reply = reply.set_delay(delay);
        }
        reply
    }

    fn upload(&self, req: &Request) -> ResponseTemplate {
        let base = self.base();
        let content_type = req
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let Some(boundary) = content_type.strip_prefix("multipart/form-data; boundary=") else {
            return problem(400, "Bad request", "expected multipart/form-data");
        };
        let Some(bytes) = multipart_file(&req.body, boundary, "content") else {
            return problem(422, "Input validation failed", "content: a file is required");
        };
        let mut state = self.state.lock().expect("lock");
        state.seen.uploads += 1;
        state.next_id += 1;
        let id = format!("file{:04}", state.next_id);
        let size = bytes.len();
        state.files.insert(id.clone(), bytes);
        ResponseTemplate::new(201).set_body_json(json!({
            "id": id, "name": "input.jpeg", "content_type": "image/jpeg", "size": size,
            "etag": "x", "checksums": {}, "metadata": {},
            "created_at": "2026-01-01T00:00:00.000Z", "expires_at": "2026-01-02T00:00:00.000Z",
            "urls": {"get": format!("{base}/v1/files/{id}")}
        }))
    }

    fn output(&self, id: &str) -> ResponseTemplate {
        if self.script.output == Output::Expired {
            return ResponseTemplate::new(404).set_body_string("Not Found");
        }
        let state = self.state.lock().expect("lock");
        let Some(p) = state.predictions.get(id) else {
            return ResponseTemplate::new(404);
        };
        let (w, h) = match self.script.size {
            Size::Fixed(w, h) => (w, h),
            Size::Scaled => (p.input_size.0 * p.scale, p.input_size.1 * p.scale),
        };
        let img = RgbImage::from_fn(w, h, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 128]));
        let mut png = Cursor::new(Vec::new());
        img.write_to(&mut png, ImageFormat::Png).expect("png");
        ResponseTemplate::new(200).set_body_raw(png.into_inner(), "image/png")
    }
}

/// The bytes of the file part named `field`.
fn multipart_file(body: &[u8], boundary: &str, field: &str) -> Option<Vec<u8>> {
    let head_marker = format!("name=\"{field}\"");
    let start = find(body, head_marker.as_bytes())?;
    let data_start = start + find(&body[start..], b"\r\n\r\n")? + 4;
    let end = data_start + find(&body[data_start..], format!("\r\n--{boundary}").as_bytes())?;
    Some(body[data_start..end].to_vec())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

impl Respond for Fake {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let path = req.url.path().to_string();
        self.state
            .lock()
            .expect("lock")
            .seen
            .paths
            .push(format!("{} {path}", req.method));
        if let Some(id) = path.strip_prefix("/output/").and_then(|p| p.strip_suffix(".png")) {
            return self.output(id);
        }
        if let Err(refusal) = Self::authorized(req) {
            return refusal;
        }
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (req.method.as_str(), segments.as_slice()) {
            ("POST", ["v1", "predictions"]) => self.create(req, false),
            ("POST", ["v1", "models", _, _, "predictions"]) => self.create(req, true),
            ("GET", ["v1", "predictions", id]) => self.get(id, false),
            ("POST", ["v1", "predictions", id, "cancel"]) => self.get(id, true),
            ("POST", ["v1", "files"]) => self.upload(req),
            _ => problem(404, "Not found", "The requested resource could not be found."),
        }
    }
}
