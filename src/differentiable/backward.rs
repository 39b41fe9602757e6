//! Vector-Jacobian products, one ONNX node at a time: given the gradients of a node's outputs,
//! the gradients of those of its inputs that depend on the model input.
//!
//! The ops that carry the cost (matrix products, convolutions, softmax and the elementwise ops of
//! attention and GELU) have their products written out, with no gradient computed for weights.
//! Every other op gets its product from candle: the op is evaluated again on a recorded copy of its
//! inputs and candle differentiates ⟨output, gradient⟩, which costs a second forward evaluation of
//! that op only.

use super::ops::{self, axis_of, broadcast_batch, floats, rows, with_last};
use super::{conv, kernels, Ctx};
use crate::model::onnx_graph::{attr_float, attr_int, attr_ints, attr_string};
use anyhow::{Context, Result};
use candle_core::{Tensor, Var};
use tract_onnx::pb::NodeProto;

/// Gradients of the node's inputs (`None` where not needed or not reached).
pub fn vjp(
    node: &NodeProto,
    inputs: &[Option<Tensor>],
    outputs: &[Tensor],
    grads: &[Option<Tensor>],
    needs: &[bool],
    ctx: &Ctx,
) -> Result<Vec<Option<Tensor>>> {
    if let Some(done) = written_out(node, inputs, outputs, grads, needs, ctx)? {
        return Ok(done);
    }
    derived_by_candle(node, inputs, grads, needs, ctx)
}

fn derived_by_candle(
    node: &NodeProto,
    inputs: &[Option<Tensor>],
    grads: &[Option<Tensor>],
    needs: &[bool],
    ctx: &Ctx,
) -> Result<Vec<Option<Tensor>>> {
    let vars: Vec<Option<Var>> = inputs
        .iter()
        .zip(needs)
        .map(|(t, &need)| match t {
            Some(t) if need => Var::from_tensor(t).map(Some),
            _ => Ok(None),
        })
        .collect::<candle_core::Result<_>>()?;
    let recorded: Vec<Option<Tensor>> = inputs
        .iter()
        .zip(&vars)
        .map(|(t, v)| v.as_ref().map(|v| v.as_tensor().clone()).or_else(|| t.clone()))
        .collect();
    let outputs = ops::eval(node, &recorded, ctx)?;
    let mut objective: Option<Tensor> = None;
    for (o, g) in outputs.iter().zip(grads) {
        if let Some(g) = g {
            let term = (o * g)?.sum_all()?;
            objective = Some(match objective {
                Some(s) => (s + term)?,
                None => term,
            });
        }
    }
    let Some(objective) = objective else {
        return Ok(vec![None; inputs.len()]);
    };
    let store = objective.backward()?;
    vars.iter()
        .zip(inputs)
        .map(|(v, t)| match (v, t) {
            (Some(v), Some(t)) => Ok(Some(match store.get(v.as_tensor()) {
                Some(g) => g.clone(),
                None => t.zeros_like()?,
            })),
            _ => Ok(None),
        })
        .collect()
}

/// `g` summed down to `shape` (the adjoint of numpy broadcasting).
fn unbroadcast(g: &Tensor, shape: &[usize]) -> Result<Tensor> {
    if g.dims() == shape {
        return Ok(g.clone());
    }
    let mut t = g.clone();
    for _ in 0..g.rank() - shape.len() {
        t = t.sum(0)?;
    }
    for (i, &d) in shape.iter().enumerate() {
        if d == 1 && t.dims()[i] != 1 {
            t = t.sum_keepdim(i)?;
        }
    }
    Ok(t)
}

fn written_out(
    node: &NodeProto,
    inputs: &[Option<Tensor>],
    outputs: &[Tensor],
    grads: &[Option<Tensor>],
    needs: &[bool],
    ctx: &Ctx,
) -> Result<Option<Vec<Option<Tensor>>>> {
    let Some(g) = grads.first().and_then(Option::as_ref) else {
        return Ok(None);
    };
    if grads.len() != 1 {
        return Ok(None);
    }
    let arg = |i: usize| inputs[i].as_ref().context("missing input");
    let need = |i: usize| needs.get(i).copied().unwrap_or(false);
    let y = &outputs[0];
    let first = |t: Tensor| Ok(Some(vec![Some(t)]));
    // Binary ops: each needed operand gets the gradient summed over its broadcast dimensions.
    let binary =
        |ga: &dyn Fn() -> Result<Tensor>, gb: &dyn Fn() -> Result<Tensor>| -> Result<Option<Vec<Option<Tensor>>>> {
            let a = if need(0) {
                Some(unbroadcast(&ga()?, arg(0)?.dims())?)
            } else {
                None
            };
            let b = if need(1) {
                Some(unbroadcast(&gb()?, arg(1)?.dims())?)
            } else {
                None
            };
            Ok(Some(vec![a, b]))
        };
    let only_first = needs.iter().skip(1).all(|n| !n);
    match node.op_type.as_str() {
        "Identity" | "Dropout" if need(0) => first(g.clone()),
        "Add" => binary(&|| Ok(g.clone()), &|| Ok(g.clone())),
        "Sub" => binary(&|| Ok(g.clone()), &|| Ok(g.neg()?)),
        "Mul" => binary(&|| Ok(g.broadcast_mul(arg(1)?)?), &|| Ok(g.broadcast_mul(arg(0)?)?)),
        "Div" => binary(&|| Ok(g.broadcast_div(arg(1)?)?), &|| {
            Ok(g.mul(y)?.broadcast_div(arg(1)?)?.neg()?)
        }),
        "Relu" if only_first => first(g.mul(&arg(0)?.gt(0.0)?.to_dtype(g.dtype())?)?),
        "Sigmoid" if only_first => first(g.mul(&y.mul(&y.affine(-1.0, 1.0)?)?)?),
        "Tanh" if only_first => first(g.mul(&y.sqr()?.affine(-1.0, 1.0)?)?),
        "Exp" if only_first => first(g.mul(y)?),
        "Log" if only_first => first(g.div(arg(0)?)?),
        "Sqrt" if only_first => first(g.div(y)?.affine(0.5, 0.0)?),
        "Neg" if only_first => first(g.neg()?),
        "Reciprocal" if only_first => first(g.mul(&y.sqr()?)?.neg()?),
        "Erf" if only_first => {
            let slope = arg(0)?
                .sqr()?
                .neg()?
                .exp()?
                .affine(2.0 / std::f64::consts::PI.sqrt(), 0.0)?;
            first(g.mul(&slope)?)
        }
        "Gelu" if only_first => first(g.mul(&gelu_slope(node, arg(0)?)?)?),
        "Pow" if only_first && arg(1)?.elem_count() == 1 => {
            let e = floats(arg(1)?)?[0];
            let x = arg(0)?;
            let slope = if e == 2.0 {
                x.affine(2.0, 0.0)?
            } else if e == 1.0 {
                x.ones_like()?
            } else {
                x.powf(e - 1.0)?.affine(e, 0.0)?
            };
            Ok(Some(vec![Some(g.mul(&slope)?), None]))
        }
        "Softmax" | "LogSoftmax" if only_first => first(softmax_vjp(node, y, g, ctx)?),
        "Transpose" if only_first => {
            let rank = g.rank();
            let perm: Vec<usize> = match attr_ints(node, "perm") {
                Some(p) => p.iter().map(|&a| axis_of(a, rank)).collect::<Result<_>>()?,
                None => (0..rank).rev().collect(),
            };
            let mut inverse = vec![0; rank];
            for (i, &p) in perm.iter().enumerate() {
                inverse[p] = i;
            }
            first(g.permute(inverse)?.contiguous()?)
        }
        "Reshape" | "Flatten" | "Squeeze" | "Unsqueeze" if only_first => {
            Ok(Some(vec![Some(g.reshape(arg(0)?.dims())?), None]))
        }
        "MatMul" => matmul_vjp(arg(0)?, arg(1)?, g, need(0), need(1)).map(Some),
        "Gemm" if !need(2) => gemm_vjp(node, arg(0)?, arg(1)?, g, need(0), need(1)).map(Some),
        "Conv" if only_first => match conv::conv_input_gradient(node, arg(0)?, arg(1)?, g)? {
            Some(gx) => Ok(Some(vec![Some(gx), None, None])),
            None => Ok(None),
        },
        "ConvTranspose" if only_first => Ok(Some(vec![
            Some(conv::conv_transpose_input_gradient(node, arg(0)?, arg(1)?, g)?),
            None,
            None,
        ])),
        "BatchNormalization" if only_first => {
            let (scale, var) = (arg(1)?, arg(4)?);
            let eps = attr_float(node, "epsilon", 1e-5);
            let mut shape = vec![1; g.rank()];
            shape[1] = scale.elem_count();
            let s = (scale / var.affine(1.0, eps)?.sqrt()?)?.reshape(shape)?;
            Ok(Some(vec![Some(g.broadcast_mul(&s)?), None, None, None, None]))
        }
        _ => Ok(None),
    }
}

/// The derivative of Gelu, with full-precision constants (candle's own backward pass rounds
/// 1/√(2π) to 0.398942, a relative error of 7e-7): Φ(x) + x·φ(x), or for the tanh approximation
/// ½(1 + t) + ½x(1 − t²)·√(2/π)(1 + 3·0.044715x²) with t = tanh(√(2/π)(x + 0.044715x³)).
fn gelu_slope(node: &NodeProto, x: &Tensor) -> Result<Tensor> {
    use std::f64::consts::PI;
    if attr_string(node, "approximate").as_deref() == Some("tanh") {
        let c = (2.0 / PI).sqrt();
        let x2 = x.sqr()?;
        let t = x.mul(&x2.affine(0.044715, 1.0)?)?.affine(c, 0.0)?.tanh()?;
        let inner = x2.affine(3.0 * 0.044715 * c, c)?;
        let second = x.mul(&t.sqr()?.affine(-1.0, 1.0)?)?.mul(&inner)?.affine(0.5, 0.0)?;
        return Ok((t.affine(0.5, 0.5)? + second)?);
    }
    let cdf = x
        .affine(std::f64::consts::FRAC_1_SQRT_2, 0.0)?
        .erf()?
        .affine(0.5, 0.5)?;
    let density = x
        .sqr()?
        .affine(-0.5, 0.0)?
        .exp()?
        .affine(1.0 / (2.0 * PI).sqrt(), 0.0)?;
    Ok((cdf + x.mul(&density)?)?)
}

/// Softmax: y ⊙ (g − Σ g ⊙ y); LogSoftmax: g − softmax ⊙ Σ g (sums along the softmax axis).
fn softmax_vjp(node: &NodeProto, y: &Tensor, g: &Tensor, ctx: &Ctx) -> Result<Tensor> {
    let default_axis = if ctx.opset < 13 { 1 } else { -1 };
    let axis = axis_of(attr_int(node, "axis", default_axis), y.rank())?;
    let (y2, g2, dim) = if ctx.opset < 13 {
        let rows: usize = y.dims()[..axis].iter().product();
        let cols = y.elem_count() / rows.max(1);
        (y.reshape((rows, cols))?, g.reshape((rows, cols))?, 1)
    } else {
        (y.clone(), g.clone(), axis)
    };
    let gx = if node.op_type == "LogSoftmax" {
        let total = g2.sum_keepdim(dim)?;
        (&g2 - y2.exp()?.broadcast_mul(&total)?)?
    } else {
        let inner = (&g2 * &y2)?.sum_keepdim(dim)?;
        (g2.broadcast_sub(&inner)? * &y2)?
    };
    Ok(gx.reshape(y.dims())?)
}

/// MatMul: ∂a = g·bᵀ, ∂b = aᵀ·g, each summed over the batch dimensions it was broadcast along.
fn matmul_vjp(a: &Tensor, b: &Tensor, g: &Tensor, need_a: bool, need_b: bool) -> Result<Vec<Option<Tensor>>> {
    if b.rank() == 2 {
        let (k, n) = (b.dims()[0], b.dims()[1]);
        let g2 = rows(g, n)?;
        let ga = if need_a {
            Some(kernels::matmul(&g2, &b.t()?)?.reshape(with_last(g.dims(), k))?)
        } else {
            None
        };
        let gb = if need_b {
            Some(kernels::matmul(&rows(a, k)?.t()?, &g2)?)
        } else {
            None
        };
        return Ok(vec![ga, gb]);
    }
    let (fa, fb) = broadcast_batch(a, b)?;
    let t = |x: &Tensor| x.transpose(x.rank() - 2, x.rank() - 1);
    let ga = if need_a {
        Some(unbroadcast(&kernels::matmul(g, &t(&fb)?)?, a.dims())?)
    } else {
        None
    };
    let gb = if need_b {
        Some(unbroadcast(&kernels::matmul(&t(&fa)?, g)?, b.dims())?)
    } else {
        None
    };
    Ok(vec![ga, gb])
}

/// Gemm y = α·A'·B' + β·C: ∂A' = α·g·B'ᵀ, ∂B' = α·A'ᵀ·g (transposed back where A or B was).
fn gemm_vjp(
    node: &NodeProto,
    a: &Tensor,
    b: &Tensor,
    g: &Tensor,
    need_a: bool,
    need_b: bool,
) -> Result<Vec<Option<Tensor>>> {
    let (ta, tb) = (attr_int(node, "transA", 0) != 0, attr_int(node, "transB", 0) != 0);
    let alpha = attr_float(node, "alpha", 1.0);
    let a_used = if ta { a.t()? } else { a.clone() };
    let b_used = if tb { b.t()? } else { b.clone() };
    let scaled = if alpha != 1.0 { g.affine(alpha, 0.0)? } else { g.clone() };
    let ga = if need_a {
        // ∂A = (∂A')ᵀ when transposed: g·B'ᵀ transposed is B'·gᵀ.
        Some(if ta {
            kernels::matmul(&b_used, &scaled.t()?)?
        } else {
            kernels::matmul(&scaled, &b_used.t()?)?
        })
    } else {
        None
    };
    let gb = if need_b {
        Some(if tb {
            kernels::matmul(&scaled.t()?, &a_used)?
        } else {
            kernels::matmul(&a_used.t()?, &scaled)?
        })
    } else {
        None
    };
    Ok(vec![ga, gb, None])
}
