//! Decoding with limits, end to end: every supported variant of every format comes
//! out upright with the right colours, and every bad input gets its typed error —
//! never a panic, never a pixel buffer for a bomb.

#[path = "decode/fixtures.rs"]
mod fixtures;
#[path = "decode/vp8.rs"]
mod vp8;

use std::time::{Duration, Instant};

use atelier_core::settings::{DecodeLimits, Settings};
use atelier_imaging::ImagingError;
use atelier_imaging::decode::{Decoded, InputFormat, decode, decode_mask, probe};
use fixtures::*;
use image::{ExtendedColorType, GrayImage};
use jpeg_encoder::ColorType;

fn limits() -> DecodeLimits {
    Settings::defaults().limits
}

fn ok(bytes: &[u8]) -> Decoded {
    decode(bytes, &limits()).unwrap_or_else(|e| panic!("decode failed: {e}"))
}

/// Asserts the pixel at (x, y) is within `tol` of `want` on every channel.
fn near(d: &Decoded, x: u32, y: u32, want: [u8; 3], tol: u8) {
    let got = d.rgb.get_pixel(x, y).0;
    let close = got.iter().zip(want).all(|(&g, w)| g.abs_diff(w) <= tol);
    assert!(close, "pixel ({x},{y}) is {got:?}, expected {want:?} ± {tol}");
}

/// Checks the four quadrant centres of a `w`×`h` upright image.
fn quadrant_colours(d: &Decoded, [tl, tr, bl, br]: [[u8; 3]; 4], tol: u8) {
    let (w, h) = d.rgb.dimensions();
    near(d, w / 4, h / 4, tl, tol);
    near(d, w * 3 / 4, h / 4, tr, tol);
    near(d, w / 4, h * 3 / 4, bl, tol);
    near(d, w * 3 / 4, h * 3 / 4, br, tol);
}

// --- good inputs ---------------------------------------------------------------

#[test]
fn baseline_and_progressive_jpeg() {
    let img = quadrants(160, 120);
    for progressive in [false, true] {
        let d = ok(&jpeg_with(img.as_raw(), 160, 120, ColorType::Rgb, progressive));
        assert_eq!(
            (d.format, d.rgb.dimensions(), d.alpha.is_none()),
            (InputFormat::Jpeg, (160, 120), true)
        );
        quadrant_colours(&d, [TL, TR, BL, BR], 12);
    }
}

#[test]
fn cmyk_and_ycck_jpeg_keep_their_colours() {
    for color in [ColorType::Cmyk, ColorType::CmykAsYcck] {
        let d = ok(&cmyk_jpeg(128, 96, color));
        assert_eq!(d.rgb.dimensions(), (128, 96));
        quadrant_colours(&d, [TL, TR, BL, BR], 14);
    }
}

#[test]
fn grey_jpeg_becomes_neutral_rgb() {
    let grey: Vec<u8> = (0..96 * 80).map(|i| if i % 96 < 48 { 50 } else { 200 }).collect();
    let d = ok(&jpeg_with(&grey, 96, 80, ColorType::Luma, false));
    near(&d, 20, 40, [50; 3], 3);
    near(&d, 76, 40, [200; 3], 3);
}

#[test]
fn exif_orientation_6_and_8_come_out_upright() {
    let stored = jpeg(&quadrants(160, 120));
    // 6: rotate 90° clockwise to view; the stored top-left lands top-right.
    let right = with_exif_orientation(&stored, 6, true);
    let d = ok(&right);
    assert_eq!(d.rgb.dimensions(), (120, 160));
    quadrant_colours(&d, [BL, TL, BR, TR], 12);
    // 8: rotate 90° counter-clockwise; the stored top-left lands bottom-left.
    let left = with_exif_orientation(&stored, 8, false);
    let d = ok(&left);
    assert_eq!(d.rgb.dimensions(), (120, 160));
    quadrant_colours(&d, [TR, BR, TL, BL], 12);
    // 3 (180°) keeps the size; probe reports upright sizes without decoding.
    quadrant_colours(
        &ok(&with_exif_orientation(&stored, 3, true)),
        [BR, BL, TR, TL],
        12,
    );
    let p = probe(&right, &limits()).unwrap();
    assert_eq!((p.format, p.width, p.height), (InputFormat::Jpeg, 120, 160));
}

#[test]
fn png_with_alpha_keeps_the_alpha_apart() {
    let rgba: Vec<u8> = (0..100 * 80)
        .flat_map(|i| {
            let (x, y) = (i % 100, i / 100);
            let inside = (25..75).contains(&x) && (20..60).contains(&y);
            if inside { [200, 40, 90, 255] } else { [0, 0, 0, 0] }
        })
        .collect();
    let d = ok(&png_with(
        100,
        80,
        png::ColorType::Rgba,
        png::BitDepth::Eight,
        &rgba,
        None,
    ));
    let alpha = d.alpha.as_ref().expect("transparent pixels keep the alpha");
    assert_eq!((alpha.get_pixel(50, 40).0, alpha.get_pixel(2, 2).0), ([255], [0]));
    near(&d, 50, 40, [200, 40, 90], 0);

    // The same layout fully opaque: the channel carries nothing and is dropped.
    let opaque: Vec<u8> = rgba.chunks(4).flat_map(|p| [p[0], p[1], p[2], 255]).collect();
    assert!(
        ok(&png_with(
            100,
            80,
            png::ColorType::Rgba,
            png::BitDepth::Eight,
            &opaque,
            None
        ))
        .alpha
        .is_none()
    );
}

#[test]
fn sixteen_bit_palette_and_grey_png() {
    let rgb16: Vec<u8> = (0..80 * 64)
        .flat_map(|_| [0xFF, 0xFF, 0x80, 0x80, 0x00, 0x00])
        .collect();
    let d = ok(&png_with(
        80,
        64,
        png::ColorType::Rgb,
        png::BitDepth::Sixteen,
        &rgb16,
        None,
    ));
    near(&d, 40, 32, [255, 128, 0], 1);

    // Palette: index 0 red, 1 transparent green (tRNS), 2 blue; stripes of each.
    let indices: Vec<u8> = (0..90 * 64).map(|i| ((i % 90) / 30) as u8).collect();
    let plte = [255, 0, 0, 0, 255, 0, 0, 0, 255];
    let d = ok(&png_with(
        90,
        64,
        png::ColorType::Indexed,
        png::BitDepth::Eight,
        &indices,
        Some((&plte, &[255, 0, 255])),
    ));
    near(&d, 10, 10, [255, 0, 0], 0);
    near(&d, 70, 10, [0, 0, 255], 0);
    let alpha = d.alpha.expect("tRNS makes index 1 transparent");
    assert_eq!(
        (alpha.get_pixel(45, 10).0, alpha.get_pixel(10, 10).0),
        ([0], [255])
    );

    let grey: Vec<u8> = (0..64 * 64).map(|i| (i % 64 * 4) as u8).collect();
    let d = ok(&png_with(
        64,
        64,
        png::ColorType::Grayscale,
        png::BitDepth::Eight,
        &grey,
        None,
    ));
    near(&d, 10, 5, [40; 3], 0);
}

#[test]
fn lossless_and_lossy_webp() {
    let img = quadrants(96, 72);
    let d = ok(&webp_lossless(img.as_raw(), 96, 72, ExtendedColorType::Rgb8));
    assert_eq!((d.format, d.rgb.dimensions()), (InputFormat::WebP, (96, 72)));
    quadrant_colours(&d, [TL, TR, BL, BR], 0);

    let rgba: Vec<u8> = img
        .pixels()
        .enumerate()
        .flat_map(|(i, p)| [p[0], p[1], p[2], if i % 96 < 10 { 0 } else { 255 }])
        .collect();
    let d = ok(&webp_lossless(&rgba, 96, 72, ExtendedColorType::Rgba8));
    let alpha = d.alpha.expect("lossless WebP alpha");
    assert_eq!((alpha.get_pixel(5, 5).0, alpha.get_pixel(50, 5).0), ([0], [255]));

    let d = ok(&vp8::grey_webp(100, 70));
    assert_eq!(
        (d.format, d.rgb.dimensions(), d.alpha.is_none()),
        (InputFormat::WebP, (100, 70), true)
    );
    near(&d, 50, 35, [128; 3], 3);
}

#[test]
fn masks_round_trip_through_our_png_encoder() {
    let mask = GrayImage::from_fn(70, 50, |x, y| image::Luma([((x * y) % 256) as u8]));
    let bytes = atelier_imaging::encode::png_gray(&mask).unwrap();
    assert_eq!(decode_mask(&bytes).unwrap(), mask);
    assert!(matches!(
        decode_mask(&jpeg(&quadrants(64, 64))),
        Err(ImagingError::UnsupportedFormat(_))
    ));
    assert!(matches!(
        decode_mask(&bytes[..bytes.len() / 2]),
        Err(ImagingError::Corrupt(_))
    ));
}

#[test]
fn format_names_extension_and_mime() {
    let p = probe(
        &webp_lossless(quadrants(64, 64).as_raw(), 64, 64, ExtendedColorType::Rgb8),
        &limits(),
    )
    .unwrap();
    assert_eq!(
        (p.format.extension(), p.format.mime(), p.width),
        ("webp", "image/webp", 64)
    );
}

// --- bad inputs ----------------------------------------------------------------

fn unsupported(bytes: &[u8]) -> String {
    match decode(bytes, &limits()) {
        Err(ImagingError::UnsupportedFormat(Some(what))) => what,
        other => panic!(
            "expected UnsupportedFormat, got {:?}",
            other.map(|d| d.rgb.dimensions())
        ),
    }
}

fn corrupt(bytes: &[u8]) -> String {
    match decode(bytes, &limits()) {
        Err(ImagingError::Corrupt(why)) => why,
        other => panic!("expected Corrupt, got {:?}", other.map(|d| d.rgb.dimensions())),
    }
}

#[test]
fn non_images_are_unsupported_and_named() {
    assert!(unsupported(b"").contains("empty"));
    let mut random = noise(4096, 7);
    random[0] = 0x13; // make sure no magic number is hit by chance
    assert!(unsupported(&random).contains("unrecognised"));
    assert!(unsupported(b"Dear customer, please find the shirt attached.\n").contains("text"));
    assert!(unsupported(b"GIF89a\x40\x00\x40\x00\xf7\x00\x00").contains("GIF"));
    assert!(unsupported(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic\0\0\0\0").contains("HEIC"));
    assert!(unsupported(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n").contains("PDF"));
}

#[test]
fn truncated_jpeg_png_and_webp_are_corrupt() {
    let img = photo(200, 150);
    let jpg = jpeg_with(img.as_raw(), 200, 150, ColorType::Rgb, true);
    let png = png_with(
        200,
        150,
        png::ColorType::Rgb,
        png::BitDepth::Eight,
        img.as_raw(),
        None,
    );
    let webp = webp_lossless(img.as_raw(), 200, 150, ExtendedColorType::Rgb8);
    // The PNG's last 12 bytes are its IEND chunk, which carries no pixel.
    for (bytes, trailer) in [(&jpg, 0), (&png, 12), (&webp, 0)] {
        for percent in [3, 10, 25, 50, 75, 90, 99] {
            let cut = &bytes[..bytes.len() * percent / 100];
            let verdict = decode(cut, &limits()).map(|d| d.format);
            assert!(
                matches!(verdict, Err(ImagingError::Corrupt(_))),
                "cut at {percent}%: {verdict:?}"
            );
        }
        let last_cut = decode(&bytes[..bytes.len() - trailer - 1], &limits()).map(|d| d.format);
        assert!(
            matches!(last_cut, Err(ImagingError::Corrupt(_))),
            "last data byte cut: {last_cut:?}"
        );
    }
    assert!(corrupt(&jpg[..jpg.len() / 2]).contains("truncated"));
}

#[test]
fn corrupt_jpeg_body_is_refused_with_the_decoder_reason() {
    let jpg = jpeg(&quadrants(256, 192));
    let n = jpg.len();
    let mut garbage = jpg.clone();
    garbage[n / 2..n / 2 + 600].copy_from_slice(&noise(600, 99));
    assert!(corrupt(&garbage).contains("JPEG"), "random bytes in the scan");
    let mut flipped = jpg.clone();
    for i in (n / 3..n / 3 + 400).step_by(40) {
        flipped[i] ^= 0x5A;
    }
    corrupt(&flipped);
    // A couple of padding bytes before EOI is a harmless warning on real camera files.
    let mut padded = jpg[..n - 2].to_vec();
    padded.extend([0x01, 0x02, 0xFF, 0xD9]);
    ok(&padded);
}

#[test]
fn decompression_bombs_are_refused_from_the_header_in_milliseconds() {
    let bombs = [
        ("png", png_header_only(50_000, 50_000)),
        ("jpeg", jpeg_claiming(60_000, 60_000)),
        ("jpeg-mp", jpeg_claiming(9_000, 9_000)),
        ("webp", webp_claiming(16_383, 16_383)),
    ];
    for (name, bytes) in bombs {
        let start = Instant::now();
        let verdicts = [
            probe(&bytes, &limits()).map(|_| ()),
            decode(&bytes, &limits()).map(|_| ()),
        ];
        let took = start.elapsed();
        for verdict in verdicts {
            assert!(
                matches!(verdict, Err(ImagingError::TooLarge(_))),
                "{name}: {verdict:?}"
            );
        }
        // Allocating (let alone filling) gigabytes would take seconds; the header takes microseconds.
        assert!(took < Duration::from_millis(200), "{name} took {took:?}");
    }
}

#[test]
fn small_images_and_oversized_files_are_refused() {
    match decode(&jpeg(&quadrants(40, 40)), &limits()) {
        Err(ImagingError::TooSmall {
            width: 40,
            height: 40,
            min_side: 64,
        }) => {}
        other => panic!("expected TooSmall, got {:?}", other.map(|d| d.rgb.dimensions())),
    }
    assert!(matches!(
        decode(&png_header_only(0, 0), &limits()),
        Err(ImagingError::TooSmall { .. })
    ));
    let bytes = jpeg(&quadrants(128, 128));
    let tight = DecodeLimits {
        max_bytes: bytes.len() as u64 - 1,
        ..limits()
    };
    assert!(matches!(decode(&bytes, &tight), Err(ImagingError::TooLarge(m)) if m.contains("bytes")));
    assert!(matches!(probe(&bytes, &tight), Err(ImagingError::TooLarge(_))));
    let few_pixels = DecodeLimits {
        max_pixels: 128 * 127,
        ..limits()
    };
    assert!(matches!(
        decode(&bytes, &few_pixels),
        Err(ImagingError::TooLarge(_))
    ));
}

#[test]
fn mangled_files_never_panic() {
    let img = quadrants(96, 80);
    let inputs = [
        jpeg_with(img.as_raw(), 96, 80, ColorType::Rgb, false),
        jpeg_with(img.as_raw(), 96, 80, ColorType::Rgb, true),
        png_with(
            96,
            80,
            png::ColorType::Rgb,
            png::BitDepth::Eight,
            img.as_raw(),
            None,
        ),
        webp_lossless(img.as_raw(), 96, 80, ExtendedColorType::Rgb8),
        vp8::grey_webp(96, 80),
    ];
    for (n, bytes) in inputs.iter().enumerate() {
        for round in 0..150u32 {
            let mut mangled = bytes.clone();
            let r = noise(10, round * 31 + n as u32 + 1);
            for k in 0..1 + usize::from(r[0] % 4) {
                let at = (usize::from(r[2 * k + 1]) << 8 | usize::from(r[2 * k + 2])) % mangled.len();
                mangled[at] = r[9].wrapping_add(k as u8);
            }
            // Any verdict is fine; a panic or an upright image of the wrong size is not.
            if let Ok(d) = decode(&mangled, &limits()) {
                assert!(d.rgb.width() >= 64 && d.rgb.height() >= 64);
                assert_eq!(
                    d.alpha.map(|a| a.dimensions()).unwrap_or(d.rgb.dimensions()),
                    d.rgb.dimensions()
                );
            }
        }
    }
}
