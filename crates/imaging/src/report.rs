//! The Excel report of a job: a "Summary" sheet (the request, the analysis of each
//! input, the stage timings) and an "Images" sheet with one row per output image
//! and its thumbnail embedded, so a merchandiser can review a whole request in one
//! file without opening the images.
//!
//! Built in memory with rust_xlsxwriter; the caller stores the bytes wherever the
//! job's artefacts go.

mod summary;

use image::RgbImage;
use rust_xlsxwriter::{
    Color, DocProperties, Format, FormatAlign, Image, ObjectMovement, Workbook, Worksheet,
};

use atelier_core::pipeline::JobState;
use atelier_core::settings::ReportSettings;

use crate::ImagingError;
use crate::resize::{self, Filter};

/// JPEG quality of embedded thumbnails: small files, no visible artefacts at
/// thumbnail size.
const THUMBNAIL_QUALITY: u8 = 85;
/// Space around a thumbnail inside its cell, in pixels.
const THUMBNAIL_PADDING: u32 = 3;
/// Longest text written to a cell. Excel's limit is 32 767 characters; sources
/// can be long `data:` URIs that would be useless in a report anyway.
const MAX_CELL_CHARS: usize = 1_000;

/// Which family an output image belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageKind {
    /// A background variation made by the generation stage.
    Variation,
    /// An upscaled copy of a variation.
    Upscaled,
}

impl ImageKind {
    /// Lower-case name, as written in the report.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Variation => "variation",
            Self::Upscaled => "upscaled",
        }
    }
}

/// One output image as the report lists it.
#[derive(Clone)]
pub struct ReportImage {
    pub kind: ImageKind,
    /// Variation index (for an upscaled image, the variation it was made from).
    pub index: usize,
    /// Index of the input photo it derives from.
    pub input: usize,
    /// Background kind, e.g. `white`.
    pub background: String,
    pub width: u32,
    pub height: u32,
    /// Path of the image file relative to the job's output folder.
    pub file: String,
    /// Seconds spent making this image.
    pub seconds: f64,
    /// Remark shown beside the image, e.g. why the upscale fell back to the original.
    pub note: Option<String>,
    /// Small copy for embedding; see [`thumbnail`].
    pub thumbnail: RgbImage,
}

impl std::fmt::Debug for ReportImage {
    /// Everything but the thumbnail's pixels, which would flood logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReportImage")
            .field("kind", &self.kind)
            .field("index", &self.index)
            .field("input", &self.input)
            .field("background", &self.background)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("file", &self.file)
            .field("seconds", &self.seconds)
            .field("note", &self.note)
            .field("thumbnail", &self.thumbnail.dimensions())
            .finish()
    }
}

/// Shrinks `img` to `height` pixels high (keeping its aspect ratio) with a box
/// filter, the right kernel for large reductions. Images already that small are
/// returned as they are, never enlarged.
pub fn thumbnail(img: &RgbImage, height: u32) -> Result<RgbImage, ImagingError> {
    let (w, h) = img.dimensions();
    if w == 0 || h == 0 {
        return Err(ImagingError::Resize(format!(
            "cannot make a thumbnail of an empty {w}x{h} image"
        )));
    }
    if height == 0 {
        return Err(ImagingError::Resize("thumbnail height must be positive".into()));
    }
    if h <= height {
        return Ok(img.clone());
    }
    let width = ((f64::from(w) * f64::from(height) / f64::from(h)).round() as u32).max(1);
    resize::rgb(img, width, height, Filter::Box)
}

/// Builds the report and returns the `.xlsx` file's bytes.
///
/// Thumbnails taller than `settings.thumbnail_height` are shrunk first. Identical
/// thumbnails are stored once in the file (rust_xlsxwriter de-duplicates media).
pub fn build_report(
    state: &JobState,
    images: &[ReportImage],
    settings: &ReportSettings,
) -> Result<Vec<u8>, ImagingError> {
    let styles = Styles::new();
    let mut workbook = Workbook::new();
    workbook.set_properties(
        &DocProperties::new()
            .set_title(format!("Atelier report {}", state.spec.id))
            .set_author("Atelier"),
    );
    workbook.push_worksheet(summary::sheet(state, &styles).map_err(ImagingError::Report)?);
    workbook.push_worksheet(images_sheet(images, settings, &styles)?);
    workbook.save_to_buffer().map_err(ImagingError::Report)
}

/// Cell formats shared by both sheets.
pub(crate) struct Styles {
    pub title: Format,
    pub section: Format,
    pub header: Format,
    pub text: Format,
    pub integer: Format,
    pub seconds: Format,
    pub percent: Format,
    pub fraction: Format,
    pub decimal: Format,
}

impl Styles {
    fn new() -> Self {
        let top = Format::new().set_align(FormatAlign::Top);
        Self {
            title: Format::new().set_bold().set_font_size(14),
            section: Format::new().set_bold().set_font_size(12),
            header: Format::new()
                .set_bold()
                .set_background_color(Color::RGB(0xE7_E6_E6))
                .set_align(FormatAlign::Top),
            text: top.clone(),
            integer: top.clone().set_num_format("0"),
            seconds: top.clone().set_num_format("0.000"),
            percent: top.clone().set_num_format("0.0%"),
            fraction: top.clone().set_num_format("0.000"),
            decimal: top.set_num_format("0.0"),
        }
    }
}

/// `s`, cut to a length a cell can hold and a reader can use.
pub(crate) fn cell_text(s: &str) -> String {
    if s.chars().count() <= MAX_CELL_CHARS {
        return s.to_string();
    }
    let mut cut: String = s.chars().take(MAX_CELL_CHARS - 1).collect();
    cut.push('…');
    cut
}

const IMAGE_HEADERS: [(&str, f64); 10] = [
    ("Kind", 11.0),
    ("Index", 7.0),
    ("Input", 7.0),
    ("Background", 12.0),
    ("Width", 8.0),
    ("Height", 8.0),
    ("File", 30.0),
    ("Seconds", 9.0),
    ("Note", 30.0),
    ("Thumbnail", 12.0),
];

/// The "Images" sheet: a header row with an autofilter, then one row per image,
/// each as tall as its thumbnail.
fn images_sheet(
    images: &[ReportImage],
    settings: &ReportSettings,
    styles: &Styles,
) -> Result<Worksheet, ImagingError> {
    let xlsx = ImagingError::Report;
    let mut sheet = Worksheet::new();
    sheet.set_name("Images").map_err(xlsx)?;
    for (col, (name, width)) in (0u16..).zip(IMAGE_HEADERS) {
        sheet
            .write_string_with_format(0, col, name, &styles.header)
            .map_err(xlsx)?;
        sheet.set_column_width(col, width).map_err(xlsx)?;
    }
    let thumb_col = (IMAGE_HEADERS.len() - 1) as u16;
    let mut widest = 0;
    for (row, image) in (1u32..).zip(images) {
        write_image_row(&mut sheet, row, image, styles).map_err(xlsx)?;
        if image.thumbnail.width() == 0 || image.thumbnail.height() == 0 {
            // Nothing to show; the row itself still lists the image.
            continue;
        }
        let thumb = fit_thumbnail(&image.thumbnail, settings.thumbnail_height)?;
        let bytes = crate::encode::jpeg(&thumb, THUMBNAIL_QUALITY)?;
        let picture = Image::new_from_buffer(&bytes)
            .map_err(xlsx)?
            .set_alt_text(format!(
                "{} {} ({})",
                image.kind.as_str(),
                image.index,
                image.background
            ))
            .set_object_movement(ObjectMovement::MoveAndSizeWithCells);
        sheet
            .set_row_height_pixels(row, thumb.height() + 2 * THUMBNAIL_PADDING)
            .map_err(xlsx)?;
        sheet
            .insert_image_with_offset(row, thumb_col, &picture, THUMBNAIL_PADDING, THUMBNAIL_PADDING)
            .map_err(xlsx)?;
        widest = widest.max(thumb.width());
    }
    if widest > 0 {
        sheet
            .set_column_width_pixels(thumb_col, widest + 2 * THUMBNAIL_PADDING)
            .map_err(xlsx)?;
    }
    let last_row = u32::try_from(images.len()).unwrap_or(u32::MAX);
    sheet.autofilter(0, 0, last_row, thumb_col).map_err(xlsx)?;
    sheet.set_freeze_panes(1, 0).map_err(xlsx)?;
    Ok(sheet)
}

/// `img` shrunk (never enlarged) to fit `height` rows and at most four times as
/// wide, so a panorama cannot make the column absurdly wide.
fn fit_thumbnail(img: &RgbImage, height: u32) -> Result<RgbImage, ImagingError> {
    let height = height.max(1);
    let (w, h) = img.dimensions();
    let scale = (f64::from(height) / f64::from(h)).min(f64::from(height) * 4.0 / f64::from(w));
    if scale >= 1.0 {
        return Ok(img.clone());
    }
    let fw = ((f64::from(w) * scale).round() as u32).max(1);
    let fh = ((f64::from(h) * scale).round() as u32).max(1);
    resize::rgb(img, fw, fh, Filter::Box)
}

fn write_image_row(
    sheet: &mut Worksheet,
    row: u32,
    image: &ReportImage,
    styles: &Styles,
) -> Result<(), rust_xlsxwriter::XlsxError> {
    sheet.write_string_with_format(row, 0, image.kind.as_str(), &styles.text)?;
    sheet.write_number_with_format(row, 1, image.index as f64, &styles.integer)?;
    sheet.write_number_with_format(row, 2, image.input as f64, &styles.integer)?;
    sheet.write_string_with_format(row, 3, cell_text(&image.background), &styles.text)?;
    sheet.write_number_with_format(row, 4, image.width, &styles.integer)?;
    sheet.write_number_with_format(row, 5, image.height, &styles.integer)?;
    sheet.write_string_with_format(row, 6, cell_text(&image.file), &styles.text)?;
    sheet.write_number_with_format(row, 7, image.seconds, &styles.seconds)?;
    if let Some(note) = &image.note {
        sheet.write_string_with_format(row, 8, cell_text(note), &styles.text)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbnails_keep_aspect_and_never_enlarge() {
        let img = RgbImage::from_pixel(300, 400, image::Rgb([10, 20, 30]));
        let t = thumbnail(&img, 96).expect("thumb");
        assert_eq!(t.dimensions(), (72, 96));
        assert_eq!(t.get_pixel(36, 48), &image::Rgb([10, 20, 30]));
        let small = RgbImage::new(40, 50);
        assert_eq!(thumbnail(&small, 96).expect("thumb").dimensions(), (40, 50));
        // Extreme aspect ratios still give at least one column.
        assert_eq!(
            thumbnail(&RgbImage::new(1, 1000), 10)
                .expect("thumb")
                .dimensions(),
            (1, 10)
        );
        assert!(thumbnail(&RgbImage::new(0, 10), 10).is_err());
        assert!(thumbnail(&img, 0).is_err());
    }

    #[test]
    fn embedded_thumbnails_fit_the_row_and_a_sane_width() {
        let tall = RgbImage::new(300, 400);
        assert_eq!(fit_thumbnail(&tall, 96).expect("fit").dimensions(), (72, 96));
        let panorama = RgbImage::new(4000, 100);
        assert_eq!(fit_thumbnail(&panorama, 96).expect("fit").dimensions(), (384, 10));
        let small = RgbImage::new(20, 30);
        assert_eq!(fit_thumbnail(&small, 96).expect("fit").dimensions(), (20, 30));
    }

    #[test]
    fn long_text_is_cut_to_fit_a_cell() {
        assert_eq!(cell_text("short"), "short");
        let long = "x".repeat(50_000);
        let cut = cell_text(&long);
        assert_eq!(cut.chars().count(), MAX_CELL_CHARS);
        assert!(cut.ends_with('…'));
    }
}
