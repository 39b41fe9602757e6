//! Folds for the ops around the first linear layer that are not one elementwise step.
//!
//! In front of the layer: Slice (crops, strided and reversed), Resize in nearest mode, and the
//! fan-out of several Slice branches into one Concat (YOLOv5's "Focus" space-to-depth). Each is a
//! gather, so it keeps the running map an `AffineGather`. After the layer: BatchNormalization and
//! per-channel Mul/Div/Add/Sub by constants, which only rescale and shift each output channel and
//! so belong to the layer.

use crate::linop::{AffineGather, Resample};
use crate::model::onnx_graph::{attr_float, attr_int, attr_ints, attr_string, node_label, Constant, OnnxGraph};
use anyhow::{bail, Context, Result};
use tract_onnx::pb::NodeProto;

/// The per-channel affine map `y ↦ scale[c]·y + shift[c]` made of the ops after a layer.
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelAffine {
    pub scale: Vec<f64>,
    pub shift: Vec<f64>,
    /// The value after the last folded op: where the running model shows `scale·y + shift`.
    pub output_value: String,
    /// The folded ops' types, in graph order.
    pub ops: Vec<String>,
}

/// Folds the chain of per-channel affine ops that follows `value`, an NCHW tensor of `channels`
/// channels (the first layer's output): inference-mode BatchNormalization and Mul/Div/Add/Sub by
/// constants that vary along the channel axis alone. Stops at the first other op, at a value the
/// graph outputs or that several nodes read; `None` when nothing folds.
pub fn channel_affine_after(graph: &OnnxGraph, value: &str, channels: usize) -> Result<Option<ChannelAffine>> {
    let mut affine = ChannelAffine {
        scale: vec![1.0; channels],
        shift: vec![0.0; channels],
        output_value: value.to_string(),
        ops: vec![],
    };
    loop {
        let current = affine.output_value.as_str();
        let Some(node) = only_consumer(graph, current) else {
            break;
        };
        let step = match node.op_type.as_str() {
            "BatchNormalization" => batch_norm_step(graph, node, current, channels)?,
            "Add" | "Sub" | "Mul" | "Div" => arithmetic_step(graph, node, current, channels)?,
            _ => None,
        };
        let Some((a, b)) = step else { break };
        for c in 0..channels {
            affine.scale[c] *= a[c];
            affine.shift[c] = a[c] * affine.shift[c] + b[c];
        }
        affine.ops.push(node.op_type.clone());
        affine.output_value = node.output[0].clone();
    }
    Ok((!affine.ops.is_empty()).then_some(affine))
}

/// The one node reading `value`, where the value goes nowhere else (not out of the graph either).
/// Nodes that read only its shape do not count.
fn only_consumer<'g>(graph: &'g OnnxGraph, value: &str) -> Option<&'g NodeProto> {
    if graph.is_graph_output(value) {
        return None;
    }
    match readers(graph, value).as_slice() {
        [one] => Some(one),
        _ => None,
    }
}

fn readers<'g>(graph: &'g OnnxGraph, value: &str) -> Vec<&'g NodeProto> {
    graph
        .consumers(value)
        .into_iter()
        .filter(|n| n.op_type != "Shape")
        .collect()
}

/// Per-channel (a, b) of one step `y ↦ a·y + b`.
type ChannelStep = Option<(Vec<f64>, Vec<f64>)>;

fn batch_norm_step(graph: &OnnxGraph, node: &NodeProto, value: &str, channels: usize) -> Result<ChannelStep> {
    // Training mode normalises by the batch's own statistics: not a fixed affine map.
    let extra_outputs = node.output.iter().skip(1).any(|o| !o.is_empty());
    if node.input.first().map(String::as_str) != Some(value)
        || attr_int(node, "training_mode", 0) != 0
        || extra_outputs
        || node.input.len() < 5
    {
        return Ok(None);
    }
    let mut params = vec![];
    for name in &node.input[1..5] {
        match graph.constant(name)? {
            Some(c) if c.values.len() == channels => params.push(c.values),
            Some(c) => bail!(
                "BatchNormalization node {}: {name} holds {} values for {channels} channels",
                node_label(node),
                c.values.len()
            ),
            None => return Ok(None),
        }
    }
    let [gamma, beta, mean, var] = [&params[0], &params[1], &params[2], &params[3]];
    // The attribute is stored as f32; the runtime adds it in f32 too, so widen the stored value.
    let epsilon = attr_float(node, "epsilon", 1e-5_f32 as f64);
    let a: Vec<f64> = (0..channels).map(|c| gamma[c] / (var[c] + epsilon).sqrt()).collect();
    let b: Vec<f64> = (0..channels).map(|c| beta[c] - mean[c] * a[c]).collect();
    Ok(finite(a, b))
}

fn arithmetic_step(graph: &OnnxGraph, node: &NodeProto, value: &str, channels: usize) -> Result<ChannelStep> {
    let (image_first, other) = match node.input.as_slice() {
        [x, c] if x == value && c != value => (true, c),
        [c, x] if x == value && c != value => (false, c),
        _ => return Ok(None),
    };
    let Some(constant) = graph.constant(other)? else {
        return Ok(None);
    };
    let Some(per_channel) = per_channel_values(&constant, channels) else {
        return Ok(None);
    };
    let (a, b): (Vec<f64>, Vec<f64>) = per_channel
        .iter()
        .map(|&k| match (node.op_type.as_str(), image_first) {
            ("Add", _) => (1.0, k),
            ("Sub", true) => (1.0, -k),
            ("Sub", false) => (-1.0, k),
            ("Mul", _) => (k, 0.0),
            ("Div", true) => (1.0 / k, 0.0),
            // A constant divided by the activations is not affine.
            _ => (f64::NAN, f64::NAN),
        })
        .unzip();
    Ok(finite(a, b))
}

/// A step that would make a value infinite or NaN is left to the model.
fn finite(a: Vec<f64>, b: Vec<f64>) -> ChannelStep {
    a.iter().chain(&b).all(|v| v.is_finite()).then_some((a, b))
}

/// The constant's value per channel of an NCHW tensor, under ONNX (numpy) broadcasting: a scalar,
/// or a shape whose only non-1 dimension lines up with the channel axis (`[C,1,1]`, `[1,C,1,1]`).
/// A `[C]` constant lines up with the width, so it is per-channel only when it holds one value.
fn per_channel_values(constant: &Constant, channels: usize) -> Option<Vec<f64>> {
    let shape = &constant.shape;
    if shape.len() > 4 {
        return None;
    }
    let channel_axis = (shape.len() >= 3).then(|| shape.len() - 3);
    let varies_elsewhere = shape
        .iter()
        .enumerate()
        .any(|(a, &d)| d != 1 && Some(a) != channel_axis);
    if varies_elsewhere {
        return None;
    }
    match constant.values.len() {
        1 => Some(vec![constant.values[0]; channels]),
        n if n == channels => Some(constant.values.clone()),
        _ => None,
    }
}

/// Reads a constant input of `node`; `None` where the input is absent or empty.
fn constant_input(graph: &OnnxGraph, node: &NodeProto, i: usize) -> Result<Option<Constant>> {
    let Some(name) = node.input.get(i).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    let constant = graph
        .constant(name)?
        .with_context(|| format!("input {name} is computed in the graph, not a constant"))?;
    Ok(Some(constant))
}

/// An int list from attribute `attr` (older opsets), or else from constant input `i`.
fn ints_of(graph: &OnnxGraph, node: &NodeProto, i: usize, attr: &str) -> Result<Option<Vec<i64>>> {
    if let Some(v) = attr_ints(node, attr) {
        return Ok(Some(v));
    }
    // i64 written as f64 by `Constant`: huge sentinels (INT64_MAX) stay huge, which is all they say.
    Ok(constant_input(graph, node, i)?.map(|c| c.values.iter().map(|&v| v as i64).collect()))
}

use crate::linop::{strides_of, unravel};

fn resolve_axis(axis: i64, rank: usize) -> Result<usize> {
    let resolved = if axis < 0 { axis + rank as i64 } else { axis };
    if !(0..rank as i64).contains(&resolved) {
        bail!("axis {axis} is out of range for rank {rank}");
    }
    Ok(resolved as usize)
}

/// Gathers `map` along each axis independently: entry `o` of output axis `a` reads entry
/// `picks[a][o]` of input axis `a`.
fn gather_axes(map: &AffineGather, picks: &[Vec<usize>]) -> AffineGather {
    let new_shape: Vec<usize> = picks.iter().map(Vec::len).collect();
    let strides = strides_of(&map.shape);
    let n: usize = new_shape.iter().product();
    let index = (0..n).map(|t| {
        let idx = unravel(t, &new_shape);
        idx.iter().enumerate().map(|(a, &i)| picks[a][i] * strides[a]).sum()
    });
    map.reindexed(new_shape.clone(), index.collect::<Vec<_>>().into_iter())
}

/// Slice (opset 1–9 attributes or opset 10+ inputs): per axis, the positions
/// `start, start+step, …` before `end`, with negative indices counted from the end and clamped as
/// the ONNX spec says (to [0, dim] for positive steps, to [-1, dim-1] for negative ones).
pub fn fold_slice(graph: &OnnxGraph, node: &NodeProto, map: &AffineGather) -> Result<AffineGather> {
    let shape = &map.shape;
    let rank = shape.len();
    let starts = ints_of(graph, node, 1, "starts")?.context("Slice without starts")?;
    let ends = ints_of(graph, node, 2, "ends")?.context("Slice without ends")?;
    let axes = ints_of(graph, node, 3, "axes")?.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = ints_of(graph, node, 4, "steps")?.unwrap_or_else(|| vec![1; starts.len()]);
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        bail!("Slice starts {starts:?}, ends {ends:?}, axes {axes:?} and steps {steps:?} differ in length");
    }
    let mut picks: Vec<Vec<usize>> = shape.iter().map(|&d| (0..d).collect()).collect();
    let mut sliced = vec![false; rank];
    for (i, &axis) in axes.iter().enumerate() {
        let a = resolve_axis(axis, rank)?;
        if std::mem::replace(&mut sliced[a], true) {
            bail!("Slice names axis {axis} twice");
        }
        picks[a] = slice_positions(starts[i], ends[i], steps[i], shape[a])?;
    }
    Ok(gather_axes(map, &picks))
}

/// The positions one Slice axis keeps, per the ONNX spec.
pub(crate) fn slice_positions(start: i64, end: i64, step: i64, dim: usize) -> Result<Vec<usize>> {
    if step == 0 {
        bail!("Slice step 0");
    }
    let dim = dim as i64;
    let from_end = |v: i64| if v < 0 { v.saturating_add(dim) } else { v };
    let (start, end) = (from_end(start), from_end(end));
    let (start, end) = if step > 0 {
        (start.clamp(0, dim), end.clamp(0, dim))
    } else {
        (start.clamp(0, dim - 1), end.clamp(-1, dim - 1))
    };
    let mut positions = vec![];
    let mut i = start;
    while (step > 0 && i < end) || (step < 0 && i > end) {
        positions.push(i as usize);
        i += step;
    }
    Ok(positions)
}

/// Resize (opset 11+ inputs X, roi, scales, sizes) in nearest mode with constant scales or sizes:
/// every output value copies one input value, chosen per axis as the ONNX spec says for each
/// `coordinate_transformation_mode` and `nearest_mode`. Linear and cubic modes mix several input
/// values into one and are refused.
pub fn fold_resize(graph: &OnnxGraph, node: &NodeProto, map: &AffineGather) -> Result<AffineGather> {
    let mode = attr_string(node, "mode").unwrap_or_else(|| "nearest".into());
    if mode != "nearest" {
        bail!("Resize mode {mode} mixes several pixels per value: not a gather");
    }
    let (coordinates, per_axis) = resize_axes(graph, node, &map.shape)?;
    let rounding = attr_string(node, "nearest_mode").unwrap_or_else(|| "round_prefer_floor".into());
    let rounding = NearestRounding::parse(&rounding)?;
    let shape = &map.shape;
    let mut picks = Vec::with_capacity(shape.len());
    for (a, &(scale, out_len)) in per_axis.iter().enumerate() {
        let in_len = shape[a];
        let mut axis_picks = Vec::with_capacity(out_len);
        for o in 0..out_len {
            let x = original_coordinate(&coordinates, o, scale, in_len, out_len)?;
            let nearest = rounding.apply(x);
            axis_picks.push(nearest.clamp(0.0, (in_len - 1) as f32) as usize);
        }
        picks.push(axis_picks);
    }
    Ok(gather_axes(map, &picks))
}

/// Linear Resize (opset 11+, constant scales or sizes) as a separable resampling of its input of
/// `shape`: two taps per resized axis, the input coordinate clamped to the axis as ONNX runtimes do.
pub fn linear_resize(graph: &OnnxGraph, node: &NodeProto, shape: &[usize]) -> Result<Resample> {
    let mode = attr_string(node, "mode").unwrap_or_else(|| "nearest".into());
    if mode != "linear" {
        bail!("Resize mode {mode} is not folded; blindspot folds nearest and linear resizing");
    }
    if attr_int(node, "antialias", 0) != 0 {
        bail!("Resize with antialias is not folded");
    }
    let (coordinates, per_axis) = resize_axes(graph, node, shape)?;
    let mut taps = Vec::with_capacity(shape.len());
    for (a, &(scale, out_len)) in per_axis.iter().enumerate() {
        let in_len = shape[a];
        let axis_taps = (0..out_len)
            .map(|o| {
                if in_len == out_len && scale == 1.0 {
                    return Ok(vec![(o, 1.0)]);
                }
                let x = original_coordinate(&coordinates, o, scale, in_len, out_len)?;
                let x = x.clamp(0.0, (in_len - 1) as f32);
                let low = x.floor() as usize;
                let high = (low + 1).min(in_len - 1);
                let frac = (x - low as f32) as f64;
                Ok(if high == low || frac == 0.0 {
                    vec![(low, 1.0)]
                } else {
                    vec![(low, 1.0 - frac), (high, frac)]
                })
            })
            .collect::<Result<Vec<_>>>()?;
        taps.push(axis_taps);
    }
    Ok(Resample {
        in_shape: shape.to_vec(),
        out_shape: per_axis.iter().map(|&(_, n)| n).collect(),
        taps,
    })
}

/// The coordinate mode and, per axis, (scale, output length) of a Resize with constant scales or
/// sizes.
fn resize_axes(graph: &OnnxGraph, node: &NodeProto, shape: &[usize]) -> Result<(String, Vec<(f32, usize)>)> {
    if node.input.len() == 2 {
        // Opset 10's (X, scales): its nearest rounding was never pinned down, and runtimes differ.
        bail!("Resize with the opset-10 inputs (X, scales) is not folded; re-export with opset 11 or later");
    }
    let coordinates = attr_string(node, "coordinate_transformation_mode").unwrap_or_else(|| "half_pixel".into());
    if attr_string(node, "keep_aspect_ratio_policy").is_some_and(|p| p != "stretch") {
        bail!("Resize with a keep_aspect_ratio_policy other than stretch is not folded");
    }
    let rank = shape.len();
    let axes: Vec<usize> = match attr_ints(node, "axes") {
        Some(axes) => axes.iter().map(|&a| resolve_axis(a, rank)).collect::<Result<_>>()?,
        None => (0..rank).collect(),
    };
    // Scales are float32 in the graph, and runtimes do this arithmetic in float32: so does this
    // fold, so that ties between two input pixels break the same way.
    let scales = constant_input(graph, node, 2)?.filter(|c| !c.values.is_empty());
    let sizes = constant_input(graph, node, 3)?.filter(|c| !c.values.is_empty());
    let mut per_axis: Vec<(f32, usize)> = shape.iter().map(|&d| (1.0, d)).collect();
    match (scales, sizes) {
        (Some(scales), None) => {
            if scales.values.len() != axes.len() {
                bail!("Resize has {} scales for {} axes", scales.values.len(), axes.len());
            }
            for (&a, &s) in axes.iter().zip(&scales.values) {
                let s = s as f32;
                if !(s > 0.0 && s.is_finite()) {
                    bail!("Resize scale {s} is not a positive number");
                }
                per_axis[a] = (s, (shape[a] as f32 * s).floor() as usize);
            }
        }
        (None, Some(sizes)) => {
            if sizes.values.len() != axes.len() {
                bail!("Resize has {} sizes for {} axes", sizes.values.len(), axes.len());
            }
            for (&a, &n) in axes.iter().zip(&sizes.values) {
                if n < 1.0 {
                    bail!("Resize size {n} is not a positive length");
                }
                per_axis[a] = (n as f32 / shape[a] as f32, n as usize);
            }
        }
        (Some(_), Some(_)) => bail!("Resize gives both scales and sizes"),
        (None, None) => bail!("Resize without constant scales or sizes"),
    }
    for (a, &(_, out_len)) in per_axis.iter().enumerate() {
        if out_len == 0 || shape[a] == 0 {
            bail!("Resize of axis {a} from {} to {out_len} values", shape[a]);
        }
    }
    Ok((coordinates, per_axis))
}

/// Where output position `o` of a resized axis sits in the input, per
/// `coordinate_transformation_mode`.
pub(crate) fn original_coordinate(mode: &str, o: usize, scale: f32, in_len: usize, out_len: usize) -> Result<f32> {
    let x = o as f32;
    Ok(match mode {
        "half_pixel" => (x + 0.5) / scale - 0.5,
        "pytorch_half_pixel" if out_len > 1 => (x + 0.5) / scale - 0.5,
        "pytorch_half_pixel" => 0.0,
        "align_corners" if out_len > 1 => x * (in_len as f32 - 1.0) / (out_len as f32 - 1.0),
        "align_corners" => 0.0,
        "asymmetric" => x / scale,
        "tf_half_pixel_for_nn" => (x + 0.5) / scale,
        "half_pixel_symmetric" => {
            let adjustment = out_len as f32 / (scale * in_len as f32);
            let offset = in_len as f32 / 2.0 * (1.0 - adjustment);
            offset + (x + 0.5) / scale - 0.5
        }
        "tf_crop_and_resize" => bail!("Resize with coordinate_transformation_mode tf_crop_and_resize is not folded"),
        other => bail!("Resize coordinate_transformation_mode {other} is not one ONNX defines"),
    })
}

/// ONNX `nearest_mode`: how a coordinate between two input positions picks one.
#[derive(Clone, Copy, Debug)]
pub(crate) enum NearestRounding {
    RoundPreferFloor,
    RoundPreferCeil,
    Floor,
    Ceil,
}

impl NearestRounding {
    pub(crate) fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "round_prefer_floor" => Self::RoundPreferFloor,
            "round_prefer_ceil" => Self::RoundPreferCeil,
            "floor" => Self::Floor,
            "ceil" => Self::Ceil,
            other => bail!("Resize nearest_mode {other} is not one ONNX defines"),
        })
    }

    pub(crate) fn apply(self, x: f32) -> f32 {
        let tie = x - x.floor() == 0.5;
        match self {
            Self::RoundPreferFloor if tie => x.floor(),
            Self::RoundPreferCeil if tie => x.ceil(),
            Self::RoundPreferFloor | Self::RoundPreferCeil => x.round(),
            Self::Floor => x.floor(),
            Self::Ceil => x.ceil(),
        }
    }
}

/// Ops a fan-out branch may pass through on its way to the Concat: the index-moving and
/// elementwise-affine ops `frontend::fold_affine` folds.
fn folds_in_a_branch(op: &str) -> bool {
    matches!(
        op,
        "Cast"
            | "Identity"
            | "Transpose"
            | "Reshape"
            | "Flatten"
            | "Unsqueeze"
            | "Squeeze"
            | "Add"
            | "Sub"
            | "Mul"
            | "Div"
            | "Pad"
            | "Slice"
            | "Resize"
    )
}

/// Folds a fan-out of `value` that meets again in one Concat, as in YOLOv5's Focus layer
/// (`cat(x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2], 1)`): every
/// reader of `value` starts a branch of single-reader foldable ops (Slice, or torch's Slice on H
/// then Slice on W, …) and every branch ends in the same Concat, whose inputs are all branch ends.
/// Returns the map to the Concat's output, that value, and the folded ops' types in graph order;
/// `None` when the fan-out is not of this shape.
pub fn fold_fan_out(
    graph: &OnnxGraph,
    value: &str,
    map: &AffineGather,
    shape_of: &dyn Fn(&str) -> Option<Vec<usize>>,
) -> Result<Option<(AffineGather, String, Vec<String>)>> {
    if graph.is_graph_output(value) {
        return Ok(None);
    }
    let starts = readers(graph, value);
    if starts.is_empty() {
        return Ok(None);
    }
    let mut concat: Option<&NodeProto> = None;
    // Branch end value → the map onto it.
    let mut ends: Vec<(String, AffineGather)> = vec![];
    let mut folded: Vec<&NodeProto> = vec![];
    for first in starts {
        let (mut node, mut current, mut branch_map) = (first, value.to_string(), map.clone());
        loop {
            if node.op_type == "Concat" {
                if concat.is_some_and(|c| !std::ptr::eq(c, node)) {
                    return Ok(None);
                }
                concat = Some(node);
                ends.push((current, branch_map));
                break;
            }
            let elementwise = matches!(node.op_type.as_str(), "Add" | "Sub" | "Mul" | "Div");
            let reads_current = node.input.first() == Some(&current) || (elementwise && node.input.contains(&current));
            if !folds_in_a_branch(&node.op_type) || !reads_current {
                return Ok(None);
            }
            branch_map = crate::frontend::fold_affine(graph, node, &branch_map, shape_of)
                .with_context(|| format!("{} node {}", node.op_type, node_label(node)))?;
            folded.push(node);
            current = node.output[0].clone();
            match only_consumer(graph, &current) {
                Some(next) => node = next,
                None => return Ok(None),
            }
        }
    }
    let Some(concat) = concat else { return Ok(None) };
    let mut parts = Vec::with_capacity(concat.input.len());
    for input in &concat.input {
        match ends.iter().find(|(v, _)| v == input) {
            Some((_, m)) => parts.push(m),
            None if graph.is_constant(input) => bail!(
                "Concat node {} joins the image with the constant {input}; not folded yet",
                node_label(concat)
            ),
            None => return Ok(None),
        }
    }
    let axis = attr_int(concat, "axis", 1);
    let joined = concatenate(&parts, axis).with_context(|| format!("Concat node {}", node_label(concat)))?;
    let mut ops: Vec<String> = folded.iter().map(|n| n.op_type.clone()).collect();
    ops.push("Concat".into());
    Ok(Some((joined, concat.output[0].clone(), ops)))
}

/// Joins maps along `axis`, as Concat joins their tensors.
fn concatenate(parts: &[&AffineGather], axis: i64) -> Result<AffineGather> {
    let first = parts.first().context("nothing to join")?;
    let rank = first.shape.len();
    let axis = resolve_axis(axis, rank)?;
    for p in parts {
        let same_elsewhere = p.shape.len() == rank && (0..rank).all(|a| a == axis || p.shape[a] == first.shape[a]);
        if !same_elsewhere {
            bail!(
                "shapes {:?} and {:?} do not join along axis {axis}",
                first.shape,
                p.shape
            );
        }
    }
    let outer: usize = first.shape[..axis].iter().product();
    let mut shape = first.shape.clone();
    shape[axis] = parts.iter().map(|p| p.shape[axis]).sum();
    let n: usize = shape.iter().product();
    let mut joined = AffineGather {
        input_dim: first.input_dim,
        shape,
        source: Vec::with_capacity(n),
        scale: Vec::with_capacity(n),
        offset: Vec::with_capacity(n),
    };
    for o in 0..outer {
        for p in parts {
            let chunk = p.len() / outer.max(1);
            let range = o * chunk..(o + 1) * chunk;
            joined.source.extend_from_slice(&p.source[range.clone()]);
            joined.scale.extend_from_slice(&p.scale[range.clone()]);
            joined.offset.extend_from_slice(&p.offset[range]);
        }
    }
    Ok(joined)
}
