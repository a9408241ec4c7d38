//! `atelier bench`: the old service's load-test script, in Rust. Sends N jobs with
//! C concurrent clients to the gateway (or runs them with `atelier process`, one
//! process per job, for the stack-vs-embedded comparison) and reports the success
//! rate, latency percentiles and jobs per minute.

mod embedded;
mod http;
mod plot;
mod stats;

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use atelier_core::request::{Gender, GenerateRequest, InputImage, ProductType, View};
use atelier_fixtures::{GarmentShape, Scene};
use base64::Engine as _;

use crate::args::{BenchArgs, Endpoint};
use crate::process::read_limited;
use stats::Report;

/// Largest photo `--image` accepts (the default `limits.max_bytes`).
const MAX_IMAGE_BYTES: u64 = 30_000_000;

/// One benchmark run's parameters.
#[derive(Debug, Clone)]
pub(crate) struct Plan<'a> {
    pub requests: u32,
    pub concurrency: u32,
    pub timeout: Duration,
    pub args: &'a BenchArgs,
}

/// Runs the benchmark once, or twice with `--compare`, and prints the reports.
pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let (photo, mime) = load_image(args.image.as_deref())?;
    let mut levels = vec![args.concurrency];
    if args.compare && args.concurrency != 1 {
        levels.insert(0, 1);
    }
    let mut reports = Vec::new();
    for concurrency in levels {
        let plan = Plan {
            requests: args.requests,
            concurrency,
            timeout: Duration::from_secs(args.timeout),
            args,
        };
        let report = if args.embedded {
            embedded::run(&plan, &photo, mime)?
        } else {
            let body = request_body(&photo, mime, args)?;
            http::run(&plan, &endpoint_url(&args.url, args.endpoint), body)?
        };
        println!("{report}");
        reports.push(report);
    }
    if let [one, many] = reports.as_slice() {
        println!("{}", Report::comparison(one, many));
    }
    if let Some(path) = &args.plot {
        plot::draw(&reports, path)?;
        println!("chart: {}", path.display());
    }
    if reports.iter().all(|r| r.ok == 0) {
        bail!("no job succeeded");
    }
    Ok(())
}

/// The full URL of the chosen endpoint under the gateway's base URL.
pub(crate) fn endpoint_url(base: &str, endpoint: Endpoint) -> String {
    let path = match endpoint {
        Endpoint::Image => "/api/v1/generate/image",
        Endpoint::Full => "/api/v1/generate",
    };
    format!("{}{path}", base.trim_end_matches('/'))
}

/// The photo to send: the file given, or a synthetic garment; with its MIME type.
fn load_image(path: Option<&Path>) -> anyhow::Result<(Vec<u8>, &'static str)> {
    let Some(path) = path else {
        let garment = atelier_fixtures::render(&Scene::example(GarmentShape::TShirt, 900, 1200, 7));
        return Ok((atelier_fixtures::jpeg(&garment.image, 90), "image/jpeg"));
    };
    let bytes = read_limited(path, MAX_IMAGE_BYTES)?;
    let mime =
        sniff_mime(&bytes).with_context(|| format!("{}: not a JPEG, PNG or WebP image", path.display()))?;
    Ok((bytes, mime))
}

/// The MIME type of a JPEG, PNG or WebP file, from its first bytes.
pub(crate) fn sniff_mime(bytes: &[u8]) -> Option<&'static str> {
    match bytes {
        [0xFF, 0xD8, 0xFF, ..] => Some("image/jpeg"),
        [0x89, b'P', b'N', b'G', ..] => Some("image/png"),
        [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => Some("image/webp"),
        _ => None,
    }
}

/// The JSON body of API.md's generate request: one front view of `photo` as a
/// `data:` URI, the backgrounds asked for and optionally an upscale. Validated
/// with the same rules as the gateway, so a bad `--backgrounds` fails here.
pub(crate) fn request_body(photo: &[u8], mime: &str, args: &BenchArgs) -> anyhow::Result<Vec<u8>> {
    let encoded = base64::engine::general_purpose::STANDARD.encode(photo);
    let request = GenerateRequest {
        product_type: ProductType::General,
        gender: Gender::Unisex,
        text: Some("atelier bench".to_string()),
        upscale: args.upscale,
        ..GenerateRequest::for_inputs(vec![InputImage {
            url: format!("data:{mime};base64,{encoded}"),
            view: View::Front,
            backgrounds: args.backgrounds.0,
        }])
    };
    request
        .validate()
        .map_err(|e| anyhow::anyhow!("--backgrounds: {}", e.message))?;
    Ok(serde_json::to_vec(&request)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::Cli;
    use clap::Parser;

    fn bench_args(extra: &[&str]) -> BenchArgs {
        let argv = ["atelier", "bench"].iter().chain(extra);
        match Cli::parse_from(argv).command {
            crate::args::Command::Bench(args) => args,
            other => panic!("parsed {other:?}"),
        }
    }

    #[test]
    fn body_is_the_old_api_request_with_a_data_uri() {
        let args = bench_args(&["--backgrounds", "0,1,2", "--upscale"]);
        let body = request_body(b"\xFF\xD8\xFFjpeg", "image/jpeg", &args).expect("valid");
        let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
        let image = &json["inputImages"][0];
        assert_eq!(image["url"], "data:image/jpeg;base64,/9j/anBlZw==");
        assert_eq!(image["view"], "front");
        assert_eq!(image["backgrounds"], serde_json::json!([0, 1, 2]));
        assert_eq!(json["upscale"], true);
        assert_eq!(json["productType"], "general");
        // The gateway's own parser takes it as is (unknown fields would be refused).
        let parsed: GenerateRequest = serde_json::from_slice(&body).expect("API request");
        parsed.validate().expect("valid request");
    }

    #[test]
    fn body_without_images_is_refused() {
        let args = bench_args(&["--backgrounds", "0,0,0"]);
        let err = request_body(b"x", "image/png", &args).expect_err("no image asked for");
        assert!(err.to_string().contains("--backgrounds"), "{err}");
    }

    #[test]
    fn default_image_is_a_jpeg_and_urls_join() {
        let (bytes, mime) = load_image(None).expect("fixture");
        assert_eq!((sniff_mime(&bytes), mime), (Some("image/jpeg"), "image/jpeg"));
        assert_eq!(sniff_mime(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(sniff_mime(b"GIF89a"), None);
        assert_eq!(
            endpoint_url("http://h:8080/", Endpoint::Image),
            "http://h:8080/api/v1/generate/image"
        );
        assert_eq!(
            endpoint_url("http://h", Endpoint::Full),
            "http://h/api/v1/generate"
        );
    }
}
