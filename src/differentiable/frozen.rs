//! The network frozen at one input: every piecewise-linear unit keeps the state it has there (a
//! ReLU its sign, a max-pool window its argmax, a Clip its regime), which makes the map from the
//! input to any later value L linear — the Jacobian J of L at that input, exact on the input's
//! activation region. Its action is a forward pass of tangents through the frozen states, its
//! adjoint reverse mode through the same states; the units' margins say how far the region
//! reaches.

use super::conv::PoolWindows;
use super::{backward, gather_inputs, ops, Ctx, Differentiable, Pass};
use crate::error::Unsupported;
use crate::model::onnx_graph::{attr_float, node_label};
use anyhow::{anyhow, bail, Context, Result};
use candle_core::{DType, Tensor};
use std::collections::{HashMap, HashSet};
use tract_onnx::pb::NodeProto;

/// Ops linear in the values computed from the input once their additive constants are dropped.
pub const LINEAR_OPS: &[&str] = &[
    "Add",
    "AveragePool",
    "BatchNormalization",
    "Cast",
    "Concat",
    "Conv",
    "ConvTranspose",
    "Div",
    "Dropout",
    "Expand",
    "Flatten",
    "Gather",
    "Gemm",
    "GlobalAveragePool",
    "Identity",
    "MatMul",
    "Mul",
    "Neg",
    "Pad",
    "ReduceMean",
    "ReduceSum",
    "Reshape",
    "Resize",
    "Slice",
    "Split",
    "Squeeze",
    "Sub",
    "Sum",
    "Tile",
    "Transpose",
    "Unsqueeze",
    "Upsample",
];

/// Ops that are piecewise linear with a state per unit.
pub const KINKED_OPS: &[&str] = &["Clip", "LeakyRelu", "MaxPool", "PRelu", "Relu"];

/// Whether blindspot can freeze `op`: linear, or piecewise linear with states it tracks.
pub fn is_piecewise_linear(op: &str) -> bool {
    LINEAR_OPS.contains(&op) || KINKED_OPS.contains(&op)
}

/// Marks a [`Unit`] that reads one element only.
pub const ONE_ELEMENT: usize = usize::MAX;

/// One condition of the activation region: `margin + sign · (T[at] − T[minus]) ≥ 0` for the
/// tangent T of the value a [`Units`] reads (`T[minus]` is 0 for [`ONE_ELEMENT`]). A ReLU unit
/// keeps its sign; a max-pool window keeps its selected element above each other one; a Clip
/// stays in its regime.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Unit {
    pub at: usize,
    pub minus: usize,
    pub sign: f64,
    /// At the frozen input: how far the unit is from its kink (≥ 0).
    pub margin: f64,
}

impl Unit {
    /// The unit's margin changes at this rate along a tangent `t` of its value.
    pub fn rate(&self, t: &[f64]) -> f64 {
        let minus = if self.minus == ONE_ELEMENT { 0.0 } else { t[self.minus] };
        self.sign * (t[self.at] - minus)
    }
}

/// The region conditions of one node.
#[derive(Clone, Debug)]
pub struct Units {
    pub node: String,
    pub op: String,
    /// The value whose elements the conditions read (the node's input).
    pub value: String,
    pub units: Vec<Unit>,
}

/// The model frozen at one input, up to one value: J and its adjoint.
pub struct Frozen<'a> {
    engine: &'a Differentiable,
    pass: Pass,
    /// Indices into the engine's nodes that the layer depends on, in graph order.
    nodes: Vec<usize>,
    /// For each MaxPool node (by index): the input element every output element selects.
    selections: HashMap<usize, Vec<usize>>,
    layer: String,
    layer_shape: Vec<usize>,
}

impl Differentiable {
    /// Freezes the network at `input` (the tensor as fed) up to the value `layer`. Refuses, naming
    /// the node and op, a value that depends on an op that is not piecewise linear in the input.
    pub fn freeze(&self, input: &[f64], layer: &str) -> Result<Frozen<'_>> {
        let nodes = self.ancestors(layer)?;
        for &i in &nodes {
            check_node(&self.nodes[i], &self.pass_free_dependent(i))?;
        }
        let pass = self.forward(&self.input_tensor(input)?)?;
        let layer_shape = pass
            .values
            .get(layer)
            .map(|t| t.dims().to_vec())
            .ok_or_else(|| anyhow!("the value {layer} is not computed from the input"))?;
        let mut selections = HashMap::new();
        for &i in &nodes {
            let node = &self.nodes[i];
            if node.op_type == "MaxPool" {
                let x = pass
                    .values
                    .get(&node.input[0])
                    .context("a MaxPool input was not kept")?;
                selections.insert(i, max_pool_selection(node, x)?.0);
            }
        }
        Ok(Frozen {
            engine: self,
            pass,
            nodes,
            selections,
            layer: layer.to_string(),
            layer_shape,
        })
    }

    /// The value the last Gemm or MatMul computed from the input multiplies by a constant weight:
    /// the penultimate features of a classifier.
    pub fn last_dense_input(&self) -> Option<String> {
        self.nodes.iter().rev().find_map(|n| {
            if !matches!(n.op_type.as_str(), "Gemm" | "MatMul") || n.input.len() < 2 {
                return None;
            }
            let static_input = |k: usize| self.statics.contains_key(&n.input[k]);
            match (static_input(0), static_input(1)) {
                (false, true) => Some(n.input[0].clone()),
                (true, false) => Some(n.input[1].clone()),
                _ => None,
            }
        })
    }

    /// The nodes `value` depends on, in graph order.
    fn ancestors(&self, value: &str) -> Result<Vec<usize>> {
        let producer: HashMap<&str, usize> = self
            .nodes
            .iter()
            .enumerate()
            .flat_map(|(i, n)| n.output.iter().map(move |o| (o.as_str(), i)))
            .collect();
        if value != self.input_name && !producer.contains_key(value) {
            bail!("the model computes no value named {value} from its input");
        }
        let mut needed = HashSet::new();
        let mut stack = vec![value.to_string()];
        while let Some(v) = stack.pop() {
            if let Some(&i) = producer.get(v.as_str()) {
                if needed.insert(i) {
                    stack.extend(self.nodes[i].input.iter().filter(|s| !s.is_empty()).cloned());
                }
            }
        }
        let mut order: Vec<usize> = needed.into_iter().collect();
        order.sort_unstable();
        Ok(order)
    }

    /// Which inputs of node `i` are computed from the model input.
    fn pass_free_dependent(&self, i: usize) -> Vec<bool> {
        self.nodes[i]
            .input
            .iter()
            .map(|name| !name.is_empty() && !self.statics.contains_key(name))
            .collect()
    }

    /// The deepest value `layer` depends on whose whole computation is piecewise linear: what
    /// a refusal suggests instead.
    pub fn deepest_piecewise_linear_value(&self, layer: &str) -> Option<String> {
        let nodes = self.ancestors(layer).ok()?;
        let mut good: HashSet<String> = HashSet::from([self.input_name.clone()]);
        let mut deepest = None;
        for &i in &nodes {
            let node = &self.nodes[i];
            let dependent = self.pass_free_dependent(i);
            let inputs_good = node.input.iter().zip(&dependent).all(|(n, &d)| !d || good.contains(n));
            if inputs_good && check_node(node, &dependent).is_ok() {
                for o in node.output.iter().filter(|o| !o.is_empty()) {
                    good.insert(o.clone());
                }
                if matches!(
                    node.op_type.as_str(),
                    "Conv" | "Gemm" | "MatMul" | "Relu" | "MaxPool" | "Add" | "Clip" | "PRelu" | "LeakyRelu"
                ) {
                    deepest = Some(node.output[0].clone());
                }
            }
        }
        deepest
    }
}

/// Refuses a node that is not piecewise linear in the values computed from the input.
fn check_node(node: &NodeProto, dependent: &[bool]) -> Result<()> {
    let op = node.op_type.as_str();
    let refuse = |why: &str| -> Result<()> {
        Err(Unsupported {
            node: node_label(node),
            op: op.to_string(),
            message: format!("{op} node {} {why}", node_label(node)),
        }
        .into())
    };
    if !is_piecewise_linear(op) {
        return refuse("is not piecewise linear");
    }
    let count = dependent.iter().filter(|&&d| d).count();
    let only_first = count == 1 && dependent[0];
    let linear_in_one = count == 1 && (dependent[0] || dependent.get(1) == Some(&true));
    match op {
        "Add" | "Sub" | "Sum" | "Concat" => Ok(()),
        "Mul" | "MatMul" if !linear_in_one => refuse("multiplies two values computed from the input"),
        "Gemm" if !linear_in_one || dependent.get(2) == Some(&true) => {
            refuse("multiplies two values computed from the input")
        }
        "Mul" | "MatMul" | "Gemm" => Ok(()),
        _ if !only_first => refuse("has a weight or parameter computed from the input"),
        _ => Ok(()),
    }
}

/// MaxPool's frozen state at `x`: for every output element the input element it selects (the
/// first tap holding the maximum, as the engine's pooling selects), and every tap of its window
/// as (output element, input element), padding left out.
fn max_pool_selection(node: &NodeProto, x: &Tensor) -> Result<(Vec<usize>, Vec<Vec<usize>>)> {
    let windows = PoolWindows::of(node, x)?;
    let index = Tensor::arange(0u32, x.elem_count() as u32, x.device())?
        .to_dtype(DType::F64)?
        .reshape(x.dims())?;
    let values: Vec<Vec<f64>> = windows
        .views(&x.to_dtype(DType::F64)?, f64::NEG_INFINITY)?
        .iter()
        .map(flat)
        .collect::<Result<_>>()?;
    let indices: Vec<Vec<f64>> = windows.views(&index, -1.0)?.iter().map(flat).collect::<Result<_>>()?;
    let outputs = values.first().map_or(0, Vec::len);
    let mut selected = vec![0usize; outputs];
    let mut taps = vec![vec![]; outputs];
    for o in 0..outputs {
        let mut best = 0;
        for k in 1..values.len() {
            if values[k][o] > values[best][o] {
                best = k;
            }
        }
        selected[o] = indices[best][o] as usize;
        taps[o] = indices.iter().filter(|v| v[o] >= 0.0).map(|v| v[o] as usize).collect();
    }
    Ok((selected, taps))
}

fn flat(t: &Tensor) -> Result<Vec<f64>> {
    Ok(t.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?)
}

/// The bounds of a Clip, from its inputs (opset ≥ 11) or attributes.
fn clip_bounds(node: &NodeProto, inputs: &[Option<Tensor>], opset: i64) -> Result<(f64, f64)> {
    let bound = |i: usize, attr: &str, default: f64| -> Result<f64> {
        if opset < 11 {
            return Ok(attr_float(node, attr, default));
        }
        match inputs.get(i).and_then(Option::as_ref) {
            Some(t) => Ok(flat(t)?[0]),
            None => Ok(default),
        }
    };
    Ok((bound(1, "min", f64::NEG_INFINITY)?, bound(2, "max", f64::INFINITY)?))
}

impl Frozen<'_> {
    pub fn layer(&self) -> &str {
        &self.layer
    }
    pub fn layer_shape(&self) -> &[usize] {
        &self.layer_shape
    }
    pub fn input_dim(&self) -> usize {
        self.engine.input_shape.iter().product()
    }
    pub fn layer_dim(&self) -> usize {
        self.layer_shape.iter().product()
    }
    /// The value `name` at the frozen input, flattened.
    pub fn value(&self, name: &str) -> Result<Vec<f64>> {
        flat(
            self.pass
                .values
                .get(name)
                .with_context(|| format!("no value named {name}"))?,
        )
    }

    fn ctx(&self) -> Ctx<'_> {
        self.engine.ctx()
    }

    /// Tangents of every value the layer depends on along `v` (a change of the input tensor),
    /// flattened: J v for the layer, and the change of every unit's input.
    pub fn tangents(&self, v: &[f64]) -> Result<HashMap<String, Vec<f64>>> {
        let tensors = self.tangent_tensors(v)?;
        tensors.iter().map(|(k, t)| Ok((k.clone(), flat(t)?))).collect()
    }

    fn tangent_tensors(&self, v: &[f64]) -> Result<HashMap<String, Tensor>> {
        let ctx = self.ctx();
        let e = self.engine;
        let mut tangents: HashMap<String, Tensor> = HashMap::new();
        tangents.insert(e.input_name.clone(), e.input_tensor(v)?);
        for &i in &self.nodes {
            let node = &e.nodes[i];
            let primal = gather_inputs(node, &self.pass.values, &e.statics)?;
            let outputs = self
                .node_tangent(i, node, &primal, &tangents, &ctx)
                .with_context(|| format!("tangent of node {} ({})", node_label(node), node.op_type))?;
            for (name, t) in node.output.iter().zip(outputs) {
                if let (false, Some(t)) = (name.is_empty(), t) {
                    tangents.insert(name.clone(), t);
                }
            }
        }
        Ok(tangents)
    }

    fn node_tangent(
        &self,
        i: usize,
        node: &NodeProto,
        primal: &[Option<Tensor>],
        tangents: &HashMap<String, Tensor>,
        ctx: &Ctx,
    ) -> Result<Vec<Option<Tensor>>> {
        let t_of = |k: usize| -> Result<Tensor> {
            tangents
                .get(&node.input[k])
                .cloned()
                .ok_or_else(|| anyhow!("no tangent for {}", node.input[k]))
        };
        let x = || ops::required(primal, 0);
        let one = |t: Tensor| Ok(vec![Some(t)]);
        match node.op_type.as_str() {
            "Relu" => one(t_of(0)?.mul(&x()?.gt(0.0)?.to_dtype(ctx.dtype)?)?),
            "LeakyRelu" => {
                let t = t_of(0)?;
                let alpha = attr_float(node, "alpha", 0.01);
                one(x()?.gt(0.0)?.where_cond(&t, &t.affine(alpha, 0.0)?)?)
            }
            "PRelu" => {
                let t = t_of(0)?;
                let slope = ops::required(primal, 1)?;
                one(x()?.gt(0.0)?.where_cond(&t, &t.broadcast_mul(slope)?)?)
            }
            "Clip" => one(t_of(0)?.mul(&clip_inside(node, primal, ctx)?)?),
            "MaxPool" => {
                let t = flat(&t_of(0)?)?;
                let selected = &self.selections[&i];
                let y = selected.iter().map(|&k| t[k]).collect::<Vec<f64>>();
                let dims = self.pass.values[&node.output[0]].dims().to_vec();
                let mut out = vec![Some(Tensor::from_vec(y, dims, ctx.device)?.to_dtype(ctx.dtype)?)];
                out.extend((1..node.output.len()).map(|_| None));
                Ok(out)
            }
            _ => {
                let (node, inputs) = linear_part(node, primal, tangents)?;
                let outputs = ops::eval(&node, &inputs, ctx)?;
                Ok(outputs.into_iter().map(|t| t.dtype().is_float().then_some(t)).collect())
            }
        }
    }

    /// J v for the layer: the tangent of the layer along `v`, flattened.
    pub fn apply(&self, v: &[f64]) -> Result<Vec<f64>> {
        let mut tangents = self.tangent_tensors(v)?;
        flat(&tangents.remove(&self.layer).context("the layer got no tangent")?)
    }

    /// Reverse mode through the frozen states from `seeds` (cotangents of values the layer
    /// depends on, flattened): the cotangent of the input tensor. Jᵀ w for a seed at the layer.
    pub fn adjoint(&self, seeds: &[(&str, Vec<f64>)]) -> Result<Vec<f64>> {
        let ctx = self.ctx();
        let e = self.engine;
        let mut grads: HashMap<String, Tensor> = HashMap::new();
        for (name, g) in seeds {
            let dims = self
                .pass
                .values
                .get(*name)
                .with_context(|| format!("no value named {name}"))?
                .dims()
                .to_vec();
            let g = Tensor::from_slice(g, dims, ctx.device)?.to_dtype(ctx.dtype)?;
            super::accumulate(&mut grads, name, g)?;
        }
        for &i in self.nodes.iter().rev() {
            let node = &e.nodes[i];
            let out_grads: Vec<Option<Tensor>> = node.output.iter().map(|o| grads.remove(o)).collect();
            if out_grads.iter().all(Option::is_none) {
                continue;
            }
            let primal = gather_inputs(node, &self.pass.values, &e.statics)?;
            let needs: Vec<bool> = node
                .input
                .iter()
                .zip(&primal)
                .map(|(name, t)| {
                    self.pass.values.contains_key(name) && t.as_ref().is_some_and(|t| t.dtype().is_float())
                })
                .collect();
            let in_grads = self
                .node_adjoint(i, node, &primal, &out_grads, &needs, &ctx)
                .with_context(|| format!("adjoint of node {} ({})", node_label(node), node.op_type))?;
            for ((name, g), need) in node.input.iter().zip(in_grads).zip(&needs) {
                if let (Some(g), true) = (g, need) {
                    super::accumulate(&mut grads, name, g)?;
                }
            }
        }
        match grads.remove(&e.input_name) {
            Some(g) => flat(&g),
            None => Ok(vec![0.0; self.input_dim()]),
        }
    }

    fn node_adjoint(
        &self,
        i: usize,
        node: &NodeProto,
        primal: &[Option<Tensor>],
        out_grads: &[Option<Tensor>],
        needs: &[bool],
        ctx: &Ctx,
    ) -> Result<Vec<Option<Tensor>>> {
        let first = |t: Tensor| {
            let mut v = vec![Some(t)];
            v.extend((1..node.input.len()).map(|_| None));
            Ok(v)
        };
        let x = || ops::required(primal, 0);
        let g = || out_grads[0].clone().context("no cotangent for the first output");
        match node.op_type.as_str() {
            "Relu" => first(g()?.mul(&x()?.gt(0.0)?.to_dtype(ctx.dtype)?)?),
            "LeakyRelu" => {
                let g = g()?;
                let alpha = attr_float(node, "alpha", 0.01);
                first(x()?.gt(0.0)?.where_cond(&g, &g.affine(alpha, 0.0)?)?)
            }
            "PRelu" => {
                let g = g()?;
                let slope = ops::required(primal, 1)?;
                let scaled = g.broadcast_mul(slope)?;
                first(x()?.gt(0.0)?.where_cond(&g, &scaled)?)
            }
            "Clip" => first(g()?.mul(&clip_inside(node, primal, ctx)?)?),
            "MaxPool" => {
                let g = flat(&g()?)?;
                let mut back = vec![0.0; x()?.elem_count()];
                for (o, &k) in self.selections[&i].iter().enumerate() {
                    back[k] += g[o];
                }
                first(Tensor::from_vec(back, x()?.dims(), ctx.device)?.to_dtype(ctx.dtype)?)
            }
            _ => {
                let outputs: Vec<Tensor> = node
                    .output
                    .iter()
                    .map(|o| match o.is_empty() {
                        true => Ok(Tensor::zeros((), ctx.dtype, ctx.device)?),
                        false => self.pass.values.get(o).cloned().context("a node output was not kept"),
                    })
                    .collect::<Result<_>>()?;
                // A linear op's vector-Jacobian product does not depend on the point.
                backward::vjp(node, primal, &outputs, out_grads, needs, ctx)
            }
        }
    }

    /// The activation region's conditions, node by node, at the frozen input.
    pub fn units(&self) -> Result<Vec<Units>> {
        let e = self.engine;
        let mut all = vec![];
        for &i in &self.nodes {
            let node = &e.nodes[i];
            let op = node.op_type.as_str();
            if !KINKED_OPS.contains(&op) {
                continue;
            }
            let primal = gather_inputs(node, &self.pass.values, &e.statics)?;
            let x = flat(ops::required(&primal, 0)?)?;
            let mut units = vec![];
            let sign_unit = |at: usize, v: f64| Unit {
                at,
                minus: ONE_ELEMENT,
                sign: if v > 0.0 { 1.0 } else { -1.0 },
                margin: v.abs(),
            };
            match op {
                "Relu" | "LeakyRelu" | "PRelu" => units.extend(x.iter().enumerate().map(|(at, &v)| sign_unit(at, v))),
                "Clip" => {
                    let (lo, hi) = clip_bounds(node, &primal, e.opset)?;
                    for (at, &v) in x.iter().enumerate() {
                        if v > lo && v < hi {
                            if lo.is_finite() {
                                units.push(sign_unit(at, v - lo));
                            }
                            if hi.is_finite() {
                                units.push(Unit {
                                    sign: -1.0,
                                    ..sign_unit(at, v - hi)
                                });
                            }
                        } else if v <= lo {
                            units.push(sign_unit(at, v - lo));
                        } else {
                            units.push(Unit {
                                sign: 1.0,
                                ..sign_unit(at, v - hi)
                            });
                        }
                    }
                }
                _ => {
                    let (selected, taps) = max_pool_selection(node, ops::required(&primal, 0)?)?;
                    for (o, window) in taps.iter().enumerate() {
                        let best = selected[o];
                        for &k in window.iter().filter(|&&k| k != best) {
                            units.push(Unit {
                                at: best,
                                minus: k,
                                sign: 1.0,
                                margin: x[best] - x[k],
                            });
                        }
                    }
                }
            }
            all.push(Units {
                node: node_label(node),
                op: op.to_string(),
                value: node.input[0].clone(),
                units,
            });
        }
        Ok(all)
    }

    /// The cotangent seed that reads one unit's margin rate: Σ sign · (e_at − e_minus).
    pub fn unit_seed(&self, units: &Units, unit: &Unit) -> Result<Vec<f64>> {
        let n = self
            .pass
            .values
            .get(&units.value)
            .context("a unit's value was not kept")?
            .elem_count();
        let mut seed = vec![0.0; n];
        seed[unit.at] += unit.sign;
        if unit.minus != ONE_ELEMENT {
            seed[unit.minus] -= unit.sign;
        }
        Ok(seed)
    }
}

/// 1 where a Clip's input lies strictly inside its bounds, 0 elsewhere.
fn clip_inside(node: &NodeProto, primal: &[Option<Tensor>], ctx: &Ctx) -> Result<Tensor> {
    let x = ops::required(primal, 0)?;
    let (lo, hi) = clip_bounds(node, primal, ctx.opset)?;
    let mut inside = x.ones_like()?;
    if lo > f64::NEG_INFINITY {
        inside = inside.mul(&x.gt(lo)?.to_dtype(ctx.dtype)?)?;
    }
    if hi < f64::INFINITY {
        inside = inside.mul(&x.lt(hi)?.to_dtype(ctx.dtype)?)?;
    }
    Ok(inside)
}

/// A linear op on tangents: the node (with a Pad's fill set to zero) and its inputs, tangents in
/// place of the values computed from the input and zeros in place of additive constants (biases,
/// a BatchNormalization's shift and mean, a constant summand or concatenated part).
fn linear_part(
    node: &NodeProto,
    primal: &[Option<Tensor>],
    tangents: &HashMap<String, Tensor>,
) -> Result<(NodeProto, Vec<Option<Tensor>>)> {
    let op = node.op_type.as_str();
    let mut node = node.clone();
    let mut inputs = Vec::with_capacity(primal.len());
    for (k, (name, p)) in node.input.iter().zip(primal).enumerate() {
        let input = match (tangents.get(name), p) {
            (Some(t), _) => Some(t.clone()),
            (None, None) => None,
            (None, Some(p)) => {
                let additive = match op {
                    "Conv" | "ConvTranspose" | "Gemm" => k == 2,
                    "Add" | "Sub" | "Sum" | "Concat" => p.dtype().is_float(),
                    "BatchNormalization" => k == 2 || k == 3,
                    "Pad" => k == 2,
                    _ => false,
                };
                match additive {
                    true if op == "Conv" || op == "ConvTranspose" || op == "Gemm" => None,
                    true => Some(p.zeros_like()?),
                    false => Some(p.clone()),
                }
            }
        };
        inputs.push(input);
    }
    if op == "Pad" {
        for a in node.attribute.iter_mut().filter(|a| a.name == "value") {
            a.f = 0.0;
        }
    }
    if op == "Cast" && !ops::required(&inputs, 0)?.dtype().is_float() {
        bail!("Cast of a tangent to a non-float type");
    }
    Ok((node, inputs))
}
