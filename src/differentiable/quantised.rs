//! Integer and quantised-linear ops: DynamicQuantizeLinear, ConvInteger, MatMulInteger,
//! QLinearConv and QLinearMatMul, as dynamically quantised and int8 exports write them.
//!
//! Integers are held as i64; the integer products are computed in f64, which is exact for every
//! sum of int8 × uint8 products below 2^53. Requantisation multiplies in f32, as ONNX's reference
//! and the runtimes do, so a value on a rounding tie lands where theirs does. The integer outputs
//! are piecewise constant in the input and carry no gradient; DynamicQuantizeLinear's scale is
//! differentiable (it follows the input's extreme values), and its gradient is kept.

use super::activations::round_half_even;
use super::{conv, ops, Ctx};
use crate::model::onnx_graph::attr_int;
use anyhow::{bail, Result};
use candle_core::{DType, Tensor};
use tract_onnx::pb::NodeProto;

pub fn eval(node: &NodeProto, inputs: &[Option<Tensor>], ctx: &Ctx) -> Result<Vec<Tensor>> {
    let arg = |i: usize| ops::required(inputs, i);
    let optional = |i: usize| inputs.get(i).and_then(Option::as_ref);
    match node.op_type.as_str() {
        "DynamicQuantizeLinear" => dynamic_quantize(arg(0)?, ctx),
        "ConvInteger" => {
            let x = offset(arg(0)?, optional(2), 1)?;
            let w = offset(arg(1)?, optional(3), 0)?;
            Ok(vec![conv::conv(node, &x, &w, None)?.to_dtype(DType::I64)?])
        }
        "MatMulInteger" => {
            let a = offset_rows(arg(0)?, optional(2))?;
            let b = offset(arg(1)?, optional(3), arg(1)?.rank().saturating_sub(1))?;
            Ok(vec![ops::matmul(&a, &b)?.to_dtype(DType::I64)?])
        }
        "QLinearConv" => {
            let x = offset(arg(0)?, Some(arg(2)?), 1)?;
            let w = offset(arg(3)?, Some(arg(5)?), 0)?;
            let mut acc = conv::conv(node, &x, &w, None)?;
            if let Some(bias) = optional(8) {
                acc = acc.broadcast_add(&bias.to_dtype(DType::F64)?.reshape((1, bias.elem_count(), 1, 1))?)?;
            }
            let w_scale = along(arg(4)?, 1, acc.rank())?;
            Ok(vec![requantise(node, &acc, arg(1)?, &w_scale, arg(6)?, optional(7))?])
        }
        "QLinearMatMul" => {
            let a = offset_rows(arg(0)?, Some(arg(2)?))?;
            let last = arg(3)?.rank().saturating_sub(1);
            let b = offset(arg(3)?, Some(arg(5)?), last)?;
            let acc = ops::matmul(&a, &b)?;
            let b_scale = along(arg(4)?, acc.rank() - 1, acc.rank())?;
            Ok(vec![requantise(node, &acc, arg(1)?, &b_scale, arg(6)?, optional(7))?])
        }
        // onnxruntime's contrib ops: dequantise, the float op, quantise to the output's scale.
        "QLinearAdd" => {
            let a = dequantise(arg(0)?, arg(1)?, optional(2))?;
            let b = dequantise(arg(3)?, arg(4)?, optional(5))?;
            Ok(vec![quantise(node, &a.broadcast_add(&b)?, arg(6)?, optional(7))?])
        }
        "QLinearSigmoid" => {
            let x = dequantise(arg(0)?, arg(1)?, optional(2))?;
            Ok(vec![quantise(node, &ops::sigmoid(&x)?, arg(3)?, optional(4))?])
        }
        other => bail!("{other} is not an integer or quantised-linear op"),
    }
}

/// uint8 quantisation with the scale and zero point the input's range sets (ONNX's formula, in
/// f32 as its reference computes it): the quantised tensor, its scale and its zero point.
fn dynamic_quantize(x: &Tensor, ctx: &Ctx) -> Result<Vec<Tensor>> {
    let flat = x.flatten_all()?;
    let zero = flat.zeros_like()?.narrow(0, 0, 1)?;
    let high = flat.max_keepdim(0)?.maximum(&zero)?;
    let low = flat.min_keepdim(0)?.minimum(&zero)?;
    let (high_value, low_value) = (to_f64(&high)?[0], to_f64(&low)?[0]);
    let scale = ((high_value as f32) - (low_value as f32)) / 255.0;
    if scale == 0.0 {
        // An all-zero input: everything quantises to zero, with a zero scale as the runtimes give.
        let q = x.zeros_like()?.to_dtype(DType::I64)?;
        let s = high.sub(&low)?.affine(1.0 / 255.0, 0.0)?.reshape(())?;
        return Ok(vec![q, s, Tensor::new(0i64, ctx.device)?]);
    }
    let zero_point = (0.0f32 - (low_value as f32) / scale)
        .round_ties_even()
        .clamp(0.0, 255.0);
    let quotient = x
        .to_dtype(DType::F32)?
        .broadcast_div(&Tensor::new(scale, ctx.device)?)?;
    let q = round_half_even(&quotient)?
        .affine(1.0, zero_point as f64)?
        .clamp(0.0f32, 255.0f32)?
        .to_dtype(DType::I64)?;
    // The scale's value is f32's; its gradient is that of (max − min) / 255.
    let traced = high.sub(&low)?.affine(1.0 / 255.0, 0.0)?.reshape(())?;
    let exact = Tensor::new(scale as f64, ctx.device)?.to_dtype(traced.dtype())?;
    let scale_tensor = exact.add(&traced.sub(&traced.detach())?)?;
    Ok(vec![q, scale_tensor, Tensor::new(zero_point as i64, ctx.device)?])
}

fn to_f64(t: &Tensor) -> Result<Vec<f64>> {
    Ok(t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?)
}

/// `q − zero_point` in f64, the zero point a scalar or a vector along `axis`.
fn offset(q: &Tensor, zero_point: Option<&Tensor>, axis: usize) -> Result<Tensor> {
    let q = q.to_dtype(DType::F64)?;
    match zero_point {
        None => Ok(q),
        Some(z) => Ok(q.broadcast_sub(&along(z, axis, q.rank())?)?),
    }
}

/// MatMulInteger's and QLinearMatMul's first operand less its zero point: a scalar, or one per
/// row (the second-to-last axis).
fn offset_rows(a: &Tensor, zero_point: Option<&Tensor>) -> Result<Tensor> {
    offset(a, zero_point, a.rank().saturating_sub(2))
}

/// A scalar as it is; a vector shaped to broadcast along `axis` of a rank-`rank` tensor; in f64.
fn along(t: &Tensor, axis: usize, rank: usize) -> Result<Tensor> {
    let t = t.to_dtype(DType::F64)?;
    if t.elem_count() == 1 {
        return Ok(t.reshape(())?);
    }
    let mut shape = vec![1; rank];
    shape[axis] = t.elem_count();
    Ok(t.reshape(shape)?)
}

/// An integer accumulator requantised: round(acc · (in_scale · weight_scale / out_scale)) + zero
/// point, the multiplier and the product rounded to f32, saturated to the zero point's type
/// (`output_dtype`, which the evaluator sets from the graph: 2 uint8, 3 int8).
fn requantise(
    node: &NodeProto,
    acc: &Tensor,
    in_scale: &Tensor,
    weight_scale: &Tensor,
    out_scale: &Tensor,
    out_zero: Option<&Tensor>,
) -> Result<Tensor> {
    let (lo, hi) = integer_range(node)?;
    let f32_round = |t: Tensor| -> Result<Tensor> { Ok(t.to_dtype(DType::F32)?.to_dtype(DType::F64)?) };
    let product = f32_round(weight_scale.broadcast_mul(&in_scale.to_dtype(DType::F64)?)?)?;
    let multiplier = f32_round(product.broadcast_div(&out_scale.to_dtype(DType::F64)?)?)?;
    let scaled = f32_round(f32_round(acc.clone())?.broadcast_mul(&multiplier)?)?;
    let mut q = round_half_even(&scaled)?;
    if let Some(z) = out_zero {
        q = q.broadcast_add(&z.to_dtype(DType::F64)?.reshape(())?)?;
    }
    Ok(q.clamp(lo, hi)?.to_dtype(DType::I64)?)
}

/// (q − zero point) · scale, per tensor, in f64.
fn dequantise(q: &Tensor, scale: &Tensor, zero_point: Option<&Tensor>) -> Result<Tensor> {
    Ok(offset(q, zero_point, 0)?.broadcast_mul(&along(scale, 0, q.rank())?)?)
}

/// round(x / scale) + zero point, saturated to the zero point's type, per tensor.
fn quantise(node: &NodeProto, x: &Tensor, scale: &Tensor, zero_point: Option<&Tensor>) -> Result<Tensor> {
    let (lo, hi) = integer_range(node)?;
    let scale = scale
        .to_dtype(DType::F64)?
        .to_dtype(DType::F32)?
        .to_dtype(DType::F64)?
        .reshape(())?;
    let mut q = round_half_even(&x.broadcast_div(&scale)?)?;
    if let Some(z) = zero_point {
        q = q.broadcast_add(&z.to_dtype(DType::F64)?.reshape(())?)?;
    }
    Ok(q.clamp(lo, hi)?.to_dtype(DType::I64)?)
}

/// The saturation range of the op's integer output (`output_dtype`: 2 uint8, 3 int8).
fn integer_range(node: &NodeProto) -> Result<(f64, f64)> {
    match attr_int(node, "output_dtype", 2) {
        2 => Ok((0.0, 255.0)),
        3 => Ok((-128.0, 127.0)),
        other => bail!("{} to data type {other} is not supported", node.op_type),
    }
}
