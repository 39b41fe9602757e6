//! The gradient (saliency) map: ∂score/∂input, Simonyan, Vedaldi & Zisserman (2014), signed.

use super::{Attribution, AttributionMap};
use crate::differentiable::{Differentiable, Target};
use anyhow::Result;

/// ∂score/∂input at the input, one backward pass.
pub struct Gradient;

impl Attribution for Gradient {
    fn name(&self) -> &'static str {
        "gradient"
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
            values: g.gradient,
            score: g.score,
            multiplied_gradient: None,
            baseline_score: None,
        })
    }
}
