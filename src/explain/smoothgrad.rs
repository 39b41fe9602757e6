//! SmoothGrad (Smilkov et al. 2017): the mean gradient over `samples` copies x + ε_k of the input,
//! ε_k ~ N(0, σ²) per value, σ = noise × (max x − min x) (0.15 in the paper's recommended range).
//!
//! The noise is drawn from ChaCha8 seeded with `seed` and does not depend on the input: compared
//! inputs get the same ε_k, so for a collision z of x every z + ε_k still collides with x + ε_k and
//! the maps agree.

use super::{score_of, Attribution, AttributionMap};
use crate::differentiable::{Differentiable, Target};
use anyhow::Result;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

pub struct SmoothGrad {
    /// Absolute noise standard deviation, in the units of the input tensor.
    pub sigma: f64,
    pub samples: usize,
    pub seed: u64,
}

impl SmoothGrad {
    /// σ = `noise` × the value range of `reference` (the original input).
    pub fn for_reference(reference: &[f64], noise: f64, samples: usize, seed: u64) -> SmoothGrad {
        let (lo, hi) = reference
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
        let range = if hi > lo { hi - lo } else { 1.0 };
        SmoothGrad {
            sigma: noise * range,
            samples,
            seed,
        }
    }
}

impl Attribution for SmoothGrad {
    fn name(&self) -> &'static str {
        "smoothgrad"
    }

    fn evaluations(&self) -> usize {
        self.samples
    }

    fn details(&self) -> super::Details {
        super::Details {
            noise_sigma: Some(self.sigma),
            ..Default::default()
        }
    }

    fn attribute_with_progress(
        &self,
        engine: &Differentiable,
        input: &[f64],
        target: Target,
        progress: &dyn Fn(),
    ) -> Result<AttributionMap> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let mut mean = vec![0.0; input.len()];
        let mut noisy = vec![0.0; input.len()];
        for _ in 0..self.samples {
            for (p, x) in noisy.iter_mut().zip(input) {
                let e: f64 = rng.sample(StandardNormal);
                *p = x + self.sigma * e;
            }
            let g = engine.gradient(&noisy, target)?;
            for (m, d) in mean.iter_mut().zip(&g.gradient) {
                *m += d / self.samples as f64;
            }
            progress();
        }
        Ok(AttributionMap {
            values: mean,
            score: score_of(&engine.outputs(input)?, target)?,
            multiplied_gradient: None,
            baseline_score: None,
        })
    }
}
