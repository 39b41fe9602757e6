//! Linear programs over a block's polytope by the primal active-set method: the far corner,
//! Frank–Wolfe steps, and the proof that a block has no room, warm-started from the previous
//! solve's factorisation and certified by weak duality.

use super::*;

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
    pub(crate) fn ascent_at(&self, g: &[f64], delta: &[f64], tight: f64) -> (Vec<f64>, Vec<(Bound, f64)>) {
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
    pub(crate) fn hold_if_independent(
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
    pub(crate) fn stationarity(&self, g: &[f64], held: impl Iterator<Item = (Bound, f64)>, normal: &mut [f64]) -> f64 {
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
    pub(crate) fn dual_bound(&self, held: &[(Bound, f64)], g: &[f64], scale: f64) -> f64 {
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
