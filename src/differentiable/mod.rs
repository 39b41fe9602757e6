//! Differentiable evaluation of ONNX models on candle: the graph as written, node by node, with
//! reverse-mode gradients with respect to the input and to any intermediate value.
//!
//! Everything that does not depend on the input — weights, shape arithmetic (Shape, Gather,
//! Concat on shapes), constants folded from them — is computed once when the evaluator is built
//! and kept on the device as a tensor. A call evaluates only the nodes that depend on the input.
//! Floats run in the evaluator's dtype (f32 as fed to the model; f64 for finite-difference checks),
//! integers as i64, booleans as u8.
//!
//! Gradients are reverse mode over the graph as written: the forward pass keeps every value, and
//! the backward pass walks the nodes in reverse with one vector-Jacobian product per node
//! (`backward.rs`), for the values that depend on the input only — no gradient is ever formed
//! for a weight.

mod activations;
mod backward;
mod conv;
mod frozen;
mod indexing;
mod kernels;
mod losses;
mod normalisation;
mod ops;
mod quantised;
mod recurrent;
mod resize;
mod shape_ops;
mod supported;

use crate::model::onnx_graph::{node_label, OnnxGraph};
use crate::model::{Model, Value};
use anyhow::{anyhow, bail, Context, Result};
pub use candle_core::{DType, Device, Tensor};
pub use frozen::{is_piecewise_linear, Frozen, Unit, Units, KINKED_OPS, LINEAR_OPS, ONE_ELEMENT};
use serde::Serialize;
use std::collections::HashMap;
use tract_onnx::pb::NodeProto;

/// One element of one model output: what an attribution explains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Target {
    /// Index into the model's outputs.
    pub output: usize,
    /// Flat (row-major) index into that output.
    pub index: usize,
}

pub struct Differentiable {
    /// The nodes that depend on the input, in graph order.
    nodes: Vec<NodeProto>,
    /// Values that do not depend on the input, on the device.
    statics: HashMap<String, Tensor>,
    /// Shapes of the values computed from the input.
    shapes: HashMap<String, Vec<usize>>,
    /// Names of the values computed from the input, in graph order.
    order: Vec<String>,
    input_name: String,
    input_shape: Vec<usize>,
    output_names: Vec<String>,
    device: Device,
    dtype: DType,
    opset: i64,
}

/// One forward pass: every value computed from the input, kept for the backward pass.
pub struct Pass {
    pub outputs: Vec<Tensor>,
    /// Values computed from the input (and the input itself), by name.
    pub values: HashMap<String, Tensor>,
}

/// The score of a target and its gradient with respect to the input tensor as fed.
#[derive(Clone, Debug)]
pub struct InputGradient {
    pub score: f64,
    pub gradient: Vec<f64>,
    pub outputs: Vec<Value>,
}

/// An intermediate value and the gradient of a target with respect to it (what Grad-CAM reads).
#[derive(Clone, Debug)]
pub struct LayerGradient {
    pub score: f64,
    pub activation: Value,
    pub gradient: Value,
}

/// The value an evaluator differentiates with respect to: a graph input, and the shape it is fed in.
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    pub name: &'a str,
    pub shape: &'a [usize],
}

/// Evaluation context shared by the op translations.
pub(crate) struct Ctx<'a> {
    pub opset: i64,
    pub dtype: DType,
    pub device: &'a Device,
}

/// Ops the evaluator translates; anything else is refused by name before any work is done.
pub fn supported_ops() -> &'static [&'static str] {
    ops::SUPPORTED
}

impl Differentiable {
    /// An f32 evaluator on the CPU: the precision the model is fed in.
    pub fn new(model: &Model) -> Result<Differentiable> {
        Differentiable::on(model, &Device::Cpu, DType::F32)
    }

    /// An evaluator on `device` computing floats in `dtype` (F32 or F64).
    pub fn on(model: &Model, device: &Device, dtype: DType) -> Result<Differentiable> {
        let what = model.path.display().to_string();
        let input = Input {
            name: &model.input_name,
            shape: &model.input_shape,
        };
        Differentiable::of_graph(&model.graph, &what, input, &model.output_names, device, dtype)
    }

    /// An evaluator of `graph` from the value `input` to `output_names`, every other graph input
    /// being an initializer: for graphs that are not loaded as a [`Model`] (ONNX's node tests, some
    /// of which tract does not load). `what` names the graph in messages.
    pub fn of_graph(
        graph: &OnnxGraph,
        what: &str,
        input: Input,
        output_names: &[String],
        device: &Device,
        dtype: DType,
    ) -> Result<Differentiable> {
        if !matches!(dtype, DType::F32 | DType::F64) {
            bail!("the gradient engine computes in f32 or f64, not {dtype:?}");
        }
        for node in &graph.graph.node {
            let contrib = node.domain == "com.microsoft" && ops::MICROSOFT.contains(&node.op_type.as_str());
            let refused = |message: String| crate::error::Unsupported {
                node: node_label(node),
                op: node.op_type.clone(),
                message,
            };
            if !node.domain.is_empty() && node.domain != "ai.onnx" && !contrib {
                return Err(refused(format!(
                    "{what}: the gradient engine does not support the op {}::{} (node {})",
                    node.domain,
                    node.op_type,
                    node_label(node)
                ))
                .into());
            }
            if !contrib && !ops::SUPPORTED.contains(&node.op_type.as_str()) {
                return Err(refused(format!(
                    "{what}: the gradient engine does not support the ONNX op {} (node {})",
                    node.op_type,
                    node_label(node)
                ))
                .into());
            }
        }
        let ctx = Ctx {
            opset: graph.opset,
            dtype,
            device,
        };
        let mut statics = HashMap::new();
        for init in &graph.graph.initializer {
            let c = graph.constant(&init.name)?.context("initializer")?;
            statics.insert(init.name.clone(), ops::constant_tensor(&c, &ctx)?);
        }
        // One pass on a zero input gives every shape; values that do not depend on it are kept.
        let mut values: HashMap<String, Tensor> = HashMap::new();
        let zero = Tensor::zeros(input.shape, dtype, device)?;
        values.insert(input.name.to_string(), zero);
        let (mut nodes, mut shapes, mut order) = (vec![], HashMap::new(), vec![]);
        for node in &graph.graph.node {
            let node = &with_integer_type(node, graph);
            let label = || format!("{what}: node {} ({})", node_label(node), node.op_type);
            if node.op_type == "Constant" {
                let c = graph.constant(&node.output[0])?.with_context(label)?;
                statics.insert(
                    node.output[0].clone(),
                    ops::constant_tensor(&c, &ctx).with_context(label)?,
                );
                continue;
            }
            let present: Vec<&String> = node.input.iter().filter(|i| !i.is_empty()).collect();
            // Shape and Size read only the input's shape, which is fixed.
            let is_static =
                matches!(node.op_type.as_str(), "Shape" | "Size") || present.iter().all(|i| statics.contains_key(*i));
            let inputs = gather_inputs(node, &values, &statics).with_context(label)?;
            let outputs = ops::eval(node, &inputs, &ctx).with_context(label)?;
            for (name, t) in node.output.iter().zip(outputs) {
                if name.is_empty() {
                    continue;
                }
                if is_static {
                    statics.insert(name.clone(), t);
                } else {
                    shapes.insert(name.clone(), t.dims().to_vec());
                    order.push(name.clone());
                    values.insert(name.clone(), t);
                }
            }
            if !is_static {
                nodes.push(node.clone());
            }
        }
        for name in output_names {
            if !values.contains_key(name) && !statics.contains_key(name) {
                bail!("{what}: the output {name} is computed by no node");
            }
        }
        Ok(Differentiable {
            nodes,
            statics,
            shapes,
            order,
            input_name: input.name.to_string(),
            input_shape: input.shape.to_vec(),
            output_names: output_names.to_vec(),
            device: device.clone(),
            dtype,
            opset: graph.opset,
        })
    }

    pub fn input_name(&self) -> &str {
        &self.input_name
    }

    pub fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    pub fn output_names(&self) -> &[String] {
        &self.output_names
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Names of the values computed from the input, in graph order.
    pub fn value_names(&self) -> &[String] {
        &self.order
    }

    /// The shape of a value computed from the input.
    pub fn value_shape(&self, name: &str) -> Option<&[usize]> {
        self.shapes.get(name).map(Vec::as_slice)
    }

    /// The input as a tensor in the evaluator's dtype, with its shape checked.
    pub fn input_tensor(&self, input: &[f64]) -> Result<Tensor> {
        let n: usize = self.input_shape.iter().product();
        if input.len() != n {
            bail!(
                "the input holds {} values; the model takes {:?} ({n} values)",
                input.len(),
                self.input_shape
            );
        }
        if input.iter().any(|v| !v.is_finite()) {
            bail!("the input holds NaN or infinite values");
        }
        Ok(Tensor::from_slice(input, self.input_shape.as_slice(), &self.device)?.to_dtype(self.dtype)?)
    }

    /// Runs the model on `input`, keeping every value computed from it.
    pub fn forward(&self, input: &Tensor) -> Result<Pass> {
        if input.dims() != self.input_shape.as_slice() {
            bail!(
                "the input has shape {:?}; the model takes {:?}",
                input.dims(),
                self.input_shape
            );
        }
        let ctx = self.ctx();
        let mut values: HashMap<String, Tensor> = HashMap::new();
        values.insert(self.input_name.clone(), input.to_dtype(self.dtype)?.detach());
        for node in &self.nodes {
            let inputs = gather_inputs(node, &values, &self.statics)?;
            let outputs = ops::eval(node, &inputs, &ctx)
                .with_context(|| format!("node {} ({})", node_label(node), node.op_type))?;
            for (name, t) in node.output.iter().zip(outputs) {
                if !name.is_empty() {
                    values.insert(name.clone(), t);
                }
            }
        }
        let outputs = self
            .output_names
            .iter()
            .map(|n| {
                values
                    .get(n)
                    .or_else(|| self.statics.get(n))
                    .cloned()
                    .ok_or_else(|| anyhow!("no value named {n}"))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Pass { outputs, values })
    }

    /// Reverse mode from `seeds` (a gradient for some values, typically one output): the gradients
    /// of the values named in `wanted` (the input's name, or any value computed from it).
    pub fn backward(
        &self,
        pass: &Pass,
        seeds: Vec<(String, Tensor)>,
        wanted: &[&str],
    ) -> Result<HashMap<String, Tensor>> {
        let ctx = self.ctx();
        let mut grads: HashMap<String, Tensor> = HashMap::new();
        for (name, g) in seeds {
            accumulate(&mut grads, &name, g)?;
        }
        let mut found: HashMap<String, Tensor> = HashMap::new();
        for node in self.nodes.iter().rev() {
            let mut out_grads = Vec::with_capacity(node.output.len());
            for o in &node.output {
                let g = grads.remove(o);
                if let (Some(g), true) = (&g, wanted.contains(&o.as_str())) {
                    found.insert(o.clone(), g.clone());
                }
                out_grads.push(g);
            }
            if out_grads.iter().all(Option::is_none) {
                continue;
            }
            let inputs = gather_inputs(node, &pass.values, &self.statics)?;
            let needs: Vec<bool> = node
                .input
                .iter()
                .zip(&inputs)
                .map(|(name, t)| pass.values.contains_key(name) && t.as_ref().is_some_and(|t| t.dtype().is_float()))
                .collect();
            if !needs.iter().any(|&n| n) {
                continue;
            }
            // An omitted optional output (an empty name) stands as a scalar no gradient reaches.
            let outputs: Vec<Tensor> = node
                .output
                .iter()
                .map(|o| match o.is_empty() {
                    true => Ok(Tensor::zeros((), self.dtype, &self.device)?),
                    false => pass.values.get(o).cloned().context("a node output was not kept"),
                })
                .collect::<Result<_>>()?;
            let in_grads = backward::vjp(node, &inputs, &outputs, &out_grads, &needs, &ctx)
                .with_context(|| format!("gradient of node {} ({})", node_label(node), node.op_type))?;
            for ((name, g), need) in node.input.iter().zip(in_grads).zip(&needs) {
                if let (Some(g), true) = (g, need) {
                    accumulate(&mut grads, name, g)?;
                }
            }
        }
        for w in wanted {
            if let Some(g) = grads.remove(*w) {
                found.insert(w.to_string(), g);
            }
        }
        Ok(found)
    }

    fn ctx(&self) -> Ctx<'_> {
        Ctx {
            opset: self.opset,
            dtype: self.dtype,
            device: &self.device,
        }
    }

    /// The gradient of the target with respect to the values named in `wanted`, and its score.
    fn target_gradients(&self, pass: &Pass, target: Target, wanted: &[&str]) -> Result<(f64, HashMap<String, Tensor>)> {
        let (seed, score) = pass.seed(target)?;
        let name = self.output_names[target.output].clone();
        let grads = self.backward(pass, vec![(name, seed)], wanted)?;
        Ok((score, grads))
    }

    /// The model's outputs on `input`, widened to f64.
    pub fn outputs(&self, input: &[f64]) -> Result<Vec<Value>> {
        let pass = self.forward(&self.input_tensor(input)?)?;
        pass.outputs
            .iter()
            .zip(&self.output_names)
            .map(|(t, n)| to_value(n, t))
            .collect()
    }

    /// The default target: the largest element of the first output.
    pub fn default_target(&self, input: &[f64]) -> Result<Target> {
        let outputs = self.outputs(input)?;
        Ok(Target {
            output: 0,
            index: crate::model::argmax(&outputs[0].data),
        })
    }

    /// The target's score and its gradient with respect to the input tensor.
    pub fn gradient(&self, input: &[f64], target: Target) -> Result<InputGradient> {
        let pass = self.forward(&self.input_tensor(input)?)?;
        let (score, mut grads) = self.target_gradients(&pass, target, &[&self.input_name])?;
        let gradient = match grads.remove(&self.input_name) {
            Some(g) => to_f64(&g)?,
            None => vec![0.0; input.len()],
        };
        let outputs = pass
            .outputs
            .iter()
            .zip(&self.output_names)
            .map(|(t, n)| to_value(n, t))
            .collect::<Result<Vec<_>>>()?;
        Ok(InputGradient {
            score,
            gradient,
            outputs,
        })
    }

    /// The value `layer` and the target's gradient with respect to it.
    pub fn layer_gradient(&self, input: &[f64], target: Target, layer: &str) -> Result<LayerGradient> {
        if !self.shapes.contains_key(layer) {
            bail!("the model computes no value named {layer} from its input");
        }
        let pass = self.forward(&self.input_tensor(input)?)?;
        let (score, mut grads) = self.target_gradients(&pass, target, &[layer])?;
        let activation = &pass.values[layer];
        let gradient = match grads.remove(layer) {
            Some(g) => to_value(layer, &g)?,
            None => Value {
                name: layer.to_string(),
                shape: activation.dims().to_vec(),
                data: vec![0.0; activation.elem_count()],
            },
        };
        Ok(LayerGradient {
            score,
            activation: to_value(layer, activation)?,
            gradient,
        })
    }
}

impl Pass {
    /// A one-hot gradient on the target element, and the element's value.
    pub fn seed(&self, target: Target) -> Result<(Tensor, f64)> {
        let output = self.outputs.get(target.output).ok_or_else(|| {
            anyhow!(
                "the model has {} outputs; output {} does not exist",
                self.outputs.len(),
                target.output
            )
        })?;
        let n = output.elem_count();
        if target.index >= n {
            bail!(
                "output index {} is out of range: output {} holds {n} values",
                target.index,
                target.output
            );
        }
        let mut one_hot = vec![0.0f64; n];
        one_hot[target.index] = 1.0;
        let seed = Tensor::from_vec(one_hot, output.dims(), output.device())?.to_dtype(output.dtype())?;
        let score = output
            .flatten_all()?
            .get(target.index)?
            .to_dtype(DType::F64)?
            .to_scalar::<f64>()?;
        Ok((seed, score))
    }
}

/// The node, with the integer type of a quantising op's output (`output_dtype`, opset 21) made
/// explicit from its constant zero point: the evaluator holds every integer as i64, so the type
/// that sets the saturation range is read here, from the graph. QuantizeLinear's zero point is
/// its third input, QLinearConv's, QLinearMatMul's and QLinearAdd's output zero point their eighth,
/// QLinearSigmoid's its fifth.
fn with_integer_type(node: &NodeProto, graph: &OnnxGraph) -> NodeProto {
    let mut node = node.clone();
    let position = match node.op_type.as_str() {
        "QuantizeLinear" => 2,
        "QLinearConv" | "QLinearMatMul" | "QLinearAdd" => 7,
        "QLinearSigmoid" => 4,
        _ => return node,
    };
    let zero_point = node.input.get(position).filter(|z| !z.is_empty()).cloned();
    let declared = node.attribute.iter().any(|a| a.name == "output_dtype");
    if let (Some(zero_point), false) = (zero_point, declared) {
        if let Some(code) = graph.constant_type(&zero_point) {
            node.attribute.push(tract_onnx::pb::AttributeProto {
                name: "output_dtype".into(),
                r#type: tract_onnx::pb::attribute_proto::AttributeType::Int as i32,
                i: code as i64,
                ..Default::default()
            });
        }
    }
    node
}

fn accumulate(grads: &mut HashMap<String, Tensor>, name: &str, g: Tensor) -> Result<()> {
    let total = match grads.remove(name) {
        Some(previous) => (previous + g)?,
        None => g,
    };
    grads.insert(name.to_string(), total);
    Ok(())
}

fn gather_inputs(
    node: &NodeProto,
    values: &HashMap<String, Tensor>,
    statics: &HashMap<String, Tensor>,
) -> Result<Vec<Option<Tensor>>> {
    node.input
        .iter()
        .map(|i| {
            if i.is_empty() {
                return Ok(None);
            }
            values
                .get(i)
                .or_else(|| statics.get(i))
                .cloned()
                .map(Some)
                .ok_or_else(|| anyhow!("input {i} is computed by no earlier node"))
        })
        .collect()
}

fn to_f64(t: &Tensor) -> Result<Vec<f64>> {
    Ok(t.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?)
}

/// A tensor as a named f64 value.
pub fn to_value(name: &str, t: &Tensor) -> Result<Value> {
    Ok(Value {
        name: name.to_string(),
        shape: t.dims().to_vec(),
        data: to_f64(t)?,
    })
}
