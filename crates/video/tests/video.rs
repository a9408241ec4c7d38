//! The slideshow written by `render_slideshow`, decoded back with ffmpeg-next:
//! container facts, frame count and duration against the contract, faststart
//! layout, and what the frames actually show.

use std::borrow::Cow;
use std::path::Path;
use std::time::Instant;

use atelier_core::settings::{Settings, VideoSettings};
use atelier_imaging::video::Still;
use atelier_video::ImagingError;
use atelier_video::{
    RenderOptions, decode_frame, frame_count, probe, render_slideshow, render_stills, stream_info,
};
use image::{Rgb, RgbImage};

const RED: [u8; 3] = [200, 40, 40];
const GREEN: [u8; 3] = [40, 160, 60];
const BLUE: [u8; 3] = [40, 60, 200];

fn settings() -> VideoSettings {
    Settings::defaults().video
}

/// A solid image with a dark disc near its top-left corner, away from its centre.
fn photo(width: u32, height: u32, colour: [u8; 3]) -> RgbImage {
    let (cx, cy, r) = (
        width as f64 * 0.2,
        height as f64 * 0.2,
        width.min(height) as f64 * 0.1,
    );
    RgbImage::from_fn(width, height, |x, y| {
        let (dx, dy) = (x as f64 - cx, y as f64 - cy);
        if dx * dx + dy * dy < r * r {
            Rgb([20, 20, 20])
        } else {
            Rgb(colour)
        }
    })
}

fn three_images() -> Vec<RgbImage> {
    vec![
        photo(900, 600, RED),    // landscape: letterboxed top and bottom
        photo(500, 1000, GREEN), // tall: pillarboxed left and right
        photo(300, 300, BLUE),   // small square: enlarged
    ]
}

fn close(pixel: &Rgb<u8>, colour: [u8; 3], tolerance: i32) -> bool {
    pixel
        .0
        .iter()
        .zip(colour)
        .all(|(&a, b)| (i32::from(a) - i32::from(b)).abs() <= tolerance)
}

/// Top-level MP4 box types in file order.
fn top_level_boxes(bytes: &[u8]) -> Vec<String> {
    let mut boxes = Vec::new();
    let mut at = 0usize;
    while at + 8 <= bytes.len() {
        let size32 = u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        let kind = String::from_utf8_lossy(&bytes[at + 4..at + 8]).into_owned();
        let size = match size32 {
            0 => bytes.len() - at,
            1 => u64::from_be_bytes(bytes[at + 8..at + 16].try_into().expect("8 bytes")) as usize,
            n => n as usize,
        };
        assert!(size >= 8, "box {kind} at {at} has size {size}");
        boxes.push(kind);
        at += size;
    }
    assert_eq!(at, bytes.len(), "boxes cover the file exactly");
    boxes
}

/// Rows of the centre column whose colour is close to `colour`.
fn rows_of(frame: &RgbImage, colour: [u8; 3]) -> usize {
    let x = frame.width() / 2;
    (0..frame.height())
        .filter(|&y| close(frame.get_pixel(x, y), colour, 30))
        .count()
}

#[test]
fn three_image_slideshow_decodes_back_to_the_contract() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("video.mp4");
    let s = settings();
    let started = Instant::now();
    let info = render_slideshow(&three_images(), &s, &path).expect("render");
    eprintln!(
        "render_slideshow: 3 images at {}x{}: {:?}",
        s.width,
        s.height,
        started.elapsed()
    );

    let expected = frame_count(3, &s);
    assert_eq!(expected, 135, "3 × 1.5 s × 30 fps");
    assert_eq!((info.width, info.height, info.frames), (720, 960, expected));

    let stream = stream_info(&path).expect("stream info");
    assert_eq!(stream.codec, "h264");
    assert_eq!(stream.pixel_format, "yuv420p");
    assert_eq!((stream.width, stream.height), (720, 960));

    let back = probe(&path).expect("probe");
    assert_eq!((back.width, back.height), (720, 960));
    assert_eq!(back.frames, expected, "frames counted by decoding");
    let one_frame = 1.0 / f64::from(s.fps);
    assert!(
        (back.duration_seconds - 4.5).abs() <= one_frame + 1e-9,
        "duration {} should be 4.5 s within one frame",
        back.duration_seconds
    );

    let bytes = std::fs::read(&path).expect("read");
    let boxes = top_level_boxes(&bytes);
    let moov = boxes.iter().position(|b| b == "moov").expect("moov box");
    let mdat = boxes.iter().position(|b| b == "mdat").expect("mdat box");
    assert!(moov < mdat, "faststart puts moov before mdat: {boxes:?}");
    assert_eq!(boxes.first().map(String::as_str), Some("ftyp"));
}

#[test]
fn frames_show_each_image_with_zoom_and_crossfade() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("video.mp4");
    let s = settings();
    render_slideshow(&three_images(), &s, &path).expect("render");
    let frame = |i: u32| decode_frame(&path, i).expect("decode frame");

    // The middle of image 2's slot shows image 2 at the centre, white bands at the
    // sides (the tall image is pillarboxed).
    let middle = (1.5 * f64::from(s.seconds_per_image) * f64::from(s.fps)).round() as u32;
    let mid = frame(middle);
    assert_eq!(mid.dimensions(), (720, 960));
    assert!(
        close(mid.get_pixel(360, 480), GREEN, 12),
        "centre {:?}",
        mid.get_pixel(360, 480)
    );
    assert!(
        close(mid.get_pixel(10, 480), [255, 255, 255], 8),
        "band {:?}",
        mid.get_pixel(10, 480)
    );

    // The last frame shows image 3.
    let last = frame(frame_count(3, &s) - 1);
    assert!(
        close(last.get_pixel(360, 480), BLUE, 12),
        "last {:?}",
        last.get_pixel(360, 480)
    );

    // The slot boundary between images 1 and 2 is a mix of both colours.
    let boundary = frame((f64::from(s.seconds_per_image) * f64::from(s.fps)).round() as u32);
    let c = boundary.get_pixel(360, 480).0;
    assert!(
        (70..=170).contains(&c[0]) && (70..=130).contains(&c[1]),
        "crossfade centre {c:?}"
    );

    // Slow zoom: image 1's letterboxed band grows taller over its slot.
    let (first, later) = (frame(0), frame(30));
    let (h0, h30) = (rows_of(&first, RED), rows_of(&later, RED));
    assert!((470..=490).contains(&h0), "band height at frame 0: {h0}");
    assert!(h30 > h0 + 8, "the zoom enlarges the image: {h0} -> {h30}");
}

#[test]
fn one_image_works_and_zero_images_is_an_error() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("one.mp4");
    let s = settings();
    let info = render_slideshow(&[photo(640, 480, BLUE)], &s, &path).expect("render one");
    assert_eq!(info.frames, frame_count(1, &s));
    assert_eq!(probe(&path).expect("probe").frames, 45);

    let none = dir.path().join("none.mp4");
    match render_slideshow(&[], &s, &none) {
        Err(ImagingError::Video(msg)) => assert!(msg.contains("at least one image"), "{msg}"),
        other => panic!("expected a video error, got {other:?}"),
    }
    assert!(!Path::new(&none).exists());
}

#[test]
fn without_zoom_still_frames_repeat_and_compress_to_almost_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let (zoomed, still) = (dir.path().join("zoomed.mp4"), dir.path().join("still.mp4"));
    let s = settings();
    let images = three_images();
    render_slideshow(&images, &s, &zoomed).expect("render zoomed");
    let info = render_slideshow(
        &images,
        &VideoSettings {
            zoom: 0.0,
            ..s.clone()
        },
        &still,
    )
    .expect("render still");
    assert_eq!(info.frames, frame_count(3, &s));
    assert_eq!(probe(&still).expect("probe").frames, info.frames);
    let size = |p: &Path| std::fs::metadata(p).expect("stat").len();
    assert!(
        size(&still) < size(&zoomed),
        "{} !< {}",
        size(&still),
        size(&zoomed)
    );
}

#[test]
fn stored_files_make_the_same_slideshow_as_their_pixels() {
    // What the helper is sent by `atelier process` and `atelier serve`: the
    // variations' files, decoded one per core at a time in the encoder.
    let dir = tempfile::tempdir().expect("tmp");
    let s = settings();
    let limits = Settings::defaults().limits;
    let files: Vec<Vec<u8>> = three_images()
        .iter()
        .map(|img| atelier_imaging::encode::jpeg(img, 95).expect("jpeg"))
        .collect();
    let decoded: Vec<RgbImage> = files
        .iter()
        .map(|f| atelier_imaging::decode::decode(f, &limits).expect("decode").rgb)
        .collect();
    let stills: Vec<Still<'_>> = files
        .iter()
        .map(|f| Still::File(Cow::Borrowed(f.as_slice())))
        .collect();
    let (from_files, from_pixels) = (dir.path().join("files.mp4"), dir.path().join("pixels.mp4"));
    let info =
        render_stills(&stills, Some(&limits), &s, &from_files, RenderOptions::default()).expect("files");
    render_slideshow(&decoded, &s, &from_pixels).expect("pixels");
    assert_eq!(info.frames, frame_count(3, &s));
    assert_eq!(
        std::fs::read(&from_files).expect("read"),
        std::fs::read(&from_pixels).expect("read"),
        "the same pixels make the same video"
    );
    // A file without limits, or one that is not an image, is an error.
    assert!(render_stills(&stills, None, &s, &from_files, RenderOptions::default()).is_err());
    let junk = [Still::File(Cow::Borrowed(&b"not an image"[..]))];
    let err = render_stills(&junk, Some(&limits), &s, &from_files, RenderOptions::default());
    assert!(err.is_err(), "{err:?}");
}
