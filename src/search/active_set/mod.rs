//! The exact projection onto one block's collision polytope.
//!
//! In the block's null-space coordinates a colliding block is z = x + N a (N: the block's
//! orthonormal null basis, one row per pixel), and the pixel range asks lo ≤ x + N a ≤ hi. The
//! point of that polytope closest to w is the solution of
//!
//! ```text
//! min ½‖a − c‖²   s.t.   lo − x ≤ N a ≤ hi − x,        c = Nᵀ (w − x)
//! ```
//!
//! since ‖N a − (w − x)‖² = ‖a − c‖² + const for orthonormal columns. It is solved by the dual
//! active-set method of Goldfarb and Idnani (Math. Programming 27, 1983): start at the
//! unconstrained minimum a = c, add the most violated bound, step in the primal and the dual
//! until it holds (dropping bounds whose multiplier would turn negative), and repeat until no
//! bound is violated. Every iterate is dual feasible, the method is finite, and the factorisation
//! of the active bounds (J, R with Jᵀ N_A = [R; 0]) is updated by Givens rotations only.
//! Because a = 0 (the image itself) is always feasible, the polytope is never empty.

use crate::linop::{dot, kernels};
pub use crate::nullspace::RowBasis;

mod factor;
mod lp;

use factor::Factor;
pub use lp::{LpSolution, WarmStart};

/// A block's polytope {a : lo ≤ N a ≤ hi} in null-space coordinates (bounds relative to the
/// image: lo ≤ 0 ≤ hi).
#[derive(Clone)]
pub struct BlockPolytope<'a> {
    basis: &'a RowBasis,
    rows: usize,
    dim: usize,
    row_norms: &'a [f64],
    lo: Vec<f64>,
    hi: Vec<f64>,
    /// Degenerate pivots in a row after which the LP settles the vertex by its cone.
    stall_pivots: usize,
    /// The LP's iterations at most; `None`: as many as it takes (within a safety limit).
    iteration_limit: Option<usize>,
}

/// A bound of the polytope: the lower (`upper == false`) or upper bound of one pixel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bound {
    pub pixel: usize,
    pub upper: bool,
}

/// The exact solution of one block's projection, with its optimality certificate.
#[derive(Clone, Debug)]
pub struct BlockSolution {
    /// Null-space coordinates of the solution.
    pub coordinates: Vec<f64>,
    /// The change of each pixel, N a.
    pub delta: Vec<f64>,
    /// The active bounds and their multipliers (all ≥ 0).
    pub active: Vec<(Bound, f64)>,
    /// The largest violation of a KKT condition, computed afresh in f64 from the solution:
    /// stationarity ‖a − c − Σ μ n‖∞, primal feasibility, dual feasibility and complementarity.
    pub kkt_residual: f64,
    /// Bounds added or dropped.
    pub iterations: usize,
}

/// A row of N with less weight than this moves its pixel by nothing but rounding: its bounds
/// cannot be violated and are never made active.
const NEGLIGIBLE_ROW: f64 = 1e-12;

/// A bound whose slack the LP's move changes at a rate below this (relative to the move and the
/// bound's normal) is not met by it: such a rate is what rounding leaves of a normal that lies in
/// the span of the bounds held (tiles of a convolution repeat rows exactly), and adding that
/// bound would make R singular to rounding and the multipliers meaningless.
const RATE_ZERO: f64 = 1e-9;

/// A step of the LP no longer than this is a step at a degenerate vertex.
const DEGENERATE_STEP: f64 = 1e-12;

/// Degenerate pivots in a row after which the LP settles the vertex by its cone (at most; twice
/// the dimension for small blocks).
const STALL_PIVOTS: usize = 64;

/// A bound with no more slack than this (pixel units) holds at the point.
const TIGHT: f64 = 1e-11;

/// The LP's move along an edge no longer than this (null-space units, i.e. pixel units) counts
/// as a stall: where rows of N nearly repeat (tiles of a convolution), a vertex is degenerate to
/// within rounding and the pivots crawl by such steps instead of steps of zero.
const SHORT_STEP: f64 = 1e-8;

/// The escape from a stall first tries the cone of every bound within this slack (pixel units):
/// the bounds a crawl keeps meeting. The direction keeps them all (nᵀd ≥ 0), so the move stays
/// feasible; where that cone admits no ascent, the cone of the bounds that hold (`TIGHT`)
/// decides, so that optimality is proved only at the point itself.
const ESCAPE_TIGHT: f64 = 1e-7;

/// A bound counts as violated when broken by more than this (pixel units).
const VIOLATION: f64 = 1e-12;

impl<'a> BlockPolytope<'a> {
    /// `lo`, `hi`: the pixel range minus the image's pixels (so lo ≤ 0 ≤ hi).
    pub fn new(basis: &'a RowBasis, lo: Vec<f64>, hi: Vec<f64>) -> BlockPolytope<'a> {
        assert_eq!(lo.len(), basis.rows());
        assert_eq!(hi.len(), basis.rows());
        BlockPolytope {
            basis,
            rows: basis.rows(),
            dim: basis.dim(),
            row_norms: basis.norms(),
            lo,
            hi,
            stall_pivots: STALL_PIVOTS.min(2 * basis.dim()),
            iteration_limit: None,
        }
    }

    /// The polytope of the same basis and LP settings over another range (lo ≤ N a ≤ hi).
    pub fn with_range(&self, lo: Vec<f64>, hi: Vec<f64>) -> BlockPolytope<'a> {
        assert_eq!(lo.len(), self.rows);
        assert_eq!(hi.len(), self.rows);
        BlockPolytope { lo, hi, ..self.clone() }
    }

    /// The same polytope whose LP stops after `iterations` (a Frank–Wolfe step: every iteration
    /// already increases the distance, so a partial step is a valid one).
    pub fn with_iteration_limit(mut self, iterations: Option<usize>) -> Self {
        self.iteration_limit = iterations;
        self
    }

    /// The same polytope whose LP settles a degenerate vertex by its cone after `pivots`
    /// degenerate pivots in a row (0: at the first).
    pub fn with_stall_pivots(mut self, pivots: usize) -> Self {
        self.stall_pivots = pivots;
        self
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    fn row(&self, i: usize) -> &[f64] {
        self.basis.row(i)
    }

    /// N a: the pixel change of null-space coordinates `a`.
    pub fn delta_of(&self, a: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; self.rows];
        kernels::rows_times(self.basis.data(), a, &mut out);
        out
    }

    /// Nᵀ v: the null-space coordinates of the pixel change v's projection.
    pub fn coordinates_of(&self, v: &[f64]) -> Vec<f64> {
        let mut a = vec![0.0; self.dim];
        kernels::combine_rows(self.basis.data(), v, &mut a);
        a
    }

    pub fn lo(&self) -> &[f64] {
        &self.lo
    }

    pub fn hi(&self) -> &[f64] {
        &self.hi
    }

    /// The slack of a bound at pixel change `delta` (negative: violated).
    fn slack(&self, b: Bound, delta: &[f64]) -> f64 {
        if b.upper {
            self.hi[b.pixel] - delta[b.pixel]
        } else {
            delta[b.pixel] - self.lo[b.pixel]
        }
    }

    /// The bound's normal n (the bound reads nᵀ a ≥ its offset).
    fn normal_into(&self, b: Bound, out: &mut [f64]) {
        let sign = if b.upper { -1.0 } else { 1.0 };
        for (o, &r) in out.iter_mut().zip(self.row(b.pixel)) {
            *o = sign * r;
        }
    }

    /// The point of the polytope closest to `c` in null-space coordinates (see the module docs).
    // Indices name rows and columns of N, J and R here, as in the paper.
    #[allow(clippy::needless_range_loop)]
    pub fn project(&self, c: &[f64]) -> BlockSolution {
        assert_eq!(c.len(), self.dim);
        let k = self.dim;
        let mut a = c.to_vec();
        let mut delta = self.delta_of(&a);
        let mut f = Factor::new(k);
        let mut active: Vec<Bound> = vec![];
        let mut multipliers: Vec<f64> = vec![];
        let mut is_active = vec![[false; 2]; self.rows];
        let mut normal = vec![0.0; k];
        let mut d = vec![0.0; k];
        let mut step = vec![0.0; k];
        let mut r = vec![0.0; k];
        let mut iterations = 0;
        // Every add or drop changes the active set; degenerate problems can take a few rounds
        // per bound, far below this.
        let max_iterations = 50 * (self.rows + k) + 100;
        'outer: while iterations < max_iterations {
            // The most violated bound, by its distance in null-space coordinates.
            let mut worst: Option<(Bound, f64)> = None;
            for i in 0..self.rows {
                if self.row_norms[i] < NEGLIGIBLE_ROW {
                    continue;
                }
                for upper in [false, true] {
                    if is_active[i][upper as usize] {
                        continue;
                    }
                    let b = Bound { pixel: i, upper };
                    let s = self.slack(b, &delta);
                    if s < -VIOLATION {
                        let scaled = s / self.row_norms[i];
                        if worst.is_none_or(|(_, w)| scaled < w) {
                            worst = Some((b, scaled));
                        }
                    }
                }
            }
            let Some((p, _)) = worst else { break };
            self.normal_into(p, &mut normal);
            let mut added_multiplier = 0.0;
            loop {
                iterations += 1;
                if iterations >= max_iterations {
                    break 'outer;
                }
                let q = active.len();
                // d = Jᵀ n, step = J₂ d₂ (the primal direction), r = R⁻¹ d₁ (the dual one).
                f.transpose_times(&normal, &mut d);
                f.null_part(&d, &mut step);
                f.solve_r(&d[..q], &mut r[..q]);
                // The longest dual step that keeps every multiplier non-negative.
                let mut partial: Option<(usize, f64)> = None;
                for l in 0..q {
                    if r[l] > 0.0 {
                        let t = multipliers[l] / r[l];
                        if partial.is_none_or(|(_, best)| t < best) {
                            partial = Some((l, t));
                        }
                    }
                }
                let curvature: f64 = d[q..].iter().map(|v| v * v).sum();
                let n2: f64 = self.row_norms[p.pixel].powi(2);
                let slack = self.slack(p, &delta);
                let full = (curvature > 1e-24 * n2).then(|| -slack / curvature);
                let t = match (partial, full) {
                    (None, None) => break 'outer, // cannot happen: a = 0 is feasible
                    (Some((_, t1)), None) => t1,
                    (None, Some(t2)) => t2,
                    (Some((_, t1)), Some(t2)) => t1.min(t2),
                };
                for l in 0..q {
                    multipliers[l] -= t * r[l];
                }
                added_multiplier += t;
                if full.is_some() {
                    for (ai, si) in a.iter_mut().zip(&step) {
                        *ai += t * si;
                    }
                    let moved = self.delta_of(&step);
                    for (di, mi) in delta.iter_mut().zip(&moved) {
                        *di += t * mi;
                    }
                }
                if full.is_some_and(|t2| t >= t2) {
                    f.add(&mut d);
                    active.push(p);
                    multipliers.push(added_multiplier);
                    is_active[p.pixel][p.upper as usize] = true;
                    continue 'outer;
                }
                // Drop the bound whose multiplier reached zero, and go on with p.
                let (l, _) = partial.expect("a partial step drops a bound");
                let gone = active.remove(l);
                multipliers.remove(l);
                is_active[gone.pixel][gone.upper as usize] = false;
                f.drop(l);
            }
        }
        let active: Vec<(Bound, f64)> = active.into_iter().zip(multipliers).collect();
        // The pixel change afresh, not the running update.
        let delta = self.delta_of(&a);
        let kkt_residual = self.kkt_residual(c, &a, &delta, &active);
        BlockSolution {
            coordinates: a,
            delta,
            active,
            kkt_residual,
            iterations,
        }
    }

    /// The largest violation of the projection's KKT conditions at `a` (see [`BlockSolution`]),
    /// relative to the scale of the problem (1 pixel unit or ‖c‖, whichever is larger).
    pub fn kkt_residual(&self, c: &[f64], a: &[f64], delta: &[f64], active: &[(Bound, f64)]) -> f64 {
        let mut stationarity: Vec<f64> = a.iter().zip(c).map(|(a, c)| a - c).collect();
        let mut normal = vec![0.0; self.dim];
        let mut worst: f64 = 0.0;
        for &(b, mu) in active {
            self.normal_into(b, &mut normal);
            for (s, n) in stationarity.iter_mut().zip(&normal) {
                *s -= mu * n;
            }
            worst = worst.max(-mu).max((mu * self.slack(b, delta)).abs());
        }
        worst = worst.max(stationarity.iter().fold(0.0, |m, v| m.max(v.abs())));
        for i in 0..self.rows {
            for upper in [false, true] {
                worst = worst.max(-self.slack(Bound { pixel: i, upper }, delta));
            }
        }
        worst / dot(c, c).sqrt().max(1.0)
    }
}
