//! Whole-model verification: how far apart two inputs are at the front end and at every model
//! output, beside a random control of the same size.

use crate::model::argmax;
use crate::model::preprocess::psnr;
use crate::model::{Model, Runner, Value};
use anyhow::Result;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct ValueDiff {
    pub name: String,
    pub max_abs_diff: f64,
    /// max abs diff / max abs value of the first input's value.
    pub rel_diff: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    pub front_end_max_abs_diff: Option<f64>,
    pub front_end_rel_diff: Option<f64>,
    pub outputs: Vec<ValueDiff>,
    /// Whether every output that looks like class scores keeps its argmax (null: none does).
    pub argmax_equal: Option<bool>,
    pub l2: f64,
    pub linf: f64,
    pub psnr_to_original: f64,
}

pub fn value_diff(a: &Value, b: &Value) -> ValueDiff {
    let max_abs_diff = a
        .data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    let scale = a.data.iter().map(|v| v.abs()).fold(0.0, f64::max);
    let rel_diff = if scale > 0.0 {
        max_abs_diff / scale
    } else {
        max_abs_diff
    };
    ValueDiff {
        name: a.name.clone(),
        max_abs_diff,
        rel_diff,
    }
}

/// Class scores: one row of more than one value.
fn looks_like_scores(v: &Value) -> bool {
    let n = v.data.len();
    n > 1 && v.shape.last() == Some(&n)
}

pub fn pixel_distances(x: &[f64], z: &[f64]) -> (f64, f64, f64) {
    let l2 = crate::model::preprocess::distance(x, z);
    let linf = x.iter().zip(z).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    (l2, linf, psnr(z, x))
}

/// Runs the model on a reference input once and compares others against it.
pub struct Verifier {
    runner: Runner,
    front_end_value: Option<String>,
    baseline: Vec<Value>,
}

impl Verifier {
    pub fn new(model: &Model, front_end_value: Option<&str>, reference: &[f32]) -> Result<Verifier> {
        let mut names: Vec<String> = front_end_value.iter().map(|s| s.to_string()).collect();
        names.extend(model.output_names.iter().cloned());
        let runner = model.runner(&names, true)?;
        let baseline = runner.run(reference)?;
        Ok(Verifier {
            runner,
            front_end_value: front_end_value.map(String::from),
            baseline,
        })
    }

    /// Compares `tensor` (whose pixels are `z`) with the reference (pixels `x`).
    pub fn compare(&self, x: &[f64], z: &[f64], tensor: &[f32]) -> Result<Comparison> {
        Ok(self.compare_values(x, z, tensor)?.0)
    }

    /// [`Self::compare`], with the values the run computed (the front end's output, then the
    /// model's outputs) for callers that need them too.
    pub fn compare_values(&self, x: &[f64], z: &[f64], tensor: &[f32]) -> Result<(Comparison, Vec<Value>)> {
        let values = self.runner.run(tensor)?;
        let (mut front_end_max_abs_diff, mut front_end_rel_diff) = (None, None);
        let mut outputs = vec![];
        let mut argmax_equal: Option<bool> = None;
        for (a, b) in self.baseline.iter().zip(&values) {
            let d = value_diff(a, b);
            if Some(&a.name) == self.front_end_value.as_ref() && front_end_max_abs_diff.is_none() {
                front_end_max_abs_diff = Some(d.max_abs_diff);
                front_end_rel_diff = Some(d.rel_diff);
                continue;
            }
            if looks_like_scores(a) {
                let same = argmax(&a.data) == argmax(&b.data);
                argmax_equal = Some(argmax_equal.unwrap_or(true) && same);
            }
            outputs.push(d);
        }
        let (l2, linf, psnr_to_original) = pixel_distances(x, z);
        let comparison = Comparison {
            front_end_max_abs_diff,
            front_end_rel_diff,
            outputs,
            argmax_equal,
            l2,
            linf,
            psnr_to_original,
        };
        Ok((comparison, values))
    }
}

/// The control: a random perturbation of x with L2 length `l2`, clipped to the box (for the
/// control only: it is meant to show what an ordinary change of this size does).
pub fn control_perturbation(x: &[f64], l2: f64, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let g: Vec<f64> = (0..x.len()).map(|_| rng.sample(StandardNormal)).collect();
    let len = crate::linop::norm(&g).max(f64::MIN_POSITIVE);
    x.iter()
        .zip(&g)
        .map(|(a, b)| (a + l2 * b / len).clamp(0.0, 1.0))
        .collect()
}

#[derive(Serialize)]
pub struct VerifyReport {
    pub model: String,
    pub a: String,
    pub b: String,
    #[serde(flatten)]
    pub comparison: Comparison,
    /// Every value the model computes, in graph order.
    pub layers: Vec<ValueDiff>,
    /// The first value where the two inputs differ at all (null: nowhere).
    pub first_difference: Option<String>,
    /// Largest relative difference of any value from the front end's output on (null: the front
    /// end output is not among the model's values). For a collision: float32 rounding.
    pub max_rel_diff_from_front_end_on: Option<f64>,
}

/// Compares two input tensors everywhere in the model.
pub fn verify_tensors(
    model: &Model,
    fe: &crate::frontend::FrontEnd,
    a: (&str, &[f32]),
    b: (&str, &[f32]),
) -> Result<VerifyReport> {
    let verifier = Verifier::new(model, fe.output_value.as_deref(), a.1)?;
    let xa = crate::model::preprocess::from_tensor(&fe.preprocess_map, a.1);
    let xb = crate::model::preprocess::from_tensor(&fe.preprocess_map, b.1);
    let comparison = verifier.compare(&xa, &xb, b.1)?;
    let names = model.all_value_names();
    let runner = model.runner(&names, false)?;
    let (va, vb) = (runner.run(a.1)?, runner.run(b.1)?);
    let layers: Vec<ValueDiff> = va.iter().zip(&vb).map(|(x, y)| value_diff(x, y)).collect();
    let first_difference = layers.iter().find(|d| d.max_abs_diff > 0.0).map(|d| d.name.clone());
    let front = fe
        .output_value
        .as_ref()
        .and_then(|v| layers.iter().position(|d| &d.name == v));
    let max_rel_diff_from_front_end_on = front.map(|i| layers[i..].iter().map(|d| d.rel_diff).fold(0.0, f64::max));
    Ok(VerifyReport {
        model: model.path.display().to_string(),
        a: a.0.into(),
        b: b.0.into(),
        comparison,
        layers,
        first_difference,
        max_rel_diff_from_front_end_on,
    })
}
