//! FGSM (Goodfellow et al.): one step of size ε along the steepest-ascent direction of the
//! objective — sign(∇J) for L∞, ∇J/‖∇J‖₂ for L2 — then projection onto [0, 1].

use super::{Attack, Classifier, Goal, ThreatModel};
use anyhow::Result;
use rand_chacha::ChaCha8Rng;

#[derive(Clone, Copy, Debug)]
pub struct Fgsm {
    pub threat: ThreatModel,
}

impl Attack for Fgsm {
    fn name(&self) -> &'static str {
        "fgsm"
    }
    fn threat(&self) -> ThreatModel {
        self.threat
    }
    fn perturb(&self, model: &Classifier, pixels: &[f64], goal: Goal, _rng: &mut ChaCha8Rng) -> Result<Vec<f64>> {
        self.threat.check(pixels)?;
        let (_, g) = model.objective(pixels, goal)?;
        let d = self.threat.ascent_direction(&g);
        let mut z: Vec<f64> = pixels.iter().zip(&d).map(|(x, d)| x + self.threat.eps * d).collect();
        self.threat.project(pixels, &mut z);
        Ok(z)
    }
}
