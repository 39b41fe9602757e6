//! `compare`: how similar two images are to a person (PSNR, SSIM on the pixels) and to a model
//! (feature and cosine distances inside it). For an exact collision the model's distances are 0
//! to float rounding while the pixel metrics report a large change; for an ordinary change of the
//! same size it is the other way round.

use crate::model::preprocess::{decode_image, from_tensor, to_tensor, Grid, Layout, Pixels, Preprocess};
use crate::model::Model;
use crate::similarity::features::{feature_similarity, FeatureSimilarity};
use crate::similarity::{psnr, ssim};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::path::Path;

/// The JSON report of `blindspot compare`.
#[derive(Clone, Debug, Serialize)]
pub struct CompareReport {
    pub a: String,
    pub b: String,
    /// Pixel grid compared: [height, width, channels].
    pub pixels: [usize; 3],
    /// PSNR in dB for data range 1; null where the pixels are identical (PSNR is infinite) —
    /// `identical` says so.
    pub psnr: Option<f64>,
    pub identical: bool,
    pub ssim: f64,
    /// LPIPS-style distance from the model's own activations (only with a model).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feature_distance: Option<f64>,
    /// 1 − cos of the penultimate features (only with a model).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cosine_distance: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub features: Option<FeatureSimilarity>,
}

/// One input: pixels in [0, 1] and, with a model, the tensor fed to it.
pub struct Input {
    pub pixels: Pixels,
    pub tensor: Option<Vec<f32>>,
}

fn is_npy(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy"))
}

/// Reads an input for a model: a PNG goes through the preprocessing, a .npy is taken as fed.
pub fn load_for_model(path: &Path, model: &Model, pre: &Preprocess) -> Result<Input> {
    let shape = &model.input_shape;
    let gather = pre.gather(shape)?;
    let grid = pre.grid(shape)?;
    if is_npy(path) {
        let t = crate::model::npy::read_model_input(path, shape, Some(&model.input_name))?;
        let data = from_tensor(&gather, &t);
        let pixels = Pixels {
            height: grid.height,
            width: grid.width,
            channels: grid.channels,
            data,
        };
        return Ok(Input {
            pixels,
            tensor: Some(t),
        });
    }
    let (pixels, _) = crate::model::preprocess::load_image(path, &grid)?;
    let tensor = to_tensor(&gather, &pixels.data);
    Ok(Input {
        pixels,
        tensor: Some(tensor),
    })
}

/// The pixel grid a .npy tensor holds without a model: `[1,C,H,W]`/`[1,H,W,C]` (layout guessed
/// as for model inputs), `[H,W,C]` or `[H,W]`; values taken as pixels.
fn npy_pixels(path: &Path) -> Result<Pixels> {
    let (shape, t) = crate::model::npy::read_finite(path)?;
    let (grid, data) = match shape.as_slice() {
        [_, _, _, _] => {
            let pre = Preprocess::default();
            let gather = pre.gather(&shape).with_context(|| format!("{}", path.display()))?;
            (pre.grid(&shape)?, from_tensor(&gather, &t))
        }
        [h, w, c] => (grid(*h, *w, *c), t.iter().map(|&v| v as f64).collect()),
        [h, w] => (grid(*h, *w, 1), t.iter().map(|&v| v as f64).collect()),
        _ => bail!(
            "{} has shape {shape:?}: without `model` a tensor must be [1,C,H,W], [1,H,W,C], [H,W,C] or [H,W]",
            path.display()
        ),
    };
    Ok(Pixels {
        height: grid.height,
        width: grid.width,
        channels: grid.channels,
        data,
    })
}

fn grid(height: usize, width: usize, channels: usize) -> Grid {
    Grid {
        height,
        width,
        channels,
        layout: Some(Layout::Nhwc),
    }
}

/// Reads an image at its own size: grey images as one channel, and colour images whose three
/// channels are equal everywhere (a grey image stored as RGB, as `collide` writes its PNGs) too;
/// other colour images as three channels (RGB).
fn png_pixels(path: &Path) -> Result<Pixels> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot open image {}", path.display()))?;
    let img =
        image::load_from_memory(&bytes).map_err(|e| anyhow::anyhow!("cannot decode image {}: {e}", path.display()))?;
    let grey = !img.color().has_color() || img.to_rgb8().pixels().all(|p| p[0] == p[1] && p[1] == p[2]);
    let g = grid(img.height() as usize, img.width() as usize, if grey { 1 } else { 3 });
    Ok(decode_image(&bytes, &path.display().to_string(), &g)?.0)
}

/// Reads an input without a model, at its own size and values.
pub fn load_plain(path: &Path) -> Result<Input> {
    let pixels = if is_npy(path) {
        npy_pixels(path)?
    } else {
        png_pixels(path)?
    };
    Ok(Input { pixels, tensor: None })
}

/// Compares two inputs: pixel metrics always, feature metrics where both have model tensors.
pub fn compare(
    (name_a, a): (&str, &Input),
    (name_b, b): (&str, &Input),
    model: Option<&Model>,
    layers: Option<&[String]>,
) -> Result<CompareReport> {
    let p = psnr(&a.pixels, &b.pixels)?;
    let s = ssim(&a.pixels, &b.pixels)?;
    let features = match (model, &a.tensor, &b.tensor) {
        (Some(m), Some(ta), Some(tb)) => Some(feature_similarity(m, ta, tb, layers)?),
        _ => None,
    };
    Ok(CompareReport {
        a: name_a.into(),
        b: name_b.into(),
        pixels: [a.pixels.height, a.pixels.width, a.pixels.channels],
        psnr: p.is_finite().then_some(p),
        identical: p.is_infinite(),
        ssim: s,
        feature_distance: features.as_ref().map(|f| f.feature_distance),
        cosine_distance: features.as_ref().map(|f| f.cosine_distance),
        model: model.map(|m| m.path.display().to_string()),
        features,
    })
}

/// The four figures of a comparison, for reports that hold many (the demo).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct SimilarityFigures {
    /// null: identical pixels (infinite PSNR).
    pub psnr: Option<f64>,
    pub ssim: f64,
    pub feature_distance: Option<f64>,
    pub cosine_distance: Option<f64>,
}

impl CompareReport {
    pub fn figures(&self) -> SimilarityFigures {
        SimilarityFigures {
            psnr: self.psnr,
            ssim: self.ssim,
            feature_distance: self.feature_distance,
            cosine_distance: self.cosine_distance,
        }
    }
}
