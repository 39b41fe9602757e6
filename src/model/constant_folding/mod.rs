//! Constant folding: every node whose inputs are all constants is evaluated once and replaced by
//! an initializer holding its value, so that weights, pads and shapes an exporter computes in the
//! graph (`Cast(int8) → Mul(scale)`, `DequantizeLinear` of int8 weights, pads through a chain of
//! Casts) look like initializers to the front-end walk and the gradient engine.
//!
//! Only blindspot's own reading of the graph is folded: tract runs the model as written, so the
//! verification of a collision never depends on this pass. Values are computed in f64 and
//! rounded to the node's output type after every op (f32 arithmetic rounds once per op, as
//! runtimes do). A node whose op or attributes are not handled here stays as it is.

use crate::model::onnx_graph::{attr_int, attr_ints, OnnxGraph};
use anyhow::{bail, Context, Result};
use std::collections::{HashMap, HashSet};
use tract_onnx::pb::{tensor_proto::DataType as D, NodeProto, TensorProto};

mod tensors;

use tensors::{broadcast, concat, dequantize, gather, quantize, reshape_dims, reshaped, slice, transpose};

/// A constant tensor during folding.
#[derive(Clone, Debug)]
struct Value {
    shape: Vec<usize>,
    data: Vec<f64>,
    /// ONNX element type.
    dtype: i32,
}

impl Value {
    fn len(&self) -> usize {
        self.data.len()
    }

    fn ints(&self) -> Vec<i64> {
        self.data.iter().map(|&v| v as i64).collect()
    }
}

/// Folds every constant node of `g` into an initializer; returns how many were folded.
pub fn fold_constants(g: &mut OnnxGraph) -> Result<usize> {
    let outputs: HashSet<String> = g.graph.output.iter().map(|o| o.name.clone()).collect();
    let mut known: HashMap<String, Value> = HashMap::new();
    let mut folded: Vec<usize> = vec![];
    let mut new_initializers: Vec<TensorProto> = vec![];
    for (i, node) in g.graph.node.iter().enumerate() {
        if node.op_type == "Constant" || !node.domain.is_empty() && node.domain != "ai.onnx" {
            continue;
        }
        if node.output.iter().any(|o| outputs.contains(o)) || node.input.iter().all(|x| x.is_empty()) {
            continue;
        }
        let mut inputs = Vec::with_capacity(node.input.len());
        let mut all_constant = true;
        for name in &node.input {
            if name.is_empty() {
                inputs.push(None);
                continue;
            }
            if !known.contains_key(name) {
                match (g.constant(name), g.constant_type(name)) {
                    (Ok(Some(c)), Some(dtype)) => {
                        known.insert(
                            name.clone(),
                            Value {
                                shape: c.shape,
                                data: c.values,
                                dtype,
                            },
                        );
                    }
                    _ => {
                        all_constant = false;
                        break;
                    }
                }
            }
            inputs.push(known.get(name).cloned());
        }
        if !all_constant {
            continue;
        }
        let Ok(results) = evaluate(node, &inputs, g.opset) else {
            continue;
        };
        for (name, value) in node.output.iter().zip(results) {
            new_initializers.push(to_tensor(name, &value));
            known.insert(name.clone(), value);
        }
        folded.push(i);
    }
    let count = folded.len();
    if count > 0 {
        let gone: HashSet<usize> = folded.into_iter().collect();
        let nodes = std::mem::take(&mut g.graph.node);
        g.graph.node = nodes
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !gone.contains(i))
            .map(|(_, n)| n)
            .collect();
        g.graph.initializer.extend(new_initializers);
        g.reindex();
    }
    Ok(count)
}

fn evaluate(node: &NodeProto, inputs: &[Option<Value>], opset: i64) -> Result<Vec<Value>> {
    let input = |k: usize| -> Result<&Value> { inputs.get(k).and_then(|v| v.as_ref()).context("missing input") };
    let x = input(0)?;
    let out = match node.op_type.as_str() {
        "Identity" => x.clone(),
        "Cast" => round_to(x.clone(), attr_int(node, "to", 0) as i32)?,
        "Add" | "Sub" | "Mul" | "Div" | "Pow" | "Max" | "Min" if inputs.len() == 2 => binary(node, x, input(1)?)?,
        "Neg" | "Sqrt" | "Reciprocal" | "Abs" => unary(node, x)?,
        "Reshape" => {
            let spec = input(1)?.ints();
            let allow_zero = attr_int(node, "allowzero", 0) != 0;
            reshaped(x, reshape_dims(&x.shape, &spec, allow_zero)?)?
        }
        "Flatten" => {
            let axis = axis_index(attr_int(node, "axis", 1), x.shape.len() + 1)?;
            let outer: usize = x.shape[..axis].iter().product();
            reshaped(x, vec![outer, x.len() / outer.max(1)])?
        }
        "Unsqueeze" => {
            let axes = axes_of(node, inputs, opset, 13)?.context("Unsqueeze needs axes")?;
            let rank = x.shape.len() + axes.len();
            let mut axes: Vec<usize> = axes.iter().map(|&a| axis_index(a, rank)).collect::<Result<_>>()?;
            axes.sort_unstable();
            let mut shape = x.shape.clone();
            for a in axes {
                shape.insert(a, 1);
            }
            reshaped(x, shape)?
        }
        "Squeeze" => {
            let rank = x.shape.len();
            let axes: Vec<usize> = match axes_of(node, inputs, opset, 13)? {
                Some(a) => a.iter().map(|&a| axis_index(a, rank)).collect::<Result<_>>()?,
                None => (0..rank).filter(|&a| x.shape[a] == 1).collect(),
            };
            if axes.iter().any(|&a| x.shape[a] != 1) {
                bail!("Squeeze of a dimension that is not 1");
            }
            let shape = (0..rank).filter(|a| !axes.contains(a)).map(|a| x.shape[a]).collect();
            reshaped(x, shape)?
        }
        "Transpose" => {
            let rank = x.shape.len();
            let perm: Vec<usize> = match attr_ints(node, "perm") {
                Some(p) => p.iter().map(|&a| axis_index(a, rank)).collect::<Result<_>>()?,
                None => (0..rank).rev().collect(),
            };
            transpose(x, &perm)?
        }
        "Concat" => {
            let values: Vec<&Value> = (0..inputs.len()).map(input).collect::<Result<_>>()?;
            let axis = axis_index(attr_int(node, "axis", 0), x.shape.len())?;
            concat(&values, axis)?
        }
        "Gather" => {
            let indices = input(1)?;
            let axis = axis_index(attr_int(node, "axis", 0), x.shape.len())?;
            gather(x, indices, axis)?
        }
        "Shape" => {
            let rank = x.shape.len() as i64;
            let clamp = |v: i64| (if v < 0 { v + rank } else { v }).clamp(0, rank) as usize;
            let start = clamp(attr_int(node, "start", 0));
            let end = clamp(attr_int(node, "end", rank));
            let dims: Vec<f64> = x.shape[start..end.max(start)].iter().map(|&d| d as f64).collect();
            Value {
                shape: vec![dims.len()],
                data: dims,
                dtype: D::Int64 as i32,
            }
        }
        "Slice" if opset >= 10 => {
            let starts = input(1)?.ints();
            let ends = input(2)?.ints();
            let axes = match inputs.get(3).and_then(|v| v.as_ref()) {
                Some(a) => a.ints(),
                None => (0..starts.len() as i64).collect(),
            };
            let steps = match inputs.get(4).and_then(|v| v.as_ref()) {
                Some(s) => s.ints(),
                None => vec![1; starts.len()],
            };
            slice(x, &starts, &ends, &axes, &steps)?
        }
        "ConstantOfShape" => {
            let shape: Vec<usize> = x.ints().iter().map(|&d| d.max(0) as usize).collect();
            let fill = node
                .attribute
                .iter()
                .find(|a| a.name == "value")
                .and_then(|a| a.t.as_ref())
                .map(|t| -> Result<(f64, i32)> {
                    let c = crate::model::onnx_graph::tensor_values(t)?;
                    Ok((c.values.first().copied().unwrap_or(0.0), t.data_type))
                })
                .transpose()?
                .unwrap_or((0.0, D::Float as i32));
            let n = shape.iter().product();
            Value {
                shape,
                data: vec![fill.0; n],
                dtype: fill.1,
            }
        }
        "DequantizeLinear" => dequantize(node, x, input(1)?, inputs.get(2).and_then(|v| v.as_ref()))?,
        "QuantizeLinear" => quantize(node, x, input(1)?, inputs.get(2).and_then(|v| v.as_ref()))?,
        other => bail!("{other} is not folded"),
    };
    Ok(vec![out])
}

/// An elementwise binary op, broadcast, in the first operand's type (integer division truncates).
fn binary(node: &NodeProto, x: &Value, y: &Value) -> Result<Value> {
    let integer = is_integer(x.dtype);
    let f = |a: f64, b: f64| -> f64 {
        match node.op_type.as_str() {
            "Add" => a + b,
            "Sub" => a - b,
            "Mul" => a * b,
            "Div" if integer => (a / b).trunc(),
            "Div" => a / b,
            "Pow" => a.powf(b),
            "Max" => a.max(b),
            _ => a.min(b),
        }
    };
    round_to(broadcast(x, y, &f)?, x.dtype)
}

/// An elementwise unary op, in the operand's type.
fn unary(node: &NodeProto, x: &Value) -> Result<Value> {
    let f = |a: f64| match node.op_type.as_str() {
        "Neg" => -a,
        "Sqrt" => a.sqrt(),
        "Reciprocal" => 1.0 / a,
        _ => a.abs(),
    };
    round_to(
        Value {
            data: x.data.iter().map(|&a| f(a)).collect(),
            ..x.clone()
        },
        x.dtype,
    )
}

fn is_integer(dtype: i32) -> bool {
    !matches!(
        D::try_from(dtype),
        Ok(D::Float) | Ok(D::Double) | Ok(D::Float16) | Ok(D::Bfloat16)
    )
}

/// The value rounded to what `dtype` holds (f32 rounding for FLOAT; integers saturate).
fn round_to(mut v: Value, dtype: i32) -> Result<Value> {
    let (lo, hi): (f64, f64) = match D::try_from(dtype).ok().context("unknown type")? {
        D::Float => {
            v.data.iter_mut().for_each(|a| *a = *a as f32 as f64);
            (f64::NEG_INFINITY, f64::INFINITY)
        }
        D::Double => (f64::NEG_INFINITY, f64::INFINITY),
        D::Int8 => (-128.0, 127.0),
        D::Uint8 => (0.0, 255.0),
        D::Int16 => (-32768.0, 32767.0),
        D::Uint16 => (0.0, 65535.0),
        D::Int32 => (i32::MIN as f64, i32::MAX as f64),
        D::Uint32 => (0.0, u32::MAX as f64),
        D::Int64 | D::Uint64 => (f64::MIN, f64::MAX),
        D::Bool => {
            v.data.iter_mut().for_each(|a| *a = (*a != 0.0) as u8 as f64);
            (0.0, 1.0)
        }
        other => bail!("type {other:?} is not folded"),
    };
    if is_integer(dtype) {
        v.data.iter_mut().for_each(|a| *a = a.trunc().clamp(lo, hi));
    }
    v.dtype = dtype;
    Ok(v)
}

fn axis_index(axis: i64, rank: usize) -> Result<usize> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    if a < 0 || a as usize >= rank {
        bail!("axis {axis} outside rank {rank}");
    }
    Ok(a as usize)
}

/// Axes from the attribute (before `input_from`) or the second input.
fn axes_of(node: &NodeProto, inputs: &[Option<Value>], opset: i64, input_from: i64) -> Result<Option<Vec<i64>>> {
    if opset >= input_from {
        Ok(inputs.get(1).and_then(|v| v.as_ref()).map(|v| v.ints()))
    } else {
        Ok(attr_ints(node, "axes"))
    }
}

/// The value as an initializer named `name`, in its own element type.
fn to_tensor(name: &str, v: &Value) -> TensorProto {
    let dtype = D::try_from(v.dtype).unwrap_or(D::Float);
    let (data_type, raw): (D, Vec<u8>) = match dtype {
        D::Double => (D::Double, v.data.iter().flat_map(|&a| a.to_le_bytes()).collect()),
        D::Int64 => (
            D::Int64,
            v.data.iter().flat_map(|&a| (a as i64).to_le_bytes()).collect(),
        ),
        D::Uint64 => (
            D::Uint64,
            v.data.iter().flat_map(|&a| (a as u64).to_le_bytes()).collect(),
        ),
        D::Int32 => (
            D::Int32,
            v.data.iter().flat_map(|&a| (a as i32).to_le_bytes()).collect(),
        ),
        D::Uint32 => (
            D::Uint32,
            v.data.iter().flat_map(|&a| (a as u32).to_le_bytes()).collect(),
        ),
        D::Int16 => (
            D::Int16,
            v.data.iter().flat_map(|&a| (a as i16).to_le_bytes()).collect(),
        ),
        D::Uint16 => (
            D::Uint16,
            v.data.iter().flat_map(|&a| (a as u16).to_le_bytes()).collect(),
        ),
        D::Int8 => (D::Int8, v.data.iter().map(|&a| a as i8 as u8).collect()),
        D::Uint8 | D::Bool => (dtype, v.data.iter().map(|&a| a as u8).collect()),
        // f32 values (f16 ones widened: exact) as FLOAT.
        _ => (
            D::Float,
            v.data.iter().flat_map(|&a| (a as f32).to_le_bytes()).collect(),
        ),
    };
    TensorProto {
        name: name.to_string(),
        dims: v.shape.iter().map(|&d| d as i64).collect(),
        data_type: data_type as i32,
        raw_data: raw,
        ..Default::default()
    }
}

/// The value of `name` where it depends on the image only through shapes — a Reshape's target
/// computed as `Concat(Gather(Shape(x), 0), [-1])`, as torch exports with dynamic axes write it:
/// constants, and `Shape` of a value whose shape `shape_of` knows (the front-end walk knows every
/// shape on its way), through the ops folding evaluates. `None` where it depends on pixel values
/// or on an op folding does not evaluate.
pub(crate) fn evaluate_through_shapes(
    g: &OnnxGraph,
    name: &str,
    shape_of: &dyn Fn(&str) -> Option<Vec<usize>>,
) -> Option<crate::model::onnx_graph::Constant> {
    let value = through_shapes(g, name, shape_of, 0)?;
    Some(crate::model::onnx_graph::Constant {
        shape: value.shape,
        values: value.data,
        eps: 0.0,
    })
}

/// Chains longer than this are not shape arithmetic.
const SHAPE_CHAIN_DEPTH: usize = 32;

fn through_shapes(
    g: &OnnxGraph,
    name: &str,
    shape_of: &dyn Fn(&str) -> Option<Vec<usize>>,
    depth: usize,
) -> Option<Value> {
    if let (Ok(Some(c)), Some(dtype)) = (g.constant(name), g.constant_type(name)) {
        return Some(Value {
            shape: c.shape,
            data: c.values,
            dtype,
        });
    }
    if depth > SHAPE_CHAIN_DEPTH {
        return None;
    }
    let node = g.graph.node.iter().find(|n| n.output.iter().any(|o| o == name))?;
    let inputs: Vec<Option<Value>> = if node.op_type == "Shape" {
        // Only the shape is read: a value of that shape stands in for the tensor.
        let shape = shape_of(node.input.first()?)?;
        vec![Some(Value {
            data: vec![0.0; shape.iter().product()],
            shape,
            dtype: D::Float as i32,
        })]
    } else {
        node.input
            .iter()
            .map(|i| {
                if i.is_empty() {
                    Some(None)
                } else {
                    through_shapes(g, i, shape_of, depth + 1).map(Some)
                }
            })
            .collect::<Option<_>>()?
    };
    let position = node.output.iter().position(|o| o == name)?;
    evaluate(node, &inputs, g.opset).ok()?.into_iter().nth(position)
}
