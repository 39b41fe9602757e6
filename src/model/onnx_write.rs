//! Writes ONNX models: the embedded digit models are exported with it, and the tests build their
//! fixture graphs with it.
//!
//! tract-onnx does not re-export `prost`, so its `pb` types cannot be encoded from here; this
//! module emits the same protobuf wire format itself, with the field tags of onnx.proto (as in
//! `tract_onnx::pb`). Conventions: opset 13 (or [`ModelSpec::opset`]), ir_version 7, one float32 graph input named
//! [`INPUT`] and one output named [`OUTPUT`], weights as raw little-endian initializers.

pub const INPUT: &str = "input";
pub const OUTPUT: &str = "logits";
pub const OPSET: i64 = 13;
pub const IR_VERSION: i64 = 7;

/// ONNX TensorProto.DataType values used here.
const DT_FLOAT: i64 = 1;
const DT_INT64: i64 = 7;
const DT_UINT8: i64 = 2;
const DT_INT8: i64 = 3;
const DT_INT32: i64 = 6;

// ---------------------------------------------------------------------------
// Model description
// ---------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
pub enum AttrValue {
    Int(i64),
    Ints(Vec<i64>),
    Float(f32),
    Floats(Vec<f32>),
    Str(String),
}

#[derive(Clone, Debug)]
pub struct Node {
    pub name: String,
    pub op_type: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub attrs: Vec<(String, AttrValue)>,
}

impl Node {
    pub fn new(name: &str, op_type: &str, inputs: &[&str], outputs: &[&str]) -> Node {
        Node {
            name: name.to_string(),
            op_type: op_type.to_string(),
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: outputs.iter().map(|s| s.to_string()).collect(),
            attrs: vec![],
        }
    }

    pub fn attr(mut self, name: &str, value: AttrValue) -> Node {
        self.attrs.push((name.to_string(), value));
        self
    }

    pub fn int(self, name: &str, v: i64) -> Node {
        self.attr(name, AttrValue::Int(v))
    }

    pub fn ints(self, name: &str, v: &[i64]) -> Node {
        self.attr(name, AttrValue::Ints(v.to_vec()))
    }

    pub fn float(self, name: &str, v: f32) -> Node {
        self.attr(name, AttrValue::Float(v))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    I64(Vec<i64>),
    /// Quantised weights.
    I8(Vec<i8>),
    U8(Vec<u8>),
    I32(Vec<i32>),
}

#[derive(Clone, Debug)]
pub struct Initializer {
    pub name: String,
    pub dims: Vec<i64>,
    pub data: TensorData,
}

impl Initializer {
    pub fn f32(&self) -> Option<&[f32]> {
        match &self.data {
            TensorData::F32(v) => Some(v),
            _ => None,
        }
    }
}

/// A single-input, single-output float32 ONNX graph.
#[derive(Clone, Debug)]
pub struct ModelSpec {
    pub graph_name: String,
    pub input_shape: Vec<i64>,
    pub output_shape: Vec<i64>,
    pub nodes: Vec<Node>,
    pub initializers: Vec<Initializer>,
    /// The default-domain opset the model declares ([`OPSET`] unless a test needs another form).
    pub opset: i64,
    /// The graph input's element type (ONNX code; FLOAT unless a test needs another).
    pub input_elem_type: i64,
    /// List every initializer among the graph's inputs too, as exporters before IR version 4 do.
    pub initializers_as_inputs: bool,
    /// Further float graph inputs (name, shape) after the image input.
    pub extra_inputs: Vec<(String, Vec<i64>)>,
}

impl ModelSpec {
    pub fn new(graph_name: &str, input_shape: &[i64], output_shape: &[i64]) -> ModelSpec {
        ModelSpec {
            graph_name: graph_name.to_string(),
            input_shape: input_shape.to_vec(),
            output_shape: output_shape.to_vec(),
            nodes: vec![],
            initializers: vec![],
            opset: OPSET,
            input_elem_type: DT_FLOAT,
            initializers_as_inputs: false,
            extra_inputs: vec![],
        }
    }

    /// The same model declared for `opset` (attribute and input forms are the caller's to match).
    pub fn with_opset(mut self, opset: i64) -> ModelSpec {
        self.opset = opset;
        self
    }

    pub fn node(&mut self, node: Node) -> &mut Self {
        assert!(
            self.nodes.iter().all(|n| n.name != node.name),
            "duplicate node name {}",
            node.name
        );
        self.nodes.push(node);
        self
    }

    pub fn init_f32(&mut self, name: &str, dims: &[i64], data: Vec<f32>) -> &mut Self {
        assert_eq!(dims.iter().product::<i64>() as usize, data.len(), "{name}");
        self.init(name, dims, TensorData::F32(data))
    }

    pub fn init_i64(&mut self, name: &str, dims: &[i64], data: Vec<i64>) -> &mut Self {
        assert_eq!(dims.iter().product::<i64>() as usize, data.len(), "{name}");
        self.init(name, dims, TensorData::I64(data))
    }

    pub fn init_i8(&mut self, name: &str, dims: &[i64], data: Vec<i8>) -> &mut Self {
        assert_eq!(dims.iter().product::<i64>() as usize, data.len(), "{name}");
        self.init(name, dims, TensorData::I8(data))
    }

    pub fn init_u8(&mut self, name: &str, dims: &[i64], data: Vec<u8>) -> &mut Self {
        assert_eq!(dims.iter().product::<i64>() as usize, data.len(), "{name}");
        self.init(name, dims, TensorData::U8(data))
    }

    pub fn init_i32(&mut self, name: &str, dims: &[i64], data: Vec<i32>) -> &mut Self {
        assert_eq!(dims.iter().product::<i64>() as usize, data.len(), "{name}");
        self.init(name, dims, TensorData::I32(data))
    }

    fn init(&mut self, name: &str, dims: &[i64], data: TensorData) -> &mut Self {
        self.initializers.push(Initializer {
            name: name.to_string(),
            dims: dims.to_vec(),
            data,
        });
        self
    }

    pub fn initializer(&self, name: &str) -> Option<&Initializer> {
        self.initializers.iter().find(|i| i.name == name)
    }

    pub fn initializer_mut(&mut self, name: &str) -> Option<&mut Initializer> {
        self.initializers.iter_mut().find(|i| i.name == name)
    }
}

// ---------------------------------------------------------------------------
// Encoding / writing
// ---------------------------------------------------------------------------

pub fn model_bytes(model: &ModelSpec) -> Vec<u8> {
    encode_model(model)
}

/// Minimal protobuf writer (proto3 wire format, packed repeated scalars).
#[derive(Default)]
struct Pb(Vec<u8>);

impl Pb {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    fn key(&mut self, tag: u32, wire: u8) {
        self.varint(((tag as u64) << 3) | wire as u64);
    }
    fn int(&mut self, tag: u32, v: i64) {
        self.key(tag, 0);
        self.varint(v as u64);
    }
    fn float(&mut self, tag: u32, v: f32) {
        self.key(tag, 5);
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, tag: u32, b: &[u8]) {
        self.key(tag, 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }
    fn str(&mut self, tag: u32, s: &str) {
        self.bytes(tag, s.as_bytes());
    }
    fn msg(&mut self, tag: u32, m: Pb) {
        self.bytes(tag, &m.0);
    }
    fn packed_i64(&mut self, tag: u32, v: &[i64]) {
        let mut p = Pb::default();
        for &x in v {
            p.varint(x as u64);
        }
        self.msg(tag, p);
    }
    fn packed_f32(&mut self, tag: u32, v: &[f32]) {
        let mut p = Pb::default();
        for &x in v {
            p.0.extend_from_slice(&x.to_le_bytes());
        }
        self.msg(tag, p);
    }
}

// Field tags follow tract_onnx::pb (onnx.proto).
fn encode_model(m: &ModelSpec) -> Vec<u8> {
    encode_model_with(m, &mut |_, _| false)
}

fn encode_model_with(m: &ModelSpec, external: &mut dyn FnMut(&Initializer, &mut Pb) -> bool) -> Vec<u8> {
    let mut model = Pb::default();
    model.int(1, IR_VERSION); // ModelProto.ir_version
    model.str(2, "blindspot"); // producer_name
    let mut graph = Pb::default();
    for n in &m.nodes {
        graph.msg(1, encode_node(n)); // GraphProto.node
    }
    graph.str(2, &m.graph_name); // GraphProto.name
    for i in &m.initializers {
        graph.msg(5, encode_tensor(i, external)); // GraphProto.initializer
    }
    graph.msg(11, encode_value_info(INPUT, m.input_elem_type, &m.input_shape)); // GraphProto.input
    for (name, shape) in &m.extra_inputs {
        graph.msg(11, encode_value_info(name, DT_FLOAT, shape));
    }
    if m.initializers_as_inputs {
        for i in &m.initializers {
            graph.msg(11, encode_value_info(&i.name, i.data.code(), &i.dims));
        }
    }
    graph.msg(12, encode_value_info(OUTPUT, DT_FLOAT, &m.output_shape)); // GraphProto.output
    model.msg(7, graph); // ModelProto.graph
    let mut opset = Pb::default();
    opset.str(1, ""); // OperatorSetIdProto.domain
    opset.int(2, m.opset); // OperatorSetIdProto.version
    model.msg(8, opset); // ModelProto.opset_import
    model.0
}

fn encode_node(n: &Node) -> Pb {
    let mut p = Pb::default();
    for i in &n.inputs {
        p.str(1, i);
    }
    for o in &n.outputs {
        p.str(2, o);
    }
    p.str(3, &n.name);
    p.str(4, &n.op_type);
    for (name, v) in &n.attrs {
        let mut a = Pb::default();
        a.str(1, name); // AttributeProto.name
        match v {
            AttrValue::Float(f) => {
                a.float(2, *f);
                a.int(20, 1);
            }
            AttrValue::Int(i) => {
                a.int(3, *i);
                a.int(20, 2);
            }
            AttrValue::Str(s) => {
                a.str(4, s);
                a.int(20, 3);
            }
            AttrValue::Floats(f) => {
                a.packed_f32(7, f);
                a.int(20, 6);
            }
            AttrValue::Ints(i) => {
                a.packed_i64(8, i);
                a.int(20, 7);
            }
        }
        p.msg(5, a); // NodeProto.attribute
    }
    p
}

/// The model with every initializer of more than 16 values stored outside it, as exporters do
/// for large models: (the model's bytes, the data file's bytes at `location`, which the model
/// names relative to its own folder).
pub fn model_bytes_with_external_data(model: &ModelSpec, location: &str) -> (Vec<u8>, Vec<u8>) {
    let mut data = vec![];
    let bytes = encode_model_with(model, &mut |t, p| {
        let raw = raw_bytes(t);
        if raw.len() / 4 <= 16 {
            return false;
        }
        for (key, value) in [
            ("location", location.to_string()),
            ("offset", data.len().to_string()),
            ("length", raw.len().to_string()),
        ] {
            let mut entry = Pb::default();
            entry.str(1, key); // StringStringEntryProto.key
            entry.str(2, &value); // StringStringEntryProto.value
            p.msg(13, entry); // TensorProto.external_data
        }
        p.int(14, 1); // TensorProto.data_location = EXTERNAL
        data.extend(raw);
        true
    });
    (bytes, data)
}

fn raw_bytes(t: &Initializer) -> Vec<u8> {
    match &t.data {
        TensorData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::I8(v) => v.iter().map(|&x| x as u8).collect(),
        TensorData::U8(v) => v.clone(),
        TensorData::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    }
}

impl TensorData {
    /// The TensorProto data type code.
    fn code(&self) -> i64 {
        match self {
            TensorData::F32(_) => DT_FLOAT,
            TensorData::I64(_) => DT_INT64,
            TensorData::I8(_) => DT_INT8,
            TensorData::U8(_) => DT_UINT8,
            TensorData::I32(_) => DT_INT32,
        }
    }
}

/// `external(t, p)` may store t's data elsewhere and describe it in p (returning true).
fn encode_tensor(t: &Initializer, external: &mut dyn FnMut(&Initializer, &mut Pb) -> bool) -> Pb {
    let mut p = Pb::default();
    p.packed_i64(1, &t.dims); // TensorProto.dims
    p.int(2, t.data.code());
    p.str(8, &t.name); // TensorProto.name
    if !external(t, &mut p) {
        p.bytes(9, &raw_bytes(t)); // TensorProto.raw_data
    }
    p
}

fn encode_value_info(name: &str, elem_type: i64, shape: &[i64]) -> Pb {
    let mut shape_pb = Pb::default();
    for &d in shape {
        let mut dim = Pb::default();
        dim.int(1, d); // Dimension.dim_value
        shape_pb.msg(1, dim); // TensorShapeProto.dim
    }
    let mut tensor = Pb::default();
    tensor.int(1, elem_type); // TypeProto.Tensor.elem_type
    tensor.msg(2, shape_pb); // TypeProto.Tensor.shape
    let mut ty = Pb::default();
    ty.msg(1, tensor); // TypeProto.tensor_type
    let mut p = Pb::default();
    p.str(1, name); // ValueInfoProto.name
    p.msg(2, ty); // ValueInfoProto.type
    p
}
