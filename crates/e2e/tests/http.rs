//! What HTTP clients and browsers expect, end to end on both targets: files
//! with strong ETags, conditional (304) and partial (206, 416) answers and a
//! long immutable cache; JSON compressed when the client accepts gzip (files
//! and event streams never); CORS only for the configured origins. (Event ids
//! and `Last-Event-ID` resumption are in `api.rs`; a lagging event stream is
//! in the gateway's own tests.)

use std::io::Read;

use atelier_e2e::{Options, System, Target, data_uri, on_both_targets, photo, request};
use atelier_fixtures::GarmentShape;

on_both_targets!(files_ranges_etags_compression_and_cors);

const ALLOWED_ORIGIN: &str = "https://shop.example";

fn header(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

async fn files_ranges_etags_compression_and_cors(target: Target) {
    let sys = System::start(
        target,
        Options {
            env: vec![(
                "ATELIER__GATEWAY__CORS__ALLOWED_ORIGINS".into(),
                ALLOWED_ORIGIN.into(),
            )],
            ..Options::default()
        },
    )
    .await;
    let uri = data_uri(&photo(GarmentShape::TShirt, 11));
    let (code, done) = sys
        .post(0, "/api/v1/generate/image", &request(&uri, [1, 0, 0], false), &[])
        .await;
    assert_eq!(code, 200, "{done}\n{}", sys.logs());
    let url = format!(
        "{}{}",
        sys.url(0),
        done["image_variations"][0]["url"].as_str().expect("url")
    );
    let http = sys.http();

    // The whole file: a strong ETag, a year of immutable caching, ranges offered.
    let full = http.get(&url).send().await.expect("file");
    assert_eq!(full.status().as_u16(), 200);
    let etag = header(&full, "etag").expect("an ETag");
    assert!(etag.starts_with('"') && !etag.starts_with("W/"), "strong: {etag}");
    let cache = header(&full, "cache-control").unwrap_or_default();
    assert!(
        cache.contains("immutable") && cache.contains("max-age=31536000"),
        "{cache}"
    );
    assert_eq!(header(&full, "accept-ranges").as_deref(), Some("bytes"));
    let bytes = full.bytes().await.expect("bytes");
    let len = bytes.len();
    assert!(len > 1_000, "a real JPEG: {len} bytes");

    // The same ETag again; If-None-Match with it → 304 without a body.
    let again = http.get(&url).send().await.expect("file");
    assert_eq!(header(&again, "etag").as_deref(), Some(etag.as_str()));
    let not_modified = http
        .get(&url)
        .header("If-None-Match", format!("\"stale\", {etag}"))
        .send()
        .await
        .expect("304");
    assert_eq!(not_modified.status().as_u16(), 304);
    assert_eq!(header(&not_modified, "etag").as_deref(), Some(etag.as_str()));
    assert!(not_modified.bytes().await.expect("body").is_empty());
    let changed = http
        .get(&url)
        .header("If-None-Match", "\"stale\"")
        .send()
        .await
        .expect("200");
    assert_eq!(changed.status().as_u16(), 200);

    // Ranges: the first 100 bytes, the last 10, from an offset to the end.
    for (range, expected) in [
        ("bytes=0-99".to_string(), 0..100),
        ("bytes=-10".to_string(), len - 10..len),
        (format!("bytes={}-", len - 300), len - 300..len),
    ] {
        let part = http.get(&url).header("Range", &range).send().await.expect("206");
        assert_eq!(part.status().as_u16(), 206, "{range}");
        assert_eq!(
            header(&part, "content-range"),
            Some(format!("bytes {}-{}/{len}", expected.start, expected.end - 1)),
            "{range}"
        );
        assert_eq!(header(&part, "etag").as_deref(), Some(etag.as_str()));
        assert_eq!(
            part.bytes().await.expect("part"),
            bytes.slice(expected.clone()),
            "{range}"
        );
    }
    // Past the end: 416 naming the length; If-Range with another tag: all of it.
    let past = http
        .get(&url)
        .header("Range", format!("bytes={len}-"))
        .send()
        .await
        .expect("416");
    assert_eq!(past.status().as_u16(), 416);
    assert_eq!(header(&past, "content-range"), Some(format!("bytes */{len}")));
    let error: serde_json::Value = past.json().await.expect("a JSON error");
    assert_eq!(error["error"]["code"], "range_not_satisfiable");
    let stale = http
        .get(&url)
        .header("Range", "bytes=0-99")
        .header("If-Range", "\"stale\"")
        .send()
        .await
        .expect("200");
    assert_eq!(stale.status().as_u16(), 200);
    assert_eq!(stale.bytes().await.expect("all").len(), len);

    // JSON is gzipped when accepted, and decodes to the same document; the
    // file is not (a JPEG is already compressed).
    let id = done["request_id"].as_str().expect("id");
    let plain = http
        .get(format!("{}/api/v1/jobs/{id}", sys.url(0)))
        .send()
        .await
        .expect("job");
    assert_eq!(header(&plain, "content-encoding"), None);
    let plain: serde_json::Value = plain.json().await.expect("json");
    let zipped = http
        .get(format!("{}/api/v1/jobs/{id}", sys.url(0)))
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .expect("job");
    assert_eq!(header(&zipped, "content-encoding").as_deref(), Some("gzip"));
    let raw = zipped.bytes().await.expect("gzip body");
    let mut text = String::new();
    flate2::read::GzDecoder::new(&raw[..])
        .read_to_string(&mut text)
        .expect("valid gzip");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&text).expect("json"),
        plain
    );
    let doc = http
        .get(format!("{}/api/v1/openapi.json", sys.url(0)))
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .expect("doc");
    assert_eq!(header(&doc, "content-encoding").as_deref(), Some("gzip"));
    let file = http
        .get(&url)
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .expect("file");
    assert_eq!(
        header(&file, "content-encoding"),
        None,
        "files are sent as they are"
    );
    let events = http
        .get(format!("{}/api/v1/jobs/{id}/events", sys.url(0)))
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .expect("events");
    assert_eq!(
        header(&events, "content-encoding"),
        None,
        "events stream as they are"
    );
    assert!(events.text().await.expect("events").contains("event: final"));

    // CORS: a preflight from the allowed origin is answered without a key; an
    // actual call carries the origin back and exposes the headers a script
    // needs; another origin gets no CORS headers at all.
    let anonymous = System::client_with_key(None);
    let preflight = |origin: &'static str| {
        anonymous
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/api/v1/generate", sys.url(0)),
            )
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization, content-type, idempotency-key",
            )
            .send()
    };
    let allowed = preflight(ALLOWED_ORIGIN).await.expect("preflight");
    assert!(allowed.status().is_success(), "{}", allowed.status());
    assert_eq!(
        header(&allowed, "access-control-allow-origin").as_deref(),
        Some(ALLOWED_ORIGIN)
    );
    let methods = header(&allowed, "access-control-allow-methods").unwrap_or_default();
    assert!(methods.contains("POST"), "{methods}");
    let headers = header(&allowed, "access-control-allow-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    for h in ["authorization", "content-type", "idempotency-key"] {
        assert!(headers.contains(h), "{h} not allowed: {headers}");
    }
    assert!(header(&allowed, "access-control-max-age").is_some());
    let refused = preflight("https://evil.example").await.expect("preflight");
    assert_eq!(header(&refused, "access-control-allow-origin"), None);
    let call = http
        .get(&url)
        .header("Origin", ALLOWED_ORIGIN)
        .send()
        .await
        .expect("file");
    assert_eq!(
        header(&call, "access-control-allow-origin").as_deref(),
        Some(ALLOWED_ORIGIN)
    );
    let exposed = header(&call, "access-control-expose-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(
        exposed.contains("etag") && exposed.contains("x-request-id"),
        "{exposed}"
    );
}
