//! Adversarial attacks in pixel space: FGSM and PGD (Madry et al.) behind one trait, with the
//! call shape of torchattacks/Foolbox — a threat model (ε, norm), the clean pixels, a goal, and a
//! seeded generator; the result is the adversarial pixels, inside the ε-ball and [0, 1].
//!
//! Attacks see the model through a [`Classifier`]: the differentiable engine behind the affine
//! pixel→tensor map of the preprocessing, which gives logits and the pixel-space gradient of the
//! attack objective (the cross-entropy of the softmax of output 0).
//!
//! ```
//! use blindspot::attack::{Attack, Classifier, Goal, Pgd, ThreatModel};
//! use blindspot::model::{digits::EMBEDDED, embedded::MODELS, preprocess::decode_image};
//! use blindspot::Preprocess;
//! use rand::SeedableRng;
//!
//! let model = MODELS[0].load().unwrap();
//! let pre = Preprocess::default();
//! let classifier = Classifier::new(&model, pre.gather(&model.input_shape).unwrap()).unwrap();
//! let digit = &EMBEDDED[0];
//! let grid = pre.grid(&model.input_shape).unwrap();
//! let x = decode_image(digit.png, "digit", &grid).unwrap().0.data;
//!
//! let threat = ThreatModel::linf(0.1);
//! let pgd = Pgd::madry(threat, 10);
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
//! let goal = Goal::Untargeted { label: digit.label as usize };
//! let z = pgd.perturb(&classifier, &x, goal, &mut rng).unwrap();
//! assert!(threat.contains(&x, &z));
//! println!("{} → class {}", pgd.name(), classifier.predict(&z).unwrap());
//! ```

mod fgsm;
mod pgd;
mod variants;

pub use fgsm::Fgsm;
pub use pgd::Pgd;
pub use variants::null_space_variants;

use crate::differentiable::{DType, Device, Differentiable, Tensor};
use crate::linop::AffineGather;
use crate::model::Model;
use crate::search::{toward_within, Region};
use anyhow::{bail, Result};
use rand_chacha::ChaCha8Rng;

/// What the attack wants from the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Goal {
    /// Any class but `label` (ascends the cross-entropy of `label`).
    Untargeted { label: usize },
    /// The class `class` (descends the cross-entropy of `class`).
    Targeted { class: usize },
}

impl Goal {
    /// Whether a prediction achieves the goal.
    pub fn achieved(&self, predicted: usize) -> bool {
        match *self {
            Goal::Untargeted { label } => predicted != label,
            Goal::Targeted { class } => predicted == class,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Norm {
    Linf,
    L2,
}

/// The set of allowed perturbations: ‖x' − x‖ ≤ ε in the norm, intersected with x' ∈ [0, 1]ⁿ.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ThreatModel {
    pub eps: f64,
    pub norm: Norm,
}

impl ThreatModel {
    pub fn linf(eps: f64) -> Self {
        ThreatModel { eps, norm: Norm::Linf }
    }
    pub fn l2(eps: f64) -> Self {
        ThreatModel { eps, norm: Norm::L2 }
    }

    /// Checks that ε is a finite non-negative number and that the clean pixels lie in [0, 1], so
    /// that the feasible set is not empty.
    pub fn check(&self, x: &[f64]) -> Result<()> {
        if !(self.eps.is_finite() && self.eps >= 0.0) {
            bail!("ε must be a finite number ≥ 0, not {}", self.eps);
        }
        if self.norm == Norm::Linf && self.eps > 1.0 {
            bail!(
                "ε = {} is more than the whole pixel range: pixel units are [0, 1]; did you mean {}/255?",
                self.eps,
                self.eps
            );
        }
        if let Some((k, v)) = x.iter().enumerate().find(|(_, v)| !(0.0..=1.0).contains(*v)) {
            bail!("pixel {k} is {v}: attacks take pixels in [0, 1]");
        }
        Ok(())
    }

    /// The feasible set around the clean pixels `x` as a search region: a box for L∞ (the ε-box
    /// ∩ [0, 1]ⁿ), the pixel box and the ε-ball for L2.
    pub fn region(&self, x: &[f64]) -> Region {
        match self.norm {
            Norm::Linf => Region::linf_ball(x, self.eps),
            Norm::L2 => Region::l2_ball(x, self.eps),
        }
    }

    /// ‖z − x‖ in the threat model's norm (the L2 norm as the plain sum of squares, in order).
    pub fn distance(&self, x: &[f64], z: &[f64]) -> f64 {
        let d = x.iter().zip(z).map(|(a, b)| b - a);
        match self.norm {
            Norm::Linf => d.map(f64::abs).fold(0.0, f64::max),
            Norm::L2 => d.map(|v| v * v).sum::<f64>().sqrt(),
        }
    }

    /// Whether `z` is inside the ε-ball around `x` and inside [0, 1]ⁿ, as computed in f64.
    pub fn contains(&self, x: &[f64], z: &[f64]) -> bool {
        z.iter().all(|v| (0.0..=1.0).contains(v)) && self.distance(x, z) <= self.eps
    }

    /// Projects `z` onto the ε-ball around `x` (which must lie in [0, 1]ⁿ) intersected with
    /// [0, 1]ⁿ. For L∞ both sets are boxes and their intersection is a box: the projection is
    /// exact. For L2 it projects onto the ball and then clips to [0, 1], as Madry et al. and
    /// torchattacks do: the result is feasible (clipping towards x only shortens z − x) but not
    /// always the nearest feasible point. Rounding is repaired so that [`Self::contains`] holds.
    pub fn project(&self, x: &[f64], z: &mut [f64]) {
        let eps = self.eps;
        match self.norm {
            Norm::Linf => {
                for (zi, &xi) in z.iter_mut().zip(x) {
                    let v = zi.clamp((xi - eps).max(0.0), (xi + eps).min(1.0));
                    *zi = toward_within(xi, v, eps);
                }
            }
            Norm::L2 => {
                let mut shrink = 1.0;
                loop {
                    let r = self.distance(x, z);
                    if r <= eps && z.iter().all(|v| (0.0..=1.0).contains(v)) {
                        return;
                    }
                    let factor = if r > eps { eps / r * shrink } else { 1.0 };
                    for (zi, &xi) in z.iter_mut().zip(x) {
                        *zi = (xi + (*zi - xi) * factor).clamp(0.0, 1.0);
                    }
                    // A second pass only when rounding left the norm above ε.
                    shrink *= 1.0 - 1e-12;
                }
            }
        }
    }

    /// The steepest-ascent direction of unit norm for a gradient: sign(g) for L∞, g/‖g‖₂ for L2
    /// (zero where the gradient is zero).
    pub fn ascent_direction(&self, g: &[f64]) -> Vec<f64> {
        match self.norm {
            Norm::Linf => g
                .iter()
                .map(|&v| {
                    if v > 0.0 {
                        1.0
                    } else if v < 0.0 {
                        -1.0
                    } else {
                        0.0
                    }
                })
                .collect(),
            Norm::L2 => {
                let n = g.iter().map(|v| v * v).sum::<f64>().sqrt();
                if n > 0.0 {
                    g.iter().map(|v| v / n).collect()
                } else {
                    vec![0.0; g.len()]
                }
            }
        }
    }

    /// A point drawn uniformly from the ε-ball around `x`, then projected onto [0, 1]ⁿ.
    pub fn random_start(&self, x: &[f64], rng: &mut ChaCha8Rng) -> Vec<f64> {
        use rand::Rng;
        use rand_distr::StandardNormal;
        let mut z: Vec<f64> = match self.norm {
            Norm::Linf => x.iter().map(|&xi| xi + rng.gen_range(-self.eps..=self.eps)).collect(),
            Norm::L2 => {
                let d: Vec<f64> = x.iter().map(|_| rng.sample(StandardNormal)).collect();
                let n = d.iter().map(|v: &f64| v * v).sum::<f64>().sqrt().max(f64::MIN_POSITIVE);
                let radius = self.eps * rng.gen::<f64>().powf(1.0 / x.len() as f64);
                x.iter().zip(&d).map(|(xi, di)| xi + di * radius / n).collect()
            }
        };
        self.project(x, &mut z);
        z
    }
}

/// One attack method: interchangeable with every other one.
pub trait Attack {
    fn name(&self) -> &'static str;
    fn threat(&self) -> ThreatModel;
    /// Adversarial pixels for `pixels` (in [0, 1]), inside the threat model.
    fn perturb(&self, model: &Classifier, pixels: &[f64], goal: Goal, rng: &mut ChaCha8Rng) -> Result<Vec<f64>>;
}

/// A classifier on pixels: the differentiable engine behind the affine preprocessing map.
pub struct Classifier {
    engine: Differentiable,
    input_name: String,
    map: AffineGather,
}

impl Classifier {
    /// The model in f32 on the CPU, as it is deployed.
    pub fn new(model: &Model, map: AffineGather) -> Result<Classifier> {
        Classifier::on(model, map, &Device::Cpu, DType::F32)
    }

    /// The model on a device in a dtype (f64 for finite-difference checks).
    pub fn on(model: &Model, map: AffineGather, device: &Device, dtype: DType) -> Result<Classifier> {
        let engine = Differentiable::on(model, device, dtype)?;
        let n: usize = engine.input_shape().iter().product();
        if map.len() != n {
            bail!(
                "the preprocessing map gives {} values; the model takes {:?} ({n} values)",
                map.len(),
                engine.input_shape()
            );
        }
        Ok(Classifier {
            engine,
            input_name: model.input_name.clone(),
            map,
        })
    }

    /// The pixel→tensor map.
    pub fn map(&self) -> &AffineGather {
        &self.map
    }

    /// Output 0 (the logits) on these pixels.
    pub fn logits(&self, pixels: &[f64]) -> Result<Vec<f64>> {
        let outputs = self.engine.outputs(&self.map.evaluate(pixels))?;
        Ok(outputs.into_iter().next().map(|v| v.data).unwrap_or_default())
    }

    /// The class with the largest logit.
    pub fn predict(&self, pixels: &[f64]) -> Result<usize> {
        Ok(crate::model::argmax(&self.logits(pixels)?))
    }

    /// The attack objective J and its gradient with respect to the pixels. J is the cross-entropy
    /// of softmax(output 0) at the true label (untargeted) or minus it at the target class
    /// (targeted): every attack ascends J.
    pub fn objective(&self, pixels: &[f64], goal: Goal) -> Result<(f64, Vec<f64>)> {
        let (class, sign) = match goal {
            Goal::Untargeted { label } => (label, 1.0),
            Goal::Targeted { class } => (class, -1.0),
        };
        let input = self.engine.input_tensor(&self.map.evaluate(pixels))?;
        let pass = self.engine.forward(&input)?;
        let out = &pass.outputs[0];
        let z = out.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
        if class >= z.len() {
            bail!("class {class} is out of range: output 0 holds {} values", z.len());
        }
        let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = z.iter().map(|v| (v - m).exp()).sum();
        let loss = m + sum.ln() - z[class];
        // dCE/dz = softmax(z) − onehot(class).
        let seed: Vec<f64> = z
            .iter()
            .enumerate()
            .map(|(i, v)| sign * ((v - m).exp() / sum - if i == class { 1.0 } else { 0.0 }))
            .collect();
        let seed = Tensor::from_vec(seed, out.dims(), out.device())?.to_dtype(out.dtype())?;
        let name = self.engine.output_names()[0].clone();
        let mut grads = self.engine.backward(&pass, vec![(name, seed)], &[&self.input_name])?;
        let tensor_grad = match grads.remove(&self.input_name) {
            Some(g) => g.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?,
            None => vec![0.0; self.map.len()],
        };
        Ok((sign * loss, self.pixel_gradient(&tensor_grad)))
    }

    /// The adjoint of the preprocessing map: Σ over the tensor elements reading pixel k of
    /// scale × tensor gradient.
    pub fn pixel_gradient(&self, tensor_grad: &[f64]) -> Vec<f64> {
        let mut g = vec![0.0; self.map.input_dim];
        for (j, src) in self.map.source.iter().enumerate() {
            if let Some(k) = *src {
                g[k] += self.map.scale[j] * tensor_grad[j];
            }
        }
        g
    }
}
