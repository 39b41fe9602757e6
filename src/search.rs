//! Null-space search: inputs z with A z = A x inside the pixel box [0, 1].
//!
//! Feasibility is part of the search, never a clip afterwards: every point returned is
//! x + (a null-space vector), computed by Dykstra's alternating projections between the affine set
//! {z : A z = A x} and the box. The last iterate lies on the affine set; if it still leaves the box
//! by rounding, it is pulled back along the segment towards x, which stays on the affine set.

use crate::linop::norm;
use crate::nullspace::{NullSpace, EXACT_RELATIVE};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Random null-space directions, as far as --strength allows.
    Random,
    /// As far from the original as the box allows.
    Far,
    /// As close to --target as the collision allows.
    Target,
}

#[derive(Clone, Debug)]
pub struct SearchOptions {
    pub count: usize,
    /// L2 length (pixel units) of random directions before the box is enforced.
    pub strength: f64,
    /// Dykstra iterations per projection.
    pub max_iterations: usize,
    /// Ascent steps of `far` mode.
    pub far_steps: usize,
}

impl SearchOptions {
    pub fn new(count: usize, strength: f64) -> Self {
        SearchOptions {
            count,
            strength,
            max_iterations: 300,
            far_steps: 8,
        }
    }
}

/// What one projection onto {A z = A x} ∩ box did.
#[derive(Clone, Debug)]
pub struct Projection {
    pub z: Vec<f64>,
    pub iterations: usize,
    /// Fraction of the final step kept to stay in the box (1 when none was needed).
    pub pullback: f64,
    /// Pixels on the edge of [0, 1] that the collision holds exactly where they are.
    pub pinned: usize,
    /// ‖A (z − x)‖ ≤ response_bound · ‖z − x‖: the largest singular value of the directions used
    /// (see [`NullSpace::response_bound`]).
    pub response_bound: f64,
}

/// Accuracy of the projections inside Dykstra's iterations (‖A z‖ ≤ this · ‖A v‖): they only
/// steer; the last projection is exact (see [`EXACT_RELATIVE`]).
const DYKSTRA_RELATIVE: f64 = 1e-4;

/// A step smaller than this (pixel units) out of a pixel on the edge counts as staying there.
const EDGE_STEP: f64 = 1e-6;

/// The point of {z : A z = A x} ∩ [0, 1]ⁿ closest to `w` (Dykstra), x in the box.
///
/// Dykstra converges to the answer but never lands on it exactly, and images have many pixels on
/// the edge of the box (black backgrounds, saturated highlights). So the result is finished
/// exactly: pixels on the edge that the answer leaves there (or pushes outwards) are pinned, the
/// step is projected onto the null directions that keep them fixed (repeated while that pushes
/// other edge pixels outwards), and what remains out of the box is handled by shortening the
/// step. The collision stays exactly on {A z = A x}; nothing is clipped.
pub fn project_feasible(ns: &NullSpace, x: &[f64], w: &[f64], max_iterations: usize) -> Projection {
    let n = x.len();
    let mut y = w.to_vec();
    let (mut p, mut q) = (vec![0.0; n], vec![0.0; n]);
    let mut u = x.to_vec();
    let mut iterations = 0;
    let scale = (n as f64).sqrt();
    // What the first layer may still see of the change: nothing beside its view of the image.
    let floor = EXACT_RELATIVE * ns.response_norm(x);
    // Iterates closer than this (RMS per pixel) count as settled. Block projections are cheap, so
    // they settle to rounding; iterative ones stop far below what float32 pixels can hold, since
    // the last projection and the pullback make the result exact whatever the iterate.
    let settled = if ns.is_matrix_free() { 1e-5 } else { 1e-9 };
    let loose = if ns.is_matrix_free() {
        DYKSTRA_RELATIVE
    } else {
        EXACT_RELATIVE
    };
    for it in 0..max_iterations {
        iterations = it + 1;
        let t: Vec<f64> = (0..n).map(|i| y[i] + p[i] - x[i]).collect();
        let step = ns.project_within(&t, loose, floor);
        let previous = std::mem::replace(&mut u, (0..n).map(|i| x[i] + step[i]).collect());
        for i in 0..n {
            p[i] = y[i] + p[i] - u[i];
            let t2 = u[i] + q[i];
            y[i] = t2.clamp(0.0, 1.0);
            q[i] = t2 - y[i];
        }
        let inside = u.iter().all(|v| (0.0..=1.0).contains(v));
        let change = (0..n).map(|i| (u[i] - previous[i]).powi(2)).sum::<f64>().sqrt();
        if inside && change <= settled * scale {
            break;
        }
    }
    // The iterations' projections were loose; the last one is not.
    let last = ns.project_within(&(0..n).map(|i| u[i] - x[i]).collect::<Vec<_>>(), EXACT_RELATIVE, floor);
    let (step, pinned, response_bound) = keep_edges(ns, x, last, floor);
    let pullback = pullback_into_box(x, &step);
    let z = (0..n)
        .map(|i| {
            if pullback < 1.0 {
                x[i] + pullback * step[i]
            } else {
                x[i] + step[i]
            }
        })
        .collect();
    Projection {
        z,
        iterations,
        pullback,
        pinned,
        response_bound,
    }
}

/// Projects the null-space `step` so that pixels on the edge of the box do not move outwards.
fn keep_edges(ns: &NullSpace, x: &[f64], step: Vec<f64>, floor: f64) -> (Vec<f64>, usize, f64) {
    let outwards = |i: usize, d: f64, slack: f64| (x[i] <= 0.0 && d < slack) || (x[i] >= 1.0 && d > -slack);
    let mut pinned: Vec<bool> = (0..x.len()).map(|i| outwards(i, step[i], EDGE_STEP)).collect();
    if !(0..x.len()).any(|i| pinned[i] && step[i] != 0.0) {
        return (step, 0, ns.response_bound);
    }
    let mut current = step.clone();
    let mut bound = ns.response_bound;
    // Each round pins at least one more pixel; a handful of rounds settles every image seen.
    for _ in 0..8 {
        let Ok(restricted) = ns.pinned(&pinned) else {
            break;
        };
        current = restricted.project_within(&step, EXACT_RELATIVE, floor);
        bound = ns.response_bound.max(restricted.response_bound);
        let more: Vec<usize> = (0..x.len())
            .filter(|&i| !pinned[i] && outwards(i, current[i], 0.0) && current[i] != 0.0)
            .collect();
        if more.is_empty() {
            break;
        }
        for i in more {
            pinned[i] = true;
        }
    }
    let count = pinned.iter().filter(|&&p| p).count();
    (current, count, bound)
}

/// Largest λ in [0, 1] with x + λ d in the box.
fn pullback_into_box(x: &[f64], step: &[f64]) -> f64 {
    let mut lambda: f64 = 1.0;
    for (&xi, &d) in x.iter().zip(step) {
        let ui = xi + d;
        if ui > 1.0 && d > 0.0 {
            lambda = lambda.min((1.0 - xi) / d);
        } else if ui < 0.0 && d < 0.0 {
            lambda = lambda.min(-xi / d);
        }
    }
    lambda.max(0.0)
}

pub fn random_null_direction(ns: &NullSpace, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let g: Vec<f64> = (0..ns.dim).map(|_| rng.sample(StandardNormal)).collect();
    let d = ns.project(&g);
    let len = norm(&d);
    if len == 0.0 {
        d
    } else {
        d.into_iter().map(|v| v / len).collect()
    }
}

/// Collisions for `x` in the chosen mode; `target` is used by `Mode::Target` only.
pub fn search(
    ns: &NullSpace,
    x: &[f64],
    mode: Mode,
    target: Option<&[f64]>,
    opts: &SearchOptions,
    rng: &mut ChaCha8Rng,
    progress: &dyn Fn(),
) -> Vec<Projection> {
    let mut out = Vec::with_capacity(opts.count);
    for k in 0..opts.count {
        let found = match mode {
            Mode::Random => {
                let d = random_null_direction(ns, rng);
                let w: Vec<f64> = x.iter().zip(&d).map(|(a, b)| a + opts.strength * b).collect();
                project_feasible(ns, x, &w, opts.max_iterations)
            }
            Mode::Target => {
                let t = target.expect("target mode needs a target");
                // Several target collisions differ only by their start when k > 0.
                let w: Vec<f64> = if k == 0 {
                    t.to_vec()
                } else {
                    let d = random_null_direction(ns, rng);
                    t.iter().zip(&d).map(|(a, b)| a + 0.05 * opts.strength * b).collect()
                };
                project_feasible(ns, x, &w, opts.max_iterations * 3)
            }
            Mode::Far => far_from(ns, x, k, opts, rng),
        };
        out.push(found);
        progress();
    }
    out
}

/// Projected ascent on ||z − x|| from a far corner of the box.
fn far_from(ns: &NullSpace, x: &[f64], start: usize, opts: &SearchOptions, rng: &mut ChaCha8Rng) -> Projection {
    // Start 0: the corner opposite x; later starts: random corners.
    let corner: Vec<f64> = x
        .iter()
        .map(|&v| {
            if start == 0 {
                if v < 0.5 {
                    1.0
                } else {
                    0.0
                }
            } else if rng.gen_bool(0.5) {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    let mut best = project_feasible(ns, x, &corner, opts.max_iterations);
    let mut best_distance = distance(&best.z, x);
    for _ in 0..opts.far_steps {
        let w: Vec<f64> = best.z.iter().zip(x).map(|(z, x)| x + 2.0 * (z - x)).collect();
        let next = project_feasible(ns, x, &w, opts.max_iterations);
        let d = distance(&next.z, x);
        if d <= best_distance * (1.0 + 1e-4) {
            if d > best_distance {
                best = next;
            }
            break;
        }
        best = next;
        best_distance = d;
    }
    best
}

pub fn distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>().sqrt()
}

/// Peak signal-to-noise ratio (dB) for values in [0, 1]; infinite for identical inputs.
pub fn psnr(a: &[f64], b: &[f64]) -> f64 {
    let mse = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>() / a.len() as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        -10.0 * mse.log10()
    }
}
