//! NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss: the score of each sample's class picked
//! by a gather (whose backward pass, a scatter, candle derives), weighted, then reduced.

use super::ops::{ints, softmax_along};
use super::Ctx;
use crate::model::onnx_graph::{attr_string, attribute};
use anyhow::{bail, Context, Result};
use candle_core::Tensor;
use tract_onnx::pb::NodeProto;

pub fn eval(node: &NodeProto, inputs: &[Option<Tensor>], ctx: &Ctx) -> Result<Vec<Tensor>> {
    let scores = inputs[0].as_ref().context("loss without scores")?;
    let target = inputs
        .get(1)
        .and_then(Option::as_ref)
        .context("loss without a target")?;
    let weight = inputs.get(2).and_then(Option::as_ref);
    if node.op_type == "SoftmaxCrossEntropyLoss" {
        let log_prob = softmax_along(scores, 1, true)?;
        let loss = negative_log_likelihood(node, &log_prob, target, weight, ctx)?;
        return Ok(vec![loss, log_prob]);
    }
    Ok(vec![negative_log_likelihood(node, scores, target, weight, ctx)?])
}

/// −Σ w[t]·x[n, t, …] over the samples whose class t is not `ignore_index`: per sample
/// ("none"), summed, or divided by the total weight ("mean").
fn negative_log_likelihood(
    node: &NodeProto,
    x: &Tensor,
    target: &Tensor,
    weight: Option<&Tensor>,
    ctx: &Ctx,
) -> Result<Tensor> {
    let classes = x
        .dims()
        .get(1)
        .copied()
        .context("a loss of scores without a class axis")? as i64;
    let ignore = attribute(node, "ignore_index").map(|a| a.i);
    let labels = ints(target)?;
    let weights = match weight {
        Some(w) => super::ops::floats(w)?,
        None => vec![1.0; classes as usize],
    };
    let mut picks = Vec::with_capacity(labels.len());
    let mut factors = Vec::with_capacity(labels.len());
    for &t in &labels {
        if Some(t) == ignore {
            picks.push(0u32);
            factors.push(0.0);
            continue;
        }
        if !(0..classes).contains(&t) {
            bail!("class {t} is out of range for {classes} classes");
        }
        picks.push(t as u32);
        factors.push(weights[t as usize]);
    }
    let mut index_dims = target.dims().to_vec();
    index_dims.insert(1, 1);
    let ids = Tensor::from_vec(picks, index_dims.as_slice(), ctx.device)?;
    let picked = x.contiguous()?.gather(&ids, 1)?.squeeze(1)?;
    let total_weight: f64 = factors.iter().sum();
    let factors = Tensor::from_vec(factors, target.dims(), ctx.device)?.to_dtype(x.dtype())?;
    let loss = picked.mul(&factors)?.neg()?;
    Ok(match attr_string(node, "reduction").as_deref().unwrap_or("mean") {
        "none" => loss,
        "sum" => loss.sum_all()?,
        "mean" => loss.sum_all()?.affine(1.0 / total_weight, 0.0)?,
        other => bail!("loss reduction {other} is not one ONNX defines"),
    })
}
