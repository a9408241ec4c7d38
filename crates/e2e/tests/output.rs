//! Output choices and seeds end to end, on both targets: every format, preset and
//! option checked in the pixels of the served files (sizes, magic bytes and
//! content types, alpha at the corners, the white frame and fill of `amazon`, the
//! margin measured on the garment's alpha, the plain colour), the 422s naming
//! each bad field, and seeds giving identical bytes. One system per target runs
//! all the jobs, so the stack starts once.

use atelier_e2e::{Options, System, Target, data_uri, on_both_targets, photo, request};
use atelier_fixtures::GarmentShape;
use image::{DynamicImage, GenericImageView, RgbaImage};
use serde_json::{Value, json};

on_both_targets!(output_choices_and_seeds);

const IMAGE: &str = "/api/v1/generate/image";
const FULL: &str = "/api/v1/generate";
/// Skips the result cache where there is one: the bytes must come from rendering.
const NO_CACHE: (&str, &str) = ("cache-control", "no-cache");

/// A one-input request for `backgrounds` with `extra` fields merged in.
fn ask(photo_uri: &str, backgrounds: [u8; 3], upscale: bool, extra: Value) -> Value {
    let mut body = request(photo_uri, backgrounds, upscale);
    if let (Some(obj), Some(more)) = (body.as_object_mut(), extra.as_object()) {
        obj.extend(more.clone());
    }
    body
}

/// Runs `body` synchronously and returns the response.
async fn run(sys: &System, path: &str, body: &Value) -> Value {
    let (code, out) = sys.post(0, path, body, &[NO_CACHE]).await;
    assert_eq!(code, 200, "{body}\n{out}\n{}", sys.logs());
    out
}

/// Fetches `url`, checks its content type and magic bytes for `format`, decodes it.
async fn image_at(sys: &System, url: &str, format: &str) -> (Vec<u8>, DynamicImage) {
    let (status, ctype, bytes) = sys.file(url).await;
    let bytes = bytes.to_vec();
    assert_eq!(status, 200, "{url}");
    let (mime, magic_ok) = match format {
        "jpeg" => ("image/jpeg", bytes.starts_with(&[0xFF, 0xD8, 0xFF])),
        "png" => ("image/png", bytes.starts_with(b"\x89PNG\r\n\x1a\n")),
        "webp" => (
            "image/webp",
            bytes.starts_with(b"RIFF") && bytes.get(8..12) == Some(b"WEBP"),
        ),
        other => panic!("no format {other}"),
    };
    assert_eq!(ctype, mime, "{url}");
    assert!(
        magic_ok,
        "{url} is not {format}: {:02x?}",
        &bytes[..bytes.len().min(12)]
    );
    assert!(
        url.ends_with(&format!(".{}", if format == "jpeg" { "jpg" } else { format })),
        "{url}"
    );
    let img = image::load_from_memory(&bytes).expect("decodes");
    (bytes, img)
}

/// First and last index where `hit` holds along `n` positions.
fn span(n: u32, hit: impl Fn(u32) -> bool) -> (u32, u32) {
    let hits: Vec<u32> = (0..n).filter(|&i| hit(i)).collect();
    assert!(!hits.is_empty(), "nothing found");
    (hits[0], hits[hits.len() - 1])
}

/// The bounding box (x0, y0, x1, y1, inclusive) of the pixels where `hit` holds.
fn bbox(img: &RgbaImage, hit: impl Fn(&image::Rgba<u8>) -> bool) -> (u32, u32, u32, u32) {
    let (w, h) = img.dimensions();
    let (x0, x1) = span(w, |x| (0..h).any(|y| hit(img.get_pixel(x, y))));
    let (y0, y1) = span(h, |y| (0..w).any(|x| hit(img.get_pixel(x, y))));
    (x0, y0, x1, y1)
}

/// The larger of the garment's extents over the canvas's: the fill on the
/// garment's tighter axis, which the margin sets.
fn fill(img: &RgbaImage, b: (u32, u32, u32, u32)) -> f64 {
    let (w, h) = img.dimensions();
    let fw = f64::from(b.2 - b.0 + 1) / f64::from(w);
    let fh = f64::from(b.3 - b.1 + 1) / f64::from(h);
    fw.max(fh)
}

fn variation(body: &Value, n: usize) -> &Value {
    &body["image_variations"][n]
}

fn url(v: &Value) -> &str {
    v["url"].as_str().expect("url")
}

async fn output_choices_and_seeds(target: Target) {
    let sys = System::start(target, Options::default()).await;
    let shirt = data_uri(&photo(GarmentShape::TShirt, 11));
    let dress = data_uri(&photo(GarmentShape::Dress, 12));

    // Amazon: 2000×2000 JPEG, a pure #FFFFFF frame, the garment filling ~85 %.
    let body = run(
        &sys,
        IMAGE,
        &ask(&shirt, [1, 0, 0], false, json!({"output": {"preset": "amazon"}})),
    )
    .await;
    let v = variation(&body, 0);
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(2000), Some(2000)),
        "{body}"
    );
    let (_, img) = image_at(&sys, url(v), "jpeg").await;
    let img = img.to_rgba8();
    assert_eq!(img.dimensions(), (2000, 2000));
    let frame = 48;
    for (x, y, p) in img.enumerate_pixels() {
        if x < frame || y < frame || x >= 2000 - frame || y >= 2000 - frame {
            assert_eq!(
                p.0[..3],
                [255, 255, 255],
                "amazon frame not pure white at {x},{y}"
            );
        }
    }
    // Anything visibly off white: the garment (and its faint contact shadow,
    // a couple of per cent below the hem).
    let garment = bbox(&img, |p| p.0[..3].iter().any(|&c| c < 245));
    let ratio = fill(&img, garment);
    assert!(
        (0.83..=0.89).contains(&ratio),
        "amazon fill {ratio:.3}, box {garment:?}"
    );

    // Shopify: 2048×2048 PNG. Zalando: 1800×2400 WebP. Own size: 640×480 JPEG.
    let sizes: [(Value, &str, (u32, u32)); 3] = [
        (json!({"preset": "shopify", "format": "png"}), "png", (2048, 2048)),
        (
            json!({"preset": "zalando", "format": "webp"}),
            "webp",
            (1800, 2400),
        ),
        (json!({"size": "640x480", "quality": 60}), "jpeg", (640, 480)),
    ];
    for (output, format, size) in sizes {
        let body = run(
            &sys,
            IMAGE,
            &ask(&dress, [1, 0, 0], false, json!({ "output": output })),
        )
        .await;
        let v = variation(&body, 0);
        assert_eq!(
            (v["width"].as_u64(), v["height"].as_u64()),
            (Some(u64::from(size.0)), Some(u64::from(size.1))),
            "{body}"
        );
        let (_, img) = image_at(&sys, url(v), format).await;
        assert_eq!(img.dimensions(), size, "{output}");
    }

    // Transparent PNG with a margin of 0.2, upscaled: alpha 0 at the corners, the
    // garment's alpha box 60 % of the tighter axis, centred; the upscale keeps
    // format and alpha.
    let body = run(
        &sys,
        IMAGE,
        &ask(
            &dress,
            [1, 0, 0],
            true,
            json!({"output": {"format": "png", "transparent": true, "size": "600x800", "margin": 0.2}}),
        ),
    )
    .await;
    let (_, img) = image_at(&sys, url(variation(&body, 0)), "png").await;
    let img = img.to_rgba8();
    assert_eq!(img.dimensions(), (600, 800));
    for (x, y) in [(0, 0), (599, 0), (0, 799), (599, 799)] {
        assert_eq!(img.get_pixel(x, y).0[3], 0, "corner {x},{y} not transparent");
    }
    let b = bbox(&img, |p| p.0[3] > 127);
    let (bw, bh) = (f64::from(b.2 - b.0 + 1) / 600.0, f64::from(b.3 - b.1 + 1) / 800.0);
    let tight = bw.max(bh);
    assert!(
        (tight - 0.6).abs() < 0.02,
        "garment spans {bw:.3}×{bh:.3} of the canvas, box {b:?}"
    );
    let (cx, cy) = (f64::from(b.0 + b.2) / 2.0, f64::from(b.1 + b.3) / 2.0);
    assert!(
        (cx - 300.0).abs() < 12.0 && (cy - 400.0).abs() < 16.0,
        "not centred: {b:?}"
    );
    let up = &body["upscale_image"][0];
    assert_eq!(
        (up["width"].as_u64(), up["height"].as_u64()),
        (Some(1200), Some(1600)),
        "{body}"
    );
    let (_, big) = image_at(&sys, url(up), "png").await;
    let big = big.to_rgba8();
    assert_eq!(big.get_pixel(0, 0).0[3], 0, "upscale lost its alpha");
    assert_eq!(big.get_pixel(600, 800).0[3], 255, "upscale lost the garment");

    // Transparent WebP through the whole pipeline: the video and the report
    // still come (they show the cut-out on white).
    let body = run(
        &sys,
        FULL,
        &ask(
            &shirt,
            [1, 0, 1],
            false,
            json!({"output": {"format": "webp", "transparent": true}}),
        ),
    )
    .await;
    let (_, img) = image_at(&sys, url(variation(&body, 1)), "webp").await;
    assert_eq!(img.to_rgba8().get_pixel(0, 0).0[3], 0);
    assert!(
        variation(&body, 1).get("seed").is_none(),
        "no background, no seed: {body}"
    );
    let (status, ctype, video) = sys.file(body["video_url"].as_str().expect("video")).await;
    assert_eq!(
        (status, ctype.as_str(), &video[4..8]),
        (200, "video/mp4", &b"ftyp"[..])
    );
    let (status, _, report) = sys.file(body["excel_url"].as_str().expect("report")).await;
    assert_eq!((status, &report[..2]), (200, &b"PK"[..]));

    // backgroundColor fills plain backgrounds exactly (lossless PNG).
    let body = run(
        &sys,
        IMAGE,
        &ask(
            &shirt,
            [0, 1, 0],
            false,
            json!({"output": {"format": "png", "backgroundColor": "#336699"}}),
        ),
    )
    .await;
    let (_, img) = image_at(&sys, url(variation(&body, 0)), "png").await;
    let img = img.to_rgba8();
    let (w, h) = img.dimensions();
    for (x, y) in [(0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1), (w / 2, 2)] {
        assert_eq!(img.get_pixel(x, y).0, [0x33, 0x66, 0x99, 255], "at {x},{y}");
    }

    // Seeds: the same seed gives the same bytes in two jobs, another seed others;
    // each random image reports its seed (seed + n for the n-th).
    let seeded = |seed: u64| {
        ask(
            &shirt,
            [0, 0, 2],
            false,
            json!({"seed": seed, "output": {"format": "png"}}),
        )
    };
    let (first, again, other) = (seeded(12_345), seeded(12_345), seeded(54_321));
    let (a, b, c) = tokio::join!(
        run(&sys, IMAGE, &first),
        run(&sys, IMAGE, &again),
        run(&sys, IMAGE, &other),
    );
    assert_ne!(a["request_id"], b["request_id"]);
    assert_eq!(variation(&a, 0)["seed"], json!(12_345), "{a}");
    assert_eq!(variation(&a, 1)["seed"], json!(12_346), "{a}");
    assert_eq!(variation(&c, 0)["seed"], json!(54_321), "{c}");
    for n in 0..2 {
        let (bytes_a, _) = image_at(&sys, url(variation(&a, n)), "png").await;
        let (bytes_b, _) = image_at(&sys, url(variation(&b, n)), "png").await;
        let (bytes_c, _) = image_at(&sys, url(variation(&c, n)), "png").await;
        assert!(
            bytes_a == bytes_b,
            "variation {n}: the same seed gave different bytes"
        );
        assert!(
            bytes_a != bytes_c,
            "variation {n}: another seed gave the same bytes"
        );
    }
    // Without a seed each job derives its own, and reports it.
    let (code, free) = sys
        .post(0, IMAGE, &ask(&shirt, [0, 0, 1], false, json!({})), &[NO_CACHE])
        .await;
    assert_eq!(code, 200, "{free}");
    assert!(variation(&free, 0)["seed"].as_u64().is_some(), "{free}");

    // Bad values: 422 naming the field.
    for (extra, field) in [
        (json!({"output": {"preset": "etsy"}}), "output.preset"),
        (
            json!({"output": {"preset": "amazon", "size": "800x800"}}),
            "output.size",
        ),
        (json!({"output": {"size": "800 by 600"}}), "output.size"),
        (json!({"output": {"size": "100000x100000"}}), "output.size"),
        (
            json!({"output": {"backgroundColor": "#12345G"}}),
            "output.backgroundColor",
        ),
        (json!({"output": {"quality": 0}}), "output.quality"),
        (json!({"output": {"quality": 101}}), "output.quality"),
        (
            json!({"output": {"format": "jpeg", "transparent": true}}),
            "output.transparent",
        ),
        (json!({"output": {"margin": 0.5}}), "output.margin"),
        (json!({"output": {"margin": -0.1}}), "output.margin"),
        (json!({"output": {"format": "gif"}}), "output.format"),
        (json!({"seed": -1}), "seed"),
    ] {
        let (code, err) = sys
            .post(0, IMAGE, &ask(&shirt, [1, 0, 0], false, extra.clone()), &[])
            .await;
        assert_eq!(code, 422, "{extra} → {err}");
        assert_eq!(err["error"]["field"], json!(field), "{extra} → {err}");
    }
}
