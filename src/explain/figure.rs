//! Heat-map overlays: |map| summed over the input's channels per pixel, on one colour scale for
//! every map of a figure, drawn over a dimmed grey copy of the image, with a colour bar (0 at the
//! left, the scale's maximum, `colour_scale_max` in the report, at the right).

use super::PixelGrid;
pub use crate::figure::png_bytes;
use crate::model::preprocess::Pixels;
use image::{Rgb, RgbImage};

/// Σ over channels of |map| per pixel (row-major H×W).
pub fn heat(map: &[f64], pixels: &PixelGrid) -> Vec<f64> {
    let mut h = vec![0.0; pixels.height * pixels.width];
    for (v, p) in map.iter().zip(&pixels.position) {
        if let Some(p) = p {
            h[*p] += v.abs();
        }
    }
    h
}

/// A perceptually ordered colour map (anchors of matplotlib's "inferno"), t in [0, 1].
pub fn colour(t: f64) -> [f64; 3] {
    const ANCHORS: [[f64; 3]; 5] = [
        [0.0, 0.0, 0.016],
        [0.341, 0.063, 0.431],
        [0.737, 0.216, 0.329],
        [0.976, 0.557, 0.035],
        [0.988, 1.0, 0.643],
    ];
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 };
    let s = t * (ANCHORS.len() - 1) as f64;
    let i = (s.floor() as usize).min(ANCHORS.len() - 2);
    let f = s - i as f64;
    let (a, b) = (ANCHORS[i], ANCHORS[i + 1]);
    [0, 1, 2].map(|c| a[c] + f * (b[c] - a[c]))
}

/// The heat map over a grey, dimmed copy of the image: 35 % image, 65 % colour.
pub fn overlay(image: &Pixels, heat: &[f64], scale: f64) -> Pixels {
    let mut data = Vec::with_capacity(heat.len() * 3);
    for (p, h) in heat.iter().enumerate() {
        let base = &image.data[p * image.channels..(p + 1) * image.channels];
        let grey = base.iter().sum::<f64>() / image.channels as f64;
        let c = colour(if scale > 0.0 { h / scale } else { 0.0 });
        data.extend(c.iter().map(|c| 0.35 * grey + 0.65 * c));
    }
    Pixels {
        height: image.height,
        width: image.width,
        channels: 3,
        data,
    }
}

/// `img` with a colour bar along its bottom edge.
pub fn with_colour_bar(img: RgbImage) -> RgbImage {
    let (w, h) = img.dimensions();
    let (margin, bar) = (6u32, 12u32);
    let mut out = RgbImage::from_pixel(w, h + bar + margin, Rgb([255, 255, 255]));
    image::imageops::replace(&mut out, &img, 0, 0);
    let span = w.saturating_sub(2 * margin).max(1);
    for x in 0..span {
        let c = colour(x as f64 / (span - 1).max(1) as f64).map(|v| (v * 255.0).round() as u8);
        for y in 0..bar {
            out.put_pixel(margin + x, h + y, Rgb(c));
        }
    }
    out
}
