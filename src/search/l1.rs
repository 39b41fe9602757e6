//! The exact L1-closest point of one block's collision polytope to a target.
//!
//! In null-space coordinates the problem reads
//!
//! ```text
//! min Σᵢ wᵢ |(N a)ᵢ − dᵢ|   s.t.   lo ≤ N a ≤ hi,        d = t − x (the target's change)
//! ```
//!
//! with weights wᵢ > 0 (the units of the distance: 1 per pixel unit, or the preprocessing's
//! scale, which measures it in the tensor fed to the model).
//!
//! a linear program with a piecewise-linear objective, solved as one: fix for every pixel the
//! side of its breakpoint dᵢ it lies on (sᵢ = (N a)ᵢ ≥ dᵢ or ≤ dᵢ). On that sub-box the objective
//! is linear, and the primal active-set LP of [`super::active_set`] maximises −Σ σᵢ wᵢ sᵢ from the
//! current point. A breakpoint the LP holds with multiplier μ > 2wᵢ is worth crossing: beyond it
//! the pixel's slope turns from −wᵢ to +wᵢ in the direction the LP pushes, so the objective still
//! improves at rate μ − 2wᵢ. Such pixels change side and the LP goes on from the same point, where
//! the objective is continuous; every round therefore lowers the L1 distance, and the search stops
//! when no held breakpoint has μ > 2wᵢ: the LP's conditions of the L1 problem.
//!
//! The answer is certified by weak duality, not by those multipliers' rounding: for any u with
//! Nᵀu = 0, uᵀs = 0 on the polytope, so Σ wᵢ|sᵢ − dᵢ| ≥ Σᵢ min over [loᵢ, hiᵢ] of (wᵢ|s − dᵢ| + uᵢ s),
//! a sum of one-dimensional minima. u is built from the final multipliers and projected onto
//! the complement of N's range; the gap to the distance reached is the reported residual.

use super::active_set::{BlockPolytope, Bound, WarmStart};
use crate::linop::dot;

/// The L1-closest point of a block's polytope, with its certificate.
#[derive(Clone, Debug)]
pub struct L1Solution {
    pub coordinates: Vec<f64>,
    /// The change of each pixel, N a.
    pub delta: Vec<f64>,
    /// Σ wᵢ |(N a)ᵢ − dᵢ| at the solution.
    pub distance: f64,
    /// A certified lower bound of the distance over the whole polytope.
    pub lower_bound: f64,
    /// (distance − lower bound) / max(1, distance): 0 at a certified optimum.
    pub gap: f64,
    /// LP iterations over all rounds.
    pub iterations: usize,
    /// Rounds of the LP (sides changed between them).
    pub rounds: usize,
}

/// A breakpoint's multiplier beyond 2wᵢ by this much (relative) is worth crossing: smaller
/// excesses are rounding of a tie.
const CROSS_MARGIN: f64 = 1e-9;

/// Rounds at most per pixel of the block (each round crosses at least one breakpoint and lowers
/// the distance; the limit only guards against rounding ties).
const ROUNDS_PER_PIXEL: usize = 4;

/// The point of `p` closest in weighted L1 to the change `d` (pixel units, one per row of N).
pub fn closest_l1(p: &BlockPolytope, d: &[f64], weight: &[f64]) -> L1Solution {
    let rows = p.rows();
    assert_eq!(d.len(), rows);
    assert_eq!(weight.len(), rows);
    let (lo, hi) = (p.lo().to_vec(), p.hi().to_vec());
    // side +1: s ≥ d (the breakpoint is the sub-box's lower bound), −1: s ≤ d. The start a = 0
    // (the image's block) is on the side the target's change points away from.
    let mut side: Vec<f64> = d.iter().map(|&di| if di <= 0.0 { 1.0 } else { -1.0 }).collect();
    let mut a = vec![0.0; p.dim()];
    let mut held: Vec<Bound> = vec![];
    let (mut iterations, mut rounds) = (0, 0);
    let mut multipliers: Vec<(Bound, f64)> = vec![];
    // The last LP's factorisation: the next round's working set is the same but for the
    // breakpoints crossed, which stay held as the other bound at the same value.
    let mut warm: Option<WarmStart> = None;
    while rounds < ROUNDS_PER_PIXEL * rows + 8 {
        rounds += 1;
        let (sub_lo, sub_hi) = sub_box(&lo, &hi, d, &side);
        let sub = p.with_range(sub_lo, sub_hi);
        let gradient: Vec<f64> = side.iter().zip(weight).map(|(s, w)| -s * w).collect();
        let lp = sub.maximise_from(&sub.coordinates_of(&gradient), a, &held, warm.take());
        iterations += lp.iterations;
        a = lp.coordinates;
        multipliers = lp.multipliers;
        let crossing: Vec<Bound> = multipliers
            .iter()
            .filter(|&&(b, m)| m > 2.0 * weight[b.pixel] * (1.0 + CROSS_MARGIN) && is_breakpoint(b, &side, d, &lo, &hi))
            .map(|&(b, _)| b)
            .collect();
        if crossing.is_empty() {
            break;
        }
        for b in &crossing {
            side[b.pixel] = -side[b.pixel];
        }
        held = lp
            .working_set
            .into_iter()
            .filter(|b| !crossing.iter().any(|c| c.pixel == b.pixel))
            .collect();
        warm = lp.warm;
        if let Some(w) = &mut warm {
            for &b in &crossing {
                w.flip(b);
            }
        }
    }
    let delta = p.delta_of(&a);
    let distance: f64 = (0..rows).map(|i| weight[i] * (delta[i] - d[i]).abs()).sum();
    let lower_bound = certified_lower_bound(p, &side, &multipliers, d, weight);
    L1Solution {
        coordinates: a,
        delta,
        distance,
        lower_bound,
        gap: ((distance - lower_bound) / distance.max(1.0)).max(0.0),
        iterations,
        rounds,
    }
}

/// The sub-box of the sides chosen: [max(lo, d), hi] on side +1, [lo, min(hi, d)] on side −1.
fn sub_box(lo: &[f64], hi: &[f64], d: &[f64], side: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let mut sub_lo = lo.to_vec();
    let mut sub_hi = hi.to_vec();
    for i in 0..d.len() {
        if side[i] > 0.0 {
            sub_lo[i] = d[i].clamp(lo[i], hi[i]);
        } else {
            sub_hi[i] = d[i].clamp(lo[i], hi[i]);
        }
    }
    (sub_lo, sub_hi)
}

/// Whether bound `b` of the sub-box is a breakpoint strictly inside the pixel's range (a bound
/// of the range itself cannot be crossed).
fn is_breakpoint(b: Bound, side: &[f64], d: &[f64], lo: &[f64], hi: &[f64]) -> bool {
    let i = b.pixel;
    if side[i] > 0.0 {
        !b.upper && d[i] > lo[i]
    } else {
        b.upper && d[i] < hi[i]
    }
}

/// Σᵢ min over [loᵢ, hiᵢ] of (wᵢ|s − dᵢ| + uᵢ s) for u = −σw + Σ μ (±eᵢ) from the LP's last
/// multipliers, projected so that Nᵀu = 0 (what rounding leaves of Nᵀu is charged at the largest
/// ‖a‖ the box allows); lo and hi are `p`'s whole range, not the last sub-box.
fn certified_lower_bound(
    p: &BlockPolytope,
    side: &[f64],
    multipliers: &[(Bound, f64)],
    d: &[f64],
    weight: &[f64],
) -> f64 {
    let (lo, hi) = (p.lo(), p.hi());
    let mut u: Vec<f64> = side.iter().zip(weight).map(|(s, w)| -s * w).collect();
    for &(b, m) in multipliers {
        u[b.pixel] += if b.upper { -m.max(0.0) } else { m.max(0.0) };
    }
    let along = p.coordinates_of(&u);
    for (ui, ni) in u.iter_mut().zip(p.delta_of(&along)) {
        *ui -= ni;
    }
    let left = p.coordinates_of(&u);
    let scale = p.largest_move();
    let per_pixel: f64 = (0..d.len())
        .map(|i| {
            let f = |s: f64| weight[i] * (s - d[i]).abs() + u[i] * s;
            f(lo[i]).min(f(hi[i])).min(f(d[i].clamp(lo[i], hi[i])))
        })
        .sum();
    per_pixel - dot(&left, &left).sqrt() * scale
}
