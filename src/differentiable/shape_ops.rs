//! Reductions and the layout ops: reshape, transpose, (un)squeeze, concat, split, slice, gather,
//! expand, tile, cast, pad and the shape arithmetic.

use super::ops::*;
use super::{conv, Ctx};
use crate::model::onnx_graph::{attr_float, attr_int, attr_ints, attr_string, attribute};
use anyhow::{bail, Context, Result};
use candle_core::{DType, Tensor};
use tract_onnx::pb::NodeProto;

pub(crate) fn reduce(node: &NodeProto, inputs: &[Option<Tensor>], ctx: &Ctx) -> Result<Tensor> {
    let x = inputs[0].as_ref().context("reduction without input")?;
    let axes_in_inputs = ctx.opset >= 18 || (node.op_type == "ReduceSum" && ctx.opset >= 13);
    let axes = if axes_in_inputs {
        match inputs.get(1).and_then(Option::as_ref) {
            Some(t) => Some(ints(t)?),
            None => None,
        }
    } else {
        attr_ints(node, "axes")
    };
    let axes: Vec<usize> = match axes {
        Some(a) if !a.is_empty() => a.iter().map(|&a| axis_of(a, x.rank())).collect::<Result<_>>()?,
        _ if attr_int(node, "noop_with_empty_axes", 0) != 0 => return Ok(x.clone()),
        _ => (0..x.rank()).collect(),
    };
    let sum = |t: &Tensor| -> Result<Tensor> { Ok(t.sum_keepdim(axes.clone())?) };
    let y = match node.op_type.as_str() {
        "ReduceMean" => x.mean_keepdim(axes.clone())?,
        "ReduceSum" => sum(x)?,
        "ReduceL1" => sum(&x.abs()?)?,
        "ReduceL2" => sum(&x.sqr()?)?.sqrt()?,
        "ReduceSumSquare" => sum(&x.sqr()?)?,
        "ReduceLogSum" => sum(x)?.log()?,
        "ReduceLogSumExp" => {
            // The maximum only shifts the exponent: it carries no gradient.
            let mut peak = x.clone();
            for &a in &axes {
                peak = peak.max_keepdim(a)?;
            }
            let peak = peak.detach();
            sum(&x.broadcast_sub(&peak)?.exp()?)?.log()?.add(&peak)?
        }
        _ => {
            let mut y = x.clone();
            for &a in &axes {
                y = match node.op_type.as_str() {
                    "ReduceMax" => extreme_along(&y, &[a], true)?,
                    "ReduceMin" => extreme_along(&y, &[a], false)?,
                    _ => product_along(&y, a)?,
                };
            }
            y
        }
    };
    let mut y = y;
    if attr_int(node, "keepdims", 1) == 0 {
        let dims: Vec<usize> = (0..x.rank())
            .filter(|a| !axes.contains(a))
            .map(|a| x.dims()[a])
            .collect();
        y = y.reshape(dims)?;
    }
    Ok(y)
}

/// The product along `axis`, kept as an axis of length 1 (one multiplication per entry: its
/// backward pass holds no division, so zeros are no special case).
pub(crate) fn product_along(x: &Tensor, axis: usize) -> Result<Tensor> {
    let mut y = x.narrow(axis, 0, 1)?;
    for k in 1..x.dims()[axis] {
        y = y.mul(&x.narrow(axis, k, 1)?)?;
    }
    Ok(y)
}

pub(crate) fn reshape_dims(dims: &[usize], spec: &[i64], allow_zero: bool) -> Result<Vec<usize>> {
    let total: usize = dims.iter().product();
    let mut out = Vec::with_capacity(spec.len());
    let mut infer = None;
    for (i, &s) in spec.iter().enumerate() {
        out.push(match s {
            -1 if infer.is_none() => {
                infer = Some(i);
                1
            }
            0 if !allow_zero => *dims.get(i).context("Reshape copies a dimension the input lacks")?,
            s if s >= 0 => s as usize,
            _ => bail!("Reshape to {spec:?} is not a shape"),
        });
    }
    let known: usize = out.iter().product();
    if let Some(i) = infer {
        if known == 0 || !total.is_multiple_of(known) {
            bail!("Reshape of {dims:?} to {spec:?}: sizes do not divide");
        }
        out[i] = total / known;
    }
    if out.iter().product::<usize>() != total {
        bail!("Reshape of {dims:?} to {spec:?} changes the number of values");
    }
    Ok(out)
}

pub(crate) fn split(node: &NodeProto, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
    let x = inputs[0].as_ref().context("Split without input")?;
    let axis = axis_of(attr_int(node, "axis", 0), x.rank())?;
    let len = x.dims()[axis];
    let parts = node.output.len();
    let sizes: Vec<usize> = match ints_from(node, inputs, 1, "split")? {
        Some(s) if !s.is_empty() => s.iter().map(|&v| v as usize).collect(),
        _ => {
            let each = len.div_ceil(parts);
            (0..parts).map(|i| each.min(len.saturating_sub(i * each))).collect()
        }
    };
    if sizes.iter().sum::<usize>() != len {
        bail!("Split sizes {sizes:?} do not add up to {len}");
    }
    let mut start = 0;
    sizes
        .iter()
        .map(|&n| {
            let t = x.narrow(axis, start, n)?;
            start += n;
            Ok(t)
        })
        .collect()
}

pub(crate) fn slice(node: &NodeProto, inputs: &[Option<Tensor>], ctx: &Ctx) -> Result<Tensor> {
    let x = inputs[0].as_ref().context("Slice without input")?;
    let starts = ints_from(node, inputs, 1, "starts")?.context("Slice without starts")?;
    let ends = ints_from(node, inputs, 2, "ends")?.context("Slice without ends")?;
    let axes = ints_from(node, inputs, 3, "axes")?.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = ints_from(node, inputs, 4, "steps")?.unwrap_or_else(|| vec![1; starts.len()]);
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        bail!("Slice starts {starts:?}, ends {ends:?}, axes {axes:?} and steps {steps:?} differ in length");
    }
    let mut y = x.clone();
    for i in 0..starts.len() {
        let a = axis_of(axes[i], x.rank())?;
        let picks = crate::frontend::folds::slice_positions(starts[i], ends[i], steps[i], x.dims()[a])?;
        if picks.is_empty() {
            y = y.narrow(a, 0, 0)?;
            continue;
        }
        let contiguous_run = picks.windows(2).all(|p| p[1] == p[0] + 1);
        y = if contiguous_run {
            y.narrow(a, picks[0], picks.len())?
        } else {
            let ids = Tensor::from_vec(
                picks.iter().map(|&p| p as u32).collect::<Vec<_>>(),
                picks.len(),
                ctx.device,
            )?;
            y.contiguous()?.index_select(&ids, a)?
        };
    }
    Ok(y)
}

pub(crate) fn pad(node: &NodeProto, inputs: &[Option<Tensor>], ctx: &Ctx) -> Result<Tensor> {
    let x = inputs[0].as_ref().context("Pad without input")?;
    let mode = attr_string(node, "mode").unwrap_or_else(|| "constant".into());
    if !matches!(mode.as_str(), "constant" | "reflect" | "edge") {
        bail!("Pad mode {mode} is not supported");
    }
    let pads = ints_from(node, inputs, 1, "pads")?.context("Pad without pads")?;
    let value = if ctx.opset < 11 {
        attr_float(node, "value", 0.0)
    } else {
        match inputs.get(2).and_then(Option::as_ref) {
            Some(t) if t.elem_count() > 0 => floats(t)?[0],
            _ => 0.0,
        }
    };
    let rank = x.rank();
    let axes: Vec<usize> = match inputs.get(3).and_then(Option::as_ref) {
        Some(t) => ints(t)?.iter().map(|&a| axis_of(a, rank)).collect::<Result<_>>()?,
        None => (0..rank).collect(),
    };
    if pads.len() != 2 * axes.len() {
        bail!("Pad has {} pads for {} axes", pads.len(), axes.len());
    }
    let mut y = x.clone();
    for (i, &a) in axes.iter().enumerate() {
        let (begin, end) = (pads[i], pads[i + axes.len()]);
        // Negative pads crop.
        let len = y.dims()[a] as i64;
        let (cb, ce) = ((-begin).max(0), (-end).max(0));
        if cb + ce > len {
            bail!("Pad crops more than axis {a} holds");
        }
        y = y.narrow(a, cb as usize, (len - cb - ce) as usize)?;
        let (begin, end) = (begin.max(0) as usize, end.max(0) as usize);
        y = match mode.as_str() {
            "constant" => conv::pad_axis(&y, a, begin, end, value)?,
            _ => pad_by_copies(&y, a, begin, end, mode == "reflect", ctx)?,
        };
    }
    Ok(y)
}

/// Edge and reflect padding of one axis as one gather of its own entries (whose backward pass,
/// an index_add, sums the copies back onto the entry they came from): the edge repeats the first
/// and last entries, reflect mirrors about them (numpy's "reflect": the edge itself is not repeated).
pub(crate) fn pad_by_copies(
    x: &Tensor,
    axis: usize,
    begin: usize,
    end: usize,
    reflect: bool,
    ctx: &Ctx,
) -> Result<Tensor> {
    if begin == 0 && end == 0 {
        return Ok(x.clone());
    }
    let len = x.dims()[axis];
    if reflect && (begin >= len || end >= len) {
        bail!("reflect padding by ({begin}, {end}) of an axis of {len} values");
    }
    if len == 0 {
        bail!("edge padding of an empty axis");
    }
    let mut picks: Vec<u32> = Vec::with_capacity(begin + len + end);
    picks.extend((0..begin).map(|i| if reflect { (begin - i) as u32 } else { 0 }));
    picks.extend(0..len as u32);
    picks.extend((0..end).map(|i| {
        if reflect {
            (len - 2 - i) as u32
        } else {
            (len - 1) as u32
        }
    }));
    let n = picks.len();
    let ids = Tensor::from_vec(picks, n, ctx.device)?;
    Ok(x.contiguous()?.index_select(&ids, axis)?)
}

/// The layout ops: reshapes, transposes, (un)squeezes, concatenation, splits and slices (and,
/// through `shape_and_index`, gathers, broadcasts, casts and shape arithmetic).
pub(crate) fn layout(node: &NodeProto, inputs: &[Option<Tensor>], ctx: &Ctx) -> Result<Vec<Tensor>> {
    let arg = |i: usize| required(inputs, i);
    let x = || arg(0);
    let one = |t: Tensor| Ok(vec![t]);
    match node.op_type.as_str() {
        "Reshape" => {
            let x = x()?;
            let spec = ints(arg(1)?)?;
            let allow_zero = attr_int(node, "allowzero", 0) != 0;
            one(x.reshape(reshape_dims(x.dims(), &spec, allow_zero)?)?)
        }
        "Flatten" => {
            let x = x()?;
            // axis in [-r, r]: a negative one counts from the back of the rank-r input.
            let axis = match attr_int(node, "axis", 1) {
                a if a < 0 => axis_of(a, x.rank())?,
                a => axis_of(a, x.rank() + 1)?,
            };
            let rows: usize = x.dims()[..axis].iter().product();
            one(x.reshape((rows, x.elem_count() / rows.max(1)))?)
        }
        "Transpose" => {
            let x = x()?;
            let perm: Vec<usize> = match attr_ints(node, "perm") {
                Some(p) => p.iter().map(|&a| axis_of(a, x.rank())).collect::<Result<_>>()?,
                None => (0..x.rank()).rev().collect(),
            };
            one(x.permute(perm)?.contiguous()?)
        }
        "Unsqueeze" => {
            let x = x()?;
            let axes = ints_from(node, inputs, 1, "axes")?.context("Unsqueeze without axes")?;
            let rank = x.rank() + axes.len();
            let mut axes = axes.iter().map(|&a| axis_of(a, rank)).collect::<Result<Vec<_>>>()?;
            axes.sort_unstable();
            let mut dims = x.dims().to_vec();
            for a in axes {
                dims.insert(a, 1);
            }
            one(x.reshape(dims)?)
        }
        "Squeeze" => {
            let x = x()?;
            let axes = match ints_from(node, inputs, 1, "axes")? {
                Some(a) => a.iter().map(|&a| axis_of(a, x.rank())).collect::<Result<Vec<_>>>()?,
                None => (0..x.rank()).filter(|&a| x.dims()[a] == 1).collect(),
            };
            let dims: Vec<usize> = (0..x.rank())
                .filter(|a| !axes.contains(a))
                .map(|a| x.dims()[a])
                .collect();
            one(x.reshape(dims)?)
        }
        "Concat" => {
            let parts: Vec<&Tensor> = inputs.iter().flatten().collect();
            let rank = parts.first().context("Concat without inputs")?.rank();
            let axis = axis_of(attr_int(node, "axis", 0), rank)?;
            let parts: Vec<&Tensor> = parts.into_iter().filter(|t| t.elem_count() > 0).collect();
            match parts.as_slice() {
                [] => one(arg(0)?.clone()),
                [only] => one((*only).clone()),
                _ => one(Tensor::cat(&parts, axis)?),
            }
        }
        "Split" => split(node, inputs),
        "Slice" => one(slice(node, inputs, ctx)?),
        "Gather" | "Expand" | "Tile" | "Shape" | "Cast" | "ConstantOfShape" | "Range" => {
            shape_and_index(node, inputs, ctx)
        }
        other => bail!("{other} is not a layout op"),
    }
}

/// Gathers, broadcasts, casts and the shape arithmetic (Shape, ConstantOfShape, Range).
pub(crate) fn shape_and_index(node: &NodeProto, inputs: &[Option<Tensor>], ctx: &Ctx) -> Result<Vec<Tensor>> {
    let arg = |i: usize| required(inputs, i);
    let x = || arg(0);
    let one = |t: Tensor| Ok(vec![t]);
    match node.op_type.as_str() {
        "Gather" => {
            let x = x()?;
            let axis = axis_of(attr_int(node, "axis", 0), x.rank())?;
            let idx = arg(1)?;
            let dim = x.dims()[axis] as i64;
            let picks = ints(idx)?
                .iter()
                .map(|&i| {
                    let j = if i < 0 { i + dim } else { i };
                    if !(0..dim).contains(&j) {
                        bail!("Gather index {i} is out of range for a dimension of {dim}");
                    }
                    Ok(j as u32)
                })
                .collect::<Result<Vec<_>>>()?;
            let mut dims = x.dims()[..axis].to_vec();
            dims.extend_from_slice(idx.dims());
            dims.extend_from_slice(&x.dims()[axis + 1..]);
            let ids = Tensor::from_vec(picks, idx.elem_count(), ctx.device)?;
            one(x.contiguous()?.index_select(&ids, axis)?.reshape(dims)?)
        }
        "Expand" => {
            let x = x()?;
            let target: Vec<usize> = ints(arg(1)?)?.iter().map(|&d| d.max(0) as usize).collect();
            let shape = broadcast_shape(&[x.dims(), &target])?;
            one(x.broadcast_as(shape)?.contiguous()?)
        }
        "Tile" => {
            let repeats: Vec<usize> = ints(arg(1)?)?.iter().map(|&d| d as usize).collect();
            one(x()?.repeat(repeats)?)
        }
        "Shape" => {
            let dims: Vec<i64> = x()?.dims().iter().map(|&d| d as i64).collect();
            let rank = dims.len() as i64;
            let clampi = |v: i64| (if v < 0 { v + rank } else { v }).clamp(0, rank) as usize;
            let start = clampi(attr_int(node, "start", 0));
            let end = attribute(node, "end").map_or(dims.len(), |a| clampi(a.i));
            let part = dims[start..end.max(start)].to_vec();
            one(Tensor::from_vec(part.clone(), part.len(), ctx.device)?)
        }
        "Cast" => one(cast(x()?, attr_int(node, "to", 1), ctx)?),
        "ConstantOfShape" => {
            let dims: Vec<usize> = ints(x()?)?.iter().map(|&d| d as usize).collect();
            let value = match attribute(node, "value").and_then(|a| a.t.as_ref()) {
                Some(t) => {
                    let c = crate::model::onnx_graph::tensor_constant(t)?;
                    constant_tensor(&c, ctx)?.flatten_all()?
                }
                None => Tensor::zeros(1, ctx.dtype, ctx.device)?,
            };
            one(value.reshape(())?.broadcast_as(dims)?.contiguous()?)
        }
        "Range" => {
            let (start, limit, delta) = (arg(0)?, arg(1)?, arg(2)?);
            let f = |t: &Tensor| -> Result<f64> { Ok(t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?[0]) };
            let (s, l, d) = (f(start)?, f(limit)?, f(delta)?);
            if d == 0.0 {
                bail!("Range with delta 0");
            }
            let n = ((l - s) / d).ceil().max(0.0) as usize;
            // start + i·delta as tensor arithmetic: differentiable in start and delta.
            let steps = Tensor::arange(0i64, n as i64, ctx.device)?.to_dtype(start.dtype())?;
            let delta = delta.flatten_all()?.reshape(())?;
            let start = start.flatten_all()?.reshape(())?;
            one(steps.broadcast_mul(&delta)?.broadcast_add(&start)?)
        }
        other => bail!("{other} is not a shape or index op"),
    }
}
