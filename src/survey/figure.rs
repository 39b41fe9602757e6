//! The survey figure (survey.png): the null fraction of each architecture's input as a
//! horizontal bar chart, grouped by family.
//!
//! Drawn with `plotters` into an RGB buffer and encoded with `image`; text uses DejaVu Sans,
//! embedded in the binary, so the figure renders the same on a machine without system fonts.

use crate::figure::{register_font, FONT};
use anyhow::{anyhow, bail, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

/// One architecture of the survey.
#[derive(Clone, Debug)]
pub struct Bar {
    /// Architecture name, drawn left of the bar.
    pub label: String,
    /// Family the bar is grouped under (e.g. "ResNet").
    pub family: String,
    /// Fraction of input directions the first layer ignores, in [0, 1].
    pub null_fraction: f64,
    /// a measured model file rather than a catalogue entry
    pub measured: bool,
}

const WIDTH: u32 = 1400;
/// The narrowest the bars' area may get; the image widens instead.
const MIN_PLOT_WIDTH: u32 = 700;
const TITLE_SIZE: f64 = 26.0;
const HEADING_SIZE: f64 = 18.0;
const LABEL_SIZE: f64 = 16.0;
const VALUE_SIZE: f64 = 16.0;
const NOTE_SIZE: f64 = 16.0;
/// Height of the title and legend above the chart.
const TOP_HEIGHT: u32 = 92;
/// Height of a family's heading row and of one bar's row.
const HEADING_ROW: u32 = 30;
const BAR_ROW: u32 = 24;
/// The value axis: tick labels and its description.
const AXIS_HEIGHT: u32 = 60;
const MARGIN: u32 = 16;

const AXIS_DESC: &str = "null fraction of the input (ignored directions / input values)";
const MEASURED_SUFFIX: &str = " (measured)";

/// One colour per family, in order (Tableau 10), repeated when there are more families.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// One row of the chart, top to bottom.
enum Row<'a> {
    Heading { family: &'a str, colour: RGBColor },
    Bar { bar: &'a Bar, colour: RGBColor },
}

/// Orders the bars into family groups: the families listed first, in the given order, then the
/// others in order of appearance. Bars keep their order within a family.
fn rows<'a>(bars: &'a [Bar], families: &[&'a str]) -> Vec<Row<'a>> {
    let mut order: Vec<&str> = Vec::new();
    for family in families.iter().copied().chain(bars.iter().map(|b| b.family.as_str())) {
        if !order.contains(&family) && bars.iter().any(|b| b.family == family) {
            order.push(family);
        }
    }
    let mut rows = Vec::new();
    for (i, family) in order.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        rows.push(Row::Heading { family, colour });
        rows.extend(
            bars.iter()
                .filter(|b| b.family == *family)
                .map(|bar| Row::Bar { bar, colour }),
        );
    }
    rows
}

fn row_height(row: &Row) -> u32 {
    match row {
        Row::Heading { .. } => HEADING_ROW,
        Row::Bar { .. } => BAR_ROW,
    }
}

fn bar_label(bar: &Bar) -> String {
    if bar.measured {
        format!("{}{MEASURED_SUFFIX}", bar.label)
    } else {
        bar.label.clone()
    }
}

/// A percentage to three significant figures ("37.5 %", "4.21 %", "0.0312 %"), never rounding
/// a fraction below one up to "100" nor a positive one down to "0".
fn percent(fraction: f64) -> String {
    let p = fraction * 100.0;
    if p == 0.0 {
        return "0 %".to_string();
    }
    if p < 0.001 {
        return "<0.001 %".to_string();
    }
    let decimals = if p >= 10.0 {
        1
    } else {
        (2.0 - p.log10().floor()).max(0.0) as usize
    };
    let text = format!("{p:.decimals$}");
    if fraction < 1.0 && text.starts_with("100") {
        ">99.9 %".to_string()
    } else {
        format!("{text} %")
    }
}

/// Mixes a colour with white: `amount` 0 keeps it, 1 gives white.
fn tint(c: RGBColor, amount: f64) -> RGBColor {
    let mix = |v: u8| (v as f64 + (255.0 - v as f64) * amount).round() as u8;
    RGBColor(mix(c.0), mix(c.1), mix(c.2))
}

fn text_width(text: &str, size: f64) -> Result<u32> {
    let (w, _) = (FONT, size)
        .into_font()
        .box_size(text)
        .map_err(|e| anyhow!("measuring the text {text:?}: {e:?}"))?;
    Ok(w)
}

fn draw_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing the survey figure: {e:?}")
}

/// Draws the null fraction of every bar as a horizontal bar chart, grouped by family in the order of `families` (families not listed go last, in order of appearance), to `path` (PNG), written to a temporary file in the same folder and renamed, so that a failure leaves nothing half-written.
pub fn draw_survey(bars: &[Bar], families: &[&str], title: &str, path: &Path) -> Result<()> {
    (|| {
        if bars.is_empty() {
            bail!("no architectures to draw");
        }
        if let Some(bad) = bars.iter().find(|b| !(0.0..=1.0).contains(&b.null_fraction)) {
            bail!(
                "{}: null fraction {} is not in [0, 1]",
                bar_label(bad),
                bad.null_fraction
            );
        }
        register_font()?;
        let rows = rows(bars, families);
        let layout = Layout::of(&rows, title)?;
        let (width, height) = (layout.width, layout.height);
        let mut pixels = vec![255u8; width as usize * height as usize * 3];
        {
            let root = BitMapBackend::with_buffer(&mut pixels, (width, height)).into_drawing_area();
            draw(&root, &rows, title, &layout)?;
            root.present().map_err(draw_err)?;
        }
        let image = image::RgbImage::from_raw(width, height, pixels)
            .ok_or_else(|| anyhow!("the pixel buffer does not match {width}x{height}"))?;
        write_png_atomically(&image, path)
    })()
    .with_context(|| format!("writing the survey figure {}", path.display()))
}

/// Pixel sizes that depend on the text: the label area on the left (the longest label or
/// heading), the margin on the right (the longest value printed after a bar), and the image,
/// widened beyond `WIDTH` when labels or the title would not otherwise fit.
struct Layout {
    label_area: u32,
    right_margin: u32,
    width: u32,
    height: u32,
}

impl Layout {
    fn of(rows: &[Row], title: &str) -> Result<Layout> {
        let mut label_width = 0;
        let mut value_width = text_width("100 %", VALUE_SIZE)?;
        for row in rows {
            match row {
                Row::Heading { family, .. } => label_width = label_width.max(text_width(family, HEADING_SIZE)?),
                Row::Bar { bar, .. } => {
                    label_width = label_width.max(text_width(&bar_label(bar), LABEL_SIZE)?);
                    value_width = value_width.max(text_width(&percent(bar.null_fraction), VALUE_SIZE)?);
                }
            }
        }
        let label_area = label_width + 28;
        let right_margin = value_width + 24;
        let width = WIDTH
            .max(MARGIN + label_area + MIN_PLOT_WIDTH + right_margin)
            .max(2 * MARGIN + text_width(title, TITLE_SIZE)?);
        let rows_height: u32 = rows.iter().map(row_height).sum();
        let height = TOP_HEIGHT + rows_height + AXIS_HEIGHT + 2 * MARGIN;
        Ok(Layout {
            label_area,
            right_margin,
            width,
            height,
        })
    }
}
/// The figure's title, and the legend of the two bar styles under it.
fn draw_title_and_legend(root: &DrawingArea<BitMapBackend, Shift>, title: &str) -> Result<()> {
    let title_style = TextStyle::from((FONT, TITLE_SIZE).into_font()).color(&BLACK);
    root.draw(&Text::new(
        title.to_string(),
        (MARGIN as i32, MARGIN as i32),
        title_style,
    ))
    .map_err(draw_err)?;
    let legend_y = (MARGIN + 48) as i32;
    let mut x = MARGIN as i32;
    let note = TextStyle::from((FONT, NOTE_SIZE).into_font())
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    for (measured, text) in [
        (
            false,
            "catalogue entry (first layer built from the architecture's definition)",
        ),
        (true, "measured model file (label ends in \"(measured)\")"),
    ] {
        let swatch = [(x, legend_y - 8), (x + 34, legend_y + 8)];
        draw_bar_shape(root, swatch, PALETTE[0], measured)?;
        root.draw(&Text::new(text, (x + 44, legend_y), note.clone()))
            .map_err(draw_err)?;
        x += 44 + text_width(text, NOTE_SIZE)? as i32 + 40;
    }
    Ok(())
}

fn draw(root: &DrawingArea<BitMapBackend, Shift>, rows: &[Row], title: &str, layout: &Layout) -> Result<()> {
    root.fill(&WHITE).map_err(draw_err)?;
    let (label_area, right_margin) = (layout.label_area, layout.right_margin);

    draw_title_and_legend(root, title)?;
    let (_, chart_area) = root.split_vertically(TOP_HEIGHT);
    let rows_height: u32 = rows.iter().map(row_height).sum();
    let mut chart = ChartBuilder::on(&chart_area)
        .margin_left(MARGIN)
        .margin_right(right_margin)
        .margin_bottom(MARGIN)
        .y_label_area_size(label_area)
        .x_label_area_size(AXIS_HEIGHT)
        .build_cartesian_2d(0f64..1f64, 0f64..rows_height as f64)
        .map_err(draw_err)?;

    // Rows are placed from the top; plotters' y grows upwards.
    let top = rows_height as f64;
    let mut spans = Vec::with_capacity(rows.len());
    let mut y = top;
    for row in rows {
        let h = row_height(row) as f64;
        spans.push((y - h, y));
        y -= h;
    }

    // A light band per family, under its heading and labels too, behind everything else.
    let mut group_start = None;
    for (i, row) in rows.iter().enumerate() {
        if let Row::Heading { colour, .. } = row {
            group_start = Some((i, *colour));
        }
        let last_of_group = matches!(rows.get(i + 1), None | Some(Row::Heading { .. }));
        if let (true, Some((start, colour))) = (last_of_group, group_start) {
            let (right, top_px) = chart.backend_coord(&(1.0, spans[start].1));
            let (_, bottom_px) = chart.backend_coord(&(1.0, spans[i].0));
            let band = Rectangle::new(
                [(MARGIN as i32, top_px), (right, bottom_px)],
                tint(colour, 0.88).filled(),
            );
            root.draw(&band).map_err(draw_err)?;
        }
    }

    chart
        .configure_mesh()
        .disable_y_mesh()
        .disable_y_axis()
        .x_labels(11)
        .x_label_formatter(&|v| {
            if *v == 0.0 {
                "0".to_string()
            } else {
                format!("{:.0} %", v * 100.0)
            }
        })
        .x_label_style((FONT, LABEL_SIZE).into_font())
        .x_desc(AXIS_DESC)
        .axis_desc_style((FONT, LABEL_SIZE).into_font())
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.15))
        .draw()
        .map_err(draw_err)?;

    let heading_style = TextStyle::from((FONT, HEADING_SIZE).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    let label_style = TextStyle::from((FONT, LABEL_SIZE).into_font())
        .color(&BLACK)
        .pos(Pos::new(HPos::Right, VPos::Center));
    let value_style = TextStyle::from((FONT, VALUE_SIZE).into_font())
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    let zero_style = value_style.clone().color(&RGBColor(90, 90, 90));
    for (row, &(y0, y1)) in rows.iter().zip(&spans) {
        let centre = (y0 + y1) / 2.0;
        let (axis_x, centre_px) = chart.backend_coord(&(0.0, centre));
        match row {
            Row::Heading { family, colour } => {
                let shade = darken(*colour);
                let style = heading_style.clone().color(&shade);
                root.draw(&Text::new(family.to_string(), (MARGIN as i32, centre_px + 2), style))
                    .map_err(draw_err)?;
            }
            Row::Bar { bar, colour } => {
                root.draw(&Text::new(
                    bar_label(bar),
                    (axis_x - 10, centre_px),
                    label_style.clone(),
                ))
                .map_err(draw_err)?;
                if bar.null_fraction > 0.0 {
                    let (x1, top_px) = chart.backend_coord(&(bar.null_fraction, y1 - 4.0));
                    let (_, bottom_px) = chart.backend_coord(&(0.0, y0 + 4.0));
                    let x1 = x1.max(axis_x + 1);
                    draw_bar_shape(root, [(axis_x, top_px), (x1, bottom_px)], *colour, bar.measured)?;
                    let text = percent(bar.null_fraction);
                    root.draw(&Text::new(text, (x1 + 6, centre_px), value_style.clone()))
                        .map_err(draw_err)?;
                } else {
                    root.draw(&Text::new("0", (axis_x + 6, centre_px), zero_style.clone()))
                        .map_err(draw_err)?;
                }
            }
        }
    }
    Ok(())
}

/// A darker shade of a family colour, for its heading text.
fn darken(c: RGBColor) -> RGBColor {
    let f = |v: u8| (v as f64 * 0.7).round() as u8;
    RGBColor(f(c.0), f(c.1), f(c.2))
}

/// A bar between two pixel corners: filled with the family colour; measured bars are hatched
/// with white diagonals and outlined in black.
fn draw_bar_shape(
    root: &DrawingArea<BitMapBackend, Shift>,
    corners: [(i32, i32); 2],
    colour: RGBColor,
    measured: bool,
) -> Result<()> {
    let [(x0, y0), (x1, y1)] = corners;
    let (x0, x1) = (x0.min(x1), x0.max(x1));
    let (y0, y1) = (y0.min(y1), y0.max(y1));
    root.draw(&Rectangle::new([(x0, y0), (x1, y1)], colour.filled()))
        .map_err(draw_err)?;
    if measured {
        // Lines x + y = c, clipped to the rectangle.
        let hatch = WHITE.stroke_width(2);
        let mut c = x0 + y0 + 4;
        while c < x1 + y1 {
            let xa = x0.max(c - y1);
            let xb = x1.min(c - y0);
            if xa < xb {
                root.draw(&PathElement::new(vec![(xa, c - xa), (xb, c - xb)], hatch))
                    .map_err(draw_err)?;
            }
            c += 9;
        }
        root.draw(&Rectangle::new([(x0, y0), (x1, y1)], BLACK.stroke_width(2)))
            .map_err(draw_err)?;
    }
    Ok(())
}

/// Writes the PNG to a temporary file beside `path`, then renames it into place; the temporary
/// file is removed if anything fails.
fn write_png_atomically(image: &image::RgbImage, path: &Path) -> Result<()> {
    let name = path.file_name().ok_or_else(|| anyhow!("the path has no file name"))?;
    let tmp = path.with_file_name(format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id()));
    let written = (|| -> Result<()> {
        let file = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let mut out = std::io::BufWriter::new(file);
        image
            .write_to(&mut out, image::ImageFormat::Png)
            .with_context(|| format!("encoding PNG into {}", tmp.display()))?;
        let file = out
            .into_inner()
            .map_err(|e| anyhow!("writing {}: {}", tmp.display(), e.error()))?;
        file.sync_all().with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("renaming {} into place", tmp.display()))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_keeps_three_significant_figures() {
        assert_eq!(percent(0.375), "37.5 %");
        assert_eq!(percent(0.0421), "4.21 %");
        assert_eq!(percent(0.000312), "0.0312 %");
        assert_eq!(percent(1.0), "100.0 %");
        assert_eq!(percent(0.99999), ">99.9 %");
        assert_eq!(percent(0.0), "0 %");
        assert_eq!(percent(1e-9), "<0.001 %");
    }

    #[test]
    fn listed_families_come_first_then_others_in_order_of_appearance() {
        let bar = |label: &str, family: &str| Bar {
            label: label.into(),
            family: family.into(),
            null_fraction: 0.5,
            measured: false,
        };
        let bars = [bar("a", "X"), bar("b", "Y"), bar("c", "Z"), bar("d", "X")];
        let order: Vec<String> = rows(&bars, &["Z", "W"])
            .iter()
            .map(|r| match r {
                Row::Heading { family, .. } => format!("[{family}]"),
                Row::Bar { bar, .. } => bar.label.clone(),
            })
            .collect();
        assert_eq!(order, ["[Z]", "c", "[X]", "a", "d", "[Y]", "b"]);
    }
}
