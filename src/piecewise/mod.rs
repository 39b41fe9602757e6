//! Exact collisions beyond the first layer, for piecewise-linear networks.
//!
//! Where every op between the input and a later value L is piecewise linear (Conv, Gemm,
//! BatchNormalization, ReLU, max-pooling, …), L is affine on the activation region of an image x:
//! L(z) = L(x) + J (z − x) while every unit keeps its state. Every z with z − x in null(J), inside
//! the region and inside the pixel box, therefore collides with x at L, and everything after L is
//! identical. null(J) has dimension at least pixels − dim L, however the first layer is built.
//!
//! [`PixelJacobian`] is J on pixels (the preprocessing in front of the model included), known by
//! its action and adjoint (the frozen passes of the gradient engine); [`local_nullity`] its rank
//! by a dense SVD where it is small enough; `walk` the search inside region ∩ box.

mod walk;

pub use walk::{walk, Direction, Hold, WalkOptions, WalkOutcome};

use crate::differentiable::{Differentiable, Frozen};
use crate::linop::{AffineGather, LinearOperator};
use anyhow::{bail, Result};
use serde::Serialize;

/// The default layer: the penultimate features, the value the last Gemm or MatMul of the model
/// multiplies by its weight.
pub fn default_layer(engine: &Differentiable) -> Option<String> {
    engine.last_dense_input()
}

/// J on pixels: the change of the layer for a change of the pixels, with every unit frozen.
pub struct PixelJacobian<'a> {
    pub frozen: Frozen<'a>,
    /// Pixels → the model's input tensor (its linear part is what J sees).
    pub gather: AffineGather,
}

impl<'a> PixelJacobian<'a> {
    /// Freezes `engine` (an f64 engine) at the pixels `x` up to `layer`.
    pub fn at(engine: &'a Differentiable, gather: &AffineGather, x: &[f64], layer: &str) -> Result<PixelJacobian<'a>> {
        if gather.input_dim != x.len() {
            bail!("{} pixels for a preprocessing of {}", x.len(), gather.input_dim);
        }
        let tensor = gather.evaluate(x);
        let frozen = engine.freeze(&tensor, layer)?;
        let j = PixelJacobian {
            frozen,
            gather: gather.clone(),
        };
        // One pass each way: after these the same ops on the same shapes cannot fail.
        j.frozen.apply(&vec![0.0; j.gather.output_dim()])?;
        j.frozen.adjoint(&[(layer, vec![0.0; j.frozen.layer_dim()])])?;
        Ok(j)
    }

    /// Tangents of every value the layer depends on for a change `delta` of the pixels.
    pub fn tangents(&self, delta: &[f64]) -> Result<std::collections::HashMap<String, Vec<f64>>> {
        self.frozen.tangents(&self.gather.apply_vec(delta))
    }

    /// Reverse mode from cotangents of values the layer depends on, to pixels.
    pub fn pixel_adjoint(&self, seeds: &[(&str, Vec<f64>)]) -> Result<Vec<f64>> {
        Ok(self.gather.adjoint_vec(&self.frozen.adjoint(seeds)?))
    }

    /// The rows of J in pixel space: one adjoint pass per element of the layer.
    pub fn rows(&self, progress: &dyn Fn()) -> Result<Vec<Vec<f64>>> {
        let m = self.frozen.layer_dim();
        let mut rows = Vec::with_capacity(m);
        for i in 0..m {
            let mut e = vec![0.0; m];
            e[i] = 1.0;
            rows.push(self.pixel_adjoint(&[(self.frozen.layer(), e)])?);
            progress();
        }
        Ok(rows)
    }
}

impl LinearOperator for PixelJacobian<'_> {
    fn input_dim(&self) -> usize {
        self.gather.input_dim
    }
    fn output_dim(&self) -> usize {
        self.frozen.layer_dim()
    }
    fn apply(&self, x: &[f64], y: &mut [f64]) {
        let t = self
            .frozen
            .apply(&self.gather.apply_vec(x))
            .expect("the frozen pass ran when the operator was built");
        y.copy_from_slice(&t);
    }
    fn adjoint(&self, y: &[f64], x: &mut [f64]) {
        let g = self
            .pixel_adjoint(&[(self.frozen.layer(), y.to_vec())])
            .expect("the frozen adjoint ran when the operator was built");
        x.copy_from_slice(&g);
    }
}

/// The local nullity of J at one image: exact from a dense SVD of its rows where the layer is
/// small enough, else the lower bound pixels − dim L.
#[derive(Clone, Debug, Serialize)]
pub struct LocalNullity {
    pub nullity: usize,
    pub nullity_exact: bool,
    /// pixels − dim L: directions that must exist.
    pub nullity_lower_bound: usize,
    pub rank: Option<usize>,
    /// The largest singular value of J (pixel units), where the SVD was computed.
    pub largest_singular_value: Option<f64>,
    /// The smallest singular value counted in the rank.
    pub smallest_nonzero_singular_value: Option<f64>,
    pub method: String,
}

/// Rows × pixels up to which the dense SVD of J is formed.
pub const DENSE_JACOBIAN_MAX_ENTRIES: usize = 120_000_000;

/// Rank of J by the numpy rule max(rows, cols) · eps(f32) · σ_max: the weights are float32,
/// J is formed from them in f64.
pub fn local_nullity(rows: Option<&[Vec<f64>]>, pixels: usize, layer_dim: usize) -> LocalNullity {
    let lower = pixels.saturating_sub(layer_dim);
    let Some(rows) = rows.filter(|r| !r.is_empty() && r.len() * pixels <= DENSE_JACOBIAN_MAX_ENTRIES) else {
        return LocalNullity {
            nullity: lower,
            nullity_exact: false,
            nullity_lower_bound: lower,
            rank: None,
            largest_singular_value: None,
            smallest_nonzero_singular_value: None,
            method: format!("lower bound pixels − dim L = {pixels} − {layer_dim}"),
        };
    };
    let a = faer::Mat::<f64>::from_fn(rows.len(), pixels, |i, j| rows[i][j]);
    let sv = match crate::nullspace::dense_svd::singular_values(a.as_ref()) {
        Ok(sv) => sv,
        Err(_) => {
            return LocalNullity {
                nullity: lower,
                nullity_exact: false,
                nullity_lower_bound: lower,
                rank: None,
                largest_singular_value: None,
                smallest_nonzero_singular_value: None,
                method: "the SVD of J did not converge; lower bound pixels − dim L".into(),
            }
        }
    };
    let sigma_max = sv.iter().copied().fold(0.0, f64::max);
    let tol = rows.len().max(pixels) as f64 * f32::EPSILON as f64 * sigma_max;
    let kept: Vec<f64> = sv.iter().copied().filter(|&s| s > tol).collect();
    let rank = kept.len();
    LocalNullity {
        nullity: pixels - rank,
        nullity_exact: true,
        nullity_lower_bound: lower,
        rank: Some(rank),
        largest_singular_value: Some(sigma_max),
        smallest_nonzero_singular_value: kept.iter().copied().reduce(f64::min),
        method: format!(
            "dense SVD of J ({} × {pixels}, formed by {} adjoint passes); rank tolerance max(rows, cols) × eps(f32) × sigma_max",
            rows.len(),
            rows.len()
        ),
    }
}
