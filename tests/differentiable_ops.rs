//! The gradient engine op by op: for every op in `supported_ops()`, tiny graphs (with the
//! attribute variants whose semantics differ) whose forward values equal tract's and whose input
//! gradients equal central finite differences.
//!
//! Each case is checked twice: the f32 engine's outputs against tract's to 1e-5 relative (to the
//! largest output value), or against an equivalent graph where tract refuses the form; and the
//! f64 engine's gradient of two random output elements against (f(x+hv) − f(x−hv))/2h along three
//! random directions v each, h = 1e-6, to 1e-6 relative. Inputs are drawn away from the kinks of
//! the op under test (0 for Relu, the bounds of Clip, integers for Floor…), so the difference
//! quotient never straddles one. Ops whose input is only a shape or a mask still get the check on
//! the float path through them (a mask times the input, a Range added to it).

use blindspot::differentiable::{supported_ops, DType, Device, Differentiable, Target};
use blindspot::model::onnx_write::{model_bytes, AttrValue, ModelSpec, Node, INPUT, OUTPUT};
use blindspot::model::Model;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;
use std::path::Path;

// ---------------------------------------------------------------------------
// Building tiny graphs
// ---------------------------------------------------------------------------

/// A graph under construction: every node gets a fresh output name, the last value becomes the
/// model output through an Identity.
struct G {
    m: ModelSpec,
    rng: ChaCha8Rng,
    count: usize,
}

/// Names live as long as the test process: graphs are built once per case.
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

impl G {
    fn new(name: &str, input: &[i64]) -> G {
        G {
            m: ModelSpec::new(name, input, &[1]),
            rng: ChaCha8Rng::seed_from_u64(seed_of(name)),
            count: 0,
        }
    }

    fn opset(mut self, opset: i64) -> G {
        self.m.opset = opset;
        self
    }

    fn fresh(&mut self, prefix: &str) -> &'static str {
        self.count += 1;
        leak(format!("{prefix}{}", self.count))
    }

    /// One node with one output; `attrs` adds its attributes.
    fn op(&mut self, op: &str, inputs: &[&str], attrs: impl FnOnce(Node) -> Node) -> &'static str {
        let out = self.fresh("v");
        let name = self.fresh(&format!("{op}_"));
        self.m.node(attrs(Node::new(name, op, inputs, &[out])));
        out
    }

    fn op1(&mut self, op: &str, inputs: &[&str]) -> &'static str {
        self.op(op, inputs, |n| n)
    }

    /// One node with `n` outputs.
    fn op_n(&mut self, op: &str, inputs: &[&str], n: usize, attrs: impl FnOnce(Node) -> Node) -> Vec<&'static str> {
        let outs: Vec<&'static str> = (0..n).map(|_| self.fresh("v")).collect();
        let name = self.fresh(&format!("{op}_"));
        self.m.node(attrs(Node::new(name, op, inputs, &outs)));
        outs
    }

    fn f32s(&mut self, dims: &[i64], data: Vec<f32>) -> &'static str {
        let name = self.fresh("c");
        self.m.init_f32(name, dims, data);
        name
    }

    /// A float initializer uniform in [lo, hi].
    fn rand(&mut self, dims: &[i64], lo: f32, hi: f32) -> &'static str {
        let n = dims.iter().product::<i64>() as usize;
        let data = (0..n).map(|_| self.rng.gen_range(lo..=hi)).collect();
        self.f32s(dims, data)
    }

    fn scalar(&mut self, v: f32) -> &'static str {
        self.f32s(&[], vec![v])
    }

    fn i64s(&mut self, dims: &[i64], data: Vec<i64>) -> &'static str {
        let name = self.fresh("i");
        self.m.init_i64(name, dims, data);
        name
    }

    fn ints(&mut self, data: &[i64]) -> &'static str {
        self.i64s(&[data.len() as i64], data.to_vec())
    }

    fn done(mut self, last: &str) -> ModelSpec {
        self.m.node(Node::new("output", "Identity", &[last], &[OUTPUT]));
        self.m
    }
}

/// Integer-list attributes of a node, by name.
type IntAttrs = Vec<(&'static str, Vec<i64>)>;
/// A Slice: (tag, starts, ends, axes, steps).
type SliceCase = (&'static str, Vec<i64>, Vec<i64>, Vec<i64>, Vec<i64>);
/// String attributes of a node, by name.
type StrAttrs = Vec<(&'static str, &'static str)>;

fn s(v: &str) -> AttrValue {
    AttrValue::Str(v.to_string())
}

// ---------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------

/// The input a case is evaluated at: uniform in [lo, hi], nudged 0.05 away from each kink.
#[derive(Clone)]
struct Input {
    lo: f64,
    hi: f64,
    kinks: Vec<f64>,
}

fn range(lo: f64, hi: f64) -> Input {
    Input { lo, hi, kinks: vec![] }
}

fn away(lo: f64, hi: f64, kinks: &[f64]) -> Input {
    Input {
        lo,
        hi,
        kinks: kinks.to_vec(),
    }
}

/// Integers in [-3, 3]: the kinks of Floor and Ceil.
fn integers() -> Vec<f64> {
    (-3..=3).map(f64::from).collect()
}

struct Case {
    name: String,
    spec: ModelSpec,
    input: Input,
    /// Where tract refuses the graph (or runs it wrongly): an equivalent graph built from forms
    /// tract runs, whose values were worked out by hand.
    oracle: Option<ModelSpec>,
}

fn case(spec: ModelSpec, input: Input) -> Case {
    Case {
        name: spec.graph_name.clone(),
        spec,
        input,
        oracle: None,
    }
}

/// A case checked against `oracle`, an equivalent graph tract runs.
fn case_with_oracle(spec: ModelSpec, input: Input, oracle: ModelSpec) -> Case {
    Case {
        oracle: Some(oracle),
        ..case(spec, input)
    }
}

const STD: (f64, f64) = (-2.0, 2.0);

fn std_input() -> Input {
    range(STD.0, STD.1)
}

/// One op on the input with no further inputs.
fn unary(op: &str, shape: &[i64], attrs: impl FnOnce(Node) -> Node, tag: &str) -> ModelSpec {
    let mut g = G::new(&format!("{op}{tag}"), shape);
    let y = g.op(op, &[INPUT], attrs);
    g.done(y)
}

fn elementwise_cases() -> Vec<Case> {
    let shape = [2, 3, 4];
    let id = |n: Node| n;
    let mut cases = vec![];
    for op in ["Cos", "Sin", "Erf", "Exp", "Neg", "Sigmoid", "Tanh", "Identity"] {
        cases.push(case(unary(op, &shape, id, ""), std_input()));
    }
    cases.push(case(unary("Sigmoid", &shape, id, "_large"), range(-40.0, 40.0)));
    for op in ["Log", "Sqrt", "Reciprocal"] {
        cases.push(case(unary(op, &shape, id, ""), range(0.5, 2.0)));
    }
    cases.push(case(unary("Abs", &shape, id, ""), away(-2.0, 2.0, &[0.0])));
    cases.push(case(unary("Relu", &shape, id, ""), away(-2.0, 2.0, &[0.0])));
    cases.push(case(
        unary("LeakyRelu", &shape, |n| n.float("alpha", 0.1), "_alpha"),
        away(-2.0, 2.0, &[0.0]),
    ));
    cases.push(case(unary("LeakyRelu", &shape, id, ""), away(-2.0, 2.0, &[0.0])));
    // Kinks of HardSigmoid at -beta/alpha and (1-beta)/alpha.
    cases.push(case(
        unary("HardSigmoid", &shape, id, ""),
        away(-4.0, 4.0, &[-2.5, 2.5]),
    ));
    cases.push(case(
        unary(
            "HardSigmoid",
            &shape,
            |n| n.float("alpha", 0.3).float("beta", 0.4),
            "_attrs",
        ),
        away(-3.0, 3.0, &[-4.0 / 3.0, 2.0]),
    ));
    // HardSwish is opset 14.
    let mut g = G::new("HardSwish", &shape).opset(14);
    let y = g.op1("HardSwish", &[INPUT]);
    cases.push(case(g.done(y), away(-4.0, 4.0, &[-3.0, 3.0])));
    for op in ["Floor", "Ceil"] {
        cases.push(case(unary(op, &shape, id, ""), away(-2.9, 2.9, &integers())));
    }
    // Dropout in inference is the identity (opset 13: ratio and training_mode inputs omitted).
    cases.push(case(unary("Dropout", &shape, id, ""), std_input()));
    // Gelu is opset 20.
    let gelu = |approximate: Option<&str>, tag: &str| {
        let mut g = G::new(&format!("Gelu{tag}"), &shape).opset(20);
        let y = g.op("Gelu", &[INPUT], |n| match approximate {
            Some(a) => n.attr("approximate", s(a)),
            None => n,
        });
        g.done(y)
    };
    cases.push(case(gelu(None, ""), range(-4.0, 4.0)));
    cases.push(case(gelu(Some("tanh"), "_tanh"), range(-4.0, 4.0)));
    cases.push(case(gelu(Some("none"), "_none"), range(-4.0, 4.0)));
    // Near Gelu's minimum (x ≈ −0.75) its slope Φ(x) + xφ(x) nearly cancels: a constant rounded
    // in the slope (candle's 0.398942 for 1/√(2π)) shows there as a relative error above 1e-6.
    cases.push(case(gelu(None, "_near_minimum"), range(-0.8, -0.7)));
    cases.push(case(gelu(Some("tanh"), "_tanh_near_minimum"), range(-0.8, -0.7)));

    // Clip: opset 13 bounds as inputs (both, min only, none), opset 6 bounds as attributes.
    let clip = |lo: Option<f32>, hi: Option<f32>, tag: &str| {
        let mut g = G::new(&format!("Clip{tag}"), &shape);
        let lo = lo.map(|v| g.scalar(v)).unwrap_or("");
        let hi = hi.map(|v| g.scalar(v)).unwrap_or("");
        let inputs: Vec<&str> = match (lo, hi) {
            ("", "") => vec![INPUT],
            (lo, "") => vec![INPUT, lo],
            (lo, hi) => vec![INPUT, lo, hi],
        };
        let y = g.op1("Clip", &inputs);
        g.done(y)
    };
    cases.push(case(
        clip(Some(-0.5), Some(1.0), "_both"),
        away(-2.0, 2.0, &[-0.5, 1.0]),
    ));
    cases.push(case(clip(Some(-0.5), None, "_min"), away(-2.0, 2.0, &[-0.5])));
    cases.push(case(clip(None, Some(0.7), "_max"), away(-2.0, 2.0, &[0.7])));
    cases.push(case(clip(None, None, "_unbounded"), std_input()));
    let mut g = G::new("Clip_opset6", &shape).opset(6);
    let y = g.op("Clip", &[INPUT], |n| n.float("min", -0.3).float("max", 0.8));
    cases.push(case(g.done(y), away(-2.0, 2.0, &[-0.3, 0.8])));

    // Pow with constant exponents 2, 0.5, 3, -1, 1.7; a constant tensor exponent; x^x.
    for (e, lo, tag) in [
        (2.0, -2.0, "2"),
        (0.5, 0.5, "0_5"),
        (3.0, -2.0, "3"),
        (-1.0, 0.5, "minus1"),
        (1.7, 0.5, "1_7"),
        (1.0, -2.0, "1"),
    ] {
        let mut g = G::new(&format!("Pow_{tag}"), &shape);
        let c = g.scalar(e);
        let y = g.op1("Pow", &[INPUT, c]);
        cases.push(case(g.done(y), range(lo, 2.0)));
    }
    let mut g = G::new("Pow_tensor_exponent", &shape);
    let c = g.rand(&[3, 4], 0.5, 2.5);
    let y = g.op1("Pow", &[INPUT, c]);
    cases.push(case(g.done(y), range(0.5, 2.0)));
    // Negative bases: integer exponents, as a scalar and per element (−2 <- x < 2, away from 0).
    let mut g = G::new("Pow_minus2_negative_base", &shape);
    let c = g.scalar(-2.0);
    let y = g.op1("Pow", &[INPUT, c]);
    cases.push(case(g.done(y), away(-2.0, 2.0, &[0.0])));
    let mut g = G::new("Pow_integer_tensor_exponent_negative_base", &shape);
    let c = g.f32s(&[4], vec![2.0, 3.0, -1.0, 1.0]);
    let y = g.op1("Pow", &[INPUT, c]);
    cases.push(case(g.done(y), away(-2.0, 2.0, &[0.0])));
    let mut g = G::new("Pow_x_to_the_x", &shape);
    let y = g.op1("Pow", &[INPUT, INPUT]);
    cases.push(case(g.done(y), range(0.5, 2.0)));
    let mut g = G::new("Pow_constant_base", &shape);
    let c = g.rand(&[4], 0.5, 2.5);
    let y = g.op1("Pow", &[c, INPUT]);
    cases.push(case(g.done(y), range(-1.0, 1.0)));
    cases
}

fn binary_cases() -> Vec<Case> {
    let shape = [2, 3, 4];
    let mut cases = vec![];
    for op in ["Add", "Sub", "Mul", "Div"] {
        // Broadcast constant on the right, on the left, and both operands from the input (the
        // right one of shape [2,3,1], broadcast along the last axis).
        let mut g = G::new(&format!("{op}_constant_right"), &shape);
        let c = g.rand(&[3, 1], 0.5, 1.5);
        let y = g.op1(op, &[INPUT, c]);
        cases.push(case(g.done(y), std_input()));
        let mut g = G::new(&format!("{op}_constant_left"), &shape);
        let c = g.rand(&[4], 0.5, 1.5);
        let y = g.op1(op, &[c, INPUT]);
        cases.push(case(g.done(y), range(0.5, 2.0)));
        let mut g = G::new(&format!("{op}_both_from_input"), &shape);
        let axes = g.ints(&[2]);
        let m = g.op1("ReduceSum", &[INPUT, axes]);
        let y = g.op1(op, &[INPUT, m]);
        cases.push(case(g.done(y), range(0.5, 2.0)));
        let mut g = G::new(&format!("{op}_same_value"), &shape);
        let y = g.op1(op, &[INPUT, INPUT]);
        cases.push(case(g.done(y), range(0.5, 2.0)));
    }
    // Variadic: three operands, one broadcast constant, one derived from the input.
    for op in ["Max", "Min", "Sum", "Mean"] {
        let mut g = G::new(&format!("{op}_three"), &shape);
        let c = g.rand(&[4], -1.0, 1.0);
        let half = g.scalar(0.5);
        let h = g.op1("Mul", &[INPUT, half]);
        let y = g.op1(op, &[INPUT, c, h]);
        // Ties: x = c (c's values) and x = x/2 (0). Each is nudged away below.
        let consts: Vec<f64> =
            g.m.initializer(c)
                .unwrap()
                .f32()
                .unwrap()
                .iter()
                .map(|&v| v as f64)
                .collect();
        let mut kinks = consts.clone();
        kinks.push(0.0);
        kinks.extend(consts.iter().map(|v| 2.0 * v));
        cases.push(case(g.done(y), away(-2.0, 2.0, &kinks)));
        let mut g = G::new(&format!("{op}_one"), &shape);
        let y = g.op1(op, &[INPUT]);
        cases.push(case(g.done(y), std_input()));
    }
    // Comparisons: a mask cast to float multiplies the input; Where picks between two branches.
    for op in ["Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual"] {
        let mut g = G::new(&format!("{op}_mask"), &shape);
        let fl = g.op1("Floor", &[INPUT]);
        let c = g.f32s(&[4], vec![-1.0, 0.0, 1.0, 0.0]);
        let mask = g.op1(op, &[fl, c]);
        let f = g.op("Cast", &[mask], |n| n.int("to", 1));
        let y = g.op1("Mul", &[INPUT, f]);
        cases.push(case(g.done(y), away(-2.0, 2.0, &integers())));
    }
    let mut g = G::new("Where_broadcast", &shape);
    let c = g.rand(&[3, 1], -0.5, 0.5);
    let cond = g.op1("Less", &[INPUT, c]);
    let sin = g.op1("Sin", &[INPUT]);
    let y = g.op1("Where", &[cond, INPUT, sin]);
    let consts: Vec<f64> =
        g.m.initializer(c)
            .unwrap()
            .f32()
            .unwrap()
            .iter()
            .map(|&v| v as f64)
            .collect();
    cases.push(case(g.done(y), away(-2.0, 2.0, &consts)));
    let mut g = G::new("Where_scalar_branch", &shape);
    let zero = g.scalar(0.25);
    let cond = g.op1("Greater", &[INPUT, zero]);
    let other = g.scalar(-3.0);
    let y = g.op1("Where", &[cond, other, INPUT]);
    cases.push(case(g.done(y), away(-2.0, 2.0, &[0.25])));
    // Cast: to float (no-op), to int64 and back (truncation), to bool and back.
    let mut g = G::new("Cast_float", &shape);
    let y = g.op("Cast", &[INPUT], |n| n.int("to", 1));
    cases.push(case(g.done(y), std_input()));
    let mut g = G::new("Cast_int_and_back", &shape);
    let i = g.op("Cast", &[INPUT], |n| n.int("to", 7));
    let y = g.op("Cast", &[i], |n| n.int("to", 1));
    cases.push(case(g.done(y), away(-2.9, 2.9, &integers())));
    let mut g = G::new("Cast_bool_and_back", &shape);
    let fl = g.op1("Floor", &[INPUT]);
    let b = g.op("Cast", &[fl], |n| n.int("to", 9));
    let f = g.op("Cast", &[b], |n| n.int("to", 1));
    let y = g.op1("Add", &[INPUT, f]);
    cases.push(case(g.done(y), away(-2.9, 2.9, &integers())));
    cases
}

fn matrix_cases() -> Vec<Case> {
    let mut cases = vec![];
    // MatMul: a weight matrix; broadcast batch dimensions on either side; both operands from
    // the input.
    let mut g = G::new("MatMul_weight", &[2, 3, 4, 5]);
    let w = g.rand(&[5, 6], -1.0, 1.0);
    let y = g.op1("MatMul", &[INPUT, w]);
    cases.push(case(g.done(y), std_input()));
    let mut g = G::new("MatMul_broadcast_batch_right", &[2, 1, 4, 5]);
    let w = g.rand(&[3, 5, 2], -1.0, 1.0);
    let y = g.op1("MatMul", &[INPUT, w]);
    cases.push(case(g.done(y), std_input()));
    let mut g = G::new("MatMul_broadcast_batch_left", &[3, 4, 5]);
    let w = g.rand(&[2, 3, 6, 4], -1.0, 1.0);
    let y = g.op1("MatMul", &[w, INPUT]);
    cases.push(case(g.done(y), std_input()));
    let mut g = G::new("MatMul_gram", &[2, 3, 4, 5]);
    let t = g.op("Transpose", &[INPUT], |n| n.ints("perm", &[0, 1, 3, 2]));
    let y = g.op1("MatMul", &[INPUT, t]);
    cases.push(case(g.done(y), std_input()));
    let mut g = G::new("MatMul_both_broadcast", &[1, 3, 4, 5]);
    let r = g.ints(&[3, 1, 5, 4]);
    let t = g.op("Transpose", &[INPUT], |n| n.ints("perm", &[1, 0, 3, 2]));
    let t = g.op1("Reshape", &[t, r]);
    let y = g.op1("MatMul", &[INPUT, t]);
    cases.push(case(g.done(y), std_input()));
    // Gemm: every combination of transA/transB, alpha and beta, C of several shapes.
    for (ta, tb, alpha, beta, c_dims) in [
        (0, 0, 1.0, 1.0, vec![3]),
        (1, 0, 1.0, 1.0, vec![1, 3]),
        (0, 1, 0.7, 1.3, vec![4, 3]),
        (1, 1, 1.5, 0.5, vec![4, 1]),
        (0, 0, 2.0, 0.0, vec![]),
    ] {
        let shape = if ta == 1 { [5, 4] } else { [4, 5] };
        let mut g = G::new(
            &format!("Gemm_tA{ta}_tB{tb}_a{alpha}_b{beta}_c{}", c_dims.len()),
            &shape,
        );
        let w = if tb == 1 {
            g.rand(&[3, 5], -1.0, 1.0)
        } else {
            g.rand(&[5, 3], -1.0, 1.0)
        };
        let mut inputs = vec![INPUT, w];
        if !c_dims.is_empty() {
            let c = g.rand(&c_dims, -1.0, 1.0);
            inputs.push(c);
        }
        let y = g.op("Gemm", &inputs, |n| {
            n.int("transA", ta)
                .int("transB", tb)
                .float("alpha", alpha)
                .float("beta", beta)
        });
        cases.push(case(g.done(y), std_input()));
    }
    let mut g = G::new("Gemm_weight_first", &[5, 3]);
    let w = g.rand(&[4, 5], -1.0, 1.0);
    let y = g.op1("Gemm", &[w, INPUT]);
    cases.push(case(g.done(y), std_input()));
    let mut g = G::new("Gemm_gram", &[4, 5]);
    let y = g.op("Gemm", &[INPUT, INPUT], |n| n.int("transB", 1).float("alpha", 0.5));
    cases.push(case(g.done(y), std_input()));
    let mut g = G::new("Gemm_c_from_input", &[4, 5]);
    let w = g.rand(&[5, 5], -1.0, 1.0);
    let y = g.op("Gemm", &[INPUT, w, INPUT], |n| n.float("beta", 0.5));
    cases.push(case(g.done(y), std_input()));
    cases
}

fn conv_cases() -> Vec<Case> {
    let mut cases = vec![];
    let shape = [1, 4, 7, 8];
    // (tag, weight dims, integer attributes, bias)
    let convs: Vec<(&str, [i64; 4], IntAttrs, bool)> = vec![
        ("plain", [3, 4, 3, 3], vec![], true),
        ("1x1", [5, 4, 1, 1], vec![], false),
        ("pads_asymmetric", [3, 4, 3, 3], vec![("pads", vec![0, 1, 2, 1])], true),
        (
            "strides_2_1",
            [3, 4, 3, 3],
            vec![("strides", vec![2, 1]), ("pads", vec![1, 1, 1, 1])],
            true,
        ),
        (
            "strides_2_pads",
            [3, 4, 3, 2],
            vec![("strides", vec![2, 2]), ("pads", vec![1, 0, 0, 1])],
            false,
        ),
        (
            "dilation_2",
            [3, 4, 3, 3],
            vec![("dilations", vec![2, 2]), ("pads", vec![2, 2, 2, 2])],
            true,
        ),
        (
            "dilation_2_1_stride",
            [2, 4, 3, 2],
            vec![("dilations", vec![2, 1]), ("strides", vec![1, 2])],
            false,
        ),
        (
            "depthwise",
            [4, 1, 3, 3],
            vec![("group", vec![4]), ("pads", vec![1, 1, 1, 1])],
            true,
        ),
        (
            "depthwise_multiplier",
            [8, 1, 3, 3],
            vec![("group", vec![4]), ("strides", vec![2, 2])],
            false,
        ),
        (
            "group_2",
            [6, 2, 3, 3],
            vec![("group", vec![2]), ("pads", vec![1, 0, 1, 2])],
            true,
        ),
        (
            "kernel_larger",
            [2, 4, 5, 5],
            vec![("pads", vec![2, 2, 2, 2]), ("strides", vec![2, 3])],
            true,
        ),
    ];
    for (tag, w_dims, attrs, bias) in convs {
        let mut g = G::new(&format!("Conv_{tag}"), &shape);
        let fan_in = (w_dims[1] * w_dims[2] * w_dims[3]) as f32;
        let w = g.rand(&w_dims, -1.0 / fan_in.sqrt(), 1.0 / fan_in.sqrt());
        let mut inputs = vec![INPUT, w];
        if bias {
            inputs.push(g.rand(&[w_dims[0]], -0.5, 0.5));
        }
        let y = g.op("Conv", &inputs, |mut n| {
            n = n.ints("kernel_shape", &w_dims[2..]);
            for (name, v) in &attrs {
                n = if *name == "group" {
                    n.int(name, v[0])
                } else {
                    n.ints(name, v)
                };
            }
            n
        });
        cases.push(case(g.done(y), std_input()));
    }
    for pad in ["SAME_UPPER", "SAME_LOWER", "VALID"] {
        let mut g = G::new(&format!("Conv_auto_pad_{pad}"), &shape);
        let w = g.rand(&[3, 4, 4, 3], -0.3, 0.3);
        let y = g.op("Conv", &[INPUT, w], |n| {
            n.attr("auto_pad", s(pad)).ints("strides", &[2, 2])
        });
        cases.push(case(g.done(y), std_input()));
    }
    // The weight itself computed from the input (a Conv whose every operand needs a gradient).
    let mut g = G::new("Conv_weight_from_input", &[1, 2, 3, 3]);
    let y = g.op("Conv", &[INPUT, INPUT], |n| n.ints("pads", &[1, 1, 1, 1]));
    cases.push(case(g.done(y), std_input()));

    // ConvTranspose: (tag, input dims, weight dims [C_in, C_out/group, kh, kw], attributes).
    let transposed: Vec<(&str, [i64; 4], [i64; 4], IntAttrs)> = vec![
        ("plain", [1, 4, 5, 5], [4, 3, 3, 3], vec![]),
        (
            "stride2_k4_p1",
            [1, 4, 5, 5],
            [4, 3, 4, 4],
            vec![("strides", vec![2, 2]), ("pads", vec![1, 1, 1, 1])],
        ),
        (
            "stride2_k3_p1_output_padding",
            [1, 4, 5, 4],
            [4, 2, 3, 3],
            vec![
                ("strides", vec![2, 2]),
                ("pads", vec![1, 1, 1, 1]),
                ("output_padding", vec![1, 1]),
            ],
        ),
        (
            "strides_3_2_asymmetric",
            [1, 4, 4, 5],
            [4, 3, 3, 2],
            vec![("strides", vec![3, 2]), ("pads", vec![0, 1, 2, 0])],
        ),
        (
            "dilation_2",
            [1, 4, 4, 4],
            [4, 2, 3, 3],
            vec![("dilations", vec![2, 2])],
        ),
        (
            "output_shape_longer",
            [1, 4, 4, 4],
            [4, 2, 3, 3],
            vec![("strides", vec![2, 2]), ("output_shape", vec![10, 9])],
        ),
    ];
    for (tag, x_dims, w_dims, attrs) in transposed {
        let mut g = G::new(&format!("ConvTranspose_{tag}"), &x_dims);
        let w = g.rand(&w_dims, -0.4, 0.4);
        let group = attrs.iter().find(|a| a.0 == "group").map_or(1, |a| a.1[0]);
        let b = g.rand(&[w_dims[1] * group], -0.5, 0.5);
        let y = g.op("ConvTranspose", &[INPUT, w, b], |mut n| {
            n = n.ints("kernel_shape", &w_dims[2..]);
            for (name, v) in &attrs {
                n = if *name == "group" {
                    n.int(name, v[0])
                } else {
                    n.ints(name, v)
                };
            }
            n
        });
        cases.push(case(g.done(y), std_input()));
    }
    for pad in ["SAME_UPPER", "SAME_LOWER"] {
        let mut g = G::new(&format!("ConvTranspose_auto_pad_{pad}"), &[1, 4, 4, 5]);
        let w = g.rand(&[4, 2, 3, 3], -0.4, 0.4);
        let y = g.op("ConvTranspose", &[INPUT, w], |n| {
            n.attr("auto_pad", s(pad)).ints("strides", &[2, 2])
        });
        cases.push(case(g.done(y), std_input()));
    }
    // An output_shape shorter than the taps reach: tract 0.23 refuses it (it keeps the pads and
    // adds the difference at the end); ONNX takes pads from the shortfall, the odd one at the
    // beginning (at the end for SAME_UPPER). Oracles: the same ConvTranspose with those pads.
    for (auto_pad, pads) in [(None, [1, 1, 0, 1]), (Some("SAME_UPPER"), [0, 1, 1, 1])] {
        // Full length (4 − 1)·2 + 3 = 9 per axis; output_shape [8, 7]: shortfalls 1 and 2.
        let tag = auto_pad.unwrap_or("NOTSET");
        let mut g = G::new(&format!("ConvTranspose_output_shape_shorter_{tag}"), &[1, 4, 4, 4]);
        let w = g.rand(&[4, 2, 3, 3], -0.4, 0.4);
        let weights = g.m.initializer(w).unwrap().clone();
        let y = g.op("ConvTranspose", &[INPUT, w], |n| {
            let n = n
                .ints("kernel_shape", &[3, 3])
                .ints("strides", &[2, 2])
                .ints("output_shape", &[8, 7]);
            match auto_pad {
                Some(p) => n.attr("auto_pad", s(p)),
                None => n,
            }
        });
        let mut o = G::new(
            &format!("ConvTranspose_output_shape_shorter_{tag}_oracle"),
            &[1, 4, 4, 4],
        );
        let w = o.f32s(&weights.dims, weights.f32().unwrap().to_vec());
        let z = o.op("ConvTranspose", &[INPUT, w], |n| {
            n.ints("kernel_shape", &[3, 3])
                .ints("strides", &[2, 2])
                .ints("pads", &pads)
        });
        cases.push(case_with_oracle(g.done(y), std_input(), o.done(z)));
    }
    cases
}

fn pool_cases() -> Vec<Case> {
    let mut cases = vec![];
    let shape = [1, 3, 9, 8];
    // (tag, kernel_shape, strides, pads)
    let pools = [
        ("k3_s2_p1", [3, 3], [2, 2], [1, 1, 1, 1]),
        ("k5_s1_p2", [5, 5], [1, 1], [2, 2, 2, 2]),
        ("k2_s2", [2, 2], [2, 2], [0, 0, 0, 0]),
        ("k3x2_s1x2_asymmetric", [3, 2], [1, 2], [0, 1, 2, 0]),
    ];
    for (tag, k, st, p) in &pools {
        // Max: distinct random values, a tie closer than h has probability ~1e-6.
        let mut g = G::new(&format!("MaxPool_{tag}"), &shape);
        let y = g.op("MaxPool", &[INPUT], |n| {
            n.ints("kernel_shape", k).ints("strides", st).ints("pads", p)
        });
        cases.push(case(g.done(y), std_input()));
        for include in [0, 1] {
            let mut g = G::new(&format!("AveragePool_{tag}_count_include_pad_{include}"), &shape);
            let y = g.op("AveragePool", &[INPUT], |n| {
                n.ints("kernel_shape", k)
                    .ints("strides", st)
                    .ints("pads", p)
                    .int("count_include_pad", include)
            });
            cases.push(case(g.done(y), std_input()));
        }
    }
    let mut g = G::new("MaxPool_dilation_2", &shape);
    let y = g.op("MaxPool", &[INPUT], |n| {
        n.ints("kernel_shape", &[2, 2])
            .ints("dilations", &[2, 2])
            .ints("pads", &[1, 1, 1, 1])
    });
    cases.push(case(g.done(y), std_input()));
    let mut g = G::new("MaxPool_negative_values_padded", &shape);
    let y = g.op("MaxPool", &[INPUT], |n| {
        n.ints("kernel_shape", &[3, 3]).ints("pads", &[1, 1, 1, 1])
    });
    cases.push(case(g.done(y), range(-3.0, -1.0)));
    let mut g = G::new("AveragePool_same_upper", &shape);
    let y = g.op("AveragePool", &[INPUT], |n| {
        n.ints("kernel_shape", &[3, 3])
            .ints("strides", &[2, 2])
            .attr("auto_pad", s("SAME_UPPER"))
    });
    cases.push(case(g.done(y), std_input()));
    let mut g = G::new("MaxPool_1d", &[1, 2, 9]);
    let y = g.op("MaxPool", &[INPUT], |n| {
        n.ints("kernel_shape", &[3]).ints("strides", &[2]).ints("pads", &[1, 1])
    });
    cases.push(case(g.done(y), std_input()));
    for op in ["GlobalAveragePool", "GlobalMaxPool"] {
        cases.push(case(unary(op, &shape, |n| n, ""), std_input()));
    }
    cases
}

fn normalisation_cases() -> Vec<Case> {
    let mut cases = vec![];
    let mut g = G::new("BatchNormalization", &[2, 3, 4, 4]);
    let scale = g.rand(&[3], 0.5, 1.5);
    let bias = g.rand(&[3], -0.5, 0.5);
    let mean = g.rand(&[3], -0.5, 0.5);
    let var = g.rand(&[3], 0.2, 2.0);
    let y = g.op("BatchNormalization", &[INPUT, scale, bias, mean, var], |n| {
        n.float("epsilon", 1e-3)
    });
    cases.push(case(g.done(y), std_input()));
    let mut g = G::new("BatchNormalization_rank3", &[2, 3, 5]);
    let scale = g.rand(&[3], 0.5, 1.5);
    let bias = g.rand(&[3], -0.5, 0.5);
    let mean = g.rand(&[3], -0.5, 0.5);
    let var = g.rand(&[3], 0.2, 2.0);
    let y = g.op1("BatchNormalization", &[INPUT, scale, bias, mean, var]);
    cases.push(case(g.done(y), std_input()));
    // LayerNormalization (opset 17): last axis with scale and bias; from axis 1 with scale only;
    // a negative axis with epsilon.
    let mut g = G::new("LayerNormalization_last_axis", &[2, 3, 6]).opset(17);
    let scale = g.rand(&[6], 0.5, 1.5);
    let bias = g.rand(&[6], -0.5, 0.5);
    let y = g.op1("LayerNormalization", &[INPUT, scale, bias]);
    cases.push(case(g.done(y), std_input()));
    let mut g = G::new("LayerNormalization_axis_1", &[2, 3, 4]).opset(17);
    let scale = g.rand(&[3, 4], 0.5, 1.5);
    let y = g.op("LayerNormalization", &[INPUT, scale], |n| n.int("axis", 1));
    cases.push(case(g.done(y), std_input()));
    let mut g = G::new("LayerNormalization_axis_minus2_eps", &[2, 3, 4]).opset(17);
    let scale = g.rand(&[3, 4], 0.5, 1.5);
    let bias = g.rand(&[4], -0.5, 0.5);
    let y = g.op("LayerNormalization", &[INPUT, scale, bias], |n| {
        n.int("axis", -2).float("epsilon", 0.1)
    });
    cases.push(case(g.done(y), std_input()));
    // Softmax and LogSoftmax on the last axis, a middle axis, and opset 11's flattening form.
    for op in ["Softmax", "LogSoftmax"] {
        cases.push(case(unary(op, &[2, 3, 4], |n| n, "_default_axis"), range(-3.0, 3.0)));
        cases.push(case(
            unary(op, &[2, 3, 4], |n| n.int("axis", 1), "_axis_1"),
            range(-3.0, 3.0),
        ));
        cases.push(case(
            unary(op, &[2, 3, 4], |n| n.int("axis", 0), "_axis_0"),
            range(-3.0, 3.0),
        ));
        let mut g = G::new(&format!("{op}_opset11_axis_1"), &[2, 3, 4]).opset(11);
        let y = g.op(op, &[INPUT], |n| n.int("axis", 1));
        cases.push(case(g.done(y), range(-3.0, 3.0)));
        let mut g = G::new(&format!("{op}_opset11_default"), &[2, 3, 4]).opset(11);
        let y = g.op1(op, &[INPUT]);
        cases.push(case(g.done(y), range(-3.0, 3.0)));
    }
    cases
}

fn reduce_cases() -> Vec<Case> {
    let mut cases = vec![];
    let shape = [2, 3, 4];
    // (op, axes, keepdims); opset 13: ReduceSum takes axes as an input, the others an attribute.
    let reductions: Vec<(&str, Option<Vec<i64>>, i64)> = vec![
        ("ReduceMean", Some(vec![1]), 1),
        ("ReduceMean", Some(vec![0, 2]), 0),
        ("ReduceMean", None, 0),
        ("ReduceSum", Some(vec![-1]), 0),
        ("ReduceSum", Some(vec![0, 1]), 1),
        ("ReduceSum", None, 1),
        ("ReduceMax", Some(vec![-1]), 0),
        ("ReduceMax", Some(vec![0, 2]), 1),
        ("ReduceMax", None, 0),
        ("ReduceMin", Some(vec![1]), 1),
        ("ReduceMin", Some(vec![2, 0]), 0),
        ("ReduceMin", None, 1),
    ];
    for (op, axes, keep) in reductions {
        let tag = match &axes {
            Some(a) => format!("{op}_axes{a:?}_keepdims{keep}"),
            None => format!("{op}_all_keepdims{keep}"),
        };
        let mut g = G::new(&tag.replace([' ', '[', ']', ','], "_"), &shape);
        let y = if op == "ReduceSum" {
            let mut inputs = vec![INPUT];
            if let Some(a) = &axes {
                inputs.push(g.ints(a));
            }
            g.op(op, &inputs, |n| n.int("keepdims", keep))
        } else {
            g.op(op, &[INPUT], |n| {
                let n = n.int("keepdims", keep);
                match &axes {
                    Some(a) => n.ints("axes", a),
                    None => n,
                }
            })
        };
        cases.push(case(g.done(y), std_input()));
    }
    // No axes with noop_with_empty_axes: the identity.
    let mut g = G::new("ReduceSum_noop_with_empty_axes", &shape);
    let y = g.op("ReduceSum", &[INPUT], |n| n.int("noop_with_empty_axes", 1));
    cases.push(case(g.done(y), std_input()));
    // Opset 18: every reduction takes its axes as an input.
    for op in ["ReduceMean", "ReduceMax"] {
        let mut g = G::new(&format!("{op}_opset18_axes_input"), &shape).opset(18);
        let axes = g.ints(&[1]);
        let y = g.op(op, &[INPUT, axes], |n| n.int("keepdims", 0));
        cases.push(case(g.done(y), std_input()));
    }
    cases
}

fn shape_cases() -> Vec<Case> {
    let mut cases = vec![];
    let shape = [2, 3, 4];
    // Reshape with -1 and 0; Flatten; Transpose with and without perm.
    let mut g = G::new("Reshape_minus1_zero", &shape);
    let r = g.ints(&[0, -1, 2]);
    let y = g.op1("Reshape", &[INPUT, r]);
    cases.push(case(g.done(y), std_input()));
    for axis in [0, 2, -1] {
        cases.push(case(
            unary("Flatten", &shape, |n| n.int("axis", axis), &format!("_axis{axis}")),
            std_input(),
        ));
    }
    cases.push(case(
        unary("Transpose", &shape, |n| n.ints("perm", &[2, 0, 1]), "_perm"),
        std_input(),
    ));
    cases.push(case(unary("Transpose", &shape, |n| n, "_reverse"), std_input()));
    // Unsqueeze and Squeeze (opset 13: axes as an input; opset 11: as an attribute).
    let mut g = G::new("Unsqueeze_Squeeze", &shape);
    let axes = g.ints(&[0, -1]);
    let u = g.op1("Unsqueeze", &[INPUT, axes]);
    let sq = g.ints(&[0]);
    let y = g.op1("Squeeze", &[u, sq]);
    let y = g.op1("Squeeze", &[y]);
    cases.push(case(g.done(y), std_input()));
    let mut g = G::new("Unsqueeze_Squeeze_opset11", &shape).opset(11);
    let u = g.op("Unsqueeze", &[INPUT], |n| n.ints("axes", &[1, 4]));
    let y = g.op("Squeeze", &[u], |n| n.ints("axes", &[-1]));
    cases.push(case(g.done(y), std_input()));
    // Concat along a middle axis, with an input-derived and a constant part.
    let mut g = G::new("Concat_axis1", &shape);
    let sin = g.op1("Sin", &[INPUT]);
    let c = g.rand(&[2, 2, 4], -1.0, 1.0);
    let y = g.op("Concat", &[INPUT, c, sin], |n| n.int("axis", 1));
    cases.push(case(g.done(y), std_input()));
    let mut g = G::new("Concat_negative_axis", &shape);
    let y = g.op("Concat", &[INPUT, INPUT], |n| n.int("axis", -1));
    cases.push(case(g.done(y), std_input()));
    // Split: equal parts, explicit sizes (opset 13 input), opset 11 attribute; parts recombined
    // in another order so that every part reaches the output.
    let mut g = G::new("Split_equal", &[2, 3, 6]);
    let parts = g.op_n("Split", &[INPUT], 3, |n| n.int("axis", 2));
    let sq = g.op1("Mul", &[parts[0], parts[0]]);
    let y = g.op("Concat", &[parts[2], sq, parts[1]], |n| n.int("axis", 1));
    cases.push(case(g.done(y), std_input()));
    let mut g = G::new("Split_sizes", &[2, 5, 4]);
    let sizes = g.ints(&[1, 4]);
    let parts = g.op_n("Split", &[INPUT, sizes], 2, |n| n.int("axis", -2));
    let y = g.op("Concat", &[parts[1], parts[0]], |n| n.int("axis", 1));
    cases.push(case(g.done(y), std_input()));
    let mut g = G::new("Split_opset11_attribute", &[2, 5, 4]).opset(11);
    let parts = g.op_n("Split", &[INPUT], 2, |n| n.int("axis", 1).ints("split", &[3, 2]));
    let y = g.op("Concat", &[parts[1], parts[0]], |n| n.int("axis", 1));
    cases.push(case(g.done(y), std_input()));
    let mut g = G::new("Split_uneven_default", &[2, 3, 5]);
    let parts = g.op_n("Split", &[INPUT], 2, |n| n.int("axis", 2));
    let a = g.op1("Sin", &[parts[0]]);
    let y = g.op("Concat", &[parts[1], a], |n| n.int("axis", 2));
    cases.push(case(g.done(y), std_input()));
    let mut g = G::new("Split_opset18_num_outputs", &[2, 3, 5]).opset(18);
    let parts = g.op_n("Split", &[INPUT], 2, |n| n.int("axis", -1).int("num_outputs", 2));
    let a = g.op1("Exp", &[parts[1]]);
    let y = g.op("Concat", &[a, parts[0]], |n| n.int("axis", 2));
    cases.push(case(g.done(y), std_input()));
    // Slice: negative steps and indices, ends past the axis, defaults for axes and steps.
    // (tag, starts, ends, axes, steps); an empty axes or steps is left out of the node.
    let slices: [SliceCase; 5] = [
        ("reverse", vec![-1], vec![i64::MIN], vec![2], vec![-1]),
        ("negative_step2", vec![5, -1], vec![0, -100], vec![2, 1], vec![-2, -2]),
        ("negative_indices", vec![-3, 1], vec![-1, 1000], vec![-1, 0], vec![]),
        ("defaults", vec![0, 1], vec![1, 3], vec![], vec![]),
        ("step3", vec![1], vec![i64::MAX], vec![2], vec![3]),
    ];
    for (tag, starts, ends, axes, steps) in slices {
        let mut g = G::new(&format!("Slice_{tag}"), &[2, 3, 6]);
        let st = g.ints(&starts);
        let en = g.ints(&ends);
        let mut inputs = vec![INPUT, st, en];
        match (axes.is_empty(), steps.is_empty()) {
            (false, false) => {
                inputs.push(g.ints(&axes));
                inputs.push(g.ints(&steps));
            }
            (false, true) => inputs.push(g.ints(&axes)),
            (true, false) => {
                inputs.push("");
                inputs.push(g.ints(&steps));
            }
            (true, true) => {}
        }
        let y = g.op1("Slice", &inputs);
        cases.push(case(g.done(y), std_input()));
    }
    let mut g = G::new("Slice_opset9_attributes", &[2, 3, 6]).opset(9);
    let y = g.op("Slice", &[INPUT], |n| {
        n.ints("starts", &[1, -4]).ints("ends", &[3, -1]).ints("axes", &[1, 2])
    });
    cases.push(case(g.done(y), std_input()));
    // Gather: a vector of indices with negatives, a scalar index (drops the axis), a matrix.
    let mut g = G::new("Gather_negative", &shape);
    let idx = g.ints(&[2, -1, 0, -3]);
    let y = g.op("Gather", &[INPUT, idx], |n| n.int("axis", 1));
    cases.push(case(g.done(y), std_input()));
    let mut g = G::new("Gather_axis_minus1", &shape);
    let idx = g.ints(&[3, -4, 1]);
    let y = g.op("Gather", &[INPUT, idx], |n| n.int("axis", -1));
    cases.push(case(g.done(y), std_input()));
    let mut g = G::new("Gather_scalar", &shape);
    let idx = g.i64s(&[], vec![-2]);
    let y = g.op("Gather", &[INPUT, idx], |n| n.int("axis", 2));
    cases.push(case(g.done(y), std_input()));
    let mut g = G::new("Gather_matrix_axis0", &shape);
    let idx = g.i64s(&[2, 2], vec![1, 0, -1, 1]);
    let y = g.op1("Gather", &[INPUT, idx]);
    cases.push(case(g.done(y), std_input()));
    // Expand (to a larger rank, and to a shape holding 1s) and Tile.
    let mut g = G::new("Expand_rank", &[3, 1]);
    let to = g.ints(&[2, 3, 4]);
    let y = g.op1("Expand", &[INPUT, to]);
    cases.push(case(g.done(y), std_input()));
    let mut g = G::new("Expand_ones", &[2, 1, 4]);
    let to = g.ints(&[1, 3, 1]);
    let y = g.op1("Expand", &[INPUT, to]);
    cases.push(case(g.done(y), std_input()));
    let mut g = G::new("Tile", &shape);
    let reps = g.ints(&[2, 1, 3]);
    let y = g.op1("Tile", &[INPUT, reps]);
    cases.push(case(g.done(y), std_input()));
    // Pad: constant value, negative pads (a crop), opset 18 axes, opset 9 attributes.
    let mut g = G::new("Pad_value", &shape);
    let pads = g.ints(&[0, 1, 2, 1, 0, 3]);
    let v = g.scalar(0.5);
    let y = g.op1("Pad", &[INPUT, pads, v]);
    cases.push(case(g.done(y), std_input()));
    // tract 0.23 overflows on negative pads: the oracle crops with a Slice, then pads.
    let mut g = G::new("Pad_negative", &shape);
    let pads = g.ints(&[0, -1, 2, 1, 1, -1]);
    let y = g.op1("Pad", &[INPUT, pads]);
    let mut o = G::new("Pad_negative_oracle", &shape);
    let (st, en, ax) = (o.ints(&[1, 0]), o.ints(&[3, 3]), o.ints(&[1, 2]));
    let cropped = o.op1("Slice", &[INPUT, st, en, ax]);
    let pads = o.ints(&[0, 0, 2, 1, 1, 0]);
    let z = o.op1("Pad", &[cropped, pads]);
    cases.push(case_with_oracle(g.done(y), std_input(), o.done(z)));
    let mut g = G::new("Pad_opset18_axes", &shape).opset(18);
    let pads = g.ints(&[1, 2, 0, 1]);
    let v = g.scalar(-1.0);
    let axes = g.ints(&[-1, 1]);
    let y = g.op1("Pad", &[INPUT, pads, v, axes]);
    cases.push(case(g.done(y), std_input()));
    let mut g = G::new("Pad_opset9_attributes", &shape).opset(9);
    let y = g.op("Pad", &[INPUT], |n| {
        n.ints("pads", &[0, 0, 1, 0, 1, 2]).float("value", 0.25)
    });
    cases.push(case(g.done(y), std_input()));

    // Shape arithmetic: Shape -> Gather -> Unsqueeze -> Concat -> Reshape.
    let mut g = G::new("Shape_arithmetic_reshape", &shape);
    let sh = g.op1("Shape", &[INPUT]);
    let zero = g.i64s(&[], vec![0]);
    let batch = g.op1("Gather", &[sh, zero]);
    let axes = g.ints(&[0]);
    let batch = g.op1("Unsqueeze", &[batch, axes]);
    let minus_one = g.ints(&[-1]);
    let target = g.op("Concat", &[batch, minus_one], |n| n.int("axis", 0));
    let y = g.op1("Reshape", &[INPUT, target]);
    cases.push(case(g.done(y), std_input()));
    // Shape with start and end (opset 15).
    let mut g = G::new("Shape_start_end", &shape).opset(15);
    let sh = g.op("Shape", &[INPUT], |n| n.int("start", 1).int("end", -1));
    let one = g.ints(&[1]);
    let last = g.ints(&[-1]);
    let target = g.op("Concat", &[one, sh, last], |n| n.int("axis", 0));
    let y = g.op1("Reshape", &[INPUT, target]);
    cases.push(case(g.done(y), std_input()));
    // Integer Equal and Where in shape arithmetic (the pattern exporters write for Expand):
    // -1 in the target shape keeps the input's dimension.
    let mut g = G::new("Equal_Where_on_shapes", &[3, 1]);
    let target = g.ints(&[2, -1, 4]);
    let minus_one = g.i64s(&[], vec![-1]);
    let is_kept = g.op1("Equal", &[target, minus_one]);
    let ones = g.ints(&[1, 1, 1]);
    let expanded = g.op1("Where", &[is_kept, ones, target]);
    let y = g.op1("Expand", &[INPUT, expanded]);
    cases.push(case(g.done(y), std_input()));
    // Resize sizes computed from the input's shape through float arithmetic and a Cast back.
    let mut g = G::new("Cast_shape_arithmetic_resize_sizes", &[1, 2, 5, 4]);
    let sh = g.op1("Shape", &[INPUT]);
    let f = g.op("Cast", &[sh], |n| n.int("to", 1));
    let factors = g.f32s(&[4], vec![1.0, 1.0, 1.5, 2.0]);
    let scaled = g.op1("Mul", &[f, factors]);
    let sizes = g.op("Cast", &[scaled], |n| n.int("to", 7));
    let y = g.op("Resize", &[INPUT, "", "", sizes], |n| n.attr("mode", s("linear")));
    cases.push(case(g.done(y), std_input()));
    // ConstantOfShape (zeros of the input's shape) and a Constant added to the input.
    let mut g = G::new("ConstantOfShape_Constant", &shape);
    let sh = g.op1("Shape", &[INPUT]);
    let zeros = g.op1("ConstantOfShape", &[sh]);
    let c = g.op("Constant", &[], |n| {
        n.attr("value_floats", AttrValue::Floats(vec![0.5, -1.0, 2.0, 0.25]))
    });
    let a = g.op1("Add", &[INPUT, zeros]);
    let y = g.op1("Mul", &[a, c]);
    cases.push(case(g.done(y), std_input()));
    // Range: integer, from the input's shape, cast to float and added; float with a fraction step.
    let mut g = G::new("Range_from_shape", &shape);
    let sh = g.op1("Shape", &[INPUT]);
    let last = g.i64s(&[], vec![2]);
    let n = g.op1("Gather", &[sh, last]);
    let start = g.i64s(&[], vec![0]);
    let step = g.i64s(&[], vec![1]);
    let r = g.op1("Range", &[start, n, step]);
    let rf = g.op("Cast", &[r], |n| n.int("to", 1));
    let y = g.op1("Mul", &[INPUT, rf]);
    cases.push(case(g.done(y), std_input()));
    // tract 0.23 divides by zero on a float Range: the oracles add the ⌈(limit − start)/delta⌉
    // values of the range, written out.
    for (tag, start, limit, delta, values) in [
        ("", -0.5, 1.2, 0.5, [-0.5, 0.0, 0.5, 1.0]),
        ("_negative_step", 1.5, -0.4, -0.5, [1.5, 1.0, 0.5, 0.0]),
    ] {
        let mut g = G::new(&format!("Range_float{tag}"), &shape);
        let (a, b, c) = (g.scalar(start), g.scalar(limit), g.scalar(delta));
        let r = g.op1("Range", &[a, b, c]);
        let y = g.op1("Add", &[INPUT, r]);
        let mut o = G::new(&format!("Range_float{tag}_oracle"), &shape);
        let r = o.f32s(&[4], values.to_vec());
        let z = o.op1("Add", &[INPUT, r]);
        cases.push(case_with_oracle(g.done(y), std_input(), o.done(z)));
    }
    cases
}

fn resize_cases() -> Vec<Case> {
    let mut cases = vec![];
    let shape = [1, 2, 5, 4];
    enum T {
        Scales([f32; 4]),
        Sizes([i64; 4]),
    }
    let up = T::Scales([1.0, 1.0, 2.0, 1.5]);
    let down = T::Scales([1.0, 1.0, 0.6, 0.5]);
    let sized = T::Sizes([1, 2, 8, 7]);
    let sized_down = T::Sizes([1, 2, 3, 3]);
    let mut variants: Vec<(String, StrAttrs, &T)> = vec![];
    for (mode, coords, nearest) in [
        ("nearest", "asymmetric", Some("floor")),
        ("nearest", "half_pixel", None),
        ("nearest", "half_pixel", Some("round_prefer_ceil")),
        ("nearest", "align_corners", Some("round_prefer_floor")),
        ("nearest", "tf_half_pixel_for_nn", Some("ceil")),
        ("linear", "half_pixel", None),
        ("linear", "asymmetric", None),
        ("linear", "align_corners", None),
        ("linear", "pytorch_half_pixel", None),
        ("cubic", "half_pixel", None),
        ("cubic", "asymmetric", None),
        ("cubic", "align_corners", None),
    ] {
        for (tag, t) in [
            ("up", &up),
            ("down", &down),
            ("sizes", &sized),
            ("sizes_down", &sized_down),
        ] {
            let mut attrs = vec![("mode", mode), ("coordinate_transformation_mode", coords)];
            if let Some(n) = nearest {
                attrs.push(("nearest_mode", n));
            }
            let name = format!("Resize_{mode}_{coords}_{}_{tag}", nearest.unwrap_or("default"));
            variants.push((name, attrs, t));
        }
    }
    for (name, attrs, target) in variants {
        let mut g = G::new(&name, &shape);
        let inputs = match target {
            T::Scales(s) => {
                let sc = g.f32s(&[4], s.to_vec());
                vec![INPUT, "", sc]
            }
            T::Sizes(s) => {
                let sz = g.ints(s);
                vec![INPUT, "", "", sz]
            }
        };
        let y = g.op("Resize", &inputs, |mut n| {
            for (k, v) in &attrs {
                n = n.attr(k, s(v));
            }
            n
        });
        cases.push(case(g.done(y), std_input()));
    }
    // Cubic with its coefficient and exclude_outside.
    let mut g = G::new("Resize_cubic_a_exclude_outside", &shape);
    let sc = g.f32s(&[4], vec![1.0, 1.0, 1.6, 2.0]);
    let y = g.op("Resize", &[INPUT, "", sc], |n| {
        n.attr("mode", s("cubic"))
            .float("cubic_coeff_a", -0.5)
            .int("exclude_outside", 1)
    });
    cases.push(case(g.done(y), std_input()));
    // Opset 18: axes.
    let mut g = G::new("Resize_opset18_axes", &shape).opset(18);
    let sz = g.ints(&[7, 6]);
    let y = g.op("Resize", &[INPUT, "", "", sz], |n| {
        n.attr("mode", s("linear")).ints("axes", &[2, 3])
    });
    cases.push(case(g.done(y), std_input()));
    // Opset 10 Resize (X, scales) and opset 9 Upsample.
    let mut g = G::new("Resize_opset10", &shape).opset(10);
    let sc = g.f32s(&[4], vec![1.0, 1.0, 2.0, 2.0]);
    let y = g.op("Resize", &[INPUT, sc], |n| n.attr("mode", s("linear")));
    cases.push(case(g.done(y), std_input()));
    // tract 0.23 does not run Upsample: the oracle is the opset-13 Resize with Upsample's
    // coordinates (asymmetric, nearest rounding down).
    for mode in ["nearest", "linear"] {
        let mut g = G::new(&format!("Upsample_{mode}"), &shape).opset(9);
        let sc = g.f32s(&[4], vec![1.0, 1.0, 2.0, 3.0]);
        let y = g.op("Upsample", &[INPUT, sc], |n| n.attr("mode", s(mode)));
        let mut o = G::new(&format!("Upsample_{mode}_oracle"), &shape);
        let sc = o.f32s(&[4], vec![1.0, 1.0, 2.0, 3.0]);
        let z = o.op("Resize", &[INPUT, "", sc], |n| {
            n.attr("mode", s(mode))
                .attr("coordinate_transformation_mode", s("asymmetric"))
                .attr("nearest_mode", s("floor"))
        });
        cases.push(case_with_oracle(g.done(y), std_input(), o.done(z)));
    }
    cases
}

/// Activations, normalisations, index and quantisation ops, losses, and the pad and pool forms
/// checked first against ONNX's node tests (tests/conformance.rs); here on random inputs, where
/// the conformance data is not fetched.
fn conformance_family_cases() -> Vec<Case> {
    let shape = [2, 3, 4];
    let id = |n: Node| n;
    let mut cases = vec![];
    for op in ["Elu", "Selu", "Softsign", "Sinh", "Cosh", "Atan", "Asinh"] {
        cases.push(case(unary(op, &shape, id, ""), away(-2.0, 2.0, &[0.0])));
    }
    cases.push(case(unary("Softplus", &shape, id, ""), range(-3.0, 3.0)));
    cases.push(case(unary("Tan", &shape, id, ""), range(-1.2, 1.2)));
    for op in ["Asin", "Acos", "Atanh"] {
        cases.push(case(unary(op, &shape, id, ""), range(-0.9, 0.9)));
    }
    cases.push(case(unary("Acosh", &shape, id, ""), range(1.2, 3.0)));
    cases.push(case(unary("Sign", &shape, id, ""), away(-2.0, 2.0, &[0.0])));
    cases.push(case(
        unary("Round", &shape, id, ""),
        away(-2.9, 2.9, &[-2.5, -1.5, -0.5, 0.5, 1.5, 2.5]),
    ));
    cases.push(case(
        unary("ThresholdedRelu", &shape, |n| n.float("alpha", 0.5), "_alpha"),
        away(-2.0, 2.0, &[0.5]),
    ));
    cases.push(case(
        unary("Shrink", &shape, |n| n.float("bias", 0.3).float("lambd", 0.6), "_attrs"),
        away(-2.0, 2.0, &[-0.6, 0.6]),
    ));
    // Celu against max(0, x) + min(0, α(exp(x/α) − 1)) (tract's own Celu differs for α ≠ 1).
    let mut g = G::new("Celu", &shape).opset(12);
    let y = g.op("Celu", &[INPUT], |n| n.float("alpha", 0.7));
    let celu = g.done(y);
    let mut g = G::new("Celu_oracle", &shape).opset(12);
    let (alpha, zero) = (g.scalar(0.7), g.scalar(0.0));
    let scaled = g.op1("Div", &[INPUT, alpha]);
    let e = g.op1("Exp", &[scaled]);
    let one = g.scalar(1.0);
    let em1 = g.op1("Sub", &[e, one]);
    let negative = g.op1("Mul", &[em1, alpha]);
    let negative = g.op1("Min", &[negative, zero]);
    let positive = g.op1("Relu", &[INPUT]);
    let y = g.op1("Add", &[positive, negative]);
    cases.push(case_with_oracle(celu, away(-2.0, 2.0, &[0.0]), g.done(y)));
    let mut g = G::new("PRelu_per_channel", &shape);
    let slope = g.rand(&[3, 1], 0.05, 0.5);
    let y = g.op1("PRelu", &[INPUT, slope]);
    cases.push(case(g.done(y), away(-2.0, 2.0, &[0.0])));
    let mut g = G::new("Mod_fmod", &shape).opset(13);
    let divisor = g.rand(&[4], 0.7, 1.3);
    let y = g.op("Mod", &[INPUT, divisor], |n| n.int("fmod", 1));
    cases.push(case(g.done(y), away(-2.0, 2.0, &[0.0])));

    // Masks on the float path: the input times a mask that the op computes.
    let masked = |name: &str, mask: &dyn Fn(&mut G) -> &'static str| {
        let mut g = G::new(name, &shape);
        let m = mask(&mut g);
        let f = g.op("Cast", &[m], |n| n.int("to", 1));
        let y = g.op1("Mul", &[INPUT, f]);
        g.done(y)
    };
    cases.push(case(masked("IsNaN_mask", &|g| g.op1("IsNaN", &[INPUT])), std_input()));
    cases.push(case(masked("IsInf_mask", &|g| g.op1("IsInf", &[INPUT])), std_input()));
    for op in ["And", "Or", "Xor"] {
        let spec = masked(&format!("{op}_mask"), &|g| {
            let (a, b) = (g.scalar(-0.5), g.scalar(0.5));
            let above = g.op1("Greater", &[INPUT, a]);
            let below = g.op1("Less", &[INPUT, b]);
            g.op1(op, &[above, below])
        });
        cases.push(case(spec, away(-2.0, 2.0, &[-0.5, 0.5])));
    }
    let spec = masked("Not_mask", &|g| {
        let zero = g.scalar(0.0);
        let above = g.op1("Greater", &[INPUT, zero]);
        g.op1("Not", &[above])
    });
    cases.push(case(spec, away(-2.0, 2.0, &[0.0])));

    // Normalisations.
    let mut g = G::new("InstanceNormalization", &[2, 3, 4, 4]);
    let scale = g.rand(&[3], 0.5, 1.5);
    let bias = g.rand(&[3], -0.5, 0.5);
    let y = g.op("InstanceNormalization", &[INPUT, scale, bias], |n| {
        n.float("epsilon", 1e-3)
    });
    cases.push(case(g.done(y), std_input()));
    for p in [1, 2] {
        let spec = unary(
            "LpNormalization",
            &shape,
            |n| n.int("p", p).int("axis", 1),
            &format!("_p{p}"),
        );
        cases.push(case(spec, away(-2.0, 2.0, &[0.0])));
    }
    let spec = unary(
        "LRN",
        &[1, 5, 3, 3],
        |n| n.int("size", 3).float("alpha", 0.1).float("beta", 0.6),
        "",
    );
    cases.push(case(spec, std_input()));
    cases.push(case(
        unary("MeanVarianceNormalization", &[2, 3, 4, 4], id, ""),
        std_input(),
    ));

    // Index ops. Integer outputs reach the float path as a Cast added to the input.
    for op in ["ArgMax", "ArgMin"] {
        let mut g = G::new(&format!("{op}_axis1"), &shape);
        let i = g.op(op, &[INPUT], |n| n.int("axis", 1));
        let f = g.op("Cast", &[i], |n| n.int("to", 1));
        let y = g.op1("Add", &[INPUT, f]);
        cases.push(case(g.done(y), std_input()));
    }
    let mut g = G::new("Hardmax_times_input", &shape);
    let m = g.op1("Hardmax", &[INPUT]);
    let y = g.op1("Mul", &[INPUT, m]);
    cases.push(case(g.done(y), std_input()));
    for (exclusive, reverse) in [(0, 0), (1, 1)] {
        let mut g = G::new(&format!("CumSum_exclusive{exclusive}_reverse{reverse}"), &shape);
        let axis = g.i64s(&[], vec![1]);
        let y = g.op("CumSum", &[INPUT, axis], |n| {
            n.int("exclusive", exclusive).int("reverse", reverse)
        });
        cases.push(case(g.done(y), std_input()));
    }
    let mut g = G::new("GatherElements_axis2", &shape);
    let idx = g.i64s(&[2, 3, 2], vec![0, 3, -1, 2, 1, 1, 0, 0, 3, 2, 1, -4]);
    let y = g.op("GatherElements", &[INPUT, idx], |n| n.int("axis", 2));
    cases.push(case(g.done(y), std_input()));
    for mode in ["DCR", "CRD"] {
        let spec = unary(
            "DepthToSpace",
            &[1, 8, 2, 3],
            |n| n.int("blocksize", 2).attr("mode", s(mode)),
            &format!("_{mode}"),
        );
        cases.push(case(spec, std_input()));
    }
    cases.push(case(
        unary("SpaceToDepth", &[1, 2, 4, 6], |n| n.int("blocksize", 2), ""),
        std_input(),
    ));
    let mut g = G::new("Size_added", &shape);
    let n = g.op1("Size", &[INPUT]);
    let f = g.op("Cast", &[n], |n| n.int("to", 1));
    let y = g.op1("Add", &[INPUT, f]);
    cases.push(case(g.done(y), std_input()));
    let mut g = G::new("CastLike_float", &shape).opset(15);
    let like = g.scalar(1.0);
    let y = g.op1("CastLike", &[INPUT, like]);
    cases.push(case(g.done(y), std_input()));
    // Quantise then dequantise: the input plus its rounding, a piecewise constant term.
    let mut g = G::new("QuantizeLinear_DequantizeLinear", &shape).opset(13);
    let scale = g.scalar(0.05);
    let zero = g.fresh("z");
    g.m.init_i8(zero, &[], vec![3]);
    let q = g.op1("QuantizeLinear", &[INPUT, scale, zero]);
    let d = g.op1("DequantizeLinear", &[q, scale, zero]);
    let y = g.op1("Add", &[INPUT, d]);
    cases.push(case(g.done(y), std_input()));

    // Reductions beyond sum, mean and extrema (opset 13: axes as an attribute).
    for (op, lo) in [
        ("ReduceL1", -2.0),
        ("ReduceL2", -2.0),
        ("ReduceSumSquare", -2.0),
        ("ReduceLogSumExp", -2.0),
        ("ReduceLogSum", 0.5),
        ("ReduceProd", -2.0),
    ] {
        let spec = unary(op, &shape, |n| n.ints("axes", &[1]).int("keepdims", 0), "_axis1");
        cases.push(case(spec, away(lo, 2.0, &[0.0])));
    }

    // Pad modes and pools with ceil_mode.
    for mode in ["reflect", "edge"] {
        let mut g = G::new(&format!("Pad_{mode}"), &shape);
        let pads = g.ints(&[0, 1, 2, 0, 1, 3]);
        let y = g.op("Pad", &[INPUT, pads], |n| n.attr("mode", s(mode)));
        cases.push(case(g.done(y), std_input()));
    }
    for op in ["MaxPool", "AveragePool"] {
        let mut g = G::new(&format!("{op}_ceil_mode"), &[1, 2, 6, 7]);
        let y = g.op(op, &[INPUT], |n| {
            n.ints("kernel_shape", &[3, 3])
                .ints("strides", &[2, 2])
                .int("ceil_mode", 1)
        });
        cases.push(case(g.done(y), std_input()));
    }

    // Losses (opset 13) of scores [3, 4] against the classes 2, 0, 3, which tract does not run:
    // against −Σ of the scores (or log-probabilities) a one-hot mask picks.
    for op in ["NegativeLogLikelihoodLoss", "SoftmaxCrossEntropyLoss"] {
        let mut g = G::new(op, &[3, 4]).opset(13);
        let classes = g.i64s(&[3], vec![2, 0, 3]);
        let y = g.op(op, &[INPUT, classes], |n| n.attr("reduction", s("sum")));
        let loss = g.done(y);
        let mut g = G::new(&format!("{op}_oracle"), &[3, 4]).opset(13);
        let scores = if op == "SoftmaxCrossEntropyLoss" {
            g.op("LogSoftmax", &[INPUT], |n| n.int("axis", 1))
        } else {
            INPUT
        };
        let one_hot = g.f32s(&[3, 4], vec![0., 0., 1., 0., 1., 0., 0., 0., 0., 0., 0., 1.]);
        let picked = g.op1("Mul", &[scores, one_hot]);
        let total = g.op("ReduceSum", &[picked], |n| n.int("keepdims", 0));
        let y = g.op1("Neg", &[total]);
        cases.push(case_with_oracle(loss, std_input(), g.done(y)));
    }

    // Mish and GroupNormalization (opset 18), against graphs of the ops they are defined by.
    let mut g = G::new("Mish", &shape).opset(18);
    let y = g.op1("Mish", &[INPUT]);
    let mish = g.done(y);
    let mut g = G::new("Mish_oracle", &shape).opset(18);
    let softplus = g.op1("Softplus", &[INPUT]);
    let t = g.op1("Tanh", &[softplus]);
    let y = g.op1("Mul", &[INPUT, t]);
    cases.push(case_with_oracle(mish, range(-3.0, 3.0), g.done(y)));
    let mut g = G::new("GroupNormalization_2_groups", &[2, 4, 3, 3]).opset(18);
    let scale = g.f32s(&[2], vec![0.7, 1.3]);
    let bias = g.f32s(&[2], vec![-0.2, 0.4]);
    let y = g.op("GroupNormalization", &[INPUT, scale, bias], |n| {
        n.int("num_groups", 2).float("epsilon", 1e-3)
    });
    let group_norm = g.done(y);
    let mut g = G::new("GroupNormalization_oracle", &[2, 4, 3, 3]).opset(18);
    let grouped_shape = g.ints(&[2, 2, 18]);
    let grouped = g.op1("Reshape", &[INPUT, grouped_shape]);
    let axes = g.ints(&[2]);
    let mean = g.op1("ReduceMean", &[grouped, axes]);
    let centred = g.op1("Sub", &[grouped, mean]);
    let square = g.op1("Mul", &[centred, centred]);
    let var = g.op1("ReduceMean", &[square, axes]);
    let eps = g.scalar(1e-3);
    let shifted = g.op1("Add", &[var, eps]);
    let deviation = g.op1("Sqrt", &[shifted]);
    let normalised = g.op1("Div", &[centred, deviation]);
    let scale = g.f32s(&[2, 1], vec![0.7, 1.3]);
    let bias = g.f32s(&[2, 1], vec![-0.2, 0.4]);
    let scaled = g.op1("Mul", &[normalised, scale]);
    let shifted = g.op1("Add", &[scaled, bias]);
    let back = g.ints(&[2, 4, 3, 3]);
    let y = g.op1("Reshape", &[shifted, back]);
    cases.push(case_with_oracle(group_norm, std_input(), g.done(y)));

    // Recurrent cells over 4 steps of a batch of 2 (time-major), hidden size 3.
    for (op, gates) in [("RNN", 1), ("GRU", 3), ("LSTM", 4)] {
        let mut g = G::new(&format!("{op}_forward"), &[4, 2, 5]);
        let w = g.rand(&[1, gates * 3, 5], -0.5, 0.5);
        let r = g.rand(&[1, gates * 3, 3], -0.5, 0.5);
        let b = g.rand(&[1, 2 * gates * 3], -0.2, 0.2);
        let y = g.op(op, &[INPUT, w, r, b], |n| n.int("hidden_size", 3));
        cases.push(case(g.done(y), std_input()));
    }
    cases
}

/// The integer and quantised-linear ops of int8 exports, each between a quantisation of the input
/// and a cast or dequantisation to floats, summed with the input's mean so that a gradient flows:
/// the quantised part is piecewise constant. DynamicQuantizeLinear's scale follows the input's
/// extremes, but in f32 steps (as ONNX's reference computes it) that no difference quotient in f64
/// resolves, so the dynamic cases leave it out of the sum.
fn quantised_cases() -> Vec<Case> {
    let mut cases = vec![];
    let mean_plus = |g: &mut G, q: &str| {
        let all = |n: Node| n.int("keepdims", 0);
        let a = g.op("ReduceMean", &[INPUT], all);
        let b = g.op("ReduceMean", &[q], all);
        g.op1("Add", &[a, b])
    };
    // DynamicQuantizeLinear's integers and zero point.
    let mut g = G::new("DynamicQuantizeLinear_integers", &[2, 3, 4]).opset(13);
    let out = g.op_n("DynamicQuantizeLinear", &[INPUT], 3, |n| n);
    let q = g.op("Cast", &[out[0]], |n| n.int("to", 1));
    let z = g.op("Cast", &[out[2]], |n| n.int("to", 1));
    let shifted = g.op1("Sub", &[q, z]);
    let y = mean_plus(&mut g, shifted);
    cases.push(case(g.done(y), std_input()));
    // ConvInteger and MatMulInteger of the dynamically quantised input (onnxruntime's dynamic
    // quantisation then multiplies by the scales).
    for (op, shape, wdims) in [
        ("ConvInteger", vec![1, 2, 5, 5], vec![3, 2, 3, 3]),
        ("MatMulInteger", vec![2, 3], vec![3, 4]),
    ] {
        let mut g = G::new(&format!("{op}_dynamic"), &shape).opset(13);
        let out = g.op_n("DynamicQuantizeLinear", &[INPUT], 3, |n| n);
        let n: i64 = wdims.iter().product();
        let w = g.fresh("w");
        g.m.init_i8(w, &wdims, (0..n).map(|i| ((i * 37) % 255 - 127) as i8).collect());
        let acc = g.op(op, &[out[0], w, out[2]], |n| {
            if op == "ConvInteger" {
                n.ints("pads", &[1, 1, 1, 1])
            } else {
                n
            }
        });
        let f = g.op("Cast", &[acc], |n| n.int("to", 1));
        // Small beside the input's mean: the f64 rounding of a sum of large integers would
        // otherwise swamp the difference quotient.
        let small = g.scalar(1e-4);
        let f = g.op1("Mul", &[f, small]);
        let y = mean_plus(&mut g, f);
        cases.push(case(g.done(y), std_input()));
    }
    // QLinearConv (per-channel weight scales, a bias) and QLinearMatMul on a uint8 input.
    for (op, shape, wdims) in [
        ("QLinearConv", vec![1, 2, 5, 5], vec![3, 2, 3, 3]),
        ("QLinearMatMul", vec![2, 3], vec![3, 4]),
    ] {
        let mut g = G::new(&format!("{op}_uint8"), &shape).opset(13);
        let x_scale = g.scalar(0.02);
        let x_zero = g.fresh("z");
        g.m.init_u8(x_zero, &[], vec![128]);
        let q = g.op1("QuantizeLinear", &[INPUT, x_scale, x_zero]);
        let n: i64 = wdims.iter().product();
        let w = g.fresh("w");
        g.m.init_i8(w, &wdims, (0..n).map(|i| ((i * 53) % 255 - 127) as i8).collect());
        let channels = if op == "QLinearConv" { wdims[0] } else { 1 };
        let w_scale = g.f32s(&[channels], (0..channels).map(|c| 0.01 + 0.005 * c as f32).collect());
        let w_zero = g.fresh("wz");
        g.m.init_i8(w_zero, &[channels], vec![0; channels as usize]);
        let y_scale = g.scalar(0.05);
        let y_zero = g.fresh("yz");
        g.m.init_u8(y_zero, &[], vec![100]);
        let mut inputs = vec![q, x_scale, x_zero, w, w_scale, w_zero, y_scale, y_zero];
        let bias = g.fresh("b");
        if op == "QLinearConv" {
            g.m.init_i32(bias, &[3], vec![40, -25, 7]);
            inputs.push(bias);
        }
        let out = g.op(op, &inputs, |n| {
            if op == "QLinearConv" {
                n.ints("pads", &[1, 1, 1, 1])
            } else {
                n
            }
        });
        let d = g.op1("DequantizeLinear", &[out, y_scale, y_zero]);
        let y = mean_plus(&mut g, d);
        cases.push(case(g.done(y), std_input()));
    }
    cases
}

fn all_cases() -> Vec<Case> {
    let mut all = vec![];
    for family in [
        elementwise_cases,
        binary_cases,
        matrix_cases,
        conv_cases,
        pool_cases,
        normalisation_cases,
        reduce_cases,
        shape_cases,
        resize_cases,
        conformance_family_cases,
        quantised_cases,
    ] {
        all.extend(family());
    }
    all
}

// ---------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------

fn input_for(case: &Case, n: usize, seed: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let Input { lo, hi, kinks } = &case.input;
    (0..n)
        .map(|_| {
            // Values exactly representable in f32, so the f32 and f64 engines see the same input.
            let mut v = rng.gen_range(*lo..*hi) as f32 as f64;
            for &k in kinks {
                if (v - k).abs() < 0.05 {
                    v = if v >= k { k + 0.05 } else { k - 0.05 };
                }
            }
            v as f32 as f64
        })
        .collect()
}

fn load(spec: &ModelSpec) -> Result<Model, String> {
    Model::from_bytes(&model_bytes(spec), Path::new(&spec.graph_name), None).map_err(|e| format!("load: {e:#}"))
}

/// A seed of its own for each case (FNV-1a of the name), so cases of one shape differ.
fn seed_of(name: &str) -> u64 {
    name.bytes()
        .fold(0xcbf29ce484222325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100000001b3))
}

/// max |ours − tract| / max |tract on `oracle`|, with matching shapes.
fn forward_error(model: &Model, oracle: &Model, input: &[f64]) -> Result<f64, String> {
    let fed: Vec<f32> = input.iter().map(|&v| v as f32).collect();
    let reference = oracle
        .runner(&oracle.output_names, true)
        .and_then(|r| r.run(&fed))
        .map_err(|e| format!("tract: {e:#}"))?;
    let engine = Differentiable::new(model).map_err(|e| format!("engine: {e:#}"))?;
    let ours = engine.outputs(input).map_err(|e| format!("engine forward: {e:#}"))?;
    let (r, o) = (&reference[0], &ours[0]);
    if r.shape != o.shape {
        return Err(format!("shape {:?}, tract {:?}", o.shape, r.shape));
    }
    let scale = r
        .data
        .iter()
        .map(|v| v.abs())
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max)
        .max(1e-30);
    // NaN where tract has a number (or the reverse) is an infinite difference; NaN in both agrees.
    let diff = r
        .data
        .iter()
        .zip(&o.data)
        .map(|(a, b)| match (a.is_nan(), b.is_nan()) {
            (true, true) => 0.0,
            (false, false) if a == b => 0.0,
            (false, false) => (a - b).abs(),
            _ => f64::INFINITY,
        })
        .fold(0.0, f64::max);
    Ok(diff / scale)
}

/// Random output elements whose gradients are checked per case.
const TARGETS: usize = 2;

/// The worst relative error of ∇f·v against (f(x+hv) − f(x−hv))/2h over three directions for
/// each of [`TARGETS`] random output elements, with the two values compared there.
fn gradient_error(model: &Model, input: &[f64], seed: u64) -> Result<(f64, f64, f64), String> {
    let engine = Differentiable::on(model, &Device::Cpu, DType::F64).map_err(|e| format!("engine f64: {e:#}"))?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n_out = engine.outputs(input).map_err(|e| format!("{e:#}"))?[0].data.len();
    let h = 1e-6;
    let mut worst = (0.0, 0.0, 0.0);
    for _ in 0..TARGETS {
        let target = Target {
            output: 0,
            index: rng.gen_range(0..n_out),
        };
        let grad = engine
            .gradient(input, target)
            .map_err(|e| format!("gradient: {e:#}"))?
            .gradient;
        if grad.len() != input.len() || grad.iter().any(|g| !g.is_finite()) {
            return Err(format!("gradient of {} values, or not finite", grad.len()));
        }
        let value = |x: &[f64]| -> Result<f64, String> {
            Ok(engine.outputs(x).map_err(|e| format!("{e:#}"))?[0].data[target.index])
        };
        for _ in 0..3 {
            let v: Vec<f64> = (0..input.len()).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let plus: Vec<f64> = input.iter().zip(&v).map(|(x, d)| x + h * d).collect();
            let minus: Vec<f64> = input.iter().zip(&v).map(|(x, d)| x - h * d).collect();
            let fd = (value(&plus)? - value(&minus)?) / (2.0 * h);
            let an: f64 = grad.iter().zip(&v).map(|(g, d)| g * d).sum();
            let err = (fd - an).abs() / fd.abs().max(an.abs()).max(1e-6);
            if err >= worst.0 {
                worst = (err, an, fd);
            }
        }
    }
    Ok(worst)
}

fn check(case: &Case) -> Result<(), String> {
    let model = load(&case.spec)?;
    let oracle = match &case.oracle {
        Some(o) => load(o)?,
        None => load(&case.spec)?,
    };
    let n: usize = model.input_shape.iter().product();
    let seed = seed_of(&case.name);
    let input = input_for(case, n, seed);
    let fwd = forward_error(&model, &oracle, &input)?;
    if fwd >= 1e-5 {
        return Err(format!("forward differs from tract by {fwd:.3e} relative"));
    }
    let (err, an, fd) = gradient_error(&model, &input, seed + 1)?;
    if err >= 1e-6 {
        return Err(format!(
            "input gradient differs from finite differences by {err:.3e} relative \
             (∇f·v {an:.9e}, difference quotient {fd:.9e})"
        ));
    }
    Ok(())
}

fn check_all(cases: Vec<Case>) {
    assert!(!cases.is_empty());
    let mut failures = vec![];
    for case in &cases {
        if let Err(e) = check(case) {
            failures.push(format!("{}: {e}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases fail:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn elementwise_ops_equal_tract_and_finite_differences() {
    check_all(elementwise_cases());
}

#[test]
fn binary_and_comparison_ops_equal_tract_and_finite_differences() {
    check_all(binary_cases());
}

#[test]
fn matrix_products_equal_tract_and_finite_differences() {
    check_all(matrix_cases());
}

#[test]
fn convolutions_equal_tract_and_finite_differences() {
    check_all(conv_cases());
}

#[test]
fn pools_equal_tract_and_finite_differences() {
    check_all(pool_cases());
}

#[test]
fn normalisations_and_softmax_equal_tract_and_finite_differences() {
    check_all(normalisation_cases());
}

#[test]
fn reductions_equal_tract_and_finite_differences() {
    check_all(reduce_cases());
}

#[test]
fn shape_ops_equal_tract_and_finite_differences() {
    check_all(shape_cases());
}

#[test]
fn resize_equals_tract_and_finite_differences() {
    check_all(resize_cases());
}

#[test]
fn quantised_ops_equal_tract_and_finite_differences() {
    check_all(quantised_cases());
}

#[test]
fn conformance_family_ops_equal_tract_and_finite_differences() {
    check_all(conformance_family_cases());
}

/// Adding an op to `supported_ops()` without a case here fails this test.
#[test]
fn every_supported_op_has_a_case() {
    let cases = all_cases();
    let covered: BTreeSet<String> = cases
        .iter()
        .flat_map(|c| c.spec.nodes.iter().map(|n| n.op_type.clone()))
        .collect();
    let missing: Vec<&&str> = supported_ops().iter().filter(|op| !covered.contains(**op)).collect();
    assert!(missing.is_empty(), "supported ops without a case: {missing:?}");
    eprintln!(
        "{} cases cover the {} supported ops",
        cases.len(),
        supported_ops().len()
    );
}

/// Forms of supported ops the engine does not translate are refused when it is built, with a
/// one-line message that says what is missing (not a panic, not a wrong value).
#[test]
fn untranslated_forms_are_refused_with_a_message() {
    let mut g = G::new("conv_1d", &[1, 3, 9]);
    let w = g.rand(&[2, 3, 3], -0.5, 0.5);
    let y = g.op("Conv", &[INPUT, w], |n| n.ints("pads", &[1, 2]).ints("strides", &[2]));
    let conv_1d = g.done(y);
    let mut g = G::new("conv_transpose_group_2", &[1, 4, 5, 5]);
    let w = g.rand(&[4, 3, 3, 3], -0.4, 0.4);
    let y = g.op("ConvTranspose", &[INPUT, w], |n| {
        n.int("group", 2).ints("strides", &[2, 2])
    });
    let grouped = g.done(y);
    let mut g = G::new("resize_antialias", &[1, 2, 8, 8]).opset(18);
    let scales = g.f32s(&[4], vec![1.0, 1.0, 0.5, 0.5]);
    let y = g.op("Resize", &[INPUT, "", scales], |n| {
        n.attr("mode", s("linear")).int("antialias", 1)
    });
    let antialias = g.done(y);
    let mut g = G::new("pad_reflect_too_wide", &[2, 3, 4]);
    let pads = g.ints(&[0, 0, 4, 0, 0, 1]);
    let y = g.op("Pad", &[INPUT, pads], |n| n.attr("mode", s("reflect")));
    let reflect = g.done(y);
    let mut g = G::new("matmul_vector", &[3, 4]);
    let v = g.rand(&[4], -1.0, 1.0);
    let y = g.op1("MatMul", &[INPUT, v]);
    let vector = g.done(y);
    for (spec, what) in [
        (conv_1d, "rank-3"),
        (grouped, "group 2"),
        (antialias, "antialias"),
        (reflect, "reflect padding"),
        (vector, "vector"),
    ] {
        let model = load(&spec).unwrap();
        let err = match Differentiable::new(&model) {
            Ok(_) => panic!("{} was accepted", spec.graph_name),
            Err(e) => format!("{e:#}"),
        };
        assert!(err.contains(what), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }
}

/// An op the engine does not translate is refused when the evaluator is built, with a one-line
/// message naming the op.
#[test]
fn unsupported_op_is_refused_by_name() {
    let mut g = G::new("einsum", &[3, 4]);
    let y = g.op("Einsum", &[INPUT, INPUT], |n| n.attr("equation", s("ij,ij->ij")));
    let spec = g.done(y);
    let mut g = G::new("nms", &[1, 4, 4]);
    let scores = g.rand(&[1, 1, 4], 0.0, 1.0);
    let y = g.op1("NonMaxSuppression", &[INPUT, scores]);
    let y = g.op("Cast", &[y], |n| n.int("to", 1));
    let nms = g.done(y);
    for (spec, op) in [(spec, "Einsum"), (nms, "NonMaxSuppression")] {
        let model = Model::from_bytes(&model_bytes(&spec), Path::new(&spec.graph_name), None).unwrap();
        let err = match Differentiable::new(&model) {
            Ok(_) => panic!("{op} was accepted"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(op), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }
}
