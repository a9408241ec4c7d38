//! The Excel report read back with calamine: both sheets, one row per image with
//! the right cells, the request id, colour swatches and timings on the summary,
//! and one embedded picture per image in the file.

use std::io::Cursor;

use atelier_core::analysis::{BoundingBox, ColorShare, Exposure, ImageAnalysis, MaskSource};
use atelier_core::job::{JobId, JobKind, JobSpec, StoredInput};
use atelier_core::pipeline::{AnalysisOutput, JobState, ProcessingTimes, Upscaled, Variation, VariationPlan};
use atelier_core::request::{BackgroundKind, Gender, GenerateRequest, InputImage, ProductType, View};
use atelier_core::settings::ReportSettings;
use atelier_imaging::report::{ImageKind, ReportImage, build_report, thumbnail};
use calamine::{Data, Range, Reader, Xlsx, open_workbook_from_rs};
use image::{Rgb, RgbImage};

const NAVY: &str = "#1f3a5f";

fn request() -> GenerateRequest {
    GenerateRequest {
        product_type: ProductType::Tops,
        gender: Gender::Female,
        text: Some("linen summer shirt".into()),
        upscale: true,
        upscale_factor: Some(2),
        ..GenerateRequest::for_inputs(vec![InputImage {
            url: "shirt.jpg".into(),
            view: View::Front,
            backgrounds: [1, 1, 1],
        }])
    }
}

fn analysis() -> AnalysisOutput {
    AnalysisOutput {
        input: 0,
        view: View::Front,
        analysis: ImageAnalysis {
            width: 1200,
            height: 1600,
            mask_source: MaskSource::Backdrop,
            bounding_box: BoundingBox {
                x: 210,
                y: 180,
                width: 780,
                height: 1190,
            },
            coverage: 0.42,
            mask_confidence: 1.0,
            backdrop_color: "#f4f4f2".into(),
            palette: vec![
                ColorShare {
                    hex: NAVY.into(),
                    share: 0.7,
                },
                ColorShare {
                    hex: "#e8d9c0".into(),
                    share: 0.3,
                },
            ],
            exposure: Exposure {
                mean_luminance: 0.71,
                clipped_shadows: 0.001,
                clipped_highlights: 0.02,
            },
            sharpness: 512.25,
            ai: None,
        },
        mask_key: "masks/0.png".into(),
    }
}

fn state() -> JobState {
    let request = request();
    let mut state = JobState::new(JobSpec {
        id: JobId::new(),
        kind: JobKind::Full,
        request: request.clone(),
        inputs: vec![StoredInput {
            key: "inputs/0.jpg".into(),
            source: "shirt.jpg".into(),
        }],
        submitted_at_ms: 1_700_000_000_000,
    });
    state.analyses.push(analysis());
    for (index, background) in BackgroundKind::ALL.into_iter().enumerate() {
        state.variations.push(Variation {
            plan: VariationPlan {
                index,
                input: 0,
                view: View::Front,
                background,
                ordinal: 0,
            },
            seed: None,
            key: format!("variations/{index}.jpg"),
            width: 960,
            height: 1280,
            seconds: 0.1 * (index + 1) as f64,
        });
    }
    state.upscaled.push(Upscaled {
        variation: 2,
        key: "upscaled/2.jpg".into(),
        factor: 2,
        width: 960,
        height: 1280,
        fallback: Some("out of memory".into()),
        seconds: 0.05,
    });
    state.times = ProcessingTimes {
        queue_wait: 0.004,
        analysis: 0.125,
        generation: 0.25,
        upscaling: 0.375,
        post_processing: 0.5,
        saving: 0.0625,
        total: 1.3125,
    };
    state
}

/// A distinct picture per image (identical thumbnails would be stored once).
fn picture(seed: u8) -> RgbImage {
    RgbImage::from_fn(960, 1280, |x, y| {
        Rgb([seed.wrapping_mul(60), (x / 8) as u8, (y / 8) as u8])
    })
}

fn images(state: &JobState, settings: &ReportSettings) -> Vec<ReportImage> {
    let mut out: Vec<ReportImage> = state
        .variations
        .iter()
        .map(|v| ReportImage {
            kind: ImageKind::Variation,
            index: v.plan.index,
            input: v.plan.input,
            background: v.plan.background.as_str().into(),
            width: v.width,
            height: v.height,
            file: v.key.clone(),
            seconds: v.seconds,
            note: None,
            thumbnail: thumbnail(&picture(v.plan.index as u8), settings.thumbnail_height).expect("thumb"),
        })
        .collect();
    let u = &state.upscaled[0];
    out.push(ReportImage {
        kind: ImageKind::Upscaled,
        index: u.variation,
        input: 0,
        background: "random".into(),
        width: u.width,
        height: u.height,
        file: u.key.clone(),
        seconds: u.seconds,
        note: u.fallback.clone(),
        // Full size on purpose: the report shrinks thumbnails that are too tall.
        thumbnail: picture(9),
    });
    out
}

fn open(bytes: &[u8]) -> Xlsx<Cursor<Vec<u8>>> {
    open_workbook_from_rs(Cursor::new(bytes.to_vec())).expect("a valid xlsx")
}

fn text(range: &Range<Data>, row: u32, col: u32) -> String {
    match range.get_value((row, col)) {
        Some(Data::String(s)) => s.clone(),
        other => panic!("cell ({row}, {col}) is not text: {other:?}"),
    }
}

fn number(range: &Range<Data>, row: u32, col: u32) -> f64 {
    match range.get_value((row, col)) {
        Some(Data::Float(f)) => *f,
        Some(Data::Int(i)) => *i as f64,
        other => panic!("cell ({row}, {col}) is not a number: {other:?}"),
    }
}

/// Names of the zip entries, from the central directory records (`PK\x01\x02`).
fn zip_names(bytes: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    let mut at = 0;
    while let Some(found) = bytes[at..].windows(4).position(|w| w == b"PK\x01\x02") {
        let record = at + found;
        let len = u16::from_le_bytes([bytes[record + 28], bytes[record + 29]]) as usize;
        let name = &bytes[record + 46..record + 46 + len];
        names.push(String::from_utf8_lossy(name).into_owned());
        at = record + 46 + len;
    }
    names
}

#[test]
fn images_sheet_has_one_row_per_image_with_its_cells() {
    let settings = ReportSettings { thumbnail_height: 96 };
    let state = state();
    let images = images(&state, &settings);
    let bytes = build_report(&state, &images, &settings).expect("report");
    let mut book = open(&bytes);
    assert_eq!(
        book.sheet_names(),
        vec!["Summary".to_string(), "Images".to_string()]
    );

    let sheet = book.worksheet_range("Images").expect("Images sheet");
    assert_eq!(sheet.height(), 1 + images.len(), "header plus one row per image");
    assert_eq!(text(&sheet, 0, 0), "Kind");
    assert_eq!(text(&sheet, 0, 6), "File");
    for (row, image) in (1u32..).zip(&images) {
        assert_eq!(text(&sheet, row, 0), image.kind.as_str());
        assert_eq!(number(&sheet, row, 1), image.index as f64);
        assert_eq!(number(&sheet, row, 2), image.input as f64);
        assert_eq!(text(&sheet, row, 3), image.background);
        assert_eq!(number(&sheet, row, 4), f64::from(image.width));
        assert_eq!(number(&sheet, row, 5), f64::from(image.height));
        assert_eq!(text(&sheet, row, 6), image.file);
        assert!((number(&sheet, row, 7) - image.seconds).abs() < 1e-12);
    }
    assert_eq!(text(&sheet, 4, 0), "upscaled");
    assert_eq!(text(&sheet, 4, 8), "out of memory");
    assert_eq!(
        sheet.get_value((1, 8)),
        Some(&Data::Empty),
        "no note for a normal variation"
    );

    let media: Vec<String> = zip_names(&bytes)
        .into_iter()
        .filter(|n| n.starts_with("xl/media/"))
        .collect();
    assert_eq!(
        media.len(),
        images.len(),
        "one embedded thumbnail per image: {media:?}"
    );
    assert!(media.iter().all(|n| n.ends_with(".jpeg")), "{media:?}");
}

#[test]
fn summary_names_the_request_its_analysis_and_timings() {
    let settings = ReportSettings { thumbnail_height: 64 };
    let state = state();
    let bytes = build_report(&state, &images(&state, &settings), &settings).expect("report");
    let mut book = open(&bytes);
    let sheet = book.worksheet_range("Summary").expect("Summary sheet");

    let (top, left) = sheet.start().expect("cells");
    let cells: Vec<(u32, u32, &Data)> = sheet
        .cells()
        .map(|(r, c, d)| (top + r as u32, left + c as u32, d))
        .collect();
    let find = |wanted: &str| {
        cells
            .iter()
            .find(|(_, _, d)| matches!(d, Data::String(s) if s == wanted))
            .map(|&(r, c, _)| (r, c))
            .unwrap_or_else(|| panic!("no cell says {wanted:?}"))
    };
    let id = state.spec.id.to_string();
    let (row, col) = find("Job id");
    assert_eq!(text(&sheet, row, col + 1), id);
    let (row, col) = find("Product type");
    assert_eq!(text(&sheet, row, col + 1), "tops");
    let (row, col) = find("Upscale factor");
    assert_eq!(text(&sheet, row, col + 1), "x2");
    let (row, col) = find("shirt.jpg");
    assert_eq!(text(&sheet, row, col + 1), "front");
    assert_eq!([2, 3, 4].map(|d| number(&sheet, row, col + d)), [1.0, 1.0, 1.0]);

    let times = state.times;
    for (stage, seconds) in times.entries() {
        let (row, col) = find(stage);
        assert_eq!(number(&sheet, row, col + 1), seconds, "{stage}");
    }

    // The dominant colour is written as hex in a cell filled with that colour.
    let (row, col) = cells
        .iter()
        .find(|(_, _, d)| matches!(d, Data::String(s) if s.starts_with(NAVY)))
        .map(|&(r, c, _)| (r, c))
        .expect("a swatch for the dominant colour");
    assert_eq!(text(&sheet, row, col), "#1f3a5f (70%)");
    let styles = book.worksheet_style("Summary").expect("styles");
    let fill = styles
        .get((row, col))
        .and_then(|s| s.fill.as_ref())
        .and_then(|f| f.get_color());
    let fill = fill.expect("the swatch is filled");
    assert_eq!((fill.red, fill.green, fill.blue), (0x1f, 0x3a, 0x5f));
    assert!(
        number(&sheet, row, col - 1) > 500.0,
        "sharpness sits before the palette"
    );
}

#[test]
fn an_empty_job_still_makes_a_report() {
    let settings = ReportSettings { thumbnail_height: 96 };
    let state = JobState::new(state().spec);
    let bytes = build_report(&state, &[], &settings).expect("report");
    let mut book = open(&bytes);
    assert_eq!(book.worksheet_range("Images").expect("Images").height(), 1);
    assert!(zip_names(&bytes).iter().all(|n| !n.starts_with("xl/media/")));
}
