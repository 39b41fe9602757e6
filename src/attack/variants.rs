//! Null-space variants of an adversarial image: other images the model cannot tell from it
//! (A z = A z_adv at the front end, so every later layer computes the same numbers), each still
//! inside the threat model around the clean image. The feasible set is the front end's affine set
//! intersected with the threat model's region (for L∞ the ε-box ∩ [0, 1]ⁿ, itself a box), so the
//! null-space search handles it as it handles the pixel box: nothing is clipped.

use super::ThreatModel;
use crate::nullspace::NullSpace;
use crate::search::{search_in, Mode, Projection, SearchOptions};
use anyhow::{bail, Result};
use rand_chacha::ChaCha8Rng;

/// `count` variants of `adversarial`: for each, the feasible point nearest to a corner of the
/// region's box (the first the corner opposite the adversarial image, the others random corners),
/// so that they lie far from it and from each other.
pub fn null_space_variants(
    ns: &NullSpace,
    clean: &[f64],
    adversarial: &[f64],
    threat: ThreatModel,
    count: usize,
    rng: &mut ChaCha8Rng,
    progress: &dyn Fn(),
) -> Result<Vec<Projection>> {
    threat.check(clean)?;
    let region = threat.region(clean);
    if !region.contains(adversarial) {
        bail!(
            "the adversarial image lies outside the threat model ({:?} distance {:e} to the clean image, ε {:e}, or a pixel outside [0, 1]): its variants would too",
            threat.norm,
            threat.distance(clean, adversarial),
            threat.eps
        );
    }
    // One projection per variant, from its own corner: the ascent of `far` mode would multiply
    // the cost for little more distance.
    let opts = SearchOptions {
        far_steps: 0,
        far_step_iterations: None,
        dykstra_far_steps: 0,
        ..SearchOptions::new(count, 0.0)
    };
    // Block null spaces are searched exactly, per block, whatever lies on the edge (inside an L2
    // ball too: see `blockwise::CollisionSet::project_in_ball`). Otherwise the pixels of the
    // adversarial image on the edge of the region stay there: held from the start, Dykstra needs
    // one restricted null space instead of discovering them one step at a time.
    let held;
    let searched = if !ns.is_matrix_free() {
        ns
    } else {
        held = ns.pinned(&region.on_edge(adversarial))?;
        &held
    };
    Ok(search_in(
        searched,
        adversarial,
        &region,
        Mode::Far,
        None,
        &opts,
        rng,
        progress,
    ))
}
