//! The "Summary" sheet: what was asked (request and inputs), what the analysis
//! found in each input, and where the time went, as stacked tables under a frozen
//! title row.

use rust_xlsxwriter::{Color, Format, Worksheet, XlsxError};

use atelier_core::analysis::{ImageAnalysis, parse_hex};
use atelier_core::pipeline::{AnalysisOutput, JobState, ProcessingTimes};
use atelier_core::request::BackgroundKind;

use super::{Styles, cell_text};

/// Column widths (characters) of the stacked tables; column B holds the request's
/// values and the inputs' sources, so it is the wide one, and the colour swatches
/// from column O on need room for `#rrggbb (nn%)`.
const WIDTHS: [f64; 20] = [
    18.0, 40.0, 11.0, 11.0, 11.0, 11.0, 11.0, 11.0, 10.0, 11.0, 15.0, 15.0, 17.0, 11.0, 24.0, 14.0, 14.0,
    14.0, 14.0, 14.0,
];

/// Builds the sheet. Rows are written top to bottom; each table starts with a
/// bold section title and a header row.
pub(super) fn sheet(state: &JobState, styles: &Styles) -> Result<Worksheet, XlsxError> {
    let mut sheet = Worksheet::new();
    sheet.set_name("Summary")?;
    for (col, width) in (0u16..).zip(WIDTHS) {
        sheet.set_column_width(col, width)?;
    }
    let spec = &state.spec;
    sheet.write_string_with_format(0, 0, "Atelier report", &styles.title)?;
    sheet.write_string_with_format(0, 1, spec.id.to_string(), &styles.title)?;
    sheet.set_freeze_panes(1, 0)?;

    let mut row = 2;
    row = request(&mut sheet, row, state, styles)? + 1;
    row = inputs(&mut sheet, row, state, styles)? + 1;
    row = analysis(&mut sheet, row, &state.analyses, styles)? + 1;
    timings(&mut sheet, row, &state.times, styles)?;
    Ok(sheet)
}

fn section(
    sheet: &mut Worksheet,
    row: u32,
    title: &str,
    headers: &[&str],
    styles: &Styles,
) -> Result<u32, XlsxError> {
    sheet.write_string_with_format(row, 0, title, &styles.section)?;
    for (col, header) in (0u16..).zip(headers) {
        sheet.write_string_with_format(row + 1, col, *header, &styles.header)?;
    }
    Ok(row + 2)
}

/// Key/value rows describing the request. Returns the next free row.
fn request(sheet: &mut Worksheet, row: u32, state: &JobState, styles: &Styles) -> Result<u32, XlsxError> {
    let spec = &state.spec;
    let req = &spec.request;
    let mut row = section(sheet, row, "Request", &["Field", "Value"], styles)?;
    let upscale = req
        .effective_upscale()
        .map_or_else(|| "off".to_string(), |f| format!("x{}", f.get()));
    let kind = match spec.kind {
        atelier_core::job::JobKind::Images => "images",
        atelier_core::job::JobKind::Full => "full",
    };
    let fields = [
        ("Job id", spec.id.to_string()),
        ("Kind", kind.to_string()),
        ("Product type", req.product_type.as_str().to_string()),
        ("Gender", req.gender.as_str().to_string()),
        ("Text", req.text.clone().unwrap_or_default()),
        ("Upscale factor", upscale),
        ("Priority", req.effective_priority().to_string()),
        ("Inputs", req.input_images.len().to_string()),
        (
            "Images made",
            (state.variations.len() + state.upscaled.len()).to_string(),
        ),
    ];
    for (name, value) in fields {
        sheet.write_string_with_format(row, 0, name, &styles.header)?;
        sheet.write_string_with_format(row, 1, cell_text(&value), &styles.text)?;
        row += 1;
    }
    Ok(row)
}

/// One row per input photo: where it came from and what was asked of it.
fn inputs(sheet: &mut Worksheet, row: u32, state: &JobState, styles: &Styles) -> Result<u32, XlsxError> {
    let mut headers = vec!["Input", "Source", "View"];
    headers.extend(BackgroundKind::ALL.iter().map(|k| k.as_str()));
    let mut row = section(sheet, row, "Inputs (requested backgrounds)", &headers, styles)?;
    for (i, input) in state.spec.request.input_images.iter().enumerate() {
        // The stored source (a file name or URL) when known, else the request's URL.
        let source = state
            .spec
            .inputs
            .get(i)
            .map_or(input.url.as_str(), |s| s.source.as_str());
        sheet.write_number_with_format(row, 0, i as f64, &styles.integer)?;
        sheet.write_string_with_format(row, 1, cell_text(source), &styles.text)?;
        sheet.write_string_with_format(row, 2, input.view.as_str(), &styles.text)?;
        for (col, &count) in (3u16..).zip(&input.backgrounds) {
            sheet.write_number_with_format(row, col, count, &styles.integer)?;
        }
        row += 1;
    }
    Ok(row)
}

const ANALYSIS_HEADERS: [&str; 15] = [
    "Input",
    "Width",
    "Height",
    "Coverage",
    "Box x",
    "Box y",
    "Box width",
    "Box height",
    "Mask",
    "Backdrop",
    "Mean luminance",
    "Shadows clipped",
    "Highlights clipped",
    "Sharpness",
    "Dominant colours (share)",
];

/// One row per analysed input; the dominant colours fill the cells from the last
/// header onwards, each cell painted in its colour.
fn analysis(
    sheet: &mut Worksheet,
    row: u32,
    analyses: &[AnalysisOutput],
    styles: &Styles,
) -> Result<u32, XlsxError> {
    let mut row = section(sheet, row, "Analysis", &ANALYSIS_HEADERS, styles)?;
    for output in analyses {
        let a: &ImageAnalysis = &output.analysis;
        let numbers: [(f64, &Format); 8] = [
            (output.input as f64, &styles.integer),
            (f64::from(a.width), &styles.integer),
            (f64::from(a.height), &styles.integer),
            (f64::from(a.coverage), &styles.percent),
            (f64::from(a.bounding_box.x), &styles.integer),
            (f64::from(a.bounding_box.y), &styles.integer),
            (f64::from(a.bounding_box.width), &styles.integer),
            (f64::from(a.bounding_box.height), &styles.integer),
        ];
        for (col, (value, format)) in (0u16..).zip(numbers) {
            sheet.write_number_with_format(row, col, value, format)?;
        }
        let mask = match a.mask_source {
            atelier_core::analysis::MaskSource::Alpha => "alpha",
            atelier_core::analysis::MaskSource::Backdrop => "backdrop",
            atelier_core::analysis::MaskSource::Model => "model",
        };
        sheet.write_string_with_format(row, 8, mask, &styles.text)?;
        swatch(sheet, row, 9, &a.backdrop_color, None, styles)?;
        sheet.write_number_with_format(row, 10, f64::from(a.exposure.mean_luminance), &styles.fraction)?;
        sheet.write_number_with_format(row, 11, f64::from(a.exposure.clipped_shadows), &styles.percent)?;
        sheet.write_number_with_format(row, 12, f64::from(a.exposure.clipped_highlights), &styles.percent)?;
        sheet.write_number_with_format(row, 13, a.sharpness, &styles.decimal)?;
        for (col, colour) in (14u16..).zip(&a.palette) {
            swatch(sheet, row, col, &colour.hex, Some(colour.share), styles)?;
        }
        row += 1;
    }
    Ok(row)
}

/// Writes a colour's hex (and share) in a cell painted with that colour, in black
/// or white text, whichever reads better on it.
fn swatch(
    sheet: &mut Worksheet,
    row: u32,
    col: u16,
    hex: &str,
    share: Option<f32>,
    styles: &Styles,
) -> Result<(), XlsxError> {
    let text = match share {
        Some(s) => format!("{hex} ({:.0}%)", f64::from(s) * 100.0),
        None => hex.to_string(),
    };
    let Some([r, g, b]) = parse_hex(hex) else {
        return sheet
            .write_string_with_format(row, col, cell_text(&text), &styles.text)
            .map(|_| ());
    };
    let luma = 0.2126 * f64::from(r) + 0.7152 * f64::from(g) + 0.0722 * f64::from(b);
    let ink = if luma > 140.0 { Color::Black } else { Color::White };
    let format = styles
        .text
        .clone()
        .set_background_color(Color::RGB(
            (u32::from(r) << 16) | (u32::from(g) << 8) | u32::from(b),
        ))
        .set_font_color(ink);
    sheet.write_string_with_format(row, col, text, &format)?;
    Ok(())
}

/// The `processing_times` of the job, one stage per row, in seconds.
fn timings(
    sheet: &mut Worksheet,
    row: u32,
    times: &ProcessingTimes,
    styles: &Styles,
) -> Result<u32, XlsxError> {
    let mut row = section(sheet, row, "Stage timings", &["Stage", "Seconds"], styles)?;
    for (name, seconds) in times.entries() {
        sheet.write_string_with_format(row, 0, name, &styles.text)?;
        sheet.write_number_with_format(row, 1, seconds, &styles.seconds)?;
        row += 1;
    }
    Ok(row)
}
