//! Resize and Upsample as one interpolation matrix per resized axis (nearest, linear or cubic),
//! applied as a matrix product along that axis: linear in the input, so the backward pass is the
//! transposed product.

use super::ops::{axis_of, floats, ints};
use super::Ctx;
use crate::frontend::folds::{original_coordinate, NearestRounding};
use crate::model::onnx_graph::{attr_float, attr_int, attr_ints, attr_string};
use anyhow::{bail, Context, Result};
use candle_core::Tensor;
use tract_onnx::pb::NodeProto;

pub fn resize(node: &NodeProto, inputs: &[Option<Tensor>], ctx: &Ctx) -> Result<Tensor> {
    let x = inputs[0].as_ref().context("Resize without input")?;
    let rank = x.rank();
    let present = |i: usize| inputs.get(i).and_then(Option::as_ref).filter(|t| t.elem_count() > 0);
    // Upsample and opset-10 Resize take (X, scales) and the asymmetric coordinates of Upsample.
    let legacy = node.op_type == "Upsample" || node.input.len() == 2;
    let mode = attr_string(node, "mode").unwrap_or_else(|| "nearest".into());
    let (coordinates, rounding) = if legacy {
        ("asymmetric".to_string(), "floor".to_string())
    } else {
        (
            attr_string(node, "coordinate_transformation_mode").unwrap_or_else(|| "half_pixel".into()),
            attr_string(node, "nearest_mode").unwrap_or_else(|| "round_prefer_floor".into()),
        )
    };
    if attr_int(node, "antialias", 0) != 0 {
        bail!("Resize with antialias is not supported");
    }
    if attr_string(node, "keep_aspect_ratio_policy").is_some_and(|p| p != "stretch") {
        bail!("Resize with a keep_aspect_ratio_policy other than stretch is not supported");
    }
    let axes: Vec<usize> = match attr_ints(node, "axes") {
        Some(a) => a.iter().map(|&a| axis_of(a, rank)).collect::<Result<_>>()?,
        None => (0..rank).collect(),
    };
    let (scales, sizes) = if legacy {
        let s = match present(1) {
            Some(t) => floats(t)?,
            // Upsample before opset 9 gives them as a float-list attribute.
            None => crate::model::onnx_graph::attribute(node, "scales")
                .map(|a| a.floats.iter().map(|&f| f as f64).collect())
                .context("Upsample without scales")?,
        };
        (Some(s), None)
    } else {
        (present(2).map(floats).transpose()?, present(3).map(ints).transpose()?)
    };
    let mut per_axis: Vec<(f32, usize)> = x.dims().iter().map(|&d| (1.0, d)).collect();
    match (scales, sizes) {
        (Some(s), None) => {
            if s.len() != axes.len() {
                bail!("Resize has {} scales for {} axes", s.len(), axes.len());
            }
            for (&a, &s) in axes.iter().zip(&s) {
                let s = s as f32;
                if !(s > 0.0 && s.is_finite()) {
                    bail!("Resize scale {s} is not a positive number");
                }
                per_axis[a] = (s, (x.dims()[a] as f32 * s).floor() as usize);
            }
        }
        (None, Some(n)) => {
            if n.len() != axes.len() {
                bail!("Resize has {} sizes for {} axes", n.len(), axes.len());
            }
            for (&a, &n) in axes.iter().zip(&n) {
                if n < 1 {
                    bail!("Resize size {n} is not a positive length");
                }
                per_axis[a] = (n as f32 / x.dims()[a] as f32, n as usize);
            }
        }
        _ => bail!("Resize needs exactly one of scales and sizes"),
    }
    let rounding = NearestRounding::parse(&rounding)?;
    let cubic_a = attr_float(node, "cubic_coeff_a", -0.75);
    let exclude_outside = attr_int(node, "exclude_outside", 0) != 0;
    let mut y = x.clone();
    for (a, &(scale, out_len)) in per_axis.iter().enumerate() {
        let in_len = x.dims()[a];
        if out_len == in_len && scale == 1.0 {
            continue;
        }
        if out_len == 0 || in_len == 0 {
            bail!("Resize of axis {a} from {in_len} to {out_len} values");
        }
        let mut matrix = vec![0.0f64; out_len * in_len];
        for o in 0..out_len {
            let xo = original_coordinate(&coordinates, o, scale, in_len, out_len)?;
            for (i, w) in taps(&mode, xo, in_len, rounding, cubic_a, exclude_outside)? {
                matrix[o * in_len + i] += w;
            }
        }
        let r = Tensor::from_vec(matrix, (out_len, in_len), ctx.device)?.to_dtype(ctx.dtype)?;
        y = along_axis(&y, a, &r)?;
    }
    Ok(y)
}

/// Input positions and weights for one output coordinate `x` (in input units).
fn taps(
    mode: &str,
    x: f32,
    len: usize,
    rounding: NearestRounding,
    a: f64,
    exclude_outside: bool,
) -> Result<Vec<(usize, f64)>> {
    let last = (len - 1) as f32;
    Ok(match mode {
        "nearest" => vec![(rounding.apply(x).clamp(0.0, last) as usize, 1.0)],
        "linear" => {
            let x = x.clamp(0.0, last);
            let low = x.floor() as usize;
            let high = (low + 1).min(len - 1);
            let frac = (x - low as f32) as f64;
            vec![(low, 1.0 - frac), (high, frac)]
        }
        "cubic" => {
            let base = x.floor();
            let r = (x - base) as f64;
            let weight = |d: f64| {
                let d = d.abs();
                if d <= 1.0 {
                    ((a + 2.0) * d - (a + 3.0)) * d * d + 1.0
                } else if d < 2.0 {
                    ((a * d - 5.0 * a) * d + 8.0 * a) * d - 4.0 * a
                } else {
                    0.0
                }
            };
            let mut out: Vec<(i64, f64)> = (-1..=2).map(|k| (base as i64 + k, weight(r - k as f64))).collect();
            if exclude_outside {
                out.retain(|&(i, _)| (0..len as i64).contains(&i));
                let total: f64 = out.iter().map(|p| p.1).sum();
                for p in &mut out {
                    p.1 /= total;
                }
            }
            out.into_iter()
                .map(|(i, w)| (i.clamp(0, len as i64 - 1) as usize, w))
                .collect()
        }
        other => bail!("Resize mode {other} is not one ONNX defines"),
    })
}

/// `r` (out × in) applied along axis `axis` of `x`.
pub(super) fn along_axis(x: &Tensor, axis: usize, r: &Tensor) -> Result<Tensor> {
    let last = x.rank() - 1;
    let moved = if axis == last {
        x.clone()
    } else {
        x.transpose(axis, last)?
    };
    let moved = moved.contiguous()?;
    let in_len = r.dim(1)?;
    let mut dims = moved.dims().to_vec();
    let rows = moved.elem_count() / in_len;
    let y = moved.reshape((rows, in_len))?.matmul(&r.t()?.contiguous()?)?;
    *dims.last_mut().unwrap() = r.dim(0)?;
    let y = y.reshape(dims)?;
    Ok(if axis == last {
        y
    } else {
        y.transpose(axis, last)?.contiguous()?
    })
}
