//! Direct uploads end to end, on both targets: `multipart/form-data` with a
//! `request` part and file parts named by `upload:NAME` inputs, mixed with a
//! URL input; every wrong or missing part refused with its status and its
//! name; an idempotent repeat; and bodies over a limit cut off while they are
//! still being sent (the test never finishes sending them: a gateway that
//! read a body whole before judging it would never answer).

use std::io::Cursor;
use std::time::Duration;

use atelier_e2e::{Options, System, Target, on_both_targets, photo, photo_sized, request, serve_photo};
use atelier_fixtures::{GarmentShape, Scene};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

on_both_targets!(
    two_uploads_and_a_url_complete_and_repeat_idempotently,
    wrong_parts_are_named_and_oversized_bodies_are_cut_off_early,
);

const IMAGE: &str = "/api/v1/generate/image";
const BOUNDARY: &str = "atelier-test-boundary-7d3f";
/// Small limits, so the oversized bodies are quick to send.
const MAX_FILE: usize = 1_000_000;
const MAX_BODY: usize = 2_000_000;
const MAX_PARTS: usize = 4;
const MAX_PIXELS: u32 = 2_000_000;
/// How long a cut-off answer may take: far less than sending would if the
/// test ever finished (it never does).
const ANSWER_WITHIN: Duration = Duration::from_secs(30);

/// One part of a form: name, optional file name, bytes.
struct Part<'a> {
    name: &'a str,
    file_name: Option<&'a str>,
    bytes: Vec<u8>,
}

impl<'a> Part<'a> {
    fn json(name: &'a str, value: &Value) -> Self {
        Self {
            name,
            file_name: None,
            bytes: value.to_string().into_bytes(),
        }
    }
    fn file(name: &'a str, bytes: Vec<u8>) -> Self {
        Self {
            name,
            file_name: Some("photo.jpg"),
            bytes,
        }
    }
}

/// The head of one part (its boundary line and headers).
fn part_head(name: &str, file_name: Option<&str>) -> String {
    let file = file_name
        .map(|f| format!("; filename=\"{f}\""))
        .unwrap_or_default();
    let kind = if file_name.is_some() {
        "application/octet-stream"
    } else {
        "application/json"
    };
    format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"{file}\r\nContent-Type: {kind}\r\n\r\n"
    )
}

/// A whole `multipart/form-data` body.
fn form(parts: &[Part<'_>]) -> Vec<u8> {
    let mut body = Vec::new();
    for part in parts {
        body.extend_from_slice(part_head(part.name, part.file_name).as_bytes());
        body.extend_from_slice(&part.bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

async fn post_form(sys: &System, parts: &[Part<'_>], headers: &[(&str, &str)]) -> (u16, Value) {
    let mut req = sys
        .http()
        .post(format!("{}{IMAGE}", sys.url(0)))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(form(parts));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    System::send(req).await
}

/// A request whose inputs are `urls`, one white image each.
fn request_of(urls: &[&str]) -> Value {
    let mut body = request(urls[0], [1, 0, 0], false);
    body["inputImages"] = urls
        .iter()
        .map(|url| json!({ "url": url, "view": "front", "backgrounds": [1, 0, 0] }))
        .collect();
    body
}

fn png(seed: u64) -> Vec<u8> {
    let garment = atelier_fixtures::render(&Scene::example(GarmentShape::Dress, 480, 640, seed));
    let mut out = Cursor::new(Vec::new());
    garment
        .image
        .write_to(&mut out, image::ImageFormat::Png)
        .expect("png");
    out.into_inner()
}

fn settings() -> Options {
    Options {
        env: [
            ("ATELIER__LIMITS__MAX_BYTES", MAX_FILE.to_string()),
            ("ATELIER__LIMITS__MAX_PIXELS", MAX_PIXELS.to_string()),
            // Output canvases may not exceed what inputs may be.
            ("ATELIER__OUTPUT__MAX_PIXELS", MAX_PIXELS.to_string()),
            ("ATELIER__GATEWAY__UPLOADS__MAX_BODY_BYTES", MAX_BODY.to_string()),
            ("ATELIER__GATEWAY__UPLOADS__MAX_PARTS", MAX_PARTS.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
        ..Options::default()
    }
}

async fn two_uploads_and_a_url_complete_and_repeat_idempotently(target: Target) {
    let sys = System::start(target, settings()).await;
    let front = photo(GarmentShape::TShirt, 31);
    let back = png(32);
    let base = serve_photo(photo(GarmentShape::TShirt, 33)).await;
    let url = format!("{base}/shirt.jpg");
    let req = request_of(&["upload:front", "upload:back", &url]);
    // The file parts first and the request last: any order is fine.
    let parts = [
        Part::file("back", back.clone()),
        Part::file("front", front.clone()),
        Part::json("request", &req),
    ];
    let key = [("Idempotency-Key", "uploads-1")];
    let (code, done) = post_form(&sys, &parts, &key).await;
    assert_eq!(code, 200, "{done}\n{}", sys.logs());
    assert_eq!(done["status"], "completed", "{done}");
    let id = done["request_id"].as_str().expect("id").to_string();
    let mut inputs: Vec<u64> = done["image_variations"]
        .as_array()
        .expect("variations")
        .iter()
        .filter_map(|v| v["input"].as_u64())
        .collect();
    inputs.sort_unstable();
    assert_eq!(inputs, [0, 1, 2], "one image per input: {done}");
    for variation in done["image_variations"].as_array().expect("variations") {
        let file = sys
            .http()
            .get(format!(
                "{}{}",
                sys.url(0),
                variation["url"].as_str().expect("url")
            ))
            .send()
            .await
            .expect("file");
        assert_eq!(file.status().as_u16(), 200);
        let bytes = file.bytes().await.expect("bytes");
        image::load_from_memory(&bytes).expect("each result is an image");
    }

    // The uploads became the job's inputs, byte for byte, under the format
    // their bytes say (not their file name); nothing is left staged.
    let dir = sys.job_dir(&id);
    assert_eq!(std::fs::read(dir.join("inputs/0.jpg")).expect("input 0"), front);
    assert_eq!(std::fs::read(dir.join("inputs/1.png")).expect("input 1"), back);
    assert!(dir.join("inputs/2.jpg").is_file(), "the URL input is stored too");
    let staged = dir.join("uploads");
    sys.wait_until(
        || atelier_e2e::files_under(&staged).is_empty(),
        "the staged uploads are deleted",
    )
    .await;
    // The same key, the same JSON and files: the same job, nothing stored again.
    let (code, again) = post_form(&sys, &parts, &key).await;
    assert_eq!(code, 200, "{again}");
    assert_eq!(again["request_id"], id.as_str());
    // The same key with another file: refused, naming the first job.
    let changed = [
        Part::file("back", back),
        Part::file("front", photo(GarmentShape::TShirt, 34)),
        Part::json("request", &req),
    ];
    let (code, error) = post_form(&sys, &changed, &key).await;
    assert_eq!(code, 422, "{error}");
    assert_eq!(error["error"]["code"], "idempotency_key_reused", "{error}");
}

/// Expects a refusal with `status` naming `field`.
async fn refused(sys: &System, parts: &[Part<'_>], status: u16, field: &str) {
    let (code, error) = post_form(sys, parts, &[]).await;
    assert_eq!(code, status, "{field}: {error}");
    assert_eq!(error["error"]["field"], field, "{error}");
}

async fn wrong_parts_are_named_and_oversized_bodies_are_cut_off_early(target: Target) {
    let sys = System::start(target, settings()).await;
    let front = || photo(GarmentShape::TShirt, 41);
    let one = request_of(&["upload:front"]);
    let two = request_of(&["upload:front", "upload:back"]);

    // Missing, unreferenced, duplicate parts.
    refused(&sys, &[Part::file("front", front())], 422, "request").await;
    refused(
        &sys,
        &[Part::json("request", &two), Part::file("front", front())],
        422,
        "back",
    )
    .await;
    refused(
        &sys,
        &[
            Part::json("request", &one),
            Part::file("front", front()),
            Part::file("extra", front()),
        ],
        422,
        "extra",
    )
    .await;
    // ... also when the unreferenced file comes before the request.
    refused(
        &sys,
        &[
            Part::file("extra", front()),
            Part::json("request", &one),
            Part::file("front", front()),
        ],
        422,
        "extra",
    )
    .await;
    refused(
        &sys,
        &[
            Part::json("request", &one),
            Part::file("front", front()),
            Part::file("front", front()),
        ],
        422,
        "front",
    )
    .await;
    refused(
        &sys,
        &[
            Part::json("request", &one),
            Part::file("front", front()),
            Part::json("request", &one),
        ],
        422,
        "request",
    )
    .await;
    // The checks a fetched input gets: not an image, a broken header, too many pixels.
    refused(
        &sys,
        &[
            Part::json("request", &one),
            Part::file("front", b"<html>not a photo</html>".to_vec()),
        ],
        415,
        "front",
    )
    .await;
    let mut broken = front();
    broken.truncate(40);
    refused(
        &sys,
        &[Part::json("request", &one), Part::file("front", broken)],
        422,
        "front",
    )
    .await;
    let huge = photo_sized(GarmentShape::TShirt, 42, 2_000, 1_500);
    assert!(huge.len() < MAX_FILE, "over the pixels, not the bytes");
    refused(
        &sys,
        &[Part::json("request", &one), Part::file("front", huge)],
        413,
        "front",
    )
    .await;
    // Too many parts, and a file over the size limit.
    let many = request_of(&["upload:a", "upload:b", "upload:c", "upload:d"]);
    let parts: Vec<Part<'_>> = std::iter::once(Part::json("request", &many))
        .chain(["a", "b", "c", "d"].map(|n| Part::file(n, front())))
        .collect();
    refused(&sys, &parts, 413, "d").await;
    refused(
        &sys,
        &[
            Part::json("request", &one),
            Part::file("front", vec![0xFF; MAX_FILE + 1]),
        ],
        413,
        "front",
    )
    .await;
    // `upload:` in a plain JSON body names the input.
    let (code, error) = sys.post(0, IMAGE, &one, &[]).await;
    assert_eq!(code, 422, "{error}");
    assert_eq!(error["error"]["field"], "inputImages[0].url", "{error}");
    // A browser form from another site.
    let (code, error) = post_form(
        &sys,
        &[Part::json("request", &one), Part::file("front", front())],
        &[
            ("Sec-Fetch-Site", "cross-site"),
            ("Origin", "https://evil.example"),
        ],
    )
    .await;
    assert_eq!(code, 403, "{error}");

    // Over the file limit, never finished: answered while the client still sends.
    let reply = send_unfinished(&sys, &[("front", MAX_FILE + 200_000)]).await;
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(reply.contains("\"field\":\"front\""), "{reply}");
    // Over the body limit in the third file (each within the file limit).
    let near = MAX_FILE - 100_000;
    let reply = send_unfinished(&sys, &[("front", near), ("back", near), ("side", near)]).await;
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(reply.contains("\"field\":\"side\""), "{reply}");

    // Nothing refused was kept, and the gateway still takes uploads.
    let (code, done) = post_form(
        &sys,
        &[Part::json("request", &one), Part::file("front", front())],
        &[],
    )
    .await;
    assert_eq!(code, 200, "{done}\n{}", sys.logs());
}

/// Sends a chunked multipart body with a valid `request` part and files of
/// the given sizes (photos padded after their end), in 64 KiB chunks, and never its end: returns the answer,
/// which must come while the body is still open.
async fn send_unfinished(sys: &System, files: &[(&str, usize)]) -> String {
    let addr = sys.url(0).trim_start_matches("http://").to_string();
    let mut stream = TcpStream::connect(&addr).await.expect("connect");
    let head = format!(
        "POST {IMAGE} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nTransfer-Encoding: chunked\r\n\r\n",
        sys.key()
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    let names: Vec<String> = files.iter().map(|(n, _)| format!("upload:{n}")).collect();
    let urls: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut opening = form(&[Part::json("request", &request_of(&urls))]);
    opening.truncate(opening.len() - format!("--{BOUNDARY}--\r\n").len());
    let mut body = opening;
    for (n, (name, size)) in files.iter().enumerate() {
        if n > 0 {
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(part_head(name, Some("big.jpg")).as_bytes());
        // A real photo, padded: each file that ends within its limit passes.
        let mut file = photo(GarmentShape::TShirt, 43);
        file.resize(*size, 0xAB);
        body.extend_from_slice(&file);
    }
    let (mut rx, mut tx) = stream.into_split();
    let mut reader = tokio::spawn(async move { read_answer(&mut rx).await });
    let send = async {
        for chunk in body.chunks(64 * 1024) {
            let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), chunk, b"\r\n"].concat();
            tokio::select! {
                answer = &mut reader => return answer.expect("reader"),
                written = tx.write_all(&framed) => if written.is_err() { break },
            }
        }
        // Everything sent but the end: the body stays open.
        let answer = reader.await.expect("reader");
        drop(tx);
        answer
    };
    tokio::time::timeout(ANSWER_WITHIN, send)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "no answer while the body was open: the gateway waits for the whole body\n{}",
                sys.logs()
            )
        })
}

/// Reads one HTTP answer: its head and `Content-Length` bytes of body (or
/// up to the connection's end).
async fn read_answer(rx: &mut tokio::net::tcp::OwnedReadHalf) -> String {
    let mut got = Vec::new();
    let mut buf = [0_u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_string())
                })
                .and_then(|v| v.parse::<usize>().ok());
            if length.is_some_and(|n| got.len() >= end + 4 + n) {
                return text;
            }
        }
        match rx.read(&mut buf).await {
            Ok(0) | Err(_) => return text,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}
