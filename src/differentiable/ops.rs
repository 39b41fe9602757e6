//! ONNX ops as candle operations. Every op is built from candle operations that candle can
//! differentiate; where candle's own kernel lacks a backward pass or a form ONNX needs
//! (padded or overlapping MaxPool, asymmetric padding, per-axis strides, depthwise convolution),
//! the op is written as a sum or maximum over shifted, strided views of its input, whose backward
//! pass candle derives.

use super::{activations, conv, indexing, kernels, losses, normalisation, quantised, recurrent, resize, Ctx};
use crate::model::onnx_graph::{attr_float, attr_int, attr_ints, attr_string, Constant};
use anyhow::{anyhow, bail, Context, Result};
use candle_core::{DType, Tensor};
use tract_onnx::pb::NodeProto;

pub(crate) use super::shape_ops::{layout, pad, reduce};
pub use super::supported::{MICROSOFT, SUPPORTED};

/// A constant read from the graph as a tensor: floats in the evaluator's dtype, integers as i64.
pub fn constant_tensor(c: &Constant, ctx: &Ctx) -> Result<Tensor> {
    let t = Tensor::from_slice(&c.values, c.shape.as_slice(), ctx.device)?;
    Ok(if c.eps == 0.0 {
        t.to_dtype(DType::I64)?
    } else {
        t.to_dtype(ctx.dtype)?
    })
}

/// Input `i` of a node, which must be there.
pub(super) fn required(inputs: &[Option<Tensor>], i: usize) -> Result<&Tensor> {
    inputs
        .get(i)
        .and_then(Option::as_ref)
        .ok_or_else(|| anyhow!("input {i} is missing"))
}

/// Evaluates one node on its inputs (`None` for an omitted optional input).
pub fn eval(node: &NodeProto, inputs: &[Option<Tensor>], ctx: &Ctx) -> Result<Vec<Tensor>> {
    let arg = |i: usize| required(inputs, i);
    let x = || arg(0);
    let one = |t: Tensor| Ok(vec![t]);
    // Quantised exports pool and resize their integer tensors: values are picked or copied
    // (max, nearest), so the op runs on the integers as floats and the result is an integer again.
    // A resize that interpolates would need the runtimes' rounding: refused.
    if x().is_ok_and(|t| t.dtype() == DType::I64) {
        let nearest = attr_string(node, "mode").is_none_or(|m| m == "nearest");
        match node.op_type.as_str() {
            "MaxPool" => return on_integers_as_floats(node, inputs, ctx),
            "Resize" | "Upsample" if nearest => return on_integers_as_floats(node, inputs, ctx),
            "Resize" | "Upsample" => bail!("{} that interpolates an integer tensor is not translated", node.op_type),
            _ => {}
        }
    }
    match node.op_type.as_str() {
        "Identity" => one(x()?.clone()),
        // Inference: the identity, and a mask that keeps everything.
        "Dropout" => Ok(vec![x()?.clone(), x()?.ones_like()?.to_dtype(DType::U8)?]),
        "Relu" => one(x()?.relu()?),
        // exp(min(x, 0)) / (1 + exp(-|x|)): no overflow forward or backward (1/(1+exp(-x))
        // gives 0·∞ in its backward pass) and full relative precision for very negative x.
        "Sigmoid" => one(sigmoid(x()?)?),
        "Tanh" => one(x()?.tanh()?),
        "Exp" => one(x()?.exp()?),
        "Log" => one(x()?.log()?),
        "Sqrt" => one(x()?.sqrt()?),
        "Neg" => one(x()?.neg()?),
        "Abs" => one(x()?.abs()?),
        "Reciprocal" => one(x()?.recip()?),
        "Erf" => one(x()?.erf()?),
        "Sin" => one(x()?.sin()?),
        "Cos" => one(x()?.cos()?),
        "Floor" => one(x()?.floor()?),
        "Ceil" => one(x()?.ceil()?),
        "Gelu" => match attr_string(node, "approximate").as_deref() {
            Some("tanh") => one(x()?.gelu()?),
            _ => one(x()?.gelu_erf()?),
        },
        "LeakyRelu" => {
            let alpha = attr_float(node, "alpha", 0.01);
            let x = x()?;
            // A selection rather than relu(x) − α·relu(−x), whose gradient at 0 would be 0: at a
            // kink the gradient is the left slope, as for Relu.
            one(x.gt(0.0)?.where_cond(x, &x.affine(alpha, 0.0)?)?)
        }
        "HardSigmoid" => {
            let (alpha, beta) = (attr_float(node, "alpha", 0.2), attr_float(node, "beta", 0.5));
            one(x()?.affine(alpha, beta)?.clamp(0.0, 1.0)?)
        }
        "HardSwish" => {
            let x = x()?;
            one((x * x.affine(1.0 / 6.0, 0.5)?.clamp(0.0, 1.0)?)?)
        }
        "Clip" => one(clip(node, inputs, ctx)?),
        "Add" => one(arg(0)?.broadcast_add(arg(1)?)?),
        "Sub" => one(arg(0)?.broadcast_sub(arg(1)?)?),
        "Mul" => one(arg(0)?.broadcast_mul(arg(1)?)?),
        "Div" => one(arg(0)?.broadcast_div(arg(1)?)?),
        "Pow" => one(pow(arg(0)?, arg(1)?)?),
        "Max" | "Min" | "Sum" | "Mean" => one(variadic(node, inputs)?),
        "Equal" => one(arg(0)?.broadcast_eq(arg(1)?)?),
        "Less" => one(arg(0)?.broadcast_lt(arg(1)?)?),
        "LessOrEqual" => one(arg(0)?.broadcast_le(arg(1)?)?),
        "Greater" => one(arg(0)?.broadcast_gt(arg(1)?)?),
        "GreaterOrEqual" => one(arg(0)?.broadcast_ge(arg(1)?)?),
        "Where" => {
            let shape = broadcast_shape(&[arg(0)?.dims(), arg(1)?.dims(), arg(2)?.dims()])?;
            let b = |t: &Tensor| t.broadcast_as(shape.as_slice())?.contiguous();
            one(b(arg(0)?)?.where_cond(&b(arg(1)?)?, &b(arg(2)?)?)?)
        }
        "MatMul" => one(matmul(arg(0)?, arg(1)?)?),
        "Gemm" => one(gemm(node, inputs)?),
        "Conv" => one(conv::conv(node, x()?, arg(1)?, inputs.get(2).and_then(Option::as_ref))?),
        "ConvTranspose" => one(conv::conv_transpose(
            node,
            x()?,
            arg(1)?,
            inputs.get(2).and_then(Option::as_ref),
        )?),
        "MaxPool" => one(conv::pool(node, x()?, conv::Pooling::Max, ctx)?),
        "AveragePool" => one(conv::pool(node, x()?, conv::Pooling::Average, ctx)?),
        "GlobalAveragePool" => {
            let x = x()?;
            let dims: Vec<usize> = (2..x.rank()).collect();
            one(x.mean_keepdim(dims)?)
        }
        "GlobalMaxPool" => {
            let x = x()?;
            one(extreme_along(x, &(2..x.rank()).collect::<Vec<_>>(), true)?)
        }
        "BatchNormalization" => one(batch_norm(node, inputs)?),
        "LayerNormalization" => layer_norm(node, inputs),
        "Softmax" | "LogSoftmax" => one(softmax(node, x()?, ctx)?),
        "ReduceMean" | "ReduceSum" | "ReduceMax" | "ReduceMin" | "ReduceL1" | "ReduceL2" | "ReduceLogSum"
        | "ReduceLogSumExp" | "ReduceProd" | "ReduceSumSquare" => one(reduce(node, inputs, ctx)?),
        "Reshape" | "Flatten" | "Transpose" | "Unsqueeze" | "Squeeze" | "Concat" | "Split" | "Slice" | "Gather"
        | "Expand" | "Tile" | "Shape" | "Cast" | "ConstantOfShape" | "Range" => layout(node, inputs, ctx),
        "Elu" | "Selu" | "Celu" | "Softplus" | "Softsign" | "Mish" | "ThresholdedRelu" | "PRelu" | "Shrink"
        | "Sign" | "Round" | "Tan" | "Sinh" | "Cosh" | "Asin" | "Acos" | "Atan" | "Asinh" | "Acosh" | "Atanh"
        | "IsNaN" | "IsInf" | "Mod" | "Not" | "And" | "Or" | "Xor" => one(activations::eval(node, inputs)?),
        "InstanceNormalization" | "GroupNormalization" | "LpNormalization" | "MeanVarianceNormalization" | "LRN" => {
            one(normalisation::eval(node, inputs)?)
        }
        "ArgMax" | "ArgMin" | "Hardmax" | "CumSum" | "GatherElements" | "DepthToSpace" | "SpaceToDepth" | "Size"
        | "CastLike" | "QuantizeLinear" | "DequantizeLinear" => one(indexing::eval(node, inputs, ctx)?),
        "NegativeLogLikelihoodLoss" | "SoftmaxCrossEntropyLoss" => losses::eval(node, inputs, ctx),
        "RNN" | "GRU" | "LSTM" => recurrent::eval(node, inputs),
        "DynamicQuantizeLinear"
        | "ConvInteger"
        | "MatMulInteger"
        | "QLinearConv"
        | "QLinearMatMul"
        | "QLinearAdd"
        | "QLinearSigmoid" => quantised::eval(node, inputs, ctx),
        "Constant" => bail!("Constant nodes are read when the evaluator is built"),
        "Pad" => one(pad(node, inputs, ctx)?),
        "Resize" | "Upsample" => one(resize::resize(node, inputs, ctx)?),
        other => bail!("the gradient engine does not support the ONNX op {other}"),
    }
}

/// Inference-mode BatchNormalization: a per-channel scale and shift.
fn batch_norm(node: &NodeProto, inputs: &[Option<Tensor>]) -> Result<Tensor> {
    let arg = |i: usize| required(inputs, i);
    let (x, scale, bias, mean, var) = (arg(0)?, arg(1)?, arg(2)?, arg(3)?, arg(4)?);
    let eps = attr_float(node, "epsilon", 1e-5);
    let per_channel = |t: &Tensor| -> Result<Tensor> {
        let mut shape = vec![1; x.rank()];
        shape[1] = t.elem_count();
        Ok(t.reshape(shape)?)
    };
    let s = (scale / var.affine(1.0, eps)?.sqrt()?)?;
    let b = (bias - (mean * &s)?)?;
    Ok(x.broadcast_mul(&per_channel(&s)?)?.broadcast_add(&per_channel(&b)?)?)
}

/// `node` evaluated on its integer first input as f64 values, its first output rounded back to
/// integers: for the ops that only pick or copy values.
fn on_integers_as_floats(node: &NodeProto, inputs: &[Option<Tensor>], ctx: &Ctx) -> Result<Vec<Tensor>> {
    let mut as_floats = inputs.to_vec();
    as_floats[0] = Some(required(inputs, 0)?.to_dtype(DType::F64)?);
    let float_ctx = Ctx {
        dtype: DType::F64,
        ..*ctx
    };
    let mut outputs = eval(node, &as_floats, &float_ctx)?.into_iter();
    let first = outputs
        .next()
        .context("the op gave no output")?
        .round()?
        .to_dtype(DType::I64)?;
    Ok(std::iter::once(first).chain(outputs).collect())
}

pub(super) fn sigmoid(x: &Tensor) -> Result<Tensor> {
    let numerator = x.neg()?.relu()?.neg()?.exp()?;
    let denominator = x.abs()?.neg()?.exp()?.affine(1.0, 1.0)?;
    Ok((numerator / denominator)?)
}

/// Integer values of a (static) tensor.
pub(super) fn ints(t: &Tensor) -> Result<Vec<i64>> {
    Ok(t.flatten_all()?.to_dtype(DType::I64)?.to_vec1::<i64>()?)
}

pub(super) fn floats(t: &Tensor) -> Result<Vec<f64>> {
    Ok(t.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?)
}

/// An int list from attribute `attr` (older opsets) or else from input `i`.
pub(super) fn ints_from(node: &NodeProto, inputs: &[Option<Tensor>], i: usize, attr: &str) -> Result<Option<Vec<i64>>> {
    if let Some(v) = attr_ints(node, attr) {
        return Ok(Some(v));
    }
    match inputs.get(i).and_then(Option::as_ref) {
        Some(t) => Ok(Some(ints(t)?)),
        None => Ok(None),
    }
}

pub(super) fn axis_of(axis: i64, rank: usize) -> Result<usize> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    if !(0..rank as i64).contains(&a) {
        bail!("axis {axis} is out of range for rank {rank}");
    }
    Ok(a as usize)
}

/// numpy broadcasting of several shapes.
pub(super) fn broadcast_shape(shapes: &[&[usize]]) -> Result<Vec<usize>> {
    let rank = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![1; rank];
    for s in shapes {
        for (i, &d) in s.iter().enumerate() {
            let o = &mut out[rank - s.len() + i];
            if *o == 1 {
                *o = d;
            } else if d != 1 && d != *o {
                bail!("shapes {shapes:?} do not broadcast");
            }
        }
    }
    Ok(out)
}

pub(super) fn cast(x: &Tensor, to: i64, ctx: &Ctx) -> Result<Tensor> {
    // TensorProto.DataType: 1 float, 10 float16, 11 double, 16 bfloat16; 2–7, 12, 13 integers; 9 bool.
    let dtype = match to {
        1 | 10 | 11 | 16 => ctx.dtype,
        2..=7 | 12 | 13 => DType::I64,
        9 => {
            let zero = Tensor::zeros((), x.dtype(), ctx.device)?;
            return Ok(x.broadcast_ne(&zero)?);
        }
        other => bail!("Cast to data type {other} is not supported"),
    };
    Ok(x.to_dtype(dtype)?)
}

fn clip(node: &NodeProto, inputs: &[Option<Tensor>], ctx: &Ctx) -> Result<Tensor> {
    let x = inputs[0].as_ref().context("Clip without input")?;
    let bound = |i: usize, attr: &str, default: f64| -> Result<f64> {
        if ctx.opset < 11 {
            return Ok(attr_float(node, attr, default));
        }
        match inputs.get(i).and_then(Option::as_ref) {
            Some(t) => Ok(floats(t)?[0]),
            None => Ok(default),
        }
    };
    let (lo, hi) = (bound(1, "min", f64::NEG_INFINITY)?, bound(2, "max", f64::INFINITY)?);
    let mut y = x.clone();
    if lo > f64::NEG_INFINITY {
        y = y.maximum(lo)?;
    }
    if hi < f64::INFINITY {
        y = y.minimum(hi)?;
    }
    Ok(y)
}

fn pow(base: &Tensor, exponent: &Tensor) -> Result<Tensor> {
    // The result has the base's type: an integer base is raised in f64 and rounded back.
    if !base.dtype().is_float() {
        let y = float_pow(&base.to_dtype(DType::F64)?, &exponent.to_dtype(DType::F64)?)?;
        return Ok(activations::round_half_even(&y)?.to_dtype(base.dtype())?);
    }
    float_pow(base, &exponent.to_dtype(base.dtype())?)
}

fn float_pow(base: &Tensor, exponent: &Tensor) -> Result<Tensor> {
    if exponent.elem_count() == 1 {
        let e = floats(exponent)?[0];
        return Ok(match e {
            1.0 => base.clone(),
            2.0 => base.sqr()?,
            0.5 => base.sqrt()?,
            -1.0 => base.recip()?,
            e if e == e.trunc() && e > 0.0 => {
                let mut y = base.clone();
                for _ in 1..e as usize {
                    y = (y * base)?;
                }
                y
            }
            e => base.powf(e)?,
        });
    }
    // exp(e·ln x), with x read as |x| (and the sign put back for odd e) where x < 0 and e is an
    // integer: real powers of negative bases, NaN for the others as in numpy.
    let shape = broadcast_shape(&[base.dims(), exponent.dims()])?;
    let x = base.broadcast_as(shape.as_slice())?.contiguous()?;
    let e = exponent.broadcast_as(shape.as_slice())?.contiguous()?;
    let negative = x.lt(0.0)?;
    let integer = e.eq(&e.floor()?)?;
    let odd = e.affine(0.5, 0.0)?.floor()?.affine(-2.0, 0.0)?.add(&e)?.eq(1.0)?;
    let flip = negative.where_cond(&integer, &negative.zeros_like()?)?;
    let magnitude = flip.where_cond(&x.abs()?, &x)?.log()?.mul(&e)?.exp()?;
    let ones = x.ones_like()?;
    let sign = flip.where_cond(&odd.where_cond(&ones.neg()?, &ones)?, &ones)?;
    Ok(magnitude.mul(&sign)?)
}

fn variadic(node: &NodeProto, inputs: &[Option<Tensor>]) -> Result<Tensor> {
    let parts: Vec<&Tensor> = inputs.iter().flatten().collect();
    let (first, rest) = parts.split_first().context("no inputs")?;
    let mut y = (*first).clone();
    for t in rest {
        y = match node.op_type.as_str() {
            "Max" => select_extreme(&y, t, true)?,
            "Min" => select_extreme(&y, t, false)?,
            _ => y.broadcast_add(t)?,
        };
    }
    if node.op_type == "Mean" {
        y = y.affine(1.0 / parts.len() as f64, 0.0)?;
    }
    Ok(y)
}

/// The elementwise maximum (or minimum) of `a` and `b`, broadcast, as a selection: at a tie the
/// gradient goes to `a` alone (candle's maximum gives it to both, twice the slope of either).
pub(super) fn select_extreme(a: &Tensor, b: &Tensor, largest: bool) -> Result<Tensor> {
    let shape = broadcast_shape(&[a.dims(), b.dims()])?;
    let (a, b) = (a.broadcast_as(shape.as_slice())?, b.broadcast_as(shape.as_slice())?);
    let b_wins = if largest { b.gt(&a)? } else { b.lt(&a)? };
    Ok(b_wins.where_cond(&b, &a)?)
}

/// The maximum (or minimum) over `axes`, kept as axes of length 1, as a gather of the first
/// extreme position: at a tie the gradient goes to one entry (candle's max_keepdim gives it to
/// every tied entry).
pub(super) fn extreme_along(x: &Tensor, axes: &[usize], largest: bool) -> Result<Tensor> {
    let mut y = x.clone();
    for &a in axes {
        let at = if largest {
            y.argmax_keepdim(a)?
        } else {
            y.argmin_keepdim(a)?
        };
        y = y.contiguous()?.gather(&at, a)?;
    }
    Ok(y)
}

/// ONNX MatMul: numpy matmul semantics for operands of rank ≥ 2.
pub(super) fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if a.rank() < 2 || b.rank() < 2 {
        bail!(
            "MatMul of a vector (ranks {} and {}) is not supported",
            a.rank(),
            b.rank()
        );
    }
    if b.rank() == 2 {
        // The common case (a batch of rows times a weight matrix) as one matrix product.
        let k = b.dims()[0];
        let product = kernels::matmul(&rows(a, k)?, b)?;
        return Ok(product.reshape(with_last(a.dims(), b.dims()[1]))?);
    }
    let (fa, fb) = broadcast_batch(a, b)?;
    kernels::matmul(&fa, &fb)
}

/// `a` as a matrix of rows of length `k`.
pub(super) fn rows(a: &Tensor, k: usize) -> Result<Tensor> {
    Ok(a.reshape((a.elem_count() / k, k))?)
}

pub(super) fn with_last(dims: &[usize], last: usize) -> Vec<usize> {
    let mut d = dims.to_vec();
    *d.last_mut().unwrap() = last;
    d
}

/// Both operands of a batched product with their batch dimensions broadcast to a common shape.
pub(super) fn broadcast_batch(a: &Tensor, b: &Tensor) -> Result<(Tensor, Tensor)> {
    let batch = broadcast_shape(&[&a.dims()[..a.rank() - 2], &b.dims()[..b.rank() - 2]])?;
    let full = |t: &Tensor| -> Result<Tensor> {
        let mut dims = batch.clone();
        dims.extend_from_slice(&t.dims()[t.rank() - 2..]);
        Ok(if t.dims() == dims.as_slice() {
            t.clone()
        } else {
            t.broadcast_as(dims)?
        })
    };
    Ok((full(a)?, full(b)?))
}

fn gemm(node: &NodeProto, inputs: &[Option<Tensor>]) -> Result<Tensor> {
    let mut a = inputs[0].clone().context("Gemm without A")?;
    let mut b = inputs.get(1).cloned().flatten().context("Gemm without B")?;
    if attr_int(node, "transA", 0) != 0 {
        a = a.t()?;
    }
    if attr_int(node, "transB", 0) != 0 {
        b = b.t()?;
    }
    let (alpha, beta) = (attr_float(node, "alpha", 1.0), attr_float(node, "beta", 1.0));
    let mut y = kernels::matmul(&a, &b)?;
    if alpha != 1.0 {
        y = y.affine(alpha, 0.0)?;
    }
    if let Some(c) = inputs.get(2).and_then(Option::as_ref) {
        let c = if beta != 1.0 { c.affine(beta, 0.0)? } else { c.clone() };
        y = y.broadcast_add(&c)?;
    }
    Ok(y)
}

/// LayerNormalization's output, and its optional Mean and InvStdDev outputs.
fn layer_norm(node: &NodeProto, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
    let x = inputs[0].as_ref().context("LayerNormalization without input")?;
    let axis = axis_of(attr_int(node, "axis", -1), x.rank())?;
    let eps = attr_float(node, "epsilon", 1e-5);
    let dims: Vec<usize> = (axis..x.rank()).collect();
    let mean = x.mean_keepdim(dims.clone())?;
    let centred = x.broadcast_sub(&mean)?;
    let var = centred.sqr()?.mean_keepdim(dims)?;
    let inverse_deviation = var.affine(1.0, eps)?.sqrt()?.recip()?;
    let mut y = centred.broadcast_mul(&inverse_deviation)?;
    if let Some(scale) = inputs.get(1).and_then(Option::as_ref) {
        y = y.broadcast_mul(scale)?;
    }
    if let Some(bias) = inputs.get(2).and_then(Option::as_ref) {
        y = y.broadcast_add(bias)?;
    }
    Ok(vec![y, mean, inverse_deviation])
}

/// Softmax and LogSoftmax; before opset 13 the input is taken as a matrix split at `axis`.
fn softmax(node: &NodeProto, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
    let default_axis = if ctx.opset < 13 { 1 } else { -1 };
    let axis = axis_of(attr_int(node, "axis", default_axis), x.rank())?;
    let (t, dim) = if ctx.opset < 13 {
        let rows: usize = x.dims()[..axis].iter().product();
        (x.reshape((rows, x.elem_count() / rows.max(1)))?, 1)
    } else {
        (x.clone(), axis)
    };
    let y = softmax_along(&t, dim, node.op_type == "LogSoftmax")?;
    Ok(y.reshape(x.dims())?)
}

/// Softmax (or LogSoftmax, with `log`) along one axis.
pub(super) fn softmax_along(t: &Tensor, dim: usize, log: bool) -> Result<Tensor> {
    // The maximum only shifts the exponent: it carries no gradient.
    let shifted = t.broadcast_sub(&t.max_keepdim(dim)?.detach())?;
    let sum = shifted.exp()?.sum_keepdim(dim)?;
    Ok(if log {
        shifted.broadcast_sub(&sum.log()?)?
    } else {
        shifted.exp()?.broadcast_div(&sum)?
    })
}
