//! Elementwise activations and functions beyond candle's own unary ops, each composed from candle
//! operations (so that candle derives the backward pass), written so that neither the value nor
//! its derivative overflows: exp only of non-positive arguments, log only of values ≥ 1.

use super::ops::{broadcast_shape, floats};
use crate::model::onnx_graph::{attr_float, attr_int};
use anyhow::{bail, Result};
use candle_core::{DType, Tensor};
use tract_onnx::pb::NodeProto;

pub fn eval(node: &NodeProto, inputs: &[Option<Tensor>]) -> Result<Tensor> {
    let arg = |i: usize| super::ops::required(inputs, i);
    let x = arg(0)?;
    let alpha = |default: f64| attr_float(node, "alpha", default);
    Ok(match node.op_type.as_str() {
        "Elu" => elu(x, alpha(1.0), 1.0)?,
        // The defaults are SELU's fixed point constants, as ONNX writes them (f32).
        "Selu" => elu(
            x,
            alpha(1.673_263_192_176_818_8),
            attr_float(node, "gamma", 1.050_701_022_148_132_3),
        )?,
        "Celu" => {
            let a = alpha(1.0);
            let negative = non_positive(x)?.affine(1.0 / a, 0.0)?.exp()?.affine(a, -a)?;
            x.gt(0.0)?.where_cond(x, &negative)?
        }
        "Softplus" => softplus(x)?,
        "Softsign" => x.div(&x.abs()?.affine(1.0, 1.0)?)?,
        "Mish" => x.mul(&softplus(x)?.tanh()?)?,
        "ThresholdedRelu" => x.mul(&x.gt(alpha(1.0))?.to_dtype(x.dtype())?)?,
        "PRelu" => {
            let slope = arg(1)?;
            let shape = broadcast_shape(&[x.dims(), slope.dims()])?;
            let x = x.broadcast_as(shape.as_slice())?;
            let negative = x.mul(&slope.broadcast_as(shape.as_slice())?)?;
            x.gt(0.0)?.where_cond(&x, &negative)?
        }
        "Shrink" => {
            let (bias, lambd) = (attr_float(node, "bias", 0.0), attr_float(node, "lambd", 0.5));
            let above = x.gt(lambd)?.to_dtype(x.dtype())?;
            let below = x.lt(-lambd)?.to_dtype(x.dtype())?;
            (x.affine(1.0, -bias)?.mul(&above)? + x.affine(1.0, bias)?.mul(&below)?)?
        }
        "Sign" => x.sign()?,
        "Round" => round_half_even(x)?,
        "Tan" => x.sin()?.div(&x.cos()?)?,
        "Sinh" => (exp_parts(x)?.0 - exp_parts(x)?.1)?.affine(0.5, 0.0)?,
        "Cosh" => (exp_parts(x)?.0 + exp_parts(x)?.1)?.affine(0.5, 0.0)?,
        // asinh(x) = ±ln(|x| + √(x² + 1)) with the sign of x: no cancellation for negative x.
        "Asinh" => {
            let m = x.abs()?;
            let magnitude = m.add(&m.sqr()?.affine(1.0, 1.0)?.sqrt()?)?.log()?;
            x.lt(0.0)?.where_cond(&magnitude.neg()?, &magnitude)?
        }
        "Acosh" => x.add(&x.sqr()?.affine(1.0, -1.0)?.sqrt()?)?.log()?,
        "Atanh" => x
            .affine(1.0, 1.0)?
            .div(&x.affine(-1.0, 1.0)?)?
            .log()?
            .affine(0.5, 0.0)?,
        "Asin" => with_slope(x, f64::asin, || x.sqr()?.affine(-1.0, 1.0)?.sqrt()?.recip())?,
        "Acos" => with_slope(x, f64::acos, || x.sqr()?.affine(-1.0, 1.0)?.sqrt()?.recip()?.neg())?,
        "Atan" => with_slope(x, f64::atan, || x.sqr()?.affine(1.0, 1.0)?.recip())?,
        "IsNaN" => x.ne(x)?,
        "IsInf" => {
            let float = x.to_dtype(DType::F64)?;
            match (
                attr_int(node, "detect_negative", 1) != 0,
                attr_int(node, "detect_positive", 1) != 0,
            ) {
                (true, true) => float.abs()?.eq(f64::INFINITY)?,
                (false, true) => float.eq(f64::INFINITY)?,
                (true, false) => float.eq(f64::NEG_INFINITY)?,
                (false, false) => float.zeros_like()?.to_dtype(DType::U8)?,
            }
        }
        "Mod" => {
            let y = arg(1)?;
            let shape = broadcast_shape(&[x.dims(), y.dims()])?;
            let (a, b) = (x.broadcast_as(shape.as_slice())?, y.broadcast_as(shape.as_slice())?);
            if !a.dtype().is_float() {
                bail!("Mod of integers is not supported");
            }
            let q = a.div(&b)?;
            // fmod truncates the quotient (C's fmod), the default floors it (Python's %).
            let whole = if attr_int(node, "fmod", 0) != 0 {
                q.sign()?.mul(&q.abs()?.floor()?)?
            } else {
                q.floor()?
            };
            a.sub(&whole.mul(&b)?)?
        }
        "Not" => boolean(x)?.eq(0.0)?,
        "And" | "Or" | "Xor" => {
            let (a, b) = (boolean(x)?, boolean(arg(1)?)?);
            let shape = broadcast_shape(&[a.dims(), b.dims()])?;
            let total = a
                .broadcast_as(shape.as_slice())?
                .add(&b.broadcast_as(shape.as_slice())?)?;
            match node.op_type.as_str() {
                "And" => total.eq(2.0)?,
                "Or" => total.ge(1.0)?,
                _ => total.eq(1.0)?,
            }
        }
        other => bail!("{other} is not an elementwise activation"),
    })
}

/// 0 or 1 as u8, from a boolean held as u8 or (a constant) as i64.
fn boolean(t: &Tensor) -> Result<Tensor> {
    Ok(t.ne(0.0)?)
}

/// γ·x for x > 0, γ·α·(eˣ − 1) otherwise (Elu with γ = 1). A selection between the branches:
/// at 0 the gradient is the left slope γ·α, as for Relu.
fn elu(x: &Tensor, alpha: f64, gamma: f64) -> Result<Tensor> {
    let negative = non_positive(x)?.exp()?.affine(alpha, -alpha)?;
    Ok(x.gt(0.0)?.where_cond(x, &negative)?.affine(gamma, 0.0)?)
}

/// x where x ≤ 0, else 0 (with the gradient of x wherever x ≤ 0): the argument of the
/// exponential branches, which must not overflow where they are not selected.
fn non_positive(x: &Tensor) -> Result<Tensor> {
    Ok(x.gt(0.0)?.where_cond(&x.zeros_like()?, x)?)
}

/// ln(1 + eˣ) = max(x, 0) + ln(1 + e^−|x|).
fn softplus(x: &Tensor) -> Result<Tensor> {
    Ok((x.relu()? + x.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?)?)
}

/// (eˣ, e⁻ˣ).
fn exp_parts(x: &Tensor) -> Result<(Tensor, Tensor)> {
    Ok((x.exp()?, x.neg()?.exp()?))
}

/// Rounding to the nearest integer, halves to even (ONNX Round, numpy's `round`).
pub(super) fn round_half_even(x: &Tensor) -> Result<Tensor> {
    let floor = x.floor()?;
    let fraction = x.sub(&floor)?;
    let odd = floor.sub(&floor.affine(0.5, 0.0)?.floor()?.affine(2.0, 0.0)?)?;
    let up = floor.affine(1.0, 1.0)?;
    let at_half = floor.add(&odd)?;
    let nearest = fraction.gt(0.5)?.where_cond(&up, &floor)?;
    Ok(fraction.eq(0.5)?.where_cond(&at_half, &nearest)?)
}

/// f(x), computed value by value in f64, with the derivative `slope` (candle ops) carried for a
/// backward pass: inside a recorded evaluation the result is f(x) + slope·(x − x), whose value is
/// f(x) and whose gradient is slope. For functions candle has no op for (asin, acos, atan).
fn with_slope(x: &Tensor, f: fn(f64) -> f64, slope: impl Fn() -> candle_core::Result<Tensor>) -> Result<Tensor> {
    let values: Vec<f64> = floats(x)?.into_iter().map(f).collect();
    let y = Tensor::from_vec(values, x.dims(), x.device())?.to_dtype(x.dtype())?;
    if !x.track_op() {
        return Ok(y);
    }
    let zero = x.sub(&x.detach())?;
    Ok(y.add(&slope()?.detach().mul(&zero)?)?)
}
