//! Null-space search: inputs z with A z = A x inside a region of pixel space — the pixel box
//! [0, 1]ⁿ, or (for an attack's variants) the box intersected with an ε-ball around the clean
//! image: a smaller box for L∞, a box and a ball for L2.
//!
//! Feasibility is part of the search, never a clip afterwards: every point returned is
//! x + (a null-space vector). Where the null space is block-diagonal (dense layers, patchify
//! convolutions, token MatMuls, tiles of a convolution) every mode is solved exactly, block by
//! block ([`blockwise`]), the L2 ball through its one multiplier. Null spaces known only by
//! projection (matrix-free) use Dykstra's alternating projections between the affine set
//! {z : A z = A x}, the box and the ball; the last iterate lies on the affine set, and if it
//! still leaves the region by rounding, it is pulled back along the segment towards x, which
//! stays on the affine set.

pub mod active_set;
pub mod blockwise;
mod far;
pub mod l1;

use far::{far_corner, far_corner_point, far_from};

use crate::linop::norm;
use crate::model::preprocess::distance;
use crate::nullspace::{NullSpace, EXACT_RELATIVE};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Random null-space directions, as far as --strength allows.
    Random,
    /// As far from the original as the box allows.
    Far,
    /// As close to --target as the collision allows.
    Target,
}

/// What "closest to the target" measures in `target` mode (pixel units).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Distance {
    /// Euclidean: the exact projection (a QP per block).
    #[default]
    L2,
    /// Σ |zᵢ − tᵢ| in the units of the tensor fed to the model: an LP per block (the objective of
    /// per-patch SLSQP recipes, solved exactly).
    L1,
}

/// Where collisions may lie: a box per pixel, optionally intersected with an L2 ball. Membership
/// is decided in f64 exactly as [`Region::contains`] computes it, and every bound is tightened
/// so that a point inside the box is within ε of the ball's centre as f64 computes the difference.
#[derive(Clone, Debug)]
pub struct Region {
    lo: Vec<f64>,
    hi: Vec<f64>,
    ball: Option<Ball>,
    /// How the exact finish treats pixels a step would carry across a bound (see `keep_edges`).
    finish: Finish,
}

/// The exact finish after Dykstra's iterations.
#[derive(Clone, Copy, Debug)]
struct Finish {
    /// Finishing steps at most; each one after the first starts where the last one stopped.
    steps: usize,
    /// A step holds the pixels it would carry across a bound before this fraction of its length;
    /// later crossings shorten the whole step instead. `None`: only pixels on the edge are held.
    hold_before: Option<f64>,
}

/// The pixel box: one finishing step, pixels on the edge held, the rest shortens the step (what
/// every collision of `collide` and the demo is computed with).
const BOX_FINISH: Finish = Finish {
    steps: 1,
    hold_before: None,
};

/// Around an adversarial image nearly every pixel starts close to a bound of the ε-box, and a
/// restricted projection costs seconds on a large image: every pixel that would cross (bar
/// rounding) is held at once, so that a few finishing steps suffice.
const LINF_FINISH: Finish = Finish {
    steps: 12,
    hold_before: Some(1.0 - 1e-6),
};

/// An L2 ball: there the ball, not the box, stops most steps; holding every crossing pixel of the
/// box left some variants no direction at all, so only early crossings are held.
const L2_FINISH: Finish = Finish {
    steps: 12,
    hold_before: Some(0.5),
};

#[derive(Clone, Debug)]
struct Ball {
    center: Vec<f64>,
    radius: f64,
}

impl Region {
    /// The pixel box [0, 1]ⁿ.
    pub fn unit(n: usize) -> Region {
        Region {
            lo: vec![0.0; n],
            hi: vec![1.0; n],
            ball: None,
            finish: BOX_FINISH,
        }
    }

    /// [0, 1]ⁿ ∩ {z : ‖z − x‖∞ ≤ ε}: the intersection of two boxes, a box.
    pub fn linf_ball(x: &[f64], eps: f64) -> Region {
        Region {
            lo: x.iter().map(|&v| toward_within(v, (v - eps).max(0.0), eps)).collect(),
            hi: x.iter().map(|&v| toward_within(v, (v + eps).min(1.0), eps)).collect(),
            ball: None,
            finish: LINF_FINISH,
        }
    }

    /// [0, 1]ⁿ ∩ {z : ‖z − x‖₂ ≤ ε}.
    pub fn l2_ball(x: &[f64], eps: f64) -> Region {
        Region {
            ball: Some(Ball {
                center: x.to_vec(),
                radius: eps,
            }),
            finish: L2_FINISH,
            ..Region::unit(x.len())
        }
    }

    pub fn lo(&self) -> &[f64] {
        &self.lo
    }

    /// Whether an L2 ball couples the pixels (then the search is not blockwise).
    pub fn has_ball(&self) -> bool {
        self.ball.is_some()
    }

    pub fn hi(&self) -> &[f64] {
        &self.hi
    }

    /// Whether `z` lies in the box and the ball, in f64 (the L2 norm as the plain sum of squares,
    /// in order).
    pub fn contains(&self, z: &[f64]) -> bool {
        let in_box = z
            .iter()
            .zip(self.lo.iter().zip(&self.hi))
            .all(|(v, (lo, hi))| lo <= v && v <= hi);
        in_box && self.ball.as_ref().is_none_or(|b| distance(&b.center, z) <= b.radius)
    }

    /// The pixels of `z` on a bound of the box (up to rounding).
    pub fn on_edge(&self, z: &[f64]) -> Vec<bool> {
        z.iter()
            .zip(self.lo.iter().zip(&self.hi))
            .map(|(&v, (&lo, &hi))| v <= lo + ON_EDGE || v >= hi - ON_EDGE)
            .collect()
    }

    /// The nearest point of the ball to `y`, in place (nothing without a ball).
    fn project_onto_ball(&self, y: &mut [f64]) {
        let Some(b) = &self.ball else { return };
        let r = distance(&b.center, y);
        if r > b.radius {
            let f = b.radius / r;
            for (v, c) in y.iter_mut().zip(&b.center) {
                *v = c + (*v - c) * f;
            }
        }
    }
}

/// `v` moved towards `x` one ulp at a time until |v − x| ≤ ε in f64 (at most a few ulps).
pub fn toward_within(x: f64, mut v: f64, eps: f64) -> f64 {
    while (v - x).abs() > eps {
        v = if v > x { v.next_down() } else { v.next_up() };
    }
    v
}

#[derive(Clone, Debug)]
pub struct SearchOptions {
    pub count: usize,
    /// The distance `target` mode minimises (L1 needs a block-diagonal null space).
    pub distance: Distance,
    /// L1's weight per pixel (`None`: 1, pixel units).
    pub l1_weights: Option<Vec<f64>>,
    /// L2 length (pixel units) of random directions before the box is enforced.
    pub strength: f64,
    /// Dykstra iterations per projection.
    pub max_iterations: usize,
    /// Ascent steps of `far` mode.
    pub far_steps: usize,
    /// LP iterations per block in each ascent step of the exact search (`None`: to the optimum).
    pub far_step_iterations: Option<usize>,
    /// Ascent steps of `far` mode where the null space is matrix-free (Dykstra).
    pub dykstra_far_steps: usize,
}

impl SearchOptions {
    pub fn new(count: usize, strength: f64) -> Self {
        SearchOptions {
            count,
            distance: Distance::L2,
            l1_weights: None,
            strength,
            max_iterations: 300,
            far_steps: blockwise::FAR_STEPS,
            far_step_iterations: None,
            dykstra_far_steps: 8,
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
    /// Pixels on the edge of the box that the collision holds exactly where they are.
    pub pinned: usize,
    /// ‖A (z − x)‖ ≤ response_bound · ‖z − x‖: the largest singular value of the directions used
    /// (see [`NullSpace::response_bound`]). With several finishing steps (attack variants) it
    /// bounds each step's response by its length, so only the sum of the steps' lengths.
    pub response_bound: f64,
    /// Where the null space is block-diagonal: the exact per-block search's account (then
    /// `iterations`, `pullback` and `pinned` do not apply).
    pub exact: Option<blockwise::ExactReport>,
}

impl Projection {
    /// Said plainly where the exact search proved that the collision set is the image alone.
    pub fn no_room(&self) -> Option<String> {
        let e = self.exact.as_ref()?;
        (e.blocks_without_room == e.blocks && e.free_with_room == 0).then(|| {
            format!(
                "no collision inside the pixel range: {} of {} blocks have no room",
                e.blocks_without_room, e.blocks
            )
        })
    }
}

/// Accuracy of the projections inside Dykstra's iterations (‖A z‖ ≤ this · ‖A v‖): they only
/// steer; the last projection is exact (see [`EXACT_RELATIVE`]).
const DYKSTRA_RELATIVE: f64 = 1e-4;

/// A step smaller than this (pixel units) out of a pixel on the edge counts as staying there.
const EDGE_STEP: f64 = 1e-6;

/// The point of {z : A z = A x} ∩ [0, 1]ⁿ closest to `w` (Dykstra), x in the box.
pub fn project_feasible(ns: &NullSpace, x: &[f64], w: &[f64], max_iterations: usize) -> Projection {
    project_into(ns, x, &Region::unit(x.len()), w, max_iterations)
}

/// The point of {z : A z = A x} ∩ `region` closest to `w` (Dykstra), x in the region.
///
/// Dykstra converges to the answer but never lands on it exactly, and images have many pixels on
/// the edge of the box (black backgrounds, saturated highlights). So the result is finished
/// exactly: pixels on the edge that the answer leaves there (or pushes outwards) are pinned, the
/// step is projected onto the null directions that keep them fixed (repeated while that pushes
/// other edge pixels outwards), and what remains out of the box is handled by shortening the
/// step. The collision stays exactly on {A z = A x}; nothing is clipped.
pub fn project_into(ns: &NullSpace, x: &[f64], region: &Region, w: &[f64], max_iterations: usize) -> Projection {
    let n = x.len();
    let mut y = w.to_vec();
    // Dykstra's corrections for the affine set, the box and the ball.
    let (mut p, mut q, mut r) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    let mut ball_input = vec![0.0; n];
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
            y[i] = t2.clamp(region.lo[i], region.hi[i]);
            q[i] = t2 - y[i];
        }
        if region.ball.is_some() {
            for i in 0..n {
                ball_input[i] = y[i] + r[i];
            }
            y.copy_from_slice(&ball_input);
            region.project_onto_ball(&mut y);
            for i in 0..n {
                r[i] = ball_input[i] - y[i];
            }
        }
        let inside = region.contains(&u);
        let change = (0..n).map(|i| (u[i] - previous[i]).powi(2)).sum::<f64>().sqrt();
        if inside && change <= settled * scale {
            break;
        }
    }
    // The iterations' projections were loose; the finishing steps are not. Each one heads for
    // Dykstra's last iterate from the point reached so far, holds the pixels on the edge, and
    // stops where another pixel reaches the edge: the next step holds that one too.
    let mut z = x.to_vec();
    let (mut pullback, mut pinned, mut response_bound) = (1.0, 0, ns.response_bound);
    for _ in 0..region.finish.steps {
        let last = ns.project_within(&(0..n).map(|i| u[i] - z[i]).collect::<Vec<_>>(), EXACT_RELATIVE, floor);
        let (step, held, bound) = keep_edges(ns, &z, region, last, floor);
        pullback = pullback_into(region, &z, &step);
        z = pulled_back(&z, &step, pullback);
        pinned = held;
        response_bound = response_bound.max(bound);
        if pullback >= 1.0 || pullback * norm(&step) <= EDGE_STEP {
            break;
        }
    }
    Projection {
        z,
        iterations,
        pullback,
        pinned,
        response_bound,
        exact: None,
    }
}

/// A pixel this close to a bound of the box counts as on it: finishing steps stop pixels on the
/// bound up to rounding.
const ON_EDGE: f64 = 1e-12;

/// Projects the null-space `step` so that pixels on the edge of the box do not move outwards, and
/// pixels the step would carry far across the box's bounds stay where they are: holding all of
/// them at once costs a few restricted projections, where stopping at each in turn (the
/// pullback) would cost one finishing step per pixel.
fn keep_edges(ns: &NullSpace, x: &[f64], region: &Region, step: Vec<f64>, floor: f64) -> (Vec<f64>, usize, f64) {
    // A pixel the step carries across a bound early is held; one that crosses late (or by
    // rounding) only shortens the step a little, which the pullback does.
    let early = region.finish.hold_before;
    let outwards = |i: usize, d: f64, slack: f64| {
        (x[i] <= region.lo[i] + ON_EDGE && d < slack)
            || (x[i] >= region.hi[i] - ON_EDGE && d > -slack)
            || early.is_some_and(|f| x[i] + f * d > region.hi[i] || x[i] + f * d < region.lo[i])
    };
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

/// x + λ d (x + d exactly for λ = 1).
fn pulled_back(x: &[f64], step: &[f64], lambda: f64) -> Vec<f64> {
    if lambda < 1.0 {
        x.iter().zip(step).map(|(xi, d)| xi + lambda * d).collect()
    } else {
        x.iter().zip(step).map(|(xi, d)| xi + d).collect()
    }
}

/// Largest λ in [0, 1] with x + λ d in the region (x in it), as f64 computes x + λ d.
fn pullback_into(region: &Region, x: &[f64], step: &[f64]) -> f64 {
    let mut lambda: f64 = 1.0;
    for ((&xi, &d), (&lo, &hi)) in x.iter().zip(step).zip(region.lo.iter().zip(&region.hi)) {
        let ui = xi + d;
        if ui > hi && d > 0.0 {
            lambda = lambda.min((hi - xi) / d);
        } else if ui < lo && d < 0.0 {
            lambda = lambda.min((lo - xi) / d);
        }
    }
    if let Some(b) = &region.ball {
        // ‖(x − c) + λ d‖² = r²: the larger root of a λ² + 2 h λ + c0, with c0 ≤ 0 for x inside.
        let a: f64 = step.iter().map(|d| d * d).sum();
        let h: f64 = x.iter().zip(&b.center).zip(step).map(|((xi, c), d)| (xi - c) * d).sum();
        let c0 = distance(x, &b.center).powi(2) - b.radius * b.radius;
        let full: Vec<f64> = x.iter().zip(step).map(|(xi, d)| xi + d).collect();
        if a > 0.0 && distance(&full, &b.center) > b.radius {
            lambda = lambda.min((-h + (h * h - a * c0).max(0.0).sqrt()) / a);
        }
    }
    // The bounds above are exact in real arithmetic; rounding may leave x + λ d a few ulps out.
    let mut shrunk = lambda.max(0.0);
    for _ in 0..64 {
        if region.contains(&pulled_back(x, step, shrunk)) {
            return shrunk;
        }
        shrunk *= 1.0 - 1e-12;
    }
    0.0
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
    search_in(ns, x, &Region::unit(x.len()), mode, target, opts, rng, progress)
}

/// [`search`] inside `region` (which holds x).
#[allow(clippy::too_many_arguments)]
pub fn search_in(
    ns: &NullSpace,
    x: &[f64],
    region: &Region,
    mode: Mode,
    target: Option<&[f64]>,
    opts: &SearchOptions,
    rng: &mut ChaCha8Rng,
    progress: &dyn Fn(),
) -> Vec<Projection> {
    if let Some(decomposition) = ns.decomposition() {
        return search_exact(ns, &decomposition, x, region, mode, target, opts, rng, progress);
    }
    let mut out = Vec::with_capacity(opts.count);
    for k in 0..opts.count {
        let found = match point_to_project(ns, x, mode, target, k, opts, rng) {
            Some(w) if mode == Mode::Target => project_into(ns, x, region, &w, opts.max_iterations * 3),
            Some(w) => project_into(ns, x, region, &w, opts.max_iterations),
            None => far_from(ns, x, region, k, opts, rng),
        };
        out.push(found);
        progress();
    }
    out
}

/// [`search_in`] where the null space is block-diagonal: every collision is the exact solution of
/// its mode, block by block (see [`blockwise`]). Inside an L2 ball every mode projects: far mode
/// the far corner of the box, the others their point, onto the collision set ∩ ball.
#[allow(clippy::too_many_arguments)]
fn search_exact(
    ns: &NullSpace,
    decomposition: &crate::nullspace::Decomposition,
    x: &[f64],
    region: &Region,
    mode: Mode,
    target: Option<&[f64]>,
    opts: &SearchOptions,
    rng: &mut ChaCha8Rng,
    progress: &dyn Fn(),
) -> Vec<Projection> {
    let set = blockwise::CollisionSet::new(
        decomposition,
        x,
        blockwise::PixelRange {
            lo: &region.lo,
            hi: &region.hi,
        },
    );
    let mut out = Vec::with_capacity(opts.count);
    for k in 0..opts.count {
        let found = match (point_to_project(ns, x, mode, target, k, opts, rng), &region.ball) {
            (Some(w), Some(ball)) => set.project_in_ball(&w, &ball.center, ball.radius),
            (None, Some(ball)) => set.project_in_ball(&far_corner_point(x, region, k, rng), &ball.center, ball.radius),
            (Some(w), None) if mode == Mode::Target && opts.distance == Distance::L1 => {
                let ones = vec![1.0; x.len()];
                set.closest_l1(&w, opts.l1_weights.as_deref().unwrap_or(&ones))
            }
            (Some(w), None) => set.project(&w),
            (None, None) => set.far(&far_corner(x, region, k, rng), opts.far_steps, opts.far_step_iterations),
        };
        out.push(Projection {
            z: found.z,
            iterations: 0,
            pullback: 1.0,
            pinned: found.report.pixels_at_bound,
            response_bound: ns.response_bound,
            exact: Some(found.report),
        });
        progress();
    }
    out
}

/// The point collision `k` of a projecting mode heads for: x + s·r (random), the target (target;
/// later collisions start from the target moved a little along a random null direction, so that
/// they differ); `None` for far mode.
fn point_to_project(
    ns: &NullSpace,
    x: &[f64],
    mode: Mode,
    target: Option<&[f64]>,
    k: usize,
    opts: &SearchOptions,
    rng: &mut ChaCha8Rng,
) -> Option<Vec<f64>> {
    let (base, length) = match mode {
        Mode::Far => return None,
        Mode::Random => (x, opts.strength),
        Mode::Target if k == 0 => return Some(target.expect("target mode needs a target").to_vec()),
        Mode::Target => (target.expect("target mode needs a target"), 0.05 * opts.strength),
    };
    let d = random_null_direction(ns, rng);
    Some(base.iter().zip(&d).map(|(a, b)| a + length * b).collect())
}
