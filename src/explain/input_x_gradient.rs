//! Input × gradient: x ⊙ ∂score/∂x (Shrikumar et al. 2016). For a collision z of x the gradient is
//! the same and the map differs by exactly (z − x) ⊙ ∂score/∂x: different by design.

use super::{Attribution, AttributionMap};
use crate::differentiable::{Differentiable, Target};
use anyhow::Result;

/// x ⊙ ∂score/∂x, one backward pass; the gradient is kept beside the map.
pub struct InputXGradient;

impl Attribution for InputXGradient {
    fn name(&self) -> &'static str {
        "input-x-gradient"
    }

    fn attribute_with_progress(
        &self,
        engine: &Differentiable,
        input: &[f64],
        target: Target,
        progress: &dyn Fn(),
    ) -> Result<AttributionMap> {
        let g = engine.gradient(input, target)?;
        progress();
        Ok(AttributionMap {
            values: input.iter().zip(&g.gradient).map(|(x, d)| x * d).collect(),
            score: g.score,
            multiplied_gradient: Some(g.gradient),
            baseline_score: None,
        })
    }
}
