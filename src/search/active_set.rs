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

/// The optimum of a linear program over a block's polytope, with its certificate.
#[derive(Clone, Debug)]
pub struct LpSolution {
    pub coordinates: Vec<f64>,
    pub delta: Vec<f64>,
    /// ĝᵀa at the point reached.
    pub value: f64,
    /// A certified upper bound of the optimum, by weak duality from the multipliers of the
    /// bounds held (see `dual_bound`): equal to the optimum at an optimal basis.
    pub bound: f64,
    /// ‖ĝ/‖ĝ‖ + Σ μ n‖ with μ ≥ 0: the LP's KKT residual (0 at an optimum).
    pub dual_residual: f64,
    pub iterations: usize,
    /// The bounds held at the end with positive multipliers: where the next LP from this point
    /// starts (`maximise`'s `held`).
    pub working_set: Vec<Bound>,
    /// The bounds held at the end and their multipliers in the units of ĝ (ĝ ≈ −Σ μ n, n the
    /// bound's normal): what the L1 search reads its optimality conditions from.
    pub multipliers: Vec<(Bound, f64)>,
    /// The factorisation of the bounds held at the end: the next LP from this point (another
    /// objective, or sub-box bounds that moved only where they stay tight) starts from it
    /// instead of factoring its working set afresh.
    pub warm: Option<WarmStart>,
}

/// An LP's working set and its factorisation, handed to the next LP ([`LpSolution::warm`]).
#[derive(Clone)]
pub struct WarmStart {
    factor: Factor,
    active: Vec<Bound>,
}

impl std::fmt::Debug for WarmStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WarmStart({} bounds held)", self.active.len())
    }
}

impl WarmStart {
    /// Holds the other bound of its pixel at the same value instead of `bound` (where the
    /// sub-box of an L1 search moves a breakpoint from one side of the pixel to the other): the
    /// normal changes sign, and so does its column of R.
    pub fn flip(&mut self, bound: Bound) {
        if let Some(l) = self.active.iter().position(|&b| b == bound) {
            self.active[l].upper = !self.active[l].upper;
            let k = self.factor.k;
            for i in 0..=l {
                self.factor.r[i * k + l] = -self.factor.r[i * k + l];
            }
        }
    }
}

impl BlockPolytope<'_> {
    /// At a point where the bounds of slack ≤ `tight` meet, the steepest direction d that keeps
    /// them: the projection of g onto the cone {d : nᵀd ≥ 0 on those bounds}, by [`Self::project`]
    /// on that cone. Its KKT conditions read d = g + Σ μ n with μ ≥ 0, so gᵀd = ‖d‖²: d = 0 proves
    /// the point optimal with the certificate g = −Σ μ n (returned), and d ≠ 0 is an ascent
    /// direction that leaves every other bound a positive step.
    fn ascent_at(&self, g: &[f64], delta: &[f64], tight: f64) -> (Vec<f64>, Vec<(Bound, f64)>) {
        let mut lo = vec![f64::NEG_INFINITY; self.rows];
        let mut hi = vec![f64::INFINITY; self.rows];
        for i in 0..self.rows {
            if self.slack(Bound { pixel: i, upper: false }, delta) <= tight {
                lo[i] = 0.0;
            }
            if self.slack(Bound { pixel: i, upper: true }, delta) <= tight {
                hi[i] = 0.0;
            }
        }
        let cone = BlockPolytope::new(self.basis, lo, hi);
        let solution = cone.project(g);
        (solution.coordinates, solution.active)
    }

    /// Adds bound `b` to the working set unless its normal lies in the span of those held: unless
    /// less than `outside` of it (in length) is left outside that span.
    #[allow(clippy::too_many_arguments)]
    fn hold_if_independent(
        &self,
        b: Bound,
        outside: f64,
        f: &mut Factor,
        active: &mut Vec<Bound>,
        is_active: &mut [[bool; 2]],
        normal: &mut [f64],
        d: &mut [f64],
    ) {
        self.normal_into(b, normal);
        f.transpose_times(normal, d);
        if d[active.len()..].iter().map(|v| v * v).sum::<f64>() > outside * outside {
            f.add(d);
            active.push(b);
            is_active[b.pixel][b.upper as usize] = true;
        }
    }

    /// The largest ‖a‖ (= ‖N a‖) the box allows: what weak-duality bounds charge the rounding
    /// left in their dual vector at.
    pub fn largest_move(&self) -> f64 {
        self.lo
            .iter()
            .zip(&self.hi)
            .map(|(l, h)| l.abs().max(h.abs()).powi(2))
            .sum::<f64>()
            .sqrt()
    }

    /// ‖g + Σ max(μ, 0) n‖ over the bounds held and their multipliers: what they leave of the
    /// LP's stationarity condition, computed from the normals themselves.
    fn stationarity(&self, g: &[f64], held: impl Iterator<Item = (Bound, f64)>, normal: &mut [f64]) -> f64 {
        let mut r = g.to_vec();
        for (b, m) in held {
            self.normal_into(b, normal);
            for (ri, ni) in r.iter_mut().zip(normal.iter()) {
                *ri += m.max(0.0) * ni;
            }
        }
        dot(&r, &r).sqrt()
    }

    /// An upper bound on gᵀa over the polytope, by weak duality: for any y with Nᵀy = g,
    /// gᵀa = yᵀ(N a) ≤ Σᵢ max(yᵢ loᵢ, yᵢ hiᵢ). y is taken from the multipliers of the bounds held
    /// (negative ones set to zero: y = +μ on an upper bound, −μ on a lower one) and corrected by
    /// N(g − Nᵀy), which makes Nᵀy = g since N has orthonormal columns; what rounding leaves of
    /// g − Nᵀy is charged at the largest ‖a‖ the box allows (`scale`). Exact at an optimal basis,
    /// and valid at any point the loop stops.
    fn dual_bound(&self, held: &[(Bound, f64)], g: &[f64], scale: f64) -> f64 {
        let mut y = vec![0.0; self.rows];
        for &(b, m) in held {
            y[b.pixel] += if b.upper { m.max(0.0) } else { -m.max(0.0) };
        }
        let mut correction = g.to_vec();
        for (aj, nj) in correction.iter_mut().zip(self.coordinates_of(&y)) {
            *aj -= nj;
        }
        for (yi, ni) in y.iter_mut().zip(self.delta_of(&correction)) {
            *yi += ni;
        }
        let mut left = g.to_vec();
        for (aj, nj) in left.iter_mut().zip(self.coordinates_of(&y)) {
            *aj -= nj;
        }
        let box_bound: f64 = (0..self.rows).map(|i| (y[i] * self.lo[i]).max(y[i] * self.hi[i])).sum();
        box_bound + dot(&left, &left).sqrt() * scale
    }

    /// max ĝᵀa over the polytope by the primal active-set method from the feasible `start`:
    /// move along ĝ projected onto the bounds held, stop at the first bound met and hold it; at a
    /// point where the projection vanishes, release the bound with the most negative multiplier,
    /// or stop when none is negative (the KKT conditions of the LP). From a vertex of the last
    /// LP (Frank–Wolfe steps) only a few pivots are needed.
    ///
    /// `held`: bounds to hold from the start (the working set of the LP that ended at `start`,
    /// for a Frank–Wolfe step); those not tight at `start` or dependent on earlier ones are
    /// skipped.
    pub fn maximise(&self, g_hat: &[f64], start: Vec<f64>, held: &[Bound]) -> LpSolution {
        self.maximise_from(g_hat, start, held, None)
    }

    /// [`Self::maximise`] from the working set and factorisation of the LP that ended at `start`
    /// (its bounds tight there, in this polytope too); `held` is then not read.
    pub fn maximise_from(&self, g_hat: &[f64], start: Vec<f64>, held: &[Bound], warm: Option<WarmStart>) -> LpSolution {
        let k = self.dim;
        let gn = dot(g_hat, g_hat).sqrt();
        let scale = self.largest_move();
        let mut a = start;
        let mut delta = self.delta_of(&a);
        if gn == 0.0 {
            return LpSolution {
                coordinates: a,
                delta,
                value: 0.0,
                bound: 0.0,
                dual_residual: 0.0,
                iterations: 0,
                working_set: held.to_vec(),
                multipliers: vec![],
                warm: None,
            };
        }
        let g: Vec<f64> = g_hat.iter().map(|v| v / gn).collect();
        let mut f = Factor::tracking(k, &g);
        let mut active: Vec<Bound> = vec![];
        let mut is_active = vec![[false; 2]; self.rows];
        let mut normal = vec![0.0; k];
        let mut d = vec![0.0; k];
        let mut p = vec![0.0; k];
        let mut mu = vec![0.0; k];
        let mut iterations = 0;
        let max_iterations = (20 * (self.rows + k) + 100).min(self.iteration_limit.unwrap_or(usize::MAX));
        match warm {
            Some(w) => {
                f = w.factor;
                f.track(&g);
                for b in &w.active {
                    is_active[b.pixel][b.upper as usize] = true;
                }
                active = w.active;
            }
            None => {
                for &b in held {
                    if !is_active[b.pixel][b.upper as usize] && self.slack(b, &delta).abs() <= TIGHT {
                        self.hold_if_independent(b, 1e-10, &mut f, &mut active, &mut is_active, &mut normal, &mut d);
                    }
                }
            }
        }
        let mut degenerate = false;
        // Bounds held with slack left that were released to close them, and fresh factorisations.
        let (mut closings, mut refactorings) = (0, 0);
        // Whether the last step was a stall (no longer than `SHORT_STEP`).
        let mut stalled = false;
        // Bounds released after stalls in a row: pivots at a (nearly) degenerate vertex.
        let mut degenerate_pivots = 0;
        // Multipliers that certify the optimum, when the escape from a degenerate vertex proved it.
        let mut proved: Option<Vec<(Bound, f64)>> = None;
        while iterations < max_iterations {
            iterations += 1;
            if degenerate_pivots > self.stall_pivots {
                // Pivoting among the many bounds through a degenerate vertex (a black or blown-out
                // patch holds hundreds for 204 directions) can take exponentially long even
                // without cycling. The vertex's own cone settles it at once.
                degenerate_pivots = 0;
                let (mut ascent, mut cone_active) = self.ascent_at(&g, &delta, ESCAPE_TIGHT);
                if dot(&ascent, &ascent).sqrt() <= 1e-9 {
                    // Optimal only were the nearly tight bounds tight: the proof takes the bounds
                    // that hold, whose cone may still leave an ascent.
                    (ascent, cone_active) = self.ascent_at(&g, &delta, TIGHT);
                    if dot(&ascent, &ascent).sqrt() <= 1e-9 {
                        proved = Some(cone_active);
                        break;
                    }
                }
                let moved = self.delta_of(&ascent);
                let tight = |b: Bound| self.slack(b, &delta) <= TIGHT;
                let length = dot(&ascent, &ascent).sqrt();
                let mut longest = f64::INFINITY;
                for (i, &m) in moved.iter().enumerate() {
                    for upper in [false, true] {
                        let b = Bound { pixel: i, upper };
                        let rate = if upper { -m } else { m };
                        if rate < -RATE_ZERO * length * self.row_norms[i] && !tight(b) {
                            longest = longest.min(self.slack(b, &delta) / -rate);
                        }
                    }
                }
                // Bounded polytope: some bound stops the move.
                if !longest.is_finite() {
                    break;
                }
                for (ai, di) in a.iter_mut().zip(&ascent) {
                    *ai += longest * di;
                }
                delta = self.delta_of(&a);
                // Hold again the bounds whose multipliers were positive: the move kept them tight,
                // and they are independent; the pivots go on from there.
                f = Factor::tracking(k, &g);
                active.clear();
                is_active.iter_mut().for_each(|flags| *flags = [false; 2]);
                for (b, m) in cone_active {
                    if m > 0.0 {
                        self.hold_if_independent(b, 1e-10, &mut f, &mut active, &mut is_active, &mut normal, &mut d);
                    }
                }
                degenerate = false;
                stalled = false;
                continue;
            }
            let q = active.len();
            d.copy_from_slice(f.tracked());
            f.null_part(&d, &mut p);
            let pn = dot(&p, &p).sqrt();
            // ĝ is of unit length: a projection this short is rounding.
            if pn > 1e-9 {
                // Ratio test: the first bound the move meets. At a degenerate vertex many bounds
                // stop the move after a step of rounding size; rounding must not choose among
                // them, or Bland's rule (lowest index enters) no longer prevents cycling.
                let moved = self.delta_of(&p);
                let mut blocking: Vec<(Bound, f64)> = vec![];
                for i in 0..self.rows {
                    if self.row_norms[i] < NEGLIGIBLE_ROW {
                        continue;
                    }
                    for upper in [false, true] {
                        if is_active[i][upper as usize] {
                            continue;
                        }
                        let rate = if upper { -moved[i] } else { moved[i] };
                        if rate >= -RATE_ZERO * pn * self.row_norms[i] {
                            continue;
                        }
                        let b = Bound { pixel: i, upper };
                        let t = self.slack(b, &delta).max(0.0) / -rate;
                        blocking.push((b, t));
                    }
                }
                let Some(shortest) = blocking.iter().map(|&(_, t)| t).min_by(f64::total_cmp) else {
                    break;
                };
                let (b, t) = if shortest <= DEGENERATE_STEP {
                    // Bounds are listed by index: the first one this close is the lowest.
                    *blocking
                        .iter()
                        .find(|&&(_, t)| t <= DEGENERATE_STEP)
                        .expect("the shortest is")
                } else {
                    *blocking.iter().find(|&&(_, t)| t == shortest).expect("the shortest is")
                };
                degenerate = t <= DEGENERATE_STEP;
                stalled = t * pn <= SHORT_STEP;
                if !stalled {
                    degenerate_pivots = 0;
                }
                for (ai, pi) in a.iter_mut().zip(&p) {
                    *ai += t * pi;
                }
                for (di, mi) in delta.iter_mut().zip(&moved) {
                    *di += t * mi;
                }
                self.normal_into(b, &mut normal);
                f.transpose_times(&normal, &mut d);
                if d[q..].iter().map(|v| v * v).sum::<f64>() <= (0.1 * RATE_ZERO * self.row_norms[b.pixel]).powi(2) {
                    // Dependent on the bounds held: the rate test above rules it out.
                    break;
                }
                f.add(&mut d);
                active.push(b);
                is_active[b.pixel][b.upper as usize] = true;
                continue;
            }
            // ĝ = −Σ μ n over the bounds held: R μ = −(Jᵀ ĝ)₁.
            for v in d[..q].iter_mut() {
                *v = -*v;
            }
            f.solve_r(&d[..q], &mut mu[..q]);
            // The most negative multiplier leaves; after a step of length zero (a degenerate
            // vertex) the one of the lowest bound index does (Bland's rule), which cannot cycle.
            let negative = (0..q).filter(|&l| mu[l] < -1e-12);
            let worst = if degenerate {
                negative.min_by_key(|&l| 2 * active[l].pixel + active[l].upper as usize)
            } else {
                negative.min_by(|&a, &b| mu[a].total_cmp(&mu[b]))
            };
            match worst {
                None if refactorings < 3
                    && self.stationarity(&g, active.iter().copied().zip(mu[..q].iter().copied()), &mut normal)
                        > 1e-9 =>
                {
                    // The multipliers do not satisfy what they solve: R lost accuracy on nearly
                    // dependent normals (tiles of a convolution repeat rows). Factor the working
                    // set afresh, leaving out normals that are dependent to 1e-7 of their length
                    // (the point stays where it is); the pivots go on from there.
                    refactorings += 1;
                    let held = std::mem::take(&mut active);
                    f = Factor::tracking(k, &g);
                    is_active.iter_mut().for_each(|flags| *flags = [false; 2]);
                    for b in held {
                        let outside = 1e-7 * self.row_norms[b.pixel];
                        self.hold_if_independent(b, outside, &mut f, &mut active, &mut is_active, &mut normal, &mut d);
                    }
                    degenerate = false;
                    stalled = false;
                }
                None => {
                    // A bound the escape held with slack left (up to `ESCAPE_TIGHT`) and a positive
                    // multiplier: the objective gains μ·slack by closing it, which weak duality
                    // charges to the certified bound. Release it, and the next step closes it.
                    let open = (0..q)
                        .filter(|&l| mu[l] > 0.0 && self.slack(active[l], &delta) > TIGHT)
                        .max_by(|&a, &b| {
                            (mu[a] * self.slack(active[a], &delta)).total_cmp(&(mu[b] * self.slack(active[b], &delta)))
                        });
                    match open {
                        Some(l) if closings < 4 * k => {
                            closings += 1;
                            let gone = active.remove(l);
                            is_active[gone.pixel][gone.upper as usize] = false;
                            f.drop(l);
                            degenerate = false;
                            stalled = false;
                        }
                        _ => break,
                    }
                }
                Some(l) => {
                    if stalled {
                        degenerate_pivots += 1;
                    }
                    let gone = active.remove(l);
                    is_active[gone.pixel][gone.upper as usize] = false;
                    f.drop(l);
                }
            }
        }
        // The certificate afresh at the point reached, whichever way the loop ended: multipliers
        // of the bounds held (negatives set to zero) and the dual residual they leave.
        let certificate: Vec<(Bound, f64)> = match proved {
            Some(multipliers) => multipliers,
            None => {
                let q = active.len();
                f.transpose_times(&g, &mut d);
                for v in d[..q].iter_mut() {
                    *v = -*v;
                }
                f.solve_r(&d[..q], &mut mu[..q]);
                active.iter().copied().zip(mu[..q].iter().copied()).collect()
            }
        };
        let residual = self.stationarity(&g, certificate.iter().copied(), &mut normal);
        let delta = self.delta_of(&a);
        let value = dot(g_hat, &a);
        LpSolution {
            coordinates: a,
            delta,
            value,
            bound: gn * self.dual_bound(&certificate, &g, scale),
            working_set: certificate.iter().filter(|(_, m)| *m > 0.0).map(|&(b, _)| b).collect(),
            multipliers: certificate.iter().map(|&(b, m)| (b, gn * m)).collect(),
            dual_residual: residual,
            iterations,
            warm: Some(WarmStart { factor: f, active }),
        }
    }
}

/// Jᵀ N_A = [R; 0] for the active normals N_A: J (k × k, orthogonal; column-major) and R (upper
/// triangular; row-major, so that back-substitution and the rotations of a drop run along
/// contiguous rows), updated by Givens rotations as bounds are added and dropped.
#[derive(Clone)]
struct Factor {
    k: usize,
    q: usize,
    j: Vec<f64>,
    r: Vec<f64>,
    /// Jᵀ v for the vector v given to `tracking` or `track` (the LP's objective), rotated with
    /// J's columns: two entries per rotation instead of a k × k product per iteration.
    tracked: Vec<f64>,
}

// Indices name rows and columns of J and R, as in the paper.
#[allow(clippy::needless_range_loop)]
impl Factor {
    fn new(k: usize) -> Factor {
        let mut j = vec![0.0; k * k];
        for i in 0..k {
            j[i * k + i] = 1.0;
        }
        Factor {
            k,
            q: 0,
            j,
            r: vec![0.0; k * k],
            tracked: vec![],
        }
    }

    /// Factor::new(k) that keeps Jᵀ v up to date ([`Factor::tracked`]).
    fn tracking(k: usize, v: &[f64]) -> Factor {
        let mut f = Factor::new(k);
        f.tracked = v.to_vec();
        f
    }

    /// Keeps Jᵀ v up to date from now on (a new objective for a factorisation carried over).
    fn track(&mut self, v: &[f64]) {
        let mut tracked = vec![0.0; self.k];
        self.transpose_times(v, &mut tracked);
        self.tracked = tracked;
    }

    /// Jᵀ v for the vector given to [`Factor::tracking`] or [`Factor::track`].
    fn tracked(&self) -> &[f64] {
        &self.tracked
    }

    /// Rotates columns i, i + 1 of J, and the tracked vector with them.
    fn rotate(&mut self, i: usize, c: f64, s: f64) {
        rotate_columns(&mut self.j, self.k, i, i + 1, c, s);
        if !self.tracked.is_empty() {
            let (a, b) = (self.tracked[i], self.tracked[i + 1]);
            self.tracked[i] = c * a + s * b;
            self.tracked[i + 1] = -s * a + c * b;
        }
    }

    /// d = Jᵀ v.
    fn transpose_times(&self, v: &[f64], d: &mut [f64]) {
        // Column i of J is row i of the column-major storage read as row-major.
        kernels::rows_times(&self.j, v, &mut d[..self.k]);
    }

    /// out = J₂ d₂: the part of J d outside the span of the active normals.
    fn null_part(&self, d: &[f64], out: &mut [f64]) {
        let (k, q) = (self.k, self.q);
        kernels::combine_rows(&self.j[q * k..], &d[q..k], &mut out[..k]);
    }

    /// Solves R x = b (b of length q) by back-substitution.
    fn solve_r(&self, b: &[f64], x: &mut [f64]) {
        let (k, q) = (self.k, self.q);
        for i in (0..q).rev() {
            let row = &self.r[i * k..i * k + q];
            x[i] = (b[i] - dot(&row[i + 1..], &x[i + 1..q])) / row[i];
        }
    }

    /// Adds the normal n with d = Jᵀ n (overwritten): rotates d₂ onto its first entry.
    fn add(&mut self, d: &mut [f64]) {
        let (k, q) = (self.k, self.q);
        for i in (q + 1..k).rev() {
            if d[i] != 0.0 {
                let (c, s) = givens(d[i - 1], d[i]);
                d[i - 1] = c * d[i - 1] + s * d[i];
                d[i] = 0.0;
                self.rotate(i - 1, c, s);
            }
        }
        for i in 0..=q {
            self.r[i * k + q] = d[i];
        }
        self.q += 1;
    }

    /// Drops the active normal at position l and restores R's triangle.
    fn drop(&mut self, l: usize) {
        let (k, q) = (self.k, self.q);
        // Column l leaves: every row's later entries move one to the left.
        for i in 0..q {
            let row = &mut self.r[i * k..i * k + q];
            row.copy_within(l + 1.., l);
            row[q - 1] = 0.0;
        }
        for col in l..q - 1 {
            let (c, s) = givens(self.r[col * k + col], self.r[(col + 1) * k + col]);
            let (upper, lower) = self.r.split_at_mut((col + 1) * k);
            kernels::rotate(&mut upper[col * k + col..col * k + q - 1], &mut lower[col..q - 1], c, s);
            self.r[(col + 1) * k + col] = 0.0;
            self.rotate(col, c, s);
        }
        self.q -= 1;
    }
}

/// (c, s) with c·a + s·b = ‖(a, b)‖ and −s·a + c·b = 0.
fn givens(a: f64, b: f64) -> (f64, f64) {
    // The plain square root where squaring cannot overflow or underflow (every entry here is of
    // the order of a pixel); `hypot`'s care elsewhere.
    let m = a.abs().max(b.abs());
    let h = if (1e-150..1e150).contains(&m) {
        (a * a + b * b).sqrt()
    } else {
        a.hypot(b)
    };
    if h == 0.0 {
        (1.0, 0.0)
    } else {
        (a / h, b / h)
    }
}

/// Columns i, j of the column-major k × k matrix m ← (c·mᵢ + s·mⱼ, −s·mᵢ + c·mⱼ).
fn rotate_columns(m: &mut [f64], k: usize, i: usize, j: usize, c: f64, s: f64) {
    let (lo, hi) = m.split_at_mut(j * k);
    let ci = &mut lo[i * k..(i + 1) * k];
    let cj = &mut hi[..k];
    kernels::rotate(ci, cj, c, s);
}
