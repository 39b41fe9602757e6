//! Read-only access to an ONNX graph's structure and constants, straight from the protobuf.
//!
//! The front end is found by reading the graph as written (node by node, with its constants),
//! which tract's optimised model no longer shows; running the model is the job of `model` itself (mod.rs).

use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use tract_onnx::pb::{self, type_proto, AttributeProto, NodeProto, TensorProto};

/// A constant tensor, widened to f64.
#[derive(Clone, Debug)]
pub struct Constant {
    pub shape: Vec<usize>,
    pub values: Vec<f64>,
    /// Machine epsilon of the stored type (f32, f16 or f64): sets the rank tolerance.
    pub eps: f64,
}

pub struct OnnxGraph {
    pub graph: pb::GraphProto,
    /// The default-domain opset the file was written for (attribute and input forms depend on it).
    pub opset: i64,
    constants: HashMap<String, usize>,
    constant_nodes: HashMap<String, usize>,
}

impl OnnxGraph {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        Self::from_proto(Self::parse(bytes)?)
    }

    /// The model's protobuf, as written.
    pub fn parse(bytes: &[u8]) -> Result<pb::ModelProto> {
        use tract_onnx::prelude::Framework;
        tract_onnx::onnx()
            .proto_model_for_read(&mut &bytes[..])
            .map_err(|e| anyhow::anyhow!("not a readable ONNX model ({e})"))
    }

    pub fn from_proto(proto: pb::ModelProto) -> Result<Self> {
        let opset = proto
            .opset_import
            .iter()
            .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
            .map_or(1, |o| o.version);
        let graph = proto.graph.context("the ONNX file has no graph")?;
        let mut g = OnnxGraph {
            graph,
            opset,
            constants: HashMap::new(),
            constant_nodes: HashMap::new(),
        };
        g.reindex();
        crate::model::constant_folding::fold_constants(&mut g)?;
        Ok(g)
    }

    /// Rebuilds the indices of initializers and Constant nodes after the graph changed.
    pub(crate) fn reindex(&mut self) {
        self.constants = self
            .graph
            .initializer
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        self.constant_nodes = self
            .graph
            .node
            .iter()
            .enumerate()
            .filter(|(_, n)| n.op_type == "Constant")
            .flat_map(|(i, n)| n.output.iter().map(move |o| (o.clone(), i)))
            .collect();
    }

    /// The graph inputs that are not initializers: what a user feeds.
    pub fn data_inputs(&self) -> Vec<&pb::ValueInfoProto> {
        self.graph
            .input
            .iter()
            .filter(|i| !self.constants.contains_key(&i.name))
            .collect()
    }

    /// The declared element type of a value (ONNX's TensorProto.DataType code), if any.
    pub fn declared_elem_type(info: &pb::ValueInfoProto) -> Option<i32> {
        let Some(type_proto::Value::TensorType(t)) = info.r#type.as_ref()?.value.as_ref() else {
            return None;
        };
        Some(t.elem_type)
    }

    /// Declared dims of a value: `Some(n)` when fixed, `None` when symbolic.
    pub fn declared_shape(info: &pb::ValueInfoProto) -> Option<Vec<Option<usize>>> {
        let Some(type_proto::Value::TensorType(t)) = info.r#type.as_ref()?.value.as_ref() else {
            return None;
        };
        let shape = t.shape.as_ref()?;
        Some(
            shape
                .dim
                .iter()
                .map(|d| match d.value {
                    Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) if v > 0 => Some(v as usize),
                    _ => None,
                })
                .collect(),
        )
    }

    pub fn is_constant(&self, name: &str) -> bool {
        self.constants.contains_key(name) || self.constant_nodes.contains_key(name)
    }

    /// The element type (ONNX code) of a constant, where it is one.
    pub fn constant_type(&self, name: &str) -> Option<i32> {
        if let Some(&i) = self.constants.get(name) {
            return Some(self.graph.initializer[i].data_type);
        }
        let node = &self.graph.node[*self.constant_nodes.get(name)?];
        let attribute = node.attribute.first()?;
        Some(match attribute.name.as_str() {
            "value" => attribute.t.as_ref()?.data_type,
            "value_float" | "value_floats" => pb::tensor_proto::DataType::Float as i32,
            "value_int" | "value_ints" => pb::tensor_proto::DataType::Int64 as i32,
            _ => return None,
        })
    }

    pub fn constant(&self, name: &str) -> Result<Option<Constant>> {
        if let Some(&i) = self.constants.get(name) {
            return tensor_values(&self.graph.initializer[i]).map(Some);
        }
        if let Some(&i) = self.constant_nodes.get(name) {
            let node = &self.graph.node[i];
            let value = node.attribute.iter().find(|a| a.name == "value");
            if let Some(t) = value.and_then(|a| a.t.as_ref()) {
                return tensor_values(t).map(Some);
            }
            if let Some(a) = node.attribute.iter().find(|a| a.name == "value_float") {
                return Ok(Some(Constant {
                    shape: vec![],
                    values: vec![a.f as f64],
                    eps: EPS_F32,
                }));
            }
            if let Some(a) = node.attribute.iter().find(|a| a.name == "value_floats") {
                let values: Vec<f64> = a.floats.iter().map(|&v| v as f64).collect();
                return Ok(Some(Constant {
                    shape: vec![values.len()],
                    values,
                    eps: EPS_F32,
                }));
            }
            if let Some(a) = node.attribute.iter().find(|a| a.name == "value_int") {
                return Ok(Some(Constant {
                    shape: vec![],
                    values: vec![a.i as f64],
                    eps: 0.0,
                }));
            }
            if let Some(a) = node.attribute.iter().find(|a| a.name == "value_ints") {
                let values: Vec<f64> = a.ints.iter().map(|&v| v as f64).collect();
                return Ok(Some(Constant {
                    shape: vec![values.len()],
                    values,
                    eps: 0.0,
                }));
            }
            bail!("Constant node {} has a value form blindspot does not read", node.name);
        }
        Ok(None)
    }

    /// Nodes that read `value`, in graph order.
    pub fn consumers(&self, value: &str) -> Vec<&NodeProto> {
        self.graph
            .node
            .iter()
            .filter(|n| n.input.iter().any(|i| i == value))
            .collect()
    }

    pub fn is_graph_output(&self, value: &str) -> bool {
        self.graph.output.iter().any(|o| o.name == value)
    }
}

pub const EPS_F32: f64 = f32::EPSILON as f64;

/// A node's name for people: its ONNX name, or its first output where the name is empty.
pub fn node_label(node: &NodeProto) -> String {
    if node.name.is_empty() {
        node.output.first().cloned().unwrap_or_default()
    } else {
        node.name.clone()
    }
}

pub fn attribute<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

pub fn attr_int(node: &NodeProto, name: &str, default: i64) -> i64 {
    attribute(node, name).map_or(default, |a| a.i)
}

pub fn attr_float(node: &NodeProto, name: &str, default: f64) -> f64 {
    attribute(node, name).map_or(default, |a| a.f as f64)
}

pub fn attr_ints(node: &NodeProto, name: &str) -> Option<Vec<i64>> {
    attribute(node, name).map(|a| a.ints.clone())
}

pub fn attr_string(node: &NodeProto, name: &str) -> Option<String> {
    attribute(node, name).map(|a| String::from_utf8_lossy(&a.s).into_owned())
}

/// A tensor stored in the graph (an initializer or an attribute), widened to f64.
pub fn tensor_constant(t: &TensorProto) -> Result<Constant> {
    tensor_values(t)
}

pub(crate) fn tensor_values(t: &TensorProto) -> Result<Constant> {
    use pb::tensor_proto::DataType as D;
    let shape: Vec<usize> = t.dims.iter().map(|&d| d.max(0) as usize).collect();
    let count: usize = shape.iter().product();
    if t.data_location == Some(pb::tensor_proto::DataLocation::External as i32) {
        bail!(
            "tensor {} is stored in an external data file, which blindspot does not read",
            t.name
        );
    }
    let raw = &t.raw_data;
    let from_raw = |width: usize, f: &dyn Fn(&[u8]) -> f64| -> Vec<f64> { raw.chunks_exact(width).map(f).collect() };
    let dt = D::try_from(t.data_type).ok();
    let (values, eps) = match dt {
        Some(D::Float) if !raw.is_empty() => (
            from_raw(4, &|b| f32::from_le_bytes(b.try_into().unwrap()) as f64),
            EPS_F32,
        ),
        Some(D::Float) => (t.float_data.iter().map(|&v| v as f64).collect(), EPS_F32),
        Some(D::Double) if !raw.is_empty() => (
            from_raw(8, &|b| f64::from_le_bytes(b.try_into().unwrap())),
            f64::EPSILON,
        ),
        Some(D::Double) => (t.double_data.clone(), f64::EPSILON),
        Some(D::Float16) if !raw.is_empty() => (
            from_raw(2, &|b| f16_to_f64(u16::from_le_bytes(b.try_into().unwrap()))),
            9.77e-4,
        ),
        Some(D::Float16) => (t.int32_data.iter().map(|&v| f16_to_f64(v as u16)).collect(), 9.77e-4),
        Some(D::Int64) if !raw.is_empty() => (from_raw(8, &|b| i64::from_le_bytes(b.try_into().unwrap()) as f64), 0.0),
        Some(D::Int64) => (t.int64_data.iter().map(|&v| v as f64).collect(), 0.0),
        Some(D::Int32) if !raw.is_empty() => (from_raw(4, &|b| i32::from_le_bytes(b.try_into().unwrap()) as f64), 0.0),
        Some(D::Int32) => (t.int32_data.iter().map(|&v| v as f64).collect(), 0.0),
        // Quantised weights and masks: 8- and 16-bit integers and booleans, in raw bytes or
        // widened into int32_data; wider unsigned ones in raw bytes or uint64_data.
        Some(D::Int8) if !raw.is_empty() => (raw.iter().map(|&b| b as i8 as f64).collect(), 0.0),
        Some(D::Uint8) | Some(D::Bool) if !raw.is_empty() => (raw.iter().map(|&b| b as f64).collect(), 0.0),
        Some(D::Int16) if !raw.is_empty() => (from_raw(2, &|b| i16::from_le_bytes(b.try_into().unwrap()) as f64), 0.0),
        Some(D::Uint16) if !raw.is_empty() => (from_raw(2, &|b| u16::from_le_bytes(b.try_into().unwrap()) as f64), 0.0),
        Some(D::Uint32) if !raw.is_empty() => (from_raw(4, &|b| u32::from_le_bytes(b.try_into().unwrap()) as f64), 0.0),
        Some(D::Uint64) if !raw.is_empty() => (from_raw(8, &|b| u64::from_le_bytes(b.try_into().unwrap()) as f64), 0.0),
        Some(D::Int8) | Some(D::Uint8) | Some(D::Bool) | Some(D::Int16) | Some(D::Uint16) => {
            (t.int32_data.iter().map(|&v| v as f64).collect(), 0.0)
        }
        Some(D::Uint32) | Some(D::Uint64) => (t.uint64_data.iter().map(|&v| v as f64).collect(), 0.0),
        _ => bail!(
            "tensor {} has data type {} which blindspot does not read",
            t.name,
            t.data_type
        ),
    };
    if values.len() != count {
        bail!("tensor {} holds {} values for shape {:?}", t.name, values.len(), shape);
    }
    Ok(Constant { shape, values, eps })
}

fn f16_to_f64(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = ((h >> 10) & 0x1f) as i32;
    let frac = (h & 0x3ff) as f64;
    match exp {
        0 => sign * frac * 2f64.powi(-24),
        31 if frac == 0.0 => sign * f64::INFINITY,
        31 => f64::NAN,
        _ => sign * (1.0 + frac / 1024.0) * 2f64.powi(exp - 15),
    }
}
