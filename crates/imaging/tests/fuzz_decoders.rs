//! Property tests over the JPEG, PNG and WebP decoders: mutations of real
//! files (flipped and inserted bytes, truncations, splices, duplicated scans
//! and chunks, forged headers) never panic, and a decode never allocates much
//! more than its probe said it would, so the decode budget holds.
//!
//! The budget is proptest's `PROPTEST_CASES` per property (64, set in
//! `.cargo/config.toml`; `scripts/fuzz.sh` runs thousands).
//!
//! Allocations are counted per thread by a wrapper around the system
//! allocator (libjpeg-turbo's own working memory is C `malloc` and not
//! counted; its size follows the header's dimensions, which the limits check
//! first).

#![allow(clippy::unwrap_used, clippy::expect_used)]
// Counting allocations needs a `GlobalAlloc` wrapper, which is unsafe by
// definition; it only forwards to `System` and adds to a counter.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Duration, Instant};

use atelier_core::settings::DecodeLimits;
use atelier_fixtures::{GarmentShape, Scene};
use atelier_imaging::decode::{decode, probe};
use image::ImageEncoder;
use proptest::prelude::*;

/// Counts the bytes each thread holds and the most it held.
struct Counting;

thread_local! {
    static HELD: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn add(bytes: usize) {
    let _ = HELD.try_with(|held| {
        let now = held.get().saturating_add(bytes);
        held.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

fn sub(bytes: usize) {
    let _ = HELD.try_with(|held| held.set(held.get().saturating_sub(bytes)));
}

// SAFETY: every call forwards to the system allocator unchanged; the counters
// are const-initialised thread-locals that never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add(layout.size());
        // SAFETY: the caller's contract is forwarded as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        sub(layout.size());
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        add(layout.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        sub(layout.size());
        add(new_size);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes allocated at the peak of `f`, over what the thread held before.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = HELD.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let out = f();
    (out, PEAK.with(Cell::get).saturating_sub(base))
}

/// Working memory a decode may use beyond the pixels its probe announced
/// (decoder state, row buffers, the zlib window, Huffman tables).
const OVERHEAD: usize = 8 << 20;
/// Longest one small input may take to decode, whatever its damage.
const SLOW: Duration = Duration::from_secs(10);

fn limits() -> DecodeLimits {
    DecodeLimits {
        max_bytes: 4 << 20,
        max_pixels: 4_000_000,
        min_side: 16,
        max_side: 4_000,
        decode_budget_bytes: 1 << 30,
        max_jpeg_scans: 64,
    }
}

fn garment() -> image::RgbImage {
    atelier_fixtures::render(&Scene::example(GarmentShape::TShirt, 96, 128, 7)).image
}

fn baseline_jpeg() -> Vec<u8> {
    atelier_fixtures::jpeg(&garment(), 85)
}

fn progressive_jpeg() -> Vec<u8> {
    let img = garment();
    let mut out = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut out, 85);
    encoder.set_progressive(true);
    encoder
        .encode(
            img.as_raw(),
            u16::try_from(img.width()).expect("small"),
            u16::try_from(img.height()).expect("small"),
            jpeg_encoder::ColorType::Rgb,
        )
        .expect("progressive jpeg");
    out
}

fn png(sixteen_bit: bool) -> Vec<u8> {
    let img = garment();
    let mut out = Vec::new();
    let encoder = image::codecs::png::PngEncoder::new(&mut out);
    if sixteen_bit {
        let wide: Vec<u8> = img.as_raw().iter().flat_map(|&v| [v, v]).collect();
        encoder
            .write_image(&wide, img.width(), img.height(), image::ExtendedColorType::Rgb16)
            .expect("png16");
    } else {
        encoder
            .write_image(
                img.as_raw(),
                img.width(),
                img.height(),
                image::ExtendedColorType::Rgb8,
            )
            .expect("png");
    }
    out
}

fn webp() -> Vec<u8> {
    let img = garment();
    let mut out = Vec::new();
    image::codecs::webp::WebPEncoder::new_lossless(&mut out)
        .write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            image::ExtendedColorType::Rgb8,
        )
        .expect("webp");
    out
}

fn seeds() -> Vec<Vec<u8>> {
    vec![baseline_jpeg(), progressive_jpeg(), png(false), png(true), webp()]
}

/// One way to damage a file.
#[derive(Debug, Clone)]
enum Mutation {
    Flip {
        at: usize,
        xor: u8,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
    Truncate {
        at: usize,
    },
    /// Repeats `len` bytes at `at` `times` times (scans, chunks, segments).
    Repeat {
        at: usize,
        len: usize,
        times: usize,
    },
    /// Overwrites a big-endian u32 (PNG IHDR sizes, chunk lengths).
    Forge {
        at: usize,
        value: u32,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), 1_u8..).prop_map(|(at, xor)| Mutation::Flip { at, xor }),
        2 => (any::<usize>(), prop::collection::vec(any::<u8>(), 1..32))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        1 => any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        2 => (any::<usize>(), 1_usize..64, 1_usize..2_000)
            .prop_map(|(at, len, times)| Mutation::Repeat { at, len, times }),
        2 => (any::<usize>(), prop_oneof![Just(u32::MAX), Just(0x7FFF_FFFF), Just(65_535), Just(0), any::<u32>()])
            .prop_map(|(at, value)| Mutation::Forge { at, value }),
    ]
}

fn apply(mut file: Vec<u8>, mutation: &Mutation) -> Vec<u8> {
    let n = file.len().max(1);
    match *mutation {
        Mutation::Flip { at, xor } => {
            if let Some(b) = file.get_mut(at % n) {
                *b ^= xor;
            }
        }
        Mutation::Insert { at, ref bytes } => {
            let at = at % n;
            file.splice(at..at, bytes.iter().copied());
        }
        Mutation::Truncate { at } => file.truncate(at % n),
        Mutation::Repeat { at, len, times } => {
            let at = at % n;
            let end = (at + len).min(file.len());
            let chunk = file[at..end].to_vec();
            let repeated: Vec<u8> = chunk.iter().copied().cycle().take(chunk.len() * times).collect();
            file.splice(end..end, repeated);
        }
        Mutation::Forge { at, value } => {
            let at = at % n;
            for (i, b) in value.to_be_bytes().into_iter().enumerate() {
                if let Some(slot) = file.get_mut(at + i) {
                    *slot = b;
                }
            }
        }
    }
    file
}

/// The property: no panic, not slow, and a decode that stays within what
/// the probe announced (the decode budget is reserved from the probe).
fn check(file: &[u8]) -> Result<(), TestCaseError> {
    let limits = limits();
    let probed = probe(file, &limits);
    let started = Instant::now();
    let (decoded, peak) = peak_of(|| decode(file, &limits));
    prop_assert!(started.elapsed() < SLOW, "decode took {:?}", started.elapsed());
    match (&probed, &decoded) {
        (Ok(p), _) => {
            let allowed = usize::try_from(p.decoded_bytes).unwrap_or(usize::MAX) + 2 * file.len() + OVERHEAD;
            prop_assert!(
                peak <= allowed,
                "decode peaked at {peak} B, the probe announced {} B",
                p.decoded_bytes
            );
        }
        (Err(_), Ok(_)) => prop_assert!(false, "the probe refused a file the decoder accepted"),
        (Err(_), Err(_)) => prop_assert!(peak <= 2 * file.len() + OVERHEAD, "a refused file cost {peak} B"),
    }
    if let Ok(d) = decoded {
        prop_assert!(u64::from(d.rgb.width()) * u64::from(d.rgb.height()) <= limits.max_pixels);
    }
    Ok(())
}

proptest! {

    #[test]
    fn fuzz_mutated_images_decode_safely(
        seed in 0_usize..5,
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let file = mutations.iter().fold(seeds()[seed].clone(), apply);
        check(&file)?;
    }

    #[test]
    fn fuzz_arbitrary_bytes_behind_a_real_signature(
        seed in 0_usize..5,
        keep in 0_usize..64,
        tail in prop::collection::vec(any::<u8>(), 0..4_096),
    ) {
        let mut file = seeds()[seed].clone();
        file.truncate(keep.min(file.len()));
        file.extend(tail);
        check(&file)?;
    }
}

/// The bombs themselves, not left to chance.
#[test]
fn scan_and_chunk_bombs_are_refused_cheaply() {
    // A progressive JPEG whose last scan repeats 5,000 times.
    let jpeg = progressive_jpeg();
    let last_sos = jpeg.windows(2).rposition(|w| w == [0xFF, 0xDA]).expect("a scan");
    let eoi = jpeg.len() - 2;
    let scan = jpeg[last_sos..eoi].to_vec();
    let mut bomb = jpeg[..eoi].to_vec();
    for _ in 0..5_000 {
        bomb.extend_from_slice(&scan);
    }
    bomb.extend_from_slice(&[0xFF, 0xD9]);
    let started = Instant::now();
    let refused = probe(&bomb, &limits()).expect_err("too many scans");
    assert!(refused.to_string().contains("scans"), "{refused}");
    assert!(decode(&bomb, &limits()).is_err());
    assert!(started.elapsed() < SLOW);

    // A PNG claiming 100,000 × 100,000 pixels: refused before any allocation.
    let mut huge = png(false);
    huge[16..20].copy_from_slice(&100_000_u32.to_be_bytes());
    huge[20..24].copy_from_slice(&100_000_u32.to_be_bytes());
    let (result, peak) = peak_of(|| decode(&huge, &limits()));
    assert!(result.is_err());
    assert!(peak < OVERHEAD, "{peak} B allocated for a refused header");

    // A PNG whose compressed data repeats thousands of times (a chunk bomb).
    let mut chunky = png(true);
    let idat = chunky.windows(4).position(|w| w == b"IDAT").expect("IDAT") - 4;
    let len = u32::from_be_bytes(chunky[idat..idat + 4].try_into().expect("4 bytes")) as usize;
    let chunk = chunky[idat..idat + 12 + len].to_vec();
    let at = idat + 12 + len;
    let copies: Vec<u8> = chunk.iter().copied().cycle().take(chunk.len() * 2_000).collect();
    chunky.splice(at..at, copies);
    if let Ok(limits_ok) = std::panic::catch_unwind(|| check(&chunky)) {
        limits_ok.expect("within the probe's bytes");
    } else {
        panic!("the chunk bomb panicked the decoder");
    }
}
