//! The front end: the affine map from pixels to the output of the model's first linear layer.
//!
//! Walks the graph from the input through ops that are affine and easy to reason about (Cast,
//! Identity, Transpose, Reshape, Flatten, (Un)Squeeze, Add/Sub/Mul/Div by constants, Pad with a
//! constant, Slice, nearest Resize, Slice…→Concat fan-outs; see `folds`) to the first
//! Conv, Gemm or MatMul with a constant weight, folding the preprocessing and those ops into one
//! `AffineGather` followed by the layer, and per-channel affine ops after a Conv (BatchNorm) into
//! the layer. Dense layers and patchify convolutions become disjoint pixel blocks; other
//! convolutions become one dense block on small images and a matrix-free operator otherwise.

pub mod folds;
mod layer;

pub use layer::weight_matrix;
use layer::{finish_with_layer, pixel_blocks};

use crate::linop::{
    strides_of, unravel, AffineGather, Block, BlockOperator, Compose, Conv2d, ConvGeometry, ConvTiles, LinearOperator,
    Resample,
};
use crate::model::onnx_graph::{attr_float, attr_int, attr_ints, attr_string, node_label, Constant, OnnxGraph};
use crate::model::preprocess::{Grid, Preprocess};
use crate::model::{LoadRequest, Model};
use anyhow::{bail, Context, Result};
use faer::Mat;
use serde::Serialize;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FrontEndKind {
    Dense,
    PatchifyConv,
    Conv,
    Unsupported,
}

/// The first linear layer as written in the graph.
#[derive(Clone, Debug)]
pub struct FirstLayer {
    pub node: String,
    pub op: String,
    pub weight_shape: Vec<usize>,
    pub kernel: Vec<usize>,
    pub strides: Vec<usize>,
    pub pads: Vec<usize>,
    pub group: usize,
    /// The weight as a matrix: rows = outputs, cols = inputs per output (fan-in).
    pub matrix: Mat<f64>,
    /// Machine epsilon of the stored weights.
    pub eps: f64,
    /// Where the layer is a convolution: its geometry on the layer's input tensor.
    pub geometry: Option<ConvGeometry>,
}

/// A model's front end: the map from pixels to the first linear layer's output.
///
/// `first_layer`, `layer_input_map`, `layer` and `output_value` are set together, exactly when
/// the walk reached a linear layer; `form` is [`Form::Unbuilt`] without them, and may be so with
/// them too (`limitation` then says why).
pub struct FrontEnd {
    pub input_name: String,
    pub input_shape: Vec<usize>,
    pub grid: Grid,
    /// Graph ops from the input to the first linear layer, the layer (and its bias Add) included.
    pub ops: Vec<String>,
    pub kind: FrontEndKind,
    /// Why the full-image null space is not computed, where it is not.
    pub limitation: Option<String>,
    pub first_layer: Option<FirstLayer>,
    /// Pixels → the model's input tensor (the preprocessing flags alone).
    pub preprocess_map: AffineGather,
    /// Pixels → the first layer's input tensor.
    pub layer_input_map: Option<AffineGather>,
    /// First-layer input tensor → first-layer output (linear part).
    pub layer: Option<Arc<dyn LinearOperator>>,
    /// Bias of the first layer, per output.
    pub bias: Vec<f64>,
    /// The operator the front end becomes on pixels, by the structure it has.
    pub form: Form,
    /// ONNX value name of the front end's output, to read it back from the running model.
    pub output_value: Option<String>,
    pub output_shape: Vec<usize>,
}

/// The structure of the front end on pixels, which decides how its null space is found.
pub enum Form {
    /// No pixel-space operator: no linear layer was reached, or it could not be folded.
    Unbuilt,
    /// Disjoint blocks in pixel coordinates: the layer is block-diagonal (a dense layer, a patch
    /// or token embedding, a convolution small enough for one dense matrix).
    Blocks(BlockOperator),
    /// Known by its action: an overlapping, strided, padded, dilated or grouped convolution too
    /// large for one dense matrix.
    Conv(ConvFrontEnd),
    /// A linear resampling of the pixels, then the layer, known by its action: no layer stays
    /// block-diagonal behind a resampling.
    Resampled {
        resample: PixelResample,
        operator: ConvFrontEnd,
    },
}

/// Pixels → (gather) → resampling: the part of the front end before `layer_input_map` when the
/// graph resizes the image linearly.
pub struct PixelResample {
    pub before: AffineGather,
    pub resample: Arc<Resample>,
}

/// A front end known by its action: an overlapping, strided, padded, dilated or grouped
/// convolution too large for one dense matrix, or any layer behind a linear resampling.
pub struct ConvFrontEnd {
    /// The convolution, with the per-channel affine ops after it (BatchNormalization, …) folded
    /// in, where the layer is one and nothing resamples the pixels before it.
    pub layer: Option<Arc<Conv2d>>,
    /// Pixels → first-layer output, linear part: the layer after the folded map.
    pub operator: Arc<dyn LinearOperator>,
    /// The same operator as a convolution of the pixel image itself, where the map in front of
    /// the layer only scales each channel (and reorders values): its structure gives the nullity
    /// and a preconditioner. Reordering the pixels changes neither.
    pub pixel_conv: Option<Conv2d>,
}

impl FrontEnd {
    /// The front end as disjoint pixel blocks, where it is block-diagonal.
    pub fn blocks(&self) -> Option<&BlockOperator> {
        match &self.form {
            Form::Blocks(op) => Some(op),
            _ => None,
        }
    }
    /// The front end as an operator known by its action, where it is not block-diagonal.
    pub fn matrix_free(&self) -> Option<&ConvFrontEnd> {
        match &self.form {
            Form::Conv(conv) | Form::Resampled { operator: conv, .. } => Some(conv),
            _ => None,
        }
    }
    /// The linear resampling in front of the layer, where the graph has one.
    pub fn resample(&self) -> Option<&PixelResample> {
        match &self.form {
            Form::Resampled { resample, .. } => Some(resample),
            _ => None,
        }
    }
    pub fn input_dim(&self) -> usize {
        self.grid.len()
    }
    pub fn output_dim(&self) -> usize {
        self.output_shape.iter().product()
    }
    /// The convolution restricted to input tiles (see [`ConvTiles`]), in pixel coordinates, with
    /// the pixels of the gaps between them, which must stay where they are.
    pub fn conv_tiles_in_pixels(&self, tile: usize) -> Result<Option<(BlockOperator, Vec<bool>, ConvTiles)>> {
        let (Form::Conv(conv), Some(map)) = (&self.form, self.layer_input_map.as_ref()) else {
            return Ok(None);
        };
        let Some(layer) = conv.layer.as_ref() else {
            return Ok(None);
        };
        let tiles = layer.tiles(tile);
        let op = pixel_blocks(&tiles.blocks, map)?;
        let mut held = vec![false; map.input_dim];
        for (t, src) in map.source.iter().enumerate() {
            if let Some(k) = src {
                held[*k] |= tiles.gaps[t];
            }
        }
        Ok(Some((op, held, tiles)))
    }

    /// ‖A δ‖₂ for a change δ of the pixels: what the first layer sees of it, in f64.
    pub fn response(&self, delta: &[f64]) -> Option<f64> {
        let (map, layer) = (self.layer_input_map.as_ref()?, self.layer.as_ref()?);
        let resampled = match self.resample() {
            Some(r) => r.resample.apply_vec(&r.before.apply_vec(delta)),
            None => delta.to_vec(),
        };
        Some(crate::linop::norm(&layer.apply_vec(&map.apply_vec(&resampled))))
    }

    /// The affine front end on pixels: A x + offset, in f64.
    pub fn evaluate(&self, pixels: &[f64]) -> Option<Vec<f64>> {
        let (map, layer) = (self.layer_input_map.as_ref()?, self.layer.as_ref()?);
        let resampled = match self.resample() {
            Some(r) => r.resample.apply_vec(&r.before.evaluate(pixels)),
            None => pixels.to_vec(),
        };
        let mut y = layer.apply_vec(&map.evaluate(&resampled));
        for (v, b) in y.iter_mut().zip(&self.bias) {
            *v += b;
        }
        Some(y)
    }
}

/// Finds and folds the front end of `graph` for an input of `input_shape`.
pub fn build(graph: &OnnxGraph, input_name: &str, input_shape: &[usize], pre: &Preprocess) -> Result<FrontEnd> {
    let grid = pre.grid(input_shape)?;
    let preprocess_map = pre.gather(input_shape)?;
    let mut fe = FrontEnd {
        input_name: input_name.to_string(),
        input_shape: input_shape.to_vec(),
        grid,
        ops: vec![],
        kind: FrontEndKind::Unsupported,
        limitation: None,
        first_layer: None,
        preprocess_map: preprocess_map.clone(),
        layer_input_map: None,
        layer: None,
        bias: vec![],
        form: Form::Unbuilt,
        output_value: None,
        output_shape: vec![],
    };
    let mut map = preprocess_map;
    let mut resample: Option<PixelResample> = None;
    let mut value = input_name.to_string();
    // The shape of every value the walk has passed: what a `Shape` node on the way reads.
    let mut shapes: HashMap<String, Vec<usize>> = HashMap::new();
    loop {
        shapes.insert(value.clone(), map.shape.clone());
        let shape_of = |v: &str| shapes.get(v).cloned();
        // Shape-reading nodes see only the (fixed) shape, never the pixel values.
        let consumers: Vec<_> = graph
            .consumers(&value)
            .into_iter()
            .filter(|n| n.op_type != "Shape")
            .collect();
        // A fan-out that meets again in one Concat (YOLOv5's Focus) is one gather; so is a Concat
        // that reads the same value twice.
        let fans_out = consumers.len() > 1 || consumers.first().is_some_and(|n| n.op_type == "Concat");
        if fans_out && !graph.is_graph_output(&value) {
            match crate::frontend::folds::fold_fan_out(graph, &value, &map, &shape_of) {
                Ok(Some((next, joined, ops))) => {
                    fe.ops.extend(ops);
                    map = next;
                    value = joined;
                    continue;
                }
                Ok(None) => {}
                Err(reason) => {
                    fe.limitation = Some(format!("{reason:#}"));
                    return Ok(fe);
                }
            }
        }
        if graph.is_graph_output(&value) || consumers.len() != 1 {
            let what = if consumers.is_empty() {
                "reaches a model output".to_string()
            } else {
                let ops: Vec<_> = consumers.iter().map(|n| n.op_type.as_str()).collect();
                format!("feeds {} nodes ({})", consumers.len(), ops.join(", "))
            };
            fe.limitation = Some(format!(
                "the input {what} before any linear layer; this front end is not folded yet"
            ));
            return Ok(fe);
        }
        let node = consumers[0];
        let op = node.op_type.as_str();
        fe.ops.push(op.to_string());
        let step = match op {
            "Conv" | "Gemm" | "MatMul" => {
                let weight_input = node.input.get(1).map(String::as_str).unwrap_or("");
                if node.input[0] != value || !graph.is_constant(weight_input) {
                    fe.limitation = Some(format!(
                        "{op} node {} does not take the input times a constant weight",
                        node_label(node)
                    ));
                    return Ok(fe);
                }
                return finish_with_layer(fe, graph, node, map, resample);
            }
            "Resize" if attr_string(node, "mode").as_deref() == Some("linear") => {
                if resample.is_some() {
                    Err(anyhow::anyhow!("a second linear Resize is not folded"))
                } else {
                    crate::frontend::folds::linear_resize(graph, node, &map.shape).map(|linear| {
                        let next = AffineGather::identity(linear.out_shape.clone());
                        resample = Some(PixelResample {
                            before: std::mem::replace(&mut map, next.clone()),
                            resample: Arc::new(linear),
                        });
                        next
                    })
                }
            }
            _ => fold_affine(graph, node, &map, &shape_of),
        };
        match step {
            Ok(next) => map = next,
            Err(reason) => {
                fe.limitation = Some(format!("{op} node {}: {reason:#}", node_label(node)));
                return Ok(fe);
            }
        }
        value = node.output[0].clone();
    }
}

/// The map of a constant Pad: `fill` outside, the map's own values inside (pads as ONNX writes
/// them: every axis's begin, then every axis's end).
fn padded(map: &AffineGather, pads: &[i64], fill: f64) -> Result<AffineGather> {
    let shape = &map.shape;
    let rank = shape.len();
    if pads.len() != 2 * rank || pads.iter().any(|&p| p < 0) {
        bail!("pads {pads:?} do not fit rank {rank}");
    }
    let new_shape: Vec<usize> = (0..rank)
        .map(|a| shape[a] + (pads[a] + pads[a + rank]) as usize)
        .collect();
    let strides = strides_of(shape);
    let n: usize = new_shape.iter().product();
    let mut next = AffineGather {
        input_dim: map.input_dim,
        shape: new_shape.clone(),
        source: vec![None; n],
        scale: vec![0.0; n],
        offset: vec![fill; n],
    };
    for t in 0..n {
        let idx = unravel(t, &new_shape);
        let mut flat = 0;
        let mut inside = true;
        for a in 0..rank {
            let i = idx[a] as i64 - pads[a];
            if i < 0 || i >= shape[a] as i64 {
                inside = false;
                break;
            }
            flat += i as usize * strides[a];
        }
        if inside {
            next.source[t] = map.source[flat];
            next.scale[t] = map.scale[flat];
            next.offset[t] = map.offset[flat];
        }
    }
    Ok(next)
}

/// One affine, index-moving op applied to the running map.
pub(crate) fn fold_affine(
    graph: &OnnxGraph,
    node: &tract_onnx::pb::NodeProto,
    map: &AffineGather,
    shape_of: &dyn Fn(&str) -> Option<Vec<usize>>,
) -> Result<AffineGather> {
    let shape = map.shape.clone();
    let const_input = |i: usize| -> Result<Constant> {
        let name = node
            .input
            .get(i)
            .filter(|n| !n.is_empty())
            .context("a required input is missing")?;
        graph
            .constant(name)?
            .with_context(|| format!("input {name} is not a constant"))
    };
    let ints = |i: usize, attr: &str| -> Result<Option<Vec<i64>>> {
        if let Some(v) = attr_ints(node, attr) {
            return Ok(Some(v));
        }
        match node.input.get(i).filter(|n| !n.is_empty()) {
            // A constant, or shapes and pads computed from the shapes on the way (torch's
            // dynamic axes); otherwise const_input's error names the input.
            Some(name) => {
                let values = match crate::model::constant_folding::evaluate_through_shapes(graph, name, shape_of) {
                    Some(c) => c.values,
                    None => const_input(i)?.values,
                };
                Ok(Some(values.iter().map(|&v| v as i64).collect()))
            }
            None => Ok(None),
        }
    };
    match node.op_type.as_str() {
        "Cast" | "Identity" => Ok(map.clone()),
        "Slice" => crate::frontend::folds::fold_slice(graph, node, map),
        "Resize" => crate::frontend::folds::fold_resize(graph, node, map),
        "Transpose" => {
            let rank = shape.len();
            let perm: Vec<usize> = attr_ints(node, "perm")
                .map(|p| p.into_iter().map(|v| v as usize).collect())
                .unwrap_or_else(|| (0..rank).rev().collect());
            let new_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
            let strides = strides_of(&shape);
            let index = (0..map.len()).map(|t| {
                let idx = unravel(t, &new_shape);
                idx.iter().zip(&perm).map(|(&i, &p)| i * strides[p]).sum()
            });
            Ok(map.reindexed(new_shape.clone(), index.collect::<Vec<_>>().into_iter()))
        }
        "Reshape" | "Flatten" | "Unsqueeze" | "Squeeze" => {
            let new_shape = reshaped(node, &shape, &ints)?;
            if new_shape.iter().product::<usize>() != map.len() {
                bail!("reshape to {new_shape:?} does not keep {} values", map.len());
            }
            let mut next = map.clone();
            next.shape = new_shape;
            Ok(next)
        }
        "Add" | "Sub" | "Mul" | "Div" => {
            let (const_pos, constant) = match (graph.is_constant(&node.input[0]), graph.is_constant(&node.input[1])) {
                (false, true) => (1, const_input(1)?),
                (true, false) => (0, const_input(0)?),
                _ => bail!("both inputs depend on the image: not affine"),
            };
            let cidx = broadcast_index(&shape, &constant.shape)?;
            let mut next = map.clone();
            for (t, &ci) in cidx.iter().enumerate() {
                let c = constant.values[ci];
                let (s, o) = (&mut next.scale[t], &mut next.offset[t]);
                match (node.op_type.as_str(), const_pos) {
                    ("Add", _) => *o += c,
                    ("Sub", 1) => *o -= c,
                    ("Sub", _) => {
                        *s = -*s;
                        *o = c - *o;
                    }
                    ("Mul", _) => {
                        *s *= c;
                        *o *= c;
                    }
                    ("Div", 1) => {
                        *s /= c;
                        *o /= c;
                    }
                    _ => bail!("a constant divided by the image is not affine"),
                }
            }
            Ok(next)
        }
        "Pad" => {
            let mode = attr_string(node, "mode").unwrap_or_else(|| "constant".into());
            if mode != "constant" {
                bail!("Pad mode {mode} is not affine in a way blindspot folds yet");
            }
            let pads = ints(1, "pads")?.context("Pad without pads")?;
            if node.input.get(3).is_some_and(|a| !a.is_empty()) {
                bail!("Pad with axes is not folded yet");
            }
            let fill = match node.input.get(2).filter(|n| !n.is_empty()) {
                Some(_) => const_input(2)?.values.first().copied().unwrap_or(0.0),
                None => attr_float(node, "value", 0.0),
            };
            padded(map, &pads, fill)
        }
        other => bail!("op {other} between the input and the first linear layer is not supported"),
    }
}

/// Reads an int list from an attribute, or else from a constant input.
type IntsOf<'a> = dyn Fn(usize, &str) -> Result<Option<Vec<i64>>> + 'a;

fn reshaped(node: &tract_onnx::pb::NodeProto, shape: &[usize], ints: &IntsOf) -> Result<Vec<usize>> {
    let total: usize = shape.iter().product();
    Ok(match node.op_type.as_str() {
        "Flatten" => {
            let rank = shape.len() as i64;
            let mut axis = attr_int(node, "axis", 1);
            if axis < 0 {
                axis += rank;
            }
            let outer: usize = shape[..axis as usize].iter().product();
            vec![outer, total / outer.max(1)]
        }
        "Reshape" => {
            let target = ints(1, "shape")?.context("Reshape without a constant shape")?;
            let allow_zero = attr_int(node, "allowzero", 0) == 1;
            let mut out: Vec<i64> = target
                .iter()
                .enumerate()
                .map(|(i, &d)| if d == 0 && !allow_zero { shape[i] as i64 } else { d })
                .collect();
            if let Some(pos) = out.iter().position(|&d| d == -1) {
                let known: i64 = out.iter().filter(|&&d| d != -1).product();
                out[pos] = total as i64 / known.max(1);
            }
            out.into_iter().map(|d| d as usize).collect()
        }
        "Unsqueeze" => {
            let axes = ints(1, "axes")?.context("Unsqueeze without axes")?;
            let rank = shape.len() + axes.len();
            let axes: Vec<usize> = axes
                .iter()
                .map(|&a| if a < 0 { (a + rank as i64) as usize } else { a as usize })
                .collect();
            let mut it = shape.iter();
            (0..rank)
                .map(|i| if axes.contains(&i) { 1 } else { *it.next().unwrap_or(&1) })
                .collect()
        }
        _ => {
            let rank = shape.len() as i64;
            match ints(1, "axes")? {
                Some(axes) => {
                    let axes: Vec<usize> = axes
                        .iter()
                        .map(|&a| if a < 0 { (a + rank) as usize } else { a as usize })
                        .collect();
                    shape
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| !axes.contains(i))
                        .map(|(_, &d)| d)
                        .collect()
                }
                None => shape.iter().copied().filter(|&d| d != 1).collect(),
            }
        }
    })
}

/// The largest whole-image convolution written out as one dense matrix: 2^24 entries (128 MiB in
/// f64), and no more columns than a dense SVD takes in a few seconds.
pub(crate) const DENSE_CONV_MAX_ENTRIES: usize = 1 << 24;
pub(crate) const DENSE_CONV_MAX_COLS: usize = 4096;

/// A block matrix's identity and, per column, (column, local pixel, scale bits).
type BlockKey = (usize, Vec<(u32, u32, u64)>);

/// For each element of a tensor of `shape`, the flat index of the broadcast constant.
fn broadcast_index(shape: &[usize], cshape: &[usize]) -> Result<Vec<usize>> {
    if cshape.len() > shape.len() {
        bail!("constant of shape {cshape:?} would broadcast the input {shape:?} to a larger tensor");
    }
    let lead = shape.len() - cshape.len();
    let cstrides = strides_of(cshape);
    for (a, &d) in cshape.iter().enumerate() {
        if d != 1 && d != shape[lead + a] {
            bail!("constant of shape {cshape:?} does not broadcast to {shape:?}");
        }
    }
    let n: usize = shape.iter().product();
    Ok((0..n)
        .map(|t| {
            let idx = unravel(t, shape);
            cshape
                .iter()
                .enumerate()
                .map(|(a, &d)| if d == 1 { 0 } else { idx[lead + a] * cstrides[a] })
                .sum()
        })
        .collect())
}

/// Loads a model and folds its front end under the given preprocessing.
pub fn open(path: &Path, input_shape: Option<&[usize]>, pre: &Preprocess) -> Result<(Model, FrontEnd)> {
    open_with(
        path,
        &LoadRequest {
            input_shape,
            ..Default::default()
        },
        pre,
    )
}

/// [`open`] for a command that runs on `image`: an open height and width take the image's.
pub fn open_for_image(
    path: &Path,
    input_shape: Option<&[usize]>,
    pre: &Preprocess,
    image: &Path,
) -> Result<(Model, FrontEnd)> {
    open_with(
        path,
        &LoadRequest {
            input_shape,
            image: Some(image),
            ..Default::default()
        },
        pre,
    )
}

/// Loads a model as `request` says (image input, shape, held inputs, preprocessed by `pre` where
/// they are images) and folds the chosen input's front end.
pub fn open_with(path: &Path, request: &LoadRequest, pre: &Preprocess) -> Result<(Model, FrontEnd)> {
    let model = Model::load_with(
        path,
        &LoadRequest {
            preprocess: Some(pre),
            ..*request
        },
    )?;
    let fe = front_end(&model, pre)?;
    Ok((model, fe))
}

/// Folds the front end of a loaded model under the given preprocessing.
pub fn front_end(model: &Model, pre: &Preprocess) -> Result<FrontEnd> {
    build(&model.graph, &model.input_name, &model.input_shape, pre)
}
