//! PGD (Madry et al.): from the clean pixels or a uniform random point of the ε-ball, `steps`
//! steps of size `step_size` along the steepest-ascent direction of the objective, each followed
//! by the projection onto the ε-ball ∩ [0, 1]ⁿ. Returns the last iterate, as torchattacks does.

use super::{Attack, Classifier, Goal, ThreatModel};
use anyhow::Result;
use rand_chacha::ChaCha8Rng;

#[derive(Clone, Copy, Debug)]
pub struct Pgd {
    pub threat: ThreatModel,
    pub steps: usize,
    pub step_size: f64,
    pub random_start: bool,
}

impl Pgd {
    /// Madry's schedule: `steps` steps of 2.5·ε/steps, with a random start.
    pub fn madry(threat: ThreatModel, steps: usize) -> Pgd {
        Pgd {
            threat,
            steps,
            step_size: 2.5 * threat.eps / steps.max(1) as f64,
            random_start: true,
        }
    }
}

impl Attack for Pgd {
    fn name(&self) -> &'static str {
        "pgd"
    }
    fn threat(&self) -> ThreatModel {
        self.threat
    }
    fn perturb(&self, model: &Classifier, pixels: &[f64], goal: Goal, rng: &mut ChaCha8Rng) -> Result<Vec<f64>> {
        self.threat.check(pixels)?;
        let mut z = if self.random_start {
            self.threat.random_start(pixels, rng)
        } else {
            pixels.to_vec()
        };
        for _ in 0..self.steps {
            let (_, g) = model.objective(&z, goal)?;
            let d = self.threat.ascent_direction(&g);
            for (zi, di) in z.iter_mut().zip(&d) {
                *zi += self.step_size * di;
            }
            self.threat.project(pixels, &mut z);
        }
        Ok(z)
    }
}
