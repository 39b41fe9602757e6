//! Exact collision search where the null space is block-diagonal (dense layers: one block; token
//! MatMuls and patchify convolutions: one block per token or patch; tiles of a convolution with
//! the gaps held). The collision set {z : A z = A x, lo ≤ z ≤ hi} is then a product of one
//! polytope per block, a box for the pixels no block reads and a point for held pixels, so every
//! block is solved on its own, in parallel, and a block without room never shrinks another.
//!
//! Every mode is built from two exact solvers on a block's polytope (see [`super::active_set`]):
//! - `target` and `random`: the projection of the target, or of x + s·r (dual active set);
//! - linear programs (the far corner, Frank–Wolfe steps, the proof of no room): the primal
//!   active-set method, warm-started at the last vertex, certified by its multipliers.

use super::active_set::{BlockPolytope, Bound, RowBasis, WarmStart};
use crate::linop::dot;
use crate::nullspace::{Decomposition, NullBlock};
use rayon::prelude::*;
use serde::Serialize;

/// The name reports give the solver.
pub const SOLVER: &str = "per block: dual active-set QP (Goldfarb–Idnani); LPs by the primal active-set method";

/// The name reports give the solver of `--distance l1`.
pub const SOLVER_L1: &str = "per block: L1 as a piecewise-linear LP (primal active-set method, sides of the target's breakpoints), certified by its duality gap";

/// Where the collision may lie, pixel by pixel (the pixel box, or an attack's ε-box ∩ [0, 1]).
pub struct PixelRange<'a> {
    pub lo: &'a [f64],
    pub hi: &'a [f64],
}

/// A block's polytope around one image.
struct Polytope<'a> {
    block: &'a NullBlock,
    polytope: BlockPolytope<'a>,
}

/// The exact search problem: one polytope per block, and the free pixels' box.
pub struct CollisionSet<'a> {
    x: &'a [f64],
    range: PixelRange<'a>,
    blocks: Vec<Polytope<'a>>,
    free: &'a [usize],
}

/// What a search mode found, with the certificate of every block.
#[derive(Clone, Debug)]
pub struct ExactCollision {
    pub z: Vec<f64>,
    pub report: ExactReport,
}

/// How the exact search reached a collision.
#[derive(Clone, Debug)]
pub struct ExactReport {
    /// The solver's name, for reports.
    pub solver: &'static str,
    /// What the mode optimises, as reached: the L2 distance to the point projected (target,
    /// random; the L1 distance Σ |zᵢ − tᵢ| for `--distance l1`), or from the image (far). Set by
    /// the caller, which knows the mode.
    pub objective: f64,
    pub blocks: usize,
    /// Pixels no block reads whose range is more than a point: free to move on their own.
    pub free_with_room: usize,
    /// Blocks whose polytope is the image's own block alone (proved by a linear program).
    pub blocks_without_room: usize,
    /// The largest KKT residual over the blocks' last solves (relative; for L1 the certified
    /// duality gap).
    pub kkt_residual: f64,
    /// Active-set iterations, summed over blocks and solves.
    pub iterations: usize,
    /// Pixels on a bound of the range where the collision leaves them.
    pub pixels_at_bound: usize,
    /// The largest amount by which rounding left a pixel outside its range before it was set onto
    /// the bound it had reached (pixel units; the bounds then hold exactly in f64).
    pub bound_rounding: f64,
    /// Far mode: the linear program's optimum of Σ sᵢ (zᵢ − xᵢ) towards the far corner (an upper
    /// bound of that sum over every collision), and the sum the collision reaches.
    pub far_corner: Option<FarCorner>,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct FarCorner {
    /// The LP's certified upper bound of the L1 move towards the far corner.
    pub bound: f64,
    /// The collision's L1 move towards the far corner.
    pub reached: f64,
}

/// A block's solution in pixel changes, with its bookkeeping.
#[derive(Clone)]
struct BlockResult {
    coordinates: Vec<f64>,
    delta: Vec<f64>,
    kkt: f64,
    iterations: usize,
    /// The LP's final working set (empty for a projection).
    working_set: Vec<Bound>,
    /// The LP's final factorisation, for the next LP from its point.
    warm: Option<WarmStart>,
}

/// Frank–Wolfe steps of `far` mode per block at most (`SearchOptions::far_step_iterations`
/// can cut each one short: every iteration of a step already moves to a point farther from the
/// image, since ‖·‖² is convex and the step's LP increases its linearisation). Each step gains
/// distance and loses some of the move towards the far corner the first LP maximised (ViT-S/14
/// on coffee.png, one collision, 2 cores, whole command: the far-corner LP alone L2 92.7; one step
/// to its optimum 97.5 at 96.7 % of the LP's bound in 3.3 s; three 100.7 at 91.7 % in 4.5 s; eight
/// 103.0 at 86.0 % in 6.0 s): one step, within [`FAR_CORNER_KEPT`] per block.
pub const FAR_STEPS: usize = 1;

/// A block's step is taken only while it keeps this share of the block's move towards the far
/// corner (text on white gave up 13 % of it in one step): so every collision keeps at least
/// this share of the LP's bound.
const FAR_CORNER_KEPT: f64 = 0.95;

/// Exact projections at most that an L2 ball's multiplier may take, and how close to the ball's
/// surface (relative to its radius) the collision must come to stop earlier.
const BALL_ROUNDS: usize = 40;
const BALL_TIGHT: f64 = 1e-9;

/// A pixel change below this (pixel units) is no move.
const NO_MOVE: f64 = 1e-9;

/// A pixel within this of a bound is on it.
const AT_BOUND: f64 = 1e-12;

impl<'a> CollisionSet<'a> {
    pub fn new(decomposition: &'a Decomposition, x: &'a [f64], range: PixelRange<'a>) -> CollisionSet<'a> {
        let blocks = decomposition
            .blocks
            .iter()
            .map(|block| {
                let lo = block.pixels.iter().map(|&k| range.lo[k] - x[k]).collect();
                let hi = block.pixels.iter().map(|&k| range.hi[k] - x[k]).collect();
                Polytope {
                    block,
                    polytope: BlockPolytope::new(&block.basis, lo, hi),
                }
            })
            .collect();
        CollisionSet {
            x,
            range,
            blocks,
            free: &decomposition.free,
        }
    }

    pub fn block_count(&self) -> usize {
        self.blocks.len()
    }

    /// The collision closest to `w` in L2: the exact projection, block by block.
    pub fn project(&self, w: &[f64]) -> ExactCollision {
        let mut out = self.project_blocks(w);
        out.report.objective = crate::model::preprocess::distance(&out.z, w);
        out
    }

    fn project_blocks(&self, w: &[f64]) -> ExactCollision {
        let results: Vec<BlockResult> = self
            .blocks
            .par_iter()
            .map(|b| {
                let v: Vec<f64> = b.block.pixels.iter().map(|&k| w[k] - self.x[k]).collect();
                let c = b.polytope.coordinates_of(&v);
                solve(&b.polytope, &c)
            })
            .collect();
        let free = self.free_closest_to(w);
        self.assemble(results, &free, None)
    }

    /// The collision closest to `w` in L2 that also lies in the ball ‖z − center‖ ≤ radius (an
    /// L2 threat model around the clean image; the image x itself must lie in it).
    ///
    /// The ball couples the blocks, but only through one multiplier λ ≥ 0: the KKT conditions
    /// make the answer the exact projection of (w + λ·center)/(1 + λ), block by block, with λ = 0
    /// when that point lies in the ball and ‖z − center‖ = radius otherwise. Along t = 1/(1 + λ)
    /// the distance to the centre of the projection of t·w + (1 − t)·center never decreases
    /// (the penalty's value falls as its weight grows), and at t = 0 it is at most ‖x − center‖
    /// ≤ radius: so t is found by a safeguarded regula falsi that keeps a point inside the ball
    /// at every step, and the collision returned is that point — exact in its blocks, inside the
    /// ball in f64. `kkt_residual` includes how far the ball is from tight, relative to radius.
    pub fn project_in_ball(&self, w: &[f64], center: &[f64], radius: f64) -> ExactCollision {
        let mixed = |t: f64| -> Vec<f64> { w.iter().zip(center).map(|(a, c)| t * a + (1.0 - t) * c).collect() };
        let reach = |z: &[f64]| crate::model::preprocess::distance(z, center);
        let whole = self.project_blocks(w);
        if reach(&whole.z) <= radius {
            let mut out = whole;
            out.report.objective = crate::model::preprocess::distance(&out.z, w);
            return out;
        }
        let (mut lo, mut hi) = (0.0f64, 1.0f64);
        let mut inside = self.project_blocks(&mixed(0.0));
        let mut iterations = whole.report.iterations + inside.report.iterations;
        if reach(&inside.z) > radius {
            // Rounding only (the image is in the ball): the image itself is the answer's floor.
            inside = self.project_blocks(self.x);
        }
        // The gap at the inside end (≤ 0), and the values the interpolation uses.
        let mut gap = reach(&inside.z) - radius;
        let (mut f_lo, mut f_hi) = (gap, reach(&whole.z) - radius);
        // Regula falsi with the Illinois rule (the end that stays is halved), at most
        // `BALL_ROUNDS` exact projections; every inside point is kept, so stopping early is safe.
        let mut side = 0i8;
        for _ in 0..BALL_ROUNDS {
            if -gap <= BALL_TIGHT * radius || hi - lo <= 1e-15 {
                break;
            }
            let t = if f_hi > f_lo {
                (lo - f_lo * (hi - lo) / (f_hi - f_lo)).clamp(lo + 1e-3 * (hi - lo), hi - 1e-3 * (hi - lo))
            } else {
                0.5 * (lo + hi)
            };
            let trial = self.project_blocks(&mixed(t));
            iterations += trial.report.iterations;
            let f = reach(&trial.z) - radius;
            if f <= 0.0 {
                (lo, f_lo, gap, inside) = (t, f, f, trial);
                if side == -1 {
                    f_hi *= 0.5;
                }
                side = -1;
            } else {
                (hi, f_hi) = (t, f);
                if side == 1 {
                    f_lo *= 0.5;
                }
                side = 1;
            }
        }
        let mut out = inside;
        out.report.iterations = iterations;
        out.report.kkt_residual = out.report.kkt_residual.max(-(reach(&out.z) - radius) / radius);
        out.report.objective = crate::model::preprocess::distance(&out.z, w);
        out
    }

    /// The free pixels closest to `w` in any distance: each one's value clamped to its range.
    fn free_closest_to(&self, w: &[f64]) -> Vec<f64> {
        self.free
            .iter()
            .map(|&k| w[k].clamp(self.range.lo[k], self.range.hi[k]))
            .collect()
    }

    /// The collision closest to `w` in weighted L1 (Σ ωᵢ |zᵢ − wᵢ|, ω = `weight` per pixel): the
    /// exact LP of every block (see [`super::l1`]), certified by its duality gap.
    pub fn closest_l1(&self, w: &[f64], weight: &[f64]) -> ExactCollision {
        let results: Vec<BlockResult> = self
            .blocks
            .par_iter()
            .map(|b| {
                let d: Vec<f64> = b.block.pixels.iter().map(|&k| w[k] - self.x[k]).collect();
                let wb: Vec<f64> = b.block.pixels.iter().map(|&k| weight[k]).collect();
                let s = super::l1::closest_l1(&b.polytope, &d, &wb);
                BlockResult {
                    coordinates: s.coordinates,
                    delta: s.delta,
                    kkt: s.gap,
                    iterations: s.iterations,
                    working_set: vec![],
                    warm: None,
                }
            })
            .collect();
        let free = self.free_closest_to(w);
        let mut out = self.assemble(results, &free, None);
        out.report.solver = SOLVER_L1;
        out.report.objective = (0..w.len()).map(|k| weight[k] * (out.z[k] - w[k]).abs()).sum();
        out
    }

    /// The free pixel `k` at the bound `g` points to.
    fn box_corner(&self, k: usize, g: f64) -> f64 {
        if g > 0.0 {
            self.range.hi[k]
        } else if g < 0.0 {
            self.range.lo[k]
        } else {
            self.x[k]
        }
    }

    /// Far mode: the LP towards `corner` (+1: up, −1: down, per pixel), then up to `steps`
    /// Frank–Wolfe ascent steps of ‖z − x‖ by linearised LPs of at most `step_iterations` each,
    /// block by block, while the distance grows.
    pub fn far(&self, corner: &[f64], steps: usize, step_iterations: Option<usize>) -> ExactCollision {
        let solved: Vec<(BlockResult, f64)> = self
            .blocks
            .par_iter()
            .map(|b| {
                let gb: Vec<f64> = b.block.pixels.iter().map(|&k| corner[k]).collect();
                let (mut best, bound) = maximise_linear(&b.polytope, &gb, vec![0.0; b.polytope.dim()], &[], None);
                // The KKT residual reported is the far-corner LP's: the ascent steps after it
                // optimise nothing to the end.
                let (mut iterations, lp_kkt) = (best.iterations, best.kkt);
                let mut best_norm = dot(&best.delta, &best.delta);
                let corner_move = dot(&gb, &best.delta);
                for _ in 0..steps {
                    if best_norm == 0.0 {
                        break;
                    }
                    // From the last LP's factorisation: only the objective changes.
                    let (next, _) = maximise_linear(
                        &b.polytope.clone().with_iteration_limit(step_iterations),
                        &best.delta,
                        best.coordinates.clone(),
                        &best.working_set,
                        best.warm.take(),
                    );
                    iterations += next.iterations;
                    let norm = dot(&next.delta, &next.delta);
                    if norm <= best_norm * (1.0 + 1e-9) || dot(&gb, &next.delta) < FAR_CORNER_KEPT * corner_move {
                        break;
                    }
                    best = next;
                    best_norm = norm;
                }
                best.iterations = iterations;
                best.kkt = lp_kkt;
                // Every block's factorisation at once would take k² · 2 floats per block.
                best.warm = None;
                (best, bound)
            })
            .collect();
        let (mut results, mut bound) = (Vec::with_capacity(solved.len()), 0.0);
        for (r, b) in solved {
            bound += b;
            results.push(r);
        }
        let free: Vec<f64> = self.free.iter().map(|&k| self.box_corner(k, corner[k])).collect();
        bound += self
            .free
            .iter()
            .zip(&free)
            .map(|(&k, z)| corner[k] * (z - self.x[k]))
            .sum::<f64>();
        let mut out = self.assemble(results, &free, None);
        let reached = out
            .z
            .iter()
            .zip(self.x)
            .zip(corner)
            .map(|((z, x), s)| s * (z - x))
            .sum();
        out.report.far_corner = Some(FarCorner { bound, reached });
        out.report.objective = crate::model::preprocess::distance(&out.z, self.x);
        out
    }

    /// Whether block `i`'s polytope holds more than the image's own block. A block where the
    /// image has pixels strictly inside the range and the null directions can move them alone
    /// has room; otherwise it has room exactly when the LP that pushes every pixel on a bound
    /// inwards (Σ over those pixels of ±(zᵢ − xᵢ)) has a positive optimum.
    fn has_room(&self, i: usize) -> bool {
        let b = &self.blocks[i];
        let pixels = &b.block.pixels;
        let inwards: Vec<f64> = pixels
            .iter()
            .map(|&k| {
                if self.x[k] <= self.range.lo[k] + AT_BOUND {
                    1.0
                } else if self.x[k] >= self.range.hi[k] - AT_BOUND {
                    -1.0
                } else {
                    0.0
                }
            })
            .collect();
        let on_bound: Vec<usize> = (0..pixels.len()).filter(|&j| inwards[j] != 0.0).collect();
        let basis = &b.block.basis;
        if on_bound.len() < basis.dim() || !full_column_rank(basis, &on_bound) {
            return true;
        }
        let (r, _) = maximise_linear(&b.polytope, &inwards, vec![0.0; basis.dim()], &[], None);
        r.delta.iter().any(|d| d.abs() > NO_MOVE)
    }

    /// The whole image from the blocks' solutions: z = x + N a per block (pixels that rounding
    /// left a hair outside the range set onto the bound), the free pixels, the held ones.
    fn assemble(&self, results: Vec<BlockResult>, free: &[f64], far_corner: Option<FarCorner>) -> ExactCollision {
        let mut z = self.x.to_vec();
        let (mut kkt, mut iterations, mut rounding) = (0.0f64, 0, 0.0f64);
        let mut still: Vec<usize> = vec![];
        for (i, (b, r)) in self.blocks.iter().zip(&results).enumerate() {
            kkt = kkt.max(r.kkt);
            iterations += r.iterations;
            let mut moved = false;
            for (&k, d) in b.block.pixels.iter().zip(&r.delta) {
                let v = self.x[k] + d;
                let (lo, hi) = (self.range.lo[k], self.range.hi[k]);
                rounding = rounding.max(lo - v).max(v - hi);
                z[k] = v.clamp(lo, hi);
                moved |= d.abs() > NO_MOVE;
            }
            if !moved {
                still.push(i);
            }
        }
        for (&k, &v) in self.free.iter().zip(free) {
            z[k] = v;
        }
        let without_room: Vec<usize> = still.into_par_iter().filter(|&i| !self.has_room(i)).collect();
        // Where the LP proved the polytope a point, the image's block is the answer, exactly.
        for &i in &without_room {
            for &k in &self.blocks[i].block.pixels {
                z[k] = self.x[k];
            }
        }
        let blocks_without_room = without_room.len();
        let pixels_at_bound = z
            .iter()
            .zip(self.range.lo.iter().zip(self.range.hi))
            .filter(|(v, (lo, hi))| **v <= **lo + AT_BOUND || **v >= **hi - AT_BOUND)
            .count();
        ExactCollision {
            z,
            report: ExactReport {
                solver: SOLVER,
                objective: f64::NAN,
                blocks: self.blocks.len(),
                free_with_room: self
                    .free
                    .iter()
                    .filter(|&&k| self.range.hi[k] > self.range.lo[k])
                    .count(),
                blocks_without_room,
                kkt_residual: kkt,
                iterations,
                pixels_at_bound,
                bound_rounding: rounding.max(0.0),
                far_corner,
            },
        }
    }
}

fn solve(p: &BlockPolytope, c: &[f64]) -> BlockResult {
    let s = p.project(c);
    BlockResult {
        coordinates: s.coordinates,
        delta: s.delta,
        kkt: s.kkt_residual,
        iterations: s.iterations,
        working_set: vec![],
        warm: None,
    }
}

/// max gᵀ(N a) over the polytope from `start` (feasible); returns the point reached and the
/// certified upper bound of the optimum.
fn maximise_linear(
    p: &BlockPolytope,
    g: &[f64],
    start: Vec<f64>,
    held: &[Bound],
    warm: Option<WarmStart>,
) -> (BlockResult, f64) {
    let lp = p.maximise_from(&p.coordinates_of(g), start, held, warm);
    let bound = lp.bound;
    (
        BlockResult {
            coordinates: lp.coordinates,
            delta: lp.delta,
            kkt: lp.dual_residual,
            iterations: lp.iterations,
            working_set: lp.working_set,
            warm: lp.warm,
        },
        bound,
    )
}

/// Whether the rows `rows` of the basis have full column rank (smallest singular value above
/// rounding): then no null direction moves only the other pixels.
fn full_column_rank(basis: &RowBasis, rows: &[usize]) -> bool {
    let k = basis.dim();
    let m = faer::Mat::from_fn(rows.len(), k, |i, j| basis.row(rows[i])[j]);
    match crate::nullspace::dense_svd::singular_values(m.as_ref()) {
        Ok(sv) => sv.iter().copied().fold(f64::INFINITY, f64::min) > 1e-8,
        Err(_) => false,
    }
}
