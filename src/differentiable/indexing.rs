//! Index and layout ops: ArgMax, ArgMin, Hardmax, CumSum, GatherElements, DepthToSpace,
//! SpaceToDepth, Size, CastLike, and QuantizeLinear / DequantizeLinear. The ones that move values
//! are views, gathers or matrix products that candle differentiates; the ones that pick positions
//! (ArgMax, Hardmax, quantisation) are piecewise constant and carry no gradient.

use super::activations::round_half_even;
use super::ops::{axis_of, floats, ints};
use super::{resize, Ctx};
use crate::model::onnx_graph::{attr_int, attr_string};
use anyhow::{bail, Result};
use candle_core::{DType, Tensor};
use tract_onnx::pb::NodeProto;

pub fn eval(node: &NodeProto, inputs: &[Option<Tensor>], ctx: &Ctx) -> Result<Tensor> {
    let arg = |i: usize| super::ops::required(inputs, i);
    let x = arg(0)?;
    Ok(match node.op_type.as_str() {
        "ArgMax" | "ArgMin" => {
            let axis = axis_of(attr_int(node, "axis", 0), x.rank())?;
            let last = attr_int(node, "select_last_index", 0) != 0;
            let picks = extreme_positions(x, axis, node.op_type == "ArgMax", last)?;
            let mut dims = x.dims().to_vec();
            if attr_int(node, "keepdims", 1) != 0 {
                dims[axis] = 1;
            } else {
                dims.remove(axis);
            }
            let picks: Vec<i64> = picks.into_iter().map(|p| p as i64).collect();
            Tensor::from_vec(picks, dims, ctx.device)?
        }
        "Hardmax" => {
            // Before opset 13 the input is taken as a matrix split at `axis`, as in Softmax.
            let (t, axis) = if ctx.opset < 13 {
                let axis = axis_of(attr_int(node, "axis", 1), x.rank())?;
                let rows: usize = x.dims()[..axis].iter().product();
                (x.reshape((rows, x.elem_count() / rows.max(1)))?, 1)
            } else {
                (x.clone(), axis_of(attr_int(node, "axis", -1), x.rank())?)
            };
            let picks = extreme_positions(&t, axis, true, false)?;
            let len = t.dims()[axis];
            let inner: usize = t.dims()[axis + 1..].iter().product();
            let mut one_hot = vec![0.0f64; t.elem_count()];
            for (slot, &p) in picks.iter().enumerate() {
                let (outer, within) = (slot / inner, slot % inner);
                one_hot[(outer * len + p) * inner + within] = 1.0;
            }
            Tensor::from_vec(one_hot, x.dims(), ctx.device)?.to_dtype(x.dtype())?
        }
        "CumSum" => {
            let axis = axis_of(ints(arg(1)?)?[0], x.rank())?;
            let (exclusive, reverse) = (attr_int(node, "exclusive", 0) != 0, attr_int(node, "reverse", 0) != 0);
            let len = x.dims()[axis];
            let mut matrix = vec![0.0f64; len * len];
            for o in 0..len {
                for i in 0..len {
                    let reached = if reverse { i >= o } else { i <= o };
                    if reached && !(exclusive && i == o) {
                        matrix[o * len + i] = 1.0;
                    }
                }
            }
            let r = Tensor::from_vec(matrix, (len, len), ctx.device)?.to_dtype(x.dtype())?;
            resize::along_axis(x, axis, &r)?
        }
        "GatherElements" => {
            let axis = axis_of(attr_int(node, "axis", 0), x.rank())?;
            let idx = arg(1)?;
            let len = x.dims()[axis] as i64;
            let picks = ints(idx)?
                .into_iter()
                .map(|i| {
                    let j = if i < 0 { i + len } else { i };
                    if !(0..len).contains(&j) {
                        bail!("GatherElements index {i} is out of range for a dimension of {len}");
                    }
                    Ok(j as u32)
                })
                .collect::<Result<Vec<_>>>()?;
            let ids = Tensor::from_vec(picks, idx.dims(), ctx.device)?;
            x.contiguous()?.gather(&ids, axis)?
        }
        "DepthToSpace" | "SpaceToDepth" => depth_and_space(node, x)?,
        "Size" => Tensor::new(x.elem_count() as i64, ctx.device)?,
        "CastLike" => {
            let target = arg(1)?.dtype();
            if target.is_float() {
                x.to_dtype(ctx.dtype)?
            } else if target == DType::U8 {
                x.ne(0.0)?
            } else {
                x.to_dtype(DType::I64)?
            }
        }
        "QuantizeLinear" => {
            let scale = per_axis(node, arg(1)?, x.rank())?;
            // The range of the integer type (`output_dtype`, which the evaluator sets from the
            // zero point's type): TensorProto codes 2 uint8, 3 int8, 4 uint16, 5 int16.
            let (lo, hi) = match attr_int(node, "output_dtype", 2) {
                2 => (0.0, 255.0),
                3 => (-128.0, 127.0),
                4 => (0.0, 65535.0),
                5 => (-32768.0, 32767.0),
                other => bail!("QuantizeLinear to data type {other} is not supported"),
            };
            let mut q = round_half_even(&x.broadcast_div(&scale.to_dtype(x.dtype())?)?)?;
            if let Some(zero) = inputs.get(2).and_then(Option::as_ref) {
                q = q.broadcast_add(&per_axis(node, zero, x.rank())?.to_dtype(x.dtype())?)?;
            }
            q.clamp(lo, hi)?.to_dtype(DType::I64)?
        }
        "DequantizeLinear" => {
            let scale = per_axis(node, arg(1)?, x.rank())?;
            let mut y = x.to_dtype(scale.dtype())?;
            if let Some(zero) = inputs.get(2).and_then(Option::as_ref) {
                y = y.broadcast_sub(&per_axis(node, zero, x.rank())?.to_dtype(scale.dtype())?)?;
            }
            y.broadcast_mul(&scale)?
        }
        other => bail!("{other} is not an index or layout op"),
    })
}

/// DepthToSpace (DCR or CRD) and SpaceToDepth: a reshape, a permutation and a reshape.
fn depth_and_space(node: &NodeProto, x: &Tensor) -> Result<Tensor> {
    let b = attr_int(node, "blocksize", 1) as usize;
    let (n, c, h, w) = x.dims4()?;
    Ok(if node.op_type == "SpaceToDepth" {
        if h % b != 0 || w % b != 0 {
            bail!("SpaceToDepth of {h}×{w} in blocks of {b}");
        }
        x.reshape(vec![n, c, h / b, b, w / b, b])?
            .permute(vec![0, 3, 5, 1, 2, 4])?
            .contiguous()?
            .reshape((n, c * b * b, h / b, w / b))?
    } else {
        if c % (b * b) != 0 {
            bail!("DepthToSpace of {c} channels in blocks of {b}");
        }
        let depth = c / (b * b);
        let crd = attr_string(node, "mode").as_deref() == Some("CRD");
        let (split, order) = if crd {
            (vec![n, depth, b, b, h, w], vec![0, 1, 4, 2, 5, 3])
        } else {
            (vec![n, b, b, depth, h, w], vec![0, 3, 4, 1, 5, 2])
        };
        x.reshape(split)?
            .permute(order)?
            .contiguous()?
            .reshape((n, depth, h * b, w * b))?
    })
}

/// A quantisation parameter shaped to broadcast against a rank-`rank` input: a scalar as it is, a
/// vector along `axis` (default 1).
fn per_axis(node: &NodeProto, t: &Tensor, rank: usize) -> Result<Tensor> {
    if t.elem_count() == 1 {
        return Ok(t.reshape(())?);
    }
    let axis = axis_of(attr_int(node, "axis", 1), rank)?;
    let mut shape = vec![1; rank];
    shape[axis] = t.elem_count();
    Ok(t.reshape(shape)?)
}

/// The position along `axis` of the largest (or smallest) value, for every other index: the first
/// such position, or the last with `last`.
fn extreme_positions(x: &Tensor, axis: usize, largest: bool, last: bool) -> Result<Vec<usize>> {
    let values = floats(x)?;
    let dims = x.dims();
    let len = dims[axis];
    let inner: usize = dims[axis + 1..].iter().product();
    let outer: usize = dims[..axis].iter().product();
    let mut picks = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        for i in 0..inner {
            let at = |k: usize| values[(o * len + k) * inner + i];
            let mut best = 0;
            for k in 1..len {
                let (v, b) = (at(k), at(best));
                let better = if largest { v > b } else { v < b };
                if better || (last && v == b) {
                    best = k;
                }
            }
            picks.push(best);
        }
    }
    Ok(picks)
}
