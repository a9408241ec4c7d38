//! Inputs for the decode tests, all generated here: JPEGs (baseline, progressive,
//! CMYK, YCCK, grey, with a hand-made EXIF segment), PNGs (alpha, 16-bit, palette,
//! grey, bogus headers) and WebPs (lossless through `image`, lossy through the tiny
//! VP8 writer in `vp8.rs`, bogus headers).

use image::{Rgb, RgbImage};
use jpeg_encoder::{ColorType, Encoder};

/// The four quadrant colours of [`quadrants`], top-left, top-right, bottom-left,
/// bottom-right: far apart so any rotation, flip or inversion shows.
pub const TL: [u8; 3] = [220, 30, 30];
pub const TR: [u8; 3] = [30, 200, 60];
pub const BL: [u8; 3] = [40, 60, 210];
pub const BR: [u8; 3] = [230, 210, 40];

/// A `w`×`h` image of four flat quadrants.
pub fn quadrants(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        Rgb(match (x < w / 2, y < h / 2) {
            (true, true) => TL,
            (false, true) => TR,
            (true, false) => BL,
            (false, false) => BR,
        })
    })
}

/// A photo-like image: smooth gradients with fine texture and noise, so encoded
/// sizes are realistic (flat fixtures compress to a few hundred bytes).
pub fn photo(w: u32, h: u32) -> RgbImage {
    let grain = noise((w * h) as usize, 2024);
    RgbImage::from_fn(w, h, |x, y| {
        let n = i32::from(grain[(y * w + x) as usize] % 24) - 12;
        let t = ((x as f32 * 0.21).sin() * (y as f32 * 0.13).cos() * 25.0) as i32;
        let c = |base: i32| (base + n + t).clamp(0, 255) as u8;
        Rgb([
            c(40 + (180 * x / w) as i32),
            c(70 + (120 * y / h) as i32),
            c(200 - (90 * (x + y) / (w + h)) as i32),
        ])
    })
}

/// Deterministic noise (xorshift32), for random inputs and corruption.
pub fn noise(len: usize, mut seed: u32) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            (seed >> 24) as u8
        })
        .collect()
}

/// Encodes with jpeg-encoder (an encoder independent of the libjpeg-turbo we decode with).
pub fn jpeg_with(data: &[u8], w: u32, h: u32, color: ColorType, progressive: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = Encoder::new(&mut out, 92);
    enc.set_progressive(progressive);
    enc.encode(data, w as u16, h as u16, color)
        .expect("jpeg-encoder accepts the fixture");
    out
}

pub fn jpeg(img: &RgbImage) -> Vec<u8> {
    jpeg_with(img.as_raw(), img.width(), img.height(), ColorType::Rgb, false)
}

/// The quadrant image as CMYK inks (K = 0, C = 255 − R …), which jpeg-encoder
/// stores the Adobe way (inverted), as Photoshop does.
pub fn cmyk_jpeg(w: u32, h: u32, color: ColorType) -> Vec<u8> {
    let inks: Vec<u8> = quadrants(w, h)
        .pixels()
        .flat_map(|p| [255 - p[0], 255 - p[1], 255 - p[2], 0])
        .collect();
    jpeg_with(&inks, w, h, color, false)
}

/// Inserts an APP1 Exif segment holding only an orientation tag right after SOI,
/// in big-endian (`MM`) or little-endian (`II`) TIFF layout.
pub fn with_exif_orientation(jpeg: &[u8], orientation: u16, big_endian: bool) -> Vec<u8> {
    // Fixed-size fields in the chosen byte order.
    let u16b = |v: u16| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let u32b = |v: u32| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut tiff = if big_endian {
        b"MM".to_vec()
    } else {
        b"II".to_vec()
    };
    tiff.extend(u16b(42));
    tiff.extend(u32b(8)); // offset of IFD0
    tiff.extend(u16b(1)); // one entry
    tiff.extend(u16b(0x0112)); // Orientation
    tiff.extend(u16b(3)); // SHORT
    tiff.extend(u32b(1)); // count
    tiff.extend(u16b(orientation));
    tiff.extend([0, 0]); // value padding to 4 bytes
    tiff.extend(u32b(0)); // no next IFD
    let mut segment = vec![0xFF, 0xE1];
    segment.extend(
        u16::try_from(2 + 6 + tiff.len())
            .expect("small segment")
            .to_be_bytes(),
    );
    segment.extend(b"Exif\0\0");
    segment.extend(tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend(segment);
    out.extend(&jpeg[2..]);
    out
}

/// Encodes a PNG with the `png` crate at any colour type and depth.
pub fn png_with(
    w: u32,
    h: u32,
    color: png::ColorType,
    depth: png::BitDepth,
    data: &[u8],
    palette: Option<(&[u8], &[u8])>,
) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(color);
        enc.set_depth(depth);
        if let Some((plte, trns)) = palette {
            enc.set_palette(plte.to_vec());
            enc.set_trns(trns.to_vec());
        }
        let mut writer = enc.write_header().expect("png header");
        writer.write_image_data(data).expect("png data");
        writer.finish().expect("png end");
    }
    out
}

/// A PNG made only of a signature, an IHDR claiming `w`×`h` RGBA8, a tiny IDAT and
/// IEND, with valid CRCs: a decompression bomb's header without the bomb.
pub fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend(w.to_be_bytes());
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 6, 0, 0, 0]);
    for (kind, data) in [
        (&b"IHDR"[..], &ihdr[..]),
        (b"IDAT", &[0x78, 0x9C, 0x03, 0, 0, 0, 0, 1]),
        (b"IEND", &[]),
    ] {
        out.extend(u32::try_from(data.len()).expect("small chunk").to_be_bytes());
        let start = out.len();
        out.extend(kind);
        out.extend(data);
        let crc = crc32(&out[start..]);
        out.extend(crc.to_be_bytes());
    }
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A baseline JPEG whose SOF0 claims `w`×`h`: header segments of a real JPEG with
/// the frame size patched, and no pixel data worth the size.
pub fn jpeg_claiming(w: u16, h: u16) -> Vec<u8> {
    let mut v = jpeg(&quadrants(64, 64));
    let sof = v
        .windows(2)
        .position(|m| m == [0xFF, 0xC0])
        .expect("baseline JPEG has SOF0");
    v[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
    v[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    v
}

/// A lossless WebP (VP8L) header claiming `w`×`h`, with no image data.
pub fn webp_claiming(w: u32, h: u32) -> Vec<u8> {
    let bits: u32 = (w - 1) | ((h - 1) << 14);
    let mut vp8l = vec![0x2F];
    vp8l.extend(bits.to_le_bytes());
    vp8l.extend([0; 11]);
    riff_webp(b"VP8L", &vp8l)
}

/// Wraps one chunk in a RIFF/WebP container.
pub fn riff_webp(fourcc: &[u8; 4], chunk: &[u8]) -> Vec<u8> {
    let padded = chunk.len() + chunk.len() % 2;
    let mut out = b"RIFF".to_vec();
    out.extend(u32::try_from(4 + 8 + padded).expect("small file").to_le_bytes());
    out.extend(b"WEBP");
    out.extend(fourcc);
    out.extend(u32::try_from(chunk.len()).expect("small chunk").to_le_bytes());
    out.extend(chunk);
    out.resize(8 + 4 + 8 + padded, 0);
    out
}

/// A lossless WebP through the `image` crate's encoder (RGB or RGBA).
pub fn webp_lossless(data: &[u8], w: u32, h: u32, color: image::ExtendedColorType) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::webp::WebPEncoder::new_lossless(&mut out)
        .encode(data, w, h, color)
        .expect("webp encodes");
    out
}
