//! Feature similarity: how far apart two inputs are inside the model itself.
//!
//! - `feature_distance`, LPIPS-style (Zhang et al. 2018) but without learned weights: at each
//!   chosen layer the channel vector of every spatial position (for token sequences, every token's
//!   vector) is divided by its length, the squared differences are summed over channels and
//!   averaged over positions; the layers are averaged with equal weights.
//! - `cosine_distance`: 1 − cos of the penultimate features, the flattened input of the last
//!   `Gemm`/`MatMul` node (the classifier head), or, where that is not a computed value, the last
//!   value before the model's outputs.
//!
//! Layer shapes: `[1, C, h, w]` is a feature map (NCHW, as ONNX `Conv` writes it), `[1, T, D]` a
//! token sequence, `[1, D]` a single position with D channels (dense networks).
//! Default layers: the values of those shapes with more than one channel (so not a LayerNorm's
//! per-token statistics) from the first linear layer's output (the first `Conv`/`Gemm`/`MatMul`
//! node) on, the model's outputs left out, and, once the network has become a token sequence,
//! no rank-4 values (those are attention heads and scores, not feature maps); of these four,
//! evenly spread from the first to the last (all of them where there are four or fewer).

use crate::model::{Model, Value};
use anyhow::{bail, Context, Result};
use serde::Serialize;

/// How many layers the default choice spreads through the network.
pub const DEFAULT_LAYER_COUNT: usize = 4;
/// Added to a channel vector's length before dividing, as LPIPS does.
pub const NORMALISE_EPS: f64 = 1e-10;

#[derive(Clone, Debug, Serialize)]
pub struct FeatureSimilarity {
    pub feature_distance: f64,
    pub cosine_distance: f64,
    /// The layers of `feature_distance` with each one's own distance.
    pub layers: Vec<LayerDistance>,
    /// The value whose cosine distance is reported.
    pub penultimate: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct LayerDistance {
    pub name: String,
    pub shape: Vec<usize>,
    pub distance: f64,
}

/// Flat index of (position, channel) in a layer value.
type Index = Box<dyn Fn(usize, usize) -> usize>;

/// (positions, channels, index) of a layer value.
fn positions(shape: &[usize]) -> Option<(usize, usize, Index)> {
    match *shape {
        [1, c, h, w] => Some((h * w, c, Box::new(move |p, k| k * h * w + p))),
        [1, t, d] => Some((t, d, Box::new(move |p, k| p * d + k))),
        [1, d] => Some((1, d, Box::new(move |_, k| k))),
        _ => None,
    }
}

/// The LPIPS-style distance of one layer (see the module note).
pub fn layer_distance(a: &Value, b: &Value) -> Result<f64> {
    if a.shape != b.shape {
        bail!("{}: shapes {:?} and {:?} differ", a.name, a.shape, b.shape);
    }
    let Some((n, c, at)) = positions(&a.shape) else {
        bail!(
            "{} has shape {:?}: a layer must be [1,C,h,w], [1,T,D] or [1,D]",
            a.name,
            a.shape
        );
    };
    let mut total = 0.0;
    for p in 0..n {
        let length = |v: &Value| (0..c).map(|k| v.data[at(p, k)].powi(2)).sum::<f64>().sqrt() + NORMALISE_EPS;
        let (la, lb) = (length(a), length(b));
        total += (0..c)
            .map(|k| (a.data[at(p, k)] / la - b.data[at(p, k)] / lb).powi(2))
            .sum::<f64>();
    }
    Ok(total / n as f64)
}

/// 1 − cos(a, b); 0 for two zero vectors, 1 where only one is zero.
pub fn cosine_distance(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let (na, nb) = (crate::linop::norm(a), crate::linop::norm(b));
    match (na > 0.0, nb > 0.0) {
        (false, false) => 0.0,
        (true, true) => 1.0 - dot / (na * nb),
        _ => 1.0,
    }
}

/// Output of the first `Conv`/`Gemm`/`MatMul` node in graph order.
fn first_linear_output(model: &Model) -> Option<String> {
    model
        .graph
        .graph
        .node
        .iter()
        .find(|n| matches!(n.op_type.as_str(), "Conv" | "Gemm" | "MatMul"))
        .and_then(|n| n.output.first().cloned())
}

/// The default layers: see the module note. `values` are the model's values in graph order.
pub fn default_layers(model: &Model, values: &[Value]) -> Vec<String> {
    let start = first_linear_output(model)
        .and_then(|f| values.iter().position(|v| v.name == f))
        .unwrap_or(0);
    let first_tokens = values[start..]
        .iter()
        .position(|v| v.shape.len() == 3)
        .map(|i| i + start);
    let candidates: Vec<&Value> = values[start..]
        .iter()
        .enumerate()
        .filter(|(i, v)| {
            let heads = v.shape.len() == 4 && first_tokens.is_some_and(|t| i + start > t);
            let channels = positions(&v.shape).map_or(0, |(_, c, _)| c);
            !model.output_names.contains(&v.name) && channels > 1 && !heads
        })
        .map(|(_, v)| v)
        .collect();
    let n = candidates.len();
    if n <= DEFAULT_LAYER_COUNT {
        return candidates.iter().map(|v| v.name.clone()).collect();
    }
    let k = DEFAULT_LAYER_COUNT;
    (0..k)
        .map(|i| candidates[(i * (n - 1) + (k - 1) / 2) / (k - 1)].name.clone())
        .collect()
}

/// The penultimate value: see the module note. `values` are the model's values in graph order.
pub fn penultimate(model: &Model, values: &[Value]) -> Option<String> {
    let head_input = model
        .graph
        .graph
        .node
        .iter()
        .rev()
        .find(|n| matches!(n.op_type.as_str(), "Gemm" | "MatMul"))
        .and_then(|n| n.input.first().cloned());
    if let Some(h) = head_input.filter(|h| values.iter().any(|v| &v.name == h)) {
        return Some(h);
    }
    values
        .iter()
        .rev()
        .find(|v| !model.output_names.contains(&v.name))
        .map(|v| v.name.clone())
}

/// Feature and cosine distances of two input tensors (as fed, shaped like the model input);
/// `layers`: ONNX value names, or `None` for the default choice.
pub fn feature_similarity(model: &Model, a: &[f32], b: &[f32], layers: Option<&[String]>) -> Result<FeatureSimilarity> {
    let names = model.all_value_names();
    let runner = model.runner(&names, false)?;
    let va = runner.run(a).context("running the model on the first input")?;
    let vb = runner.run(b).context("running the model on the second input")?;
    let chosen = match layers {
        Some(l) => l.to_vec(),
        None => default_layers(model, &va),
    };
    if chosen.is_empty() {
        bail!("the model has no layer shaped [1,C,h,w], [1,T,D] or [1,D] after its first linear layer: give `layers`");
    }
    let find = |vs: &[Value], name: &str| -> Result<usize> {
        vs.iter()
            .position(|v| v.name == name)
            .with_context(|| format!("the model computes no value named {name} (see `blindspot verify` for the names)"))
    };
    let mut per_layer = vec![];
    for name in &chosen {
        let i = find(&va, name)?;
        let distance = layer_distance(&va[i], &vb[i])?;
        if !distance.is_finite() {
            bail!("{name}: the features are NaN or infinite");
        }
        per_layer.push(LayerDistance {
            name: name.clone(),
            shape: va[i].shape.clone(),
            distance,
        });
    }
    let feature_distance = per_layer.iter().map(|l| l.distance).sum::<f64>() / per_layer.len() as f64;
    let pen = penultimate(model, &va).context("the model has no value before its output")?;
    let i = find(&va, &pen)?;
    let cosine_distance = cosine_distance(&va[i].data, &vb[i].data);
    if !cosine_distance.is_finite() {
        bail!("{pen}: the features are NaN or infinite");
    }
    Ok(FeatureSimilarity {
        feature_distance,
        cosine_distance,
        layers: per_layer,
        penultimate: pen,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evenly_spread_picks_first_and_last() {
        let n = 10;
        let k = DEFAULT_LAYER_COUNT;
        let picks: Vec<usize> = (0..k).map(|i| (i * (n - 1) + (k - 1) / 2) / (k - 1)).collect();
        assert_eq!(picks, vec![0, 3, 6, 9]);
    }

    #[test]
    fn cosine_distance_of_parallel_and_orthogonal_vectors() {
        assert!(cosine_distance(&[1.0, 2.0], &[2.0, 4.0]).abs() < 1e-15);
        assert!((cosine_distance(&[1.0, 0.0], &[0.0, 3.0]) - 1.0).abs() < 1e-15);
    }
}
