//! Normalisations over groups of axes: InstanceNormalization, GroupNormalization,
//! LpNormalization, MeanVarianceNormalization and LRN, each a mean, variance or norm taken with
//! candle reductions (whose backward passes candle derives).

use super::ops::axis_of;
use crate::model::onnx_graph::{attr_float, attr_int, attr_ints};
use anyhow::{bail, Context, Result};
use candle_core::Tensor;
use tract_onnx::pb::NodeProto;

pub fn eval(node: &NodeProto, inputs: &[Option<Tensor>]) -> Result<Tensor> {
    let x = inputs[0].as_ref().context("normalisation without input")?;
    let arg = |i: usize| inputs.get(i).and_then(Option::as_ref);
    let eps = attr_float(node, "epsilon", 1e-5);
    match node.op_type.as_str() {
        "InstanceNormalization" => {
            let axes: Vec<usize> = (2..x.rank()).collect();
            let y = standardise(x, &axes, eps)?;
            affine_per_channel(&y, arg(1), arg(2))
        }
        "GroupNormalization" => {
            let groups = attr_int(node, "num_groups", 1) as usize;
            let dims = x.dims();
            let channels = dims[1];
            if groups == 0 || channels % groups != 0 {
                bail!("GroupNormalization of {channels} channels in {groups} groups");
            }
            let mut grouped = vec![dims[0], groups, channels / groups];
            grouped.extend_from_slice(&dims[2..]);
            let axes: Vec<usize> = (2..grouped.len()).collect();
            let y = standardise(&x.reshape(grouped.as_slice())?, &axes, eps)?;
            // Opset 18 gives scale and bias per group, opset 21 per channel.
            let per_group = |t: Option<&Tensor>| -> Result<Option<Tensor>> {
                Ok(match t {
                    Some(t) if t.elem_count() == groups && groups != channels => Some(
                        t.reshape((groups, 1))?
                            .broadcast_as((groups, channels / groups))?
                            .reshape(channels)?,
                    ),
                    other => other.cloned(),
                })
            };
            let (scale, bias) = (per_group(arg(1))?, per_group(arg(2))?);
            affine_per_channel(&y.reshape(dims)?, scale.as_ref(), bias.as_ref())
        }
        "LpNormalization" => {
            let axis = axis_of(attr_int(node, "axis", -1), x.rank())?;
            let norm = match attr_int(node, "p", 2) {
                1 => x.abs()?.sum_keepdim(axis)?,
                2 => x.sqr()?.sum_keepdim(axis)?.sqrt()?,
                p => bail!("LpNormalization with p = {p} (ONNX defines 1 and 2)"),
            };
            Ok(x.broadcast_div(&norm)?)
        }
        "MeanVarianceNormalization" => {
            let axes: Vec<usize> = match attr_ints(node, "axes") {
                Some(a) => a.iter().map(|&a| axis_of(a, x.rank())).collect::<Result<_>>()?,
                None => vec![0, 2, 3].into_iter().filter(|&a| a < x.rank()).collect(),
            };
            // ONNX's function body: (x − E[x]) / (√(E[x²] − E[x]²) + 1e-9).
            let mean = x.mean_keepdim(axes.clone())?;
            let variance = x.sqr()?.mean_keepdim(axes)?.sub(&mean.sqr()?)?;
            let deviation = variance.sqrt()?.affine(1.0, 1e-9)?;
            Ok(x.broadcast_sub(&mean)?.broadcast_div(&deviation)?)
        }
        "LRN" => {
            let size = attr_int(node, "size", 1) as usize;
            let (alpha, beta, bias) = (
                attr_float(node, "alpha", 1e-4),
                attr_float(node, "beta", 0.75),
                attr_float(node, "bias", 1.0),
            );
            let channels = x.dims()[1];
            let (before, after) = ((size - 1) / 2, size - 1 - (size - 1) / 2);
            let squares = x.sqr()?.pad_with_zeros(1, before, after)?;
            let mut window = squares.narrow(1, 0, channels)?;
            for k in 1..size {
                window = (window + squares.narrow(1, k, channels)?)?;
            }
            let denominator = window.affine(alpha / size as f64, bias)?.powf(beta)?;
            Ok(x.div(&denominator)?)
        }
        other => bail!("{other} is not a normalisation"),
    }
}

/// (x − mean) / √(variance + eps) over `axes`.
fn standardise(x: &Tensor, axes: &[usize], eps: f64) -> Result<Tensor> {
    let mean = x.mean_keepdim(axes.to_vec())?;
    let centred = x.broadcast_sub(&mean)?;
    let variance = centred.sqr()?.mean_keepdim(axes.to_vec())?;
    Ok(centred.broadcast_div(&variance.affine(1.0, eps)?.sqrt()?)?)
}

fn affine_per_channel(y: &Tensor, scale: Option<&Tensor>, bias: Option<&Tensor>) -> Result<Tensor> {
    let mut shape = vec![1; y.rank()];
    shape[1] = y.dims()[1];
    let mut out = y.clone();
    if let Some(s) = scale {
        out = out.broadcast_mul(&s.reshape(shape.as_slice())?)?;
    }
    if let Some(b) = bias {
        out = out.broadcast_add(&b.reshape(shape.as_slice())?)?;
    }
    Ok(out)
}
