//! Grad-CAM (Selvaraju et al. 2017) at a spatial layer A with channels A_c: weights
//! α_c = mean over positions of ∂score/∂A_c, map = ReLU(Σ_c α_c A_c), upsampled bilinearly
//! (half-pixel centres, edges clamped: PyTorch's `align_corners=False`) to the input's H×W and
//! repeated over its channels, so that the map is shaped like the input tensor.
//!
//! The layer is a feature map [1, C, h, w] with C > 1 (channels last where the input is NHWC) or a token
//! sequence [1, T, D] with T = g² or g² + 1 (a ViT: the class token, the first, is dropped and the
//! g² patch tokens are laid out as a g×g grid). By default it is the last such value computed
//! after the first linear layer, model outputs, attention maps ([1, heads, T, T]) and splits of
//! tokens into heads excepted.
//!
//! Where the head is not global average pooling (a dense layer reads every position with its own
//! weights), the spatially averaged α_c can make Σ_c α_c A_c ≤ 0 everywhere: the map is then zero,
//! as the method defines it, and the report says so; `--layer` picks another layer.

use super::{Attribution, AttributionMap, PixelGrid};
use crate::differentiable::{Differentiable, Target};
use crate::model::Value;
use anyhow::{bail, Result};
use serde::Serialize;

/// How a layer's values are laid out in space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerKind {
    /// [1, C, h, w].
    FeatureMap,
    /// [1, h, w, C].
    FeatureMapChannelsLast,
    /// [1, g², D] or, with a class token first, [1, g² + 1, D].
    Tokens { grid: usize, class_token: bool },
}

pub struct GradCam {
    pub layer: String,
    pub shape: Vec<usize>,
    pub kind: LayerKind,
    pub pixels: PixelGrid,
}

/// g where n = g² for an integer g > 1.
fn square_side(n: usize) -> Option<usize> {
    let g = (n as f64).sqrt().round() as usize;
    (g > 1 && g * g == n).then_some(g)
}

/// How `shape` can be read as a spatial layer, if at all.
fn layer_kind(shape: &[usize], channels_last: bool) -> Option<LayerKind> {
    match *shape {
        [1, a, b, c] => {
            let (ch, h, w) = if channels_last { (c, a, b) } else { (a, b, c) };
            (h * w > 1 && ch > 1).then_some(if channels_last {
                LayerKind::FeatureMapChannelsLast
            } else {
                LayerKind::FeatureMap
            })
        }
        [1, t, d] if d > 1 && d != t => match (square_side(t), square_side(t.saturating_sub(1))) {
            (Some(g), _) => Some(LayerKind::Tokens {
                grid: g,
                class_token: false,
            }),
            (None, Some(g)) => Some(LayerKind::Tokens {
                grid: g,
                class_token: true,
            }),
            _ => None,
        },
        _ => None,
    }
}

/// The default Grad-CAM layer: the last feature map computed after `after` (the first linear
/// layer's output) that fits inside the input (h ≤ H, w ≤ W) and has no dimension equal to the
/// length T of a token sequence (attention maps [1, heads, T, T] and splits into heads are not
/// feature maps); else the last token sequence after it. Model outputs are never chosen.
pub fn default_layer(
    engine: &Differentiable,
    after: Option<&str>,
    pixels: &PixelGrid,
    channels_last: bool,
) -> Option<(String, LayerKind)> {
    let names = engine.value_names();
    let start = after
        .and_then(|a| names.iter().position(|n| n == a))
        .map_or(0, |i| i + 1);
    let candidates: Vec<(&String, &[usize])> = names[start..]
        .iter()
        .filter(|n| !engine.output_names().contains(n))
        .filter_map(|n| Some((n, engine.value_shape(n)?)))
        .collect();
    // Token counts T of sequences [1, T, D] with T = g² or g² + 1: a rank-4 value with a dimension
    // of that size is attention ([1, heads, T, T]) or a split into heads, not a feature map.
    let token_counts: Vec<usize> = candidates
        .iter()
        .filter_map(|(_, s)| match s {
            [1, t, _] if square_side(*t).or(square_side(t.saturating_sub(1))).is_some() => Some(*t),
            _ => None,
        })
        .collect();
    let map = candidates.iter().rev().find_map(|(n, s)| {
        if s.len() != 4 {
            return None;
        }
        let kind = layer_kind(s, channels_last)?;
        let (h, w) = if channels_last { (s[1], s[2]) } else { (s[2], s[3]) };
        let of_tokens = s[1..].iter().any(|d| token_counts.contains(d));
        (h <= pixels.height && w <= pixels.width && !of_tokens).then(|| ((*n).clone(), kind))
    });
    map.or_else(|| {
        candidates
            .iter()
            .rev()
            .find_map(|(n, s)| (s.len() == 3).then(|| layer_kind(s, false).map(|k| ((*n).clone(), k)))?)
    })
}

impl GradCam {
    /// Grad-CAM at `layer`, or at [`default_layer`] after `first_layer_output`.
    pub fn new(
        engine: &Differentiable,
        layer: Option<&str>,
        first_layer_output: Option<&str>,
        pixels: PixelGrid,
    ) -> Result<GradCam> {
        let channels_last = pixels.channels_last;
        let (layer, kind) = match layer {
            Some(name) => {
                let Some(s) = engine.value_shape(name) else {
                    bail!("Grad-CAM: the model computes no value named {name} from its input (see the ONNX graph for names)");
                };
                let Some(kind) = layer_kind(s, channels_last) else {
                    bail!("Grad-CAM: {name} has shape {s:?}, neither a feature map [1, C, h, w] nor a token sequence [1, g² (+1), D]");
                };
                (name.to_string(), kind)
            }
            None => match default_layer(engine, first_layer_output, &pixels, channels_last) {
                Some(found) => found,
                None => bail!(
                    "Grad-CAM needs a spatial layer, and this model computes none after its first linear layer: no feature map [1, C, h, w] and no token sequence [1, g² (+1), D] (a dense model has no spatial layout; name one with `layer`)"
                ),
            },
        };
        let shape = engine.value_shape(&layer).unwrap_or_default().to_vec();
        Ok(GradCam {
            layer,
            shape,
            kind,
            pixels,
        })
    }

    /// The layer's grid (h, w).
    pub fn grid(&self) -> (usize, usize) {
        match self.kind {
            LayerKind::FeatureMap => (self.shape[2], self.shape[3]),
            LayerKind::FeatureMapChannelsLast => (self.shape[1], self.shape[2]),
            LayerKind::Tokens { grid, .. } => (grid, grid),
        }
    }

    /// ReLU(Σ_c α_c A_c) on the layer's h×w grid, row-major.
    pub fn cam(&self, activation: &Value, gradient: &Value) -> Vec<f64> {
        let (h, w) = self.grid();
        let hw = h * w;
        // (channels, value index of channel c at position p).
        let (channels, at): (usize, Box<dyn Fn(usize, usize) -> usize>) = match self.kind {
            LayerKind::FeatureMap => (self.shape[1], Box::new(move |c, p| c * hw + p)),
            LayerKind::FeatureMapChannelsLast => {
                let c_n = self.shape[3];
                (c_n, Box::new(move |c, p| p * c_n + c))
            }
            LayerKind::Tokens { class_token, .. } => {
                let d = self.shape[2];
                let first = class_token as usize;
                (d, Box::new(move |c, p| (p + first) * d + c))
            }
        };
        let alpha: Vec<f64> = (0..channels)
            .map(|c| (0..hw).map(|p| gradient.data[at(c, p)]).sum::<f64>() / hw as f64)
            .collect();
        (0..hw)
            .map(|p| {
                (0..channels)
                    .map(|c| alpha[c] * activation.data[at(c, p)])
                    .sum::<f64>()
                    .max(0.0)
            })
            .collect()
    }

    /// The h×w map upsampled to the input's pixel grid and repeated over the input's channels.
    pub fn to_input(&self, cam: &[f64]) -> Vec<f64> {
        let (h, w) = self.grid();
        let up = bilinear(cam, (h, w), (self.pixels.height, self.pixels.width));
        self.pixels.position.iter().map(|p| p.map_or(0.0, |p| up[p])).collect()
    }
}

/// Bilinear resampling of a row-major `from` grid to `to`, half-pixel centres, edges clamped.
pub fn bilinear(src: &[f64], from: (usize, usize), to: (usize, usize)) -> Vec<f64> {
    let axis = |n_out: usize, n_in: usize| -> Vec<(usize, usize, f64)> {
        (0..n_out)
            .map(|o| {
                let s = ((o as f64 + 0.5) * n_in as f64 / n_out as f64 - 0.5).clamp(0.0, (n_in - 1) as f64);
                let i0 = s.floor() as usize;
                let i1 = (i0 + 1).min(n_in - 1);
                (i0, i1, s - i0 as f64)
            })
            .collect()
    };
    let (ys, xs) = (axis(to.0, from.0), axis(to.1, from.1));
    let mut out = Vec::with_capacity(to.0 * to.1);
    for &(y0, y1, fy) in &ys {
        for &(x0, x1, fx) in &xs {
            let v = |y: usize, x: usize| src[y * from.1 + x];
            let top = v(y0, x0) * (1.0 - fx) + v(y0, x1) * fx;
            let bottom = v(y1, x0) * (1.0 - fx) + v(y1, x1) * fx;
            out.push(top * (1.0 - fy) + bottom * fy);
        }
    }
    out
}

impl Attribution for GradCam {
    fn name(&self) -> &'static str {
        "gradcam"
    }

    fn details(&self) -> super::Details {
        super::Details {
            layer: Some(self.layer.clone()),
            layer_shape: Some(self.shape.clone()),
            layer_kind: Some(self.kind),
            ..Default::default()
        }
    }

    fn attribute_with_progress(
        &self,
        engine: &Differentiable,
        input: &[f64],
        target: Target,
        progress: &dyn Fn(),
    ) -> Result<AttributionMap> {
        let lg = engine.layer_gradient(input, target, &self.layer)?;
        progress();
        let cam = self.cam(&lg.activation, &lg.gradient);
        Ok(AttributionMap {
            values: self.to_input(&cam),
            score: lg.score,
            multiplied_gradient: None,
            baseline_score: None,
        })
    }
}
