//! Figures for people: images side by side, labelled panels, amplified differences, PNG bytes.

use crate::model::preprocess::Pixels;
use anyhow::{anyhow, Result};
use image::{Rgb, RgbImage};
use plotters::style::FontStyle;
use std::sync::OnceLock;

pub(crate) const FONT: &str = "sans-serif";
// Font sizes are even: plotters' ab_glyph renderer truncates `size / 2 + glyph top` towards
// zero, which at odd sizes lifts glyphs that start below the middle (the "." in "25.0") a pixel.
static DEJAVU_SANS: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");

/// Registers the embedded font as "sans-serif" for plotters, once per process.
pub(crate) fn register_font() -> Result<()> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            plotters::style::register_font(FONT, FontStyle::Normal, DEJAVU_SANS)
                .map_err(|_| "the embedded DejaVu Sans font could not be parsed".to_string())
        })
        .clone()
        .map_err(|e| anyhow!(e))
}

/// A figure encoded as PNG.
pub fn png_bytes(img: &RgbImage) -> anyhow::Result<Vec<u8>> {
    let mut bytes = std::io::Cursor::new(vec![]);
    img.write_to(&mut bytes, image::ImageFormat::Png)?;
    Ok(bytes.into_inner())
}

/// Panels in one row, enlarged as [`grid`] enlarges them, each with its caption lines under it
/// in the embedded font (the figure renders the same on a machine without system fonts); a
/// column is as wide as its panel or its longest line.
pub fn labelled_row(panels: &[(Pixels, Vec<String>)]) -> anyhow::Result<RgbImage> {
    use plotters::prelude::*;
    let Some((first, _)) = panels.first() else {
        return Ok(RgbImage::new(1, 1));
    };
    register_font()?;
    let font = (FONT, CAPTION_SIZE).into_font();
    let (w, h) = (first.width as u32, first.height as u32);
    let zoom = (GRID_HEIGHT / h.max(1)).max(1);
    let mut columns = Vec::with_capacity(panels.len());
    for (_, caption) in panels {
        let mut width = w * zoom;
        for line in caption {
            let (text, _) = font
                .box_size(line)
                .map_err(|e| anyhow::anyhow!("cannot measure the caption {line:?}: {e}"))?;
            width = width.max(text);
        }
        columns.push(width);
    }
    let lines = panels.iter().map(|(_, l)| l.len()).max().unwrap_or(0) as u32;
    let width = columns.iter().map(|c| c + GRID_GAP).sum::<u32>() + GRID_GAP;
    let caption_top = GRID_GAP + h * zoom + 2;
    let total = caption_top + lines * CAPTION_LINE + GRID_GAP;
    let mut canvas = RgbImage::from_pixel(width, total, Rgb([255, 255, 255]));
    let mut x0 = GRID_GAP;
    let mut lefts = vec![];
    for ((panel, _), column) in panels.iter().zip(&columns) {
        let image = grid(&[vec![panel.clone()]]);
        let inner = image::imageops::crop_imm(&image, GRID_GAP, GRID_GAP, w * zoom, h * zoom).to_image();
        image::imageops::replace(&mut canvas, &inner, x0 as i64, GRID_GAP as i64);
        lefts.push(x0);
        x0 += column + GRID_GAP;
    }
    let mut buffer = canvas.into_raw();
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (width, total)).into_drawing_area();
        let style = TextStyle::from(font.clone()).color(&BLACK);
        for ((_, caption), &x) in panels.iter().zip(&lefts) {
            for (l, line) in caption.iter().enumerate() {
                let y = caption_top + l as u32 * CAPTION_LINE;
                root.draw_text(line, &style, (x as i32, y as i32))
                    .map_err(|e| anyhow::anyhow!("cannot draw the caption {line:?}: {e}"))?;
            }
        }
        root.present()
            .map_err(|e| anyhow::anyhow!("cannot draw the captions: {e}"))?;
    }
    RgbImage::from_raw(width, total, buffer).ok_or_else(|| anyhow::anyhow!("caption canvas of the wrong size"))
}

/// The signed difference `z − original` around mid-grey, scaled so that the largest change
/// reaches black or white.
pub fn difference(original: &Pixels, z: &Pixels) -> Pixels {
    amplified_difference(original, z).0
}

/// [`difference`] and its gain: how many times the change is enlarged.
pub fn amplified_difference(original: &Pixels, z: &Pixels) -> (Pixels, f64) {
    let peak = z
        .data
        .iter()
        .zip(&original.data)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max)
        .max(1e-12);
    let diff = z
        .data
        .iter()
        .zip(&original.data)
        .map(|(a, b)| 0.5 + 0.5 * (a - b) / peak)
        .collect();
    (original.with_data(diff), 0.5 / peak)
}

/// The height panels are enlarged to (nearest neighbour, whole factors), and the gap between them.
const GRID_HEIGHT: u32 = 160;
const GRID_GAP: u32 = 6;
/// Line height and font size of the captions under labelled panels (pixels).
const CAPTION_LINE: u32 = 16;
const CAPTION_SIZE: f64 = 12.0;

/// Panels of one size in rows, enlarged (nearest neighbour) to about 160 pixels high, on white.
pub fn grid(rows: &[Vec<Pixels>]) -> RgbImage {
    let Some(first) = rows.iter().flatten().next() else {
        return RgbImage::new(1, 1);
    };
    let (w, h) = (first.width as u32, first.height as u32);
    let zoom = (GRID_HEIGHT / h.max(1)).max(1);
    let gap = GRID_GAP;
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0) as u32;
    let mut out = RgbImage::from_pixel(
        columns * (w * zoom + gap) + gap,
        rows.len() as u32 * (h * zoom + gap) + gap,
        Rgb([255, 255, 255]),
    );
    for (r, row) in rows.iter().enumerate() {
        let y0 = gap + r as u32 * (h * zoom + gap);
        for (i, panel) in row.iter().enumerate() {
            let p = panel.to_rgb8();
            let x0 = gap + i as u32 * (w * zoom + gap);
            for y in 0..h * zoom {
                for x in 0..w * zoom {
                    out.put_pixel(x0 + x, y0 + y, *p.get_pixel(x / zoom, y / zoom));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labelled_row_writes_every_caption_under_its_panel_and_widens_for_long_lines() {
        // Two white 16×16 panels (enlarged 10×): any dark pixel below them is caption text.
        let white = Pixels {
            height: 16,
            width: 16,
            channels: 1,
            data: vec![1.0; 256],
        };
        let long = "a caption much longer than the panel it stands under".to_string();
        let img = labelled_row(&[
            (white.clone(), vec!["first".into()]),
            (white, vec!["second".into(), long]),
        ])
        .unwrap();
        let panel = 160;
        let top = GRID_GAP + panel;
        assert!(img.height() >= top + 2 * CAPTION_LINE, "room for two caption lines");
        let dark_in = |x0: u32, x1: u32, y0: u32, y1: u32| {
            (y0..y1.min(img.height())).any(|y| (x0..x1.min(img.width())).any(|x| img.get_pixel(x, y)[0] < 128))
        };
        assert!(!dark_in(0, img.width(), 0, top), "the panels stay white");
        assert!(
            dark_in(GRID_GAP, GRID_GAP + panel, top, top + CAPTION_LINE),
            "the first caption"
        );
        let second = 2 * GRID_GAP + panel;
        assert!(
            dark_in(second, img.width(), top, top + CAPTION_LINE),
            "the second caption"
        );
        assert!(
            dark_in(second, img.width(), top + CAPTION_LINE, top + 2 * CAPTION_LINE),
            "its second line"
        );
        assert!(
            img.width() > 3 * GRID_GAP + 2 * panel + 50,
            "the second column widens for its long line: {}",
            img.width()
        );
    }
}
