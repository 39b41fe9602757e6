//! Reductions and the ops that reshape, split, slice and pad tensors.

use super::ops::*;
use super::{conv, Ctx};
use crate::model::onnx_graph::{attr_float, attr_int, attr_ints, attr_string};
use anyhow::{bail, Context, Result};
use candle_core::Tensor;
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
