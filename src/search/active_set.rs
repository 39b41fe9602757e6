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

use crate::linop::dot;
use faer::Mat;

/// A block's null basis N row by row, shared by every block with the same matrix.
pub struct RowBasis {
    /// Pixels of the block (rows of N).
    rows: usize,
    /// Null directions (columns of N).
    dim: usize,
    /// Row i: the null-space coordinates of pixel i.
    data: Vec<f64>,
    norms: Vec<f64>,
}

impl RowBasis {
    /// `basis`: orthonormal columns, one row per pixel.
    pub fn new(basis: &Mat<f64>) -> RowBasis {
        let (rows, dim) = (basis.nrows(), basis.ncols());
        let mut data = vec![0.0; rows * dim];
        for j in 0..dim {
            let col = basis.col(j);
            for i in 0..rows {
                data[i * dim + j] = col[i];
            }
        }
        let norms = (0..rows)
            .map(|i| {
                let r = &data[i * dim..(i + 1) * dim];
                dot(r, r).sqrt()
            })
            .collect();
        RowBasis { rows, dim, data, norms }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
}

/// A block's polytope {a : lo ≤ N a ≤ hi} in null-space coordinates (bounds relative to the
/// image: lo ≤ 0 ≤ hi).
pub struct BlockPolytope<'a> {
    basis: &'a RowBasis,
    rows: usize,
    dim: usize,
    row_norms: &'a [f64],
    lo: Vec<f64>,
    hi: Vec<f64>,
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

/// A bound counts as violated when broken by more than this (pixel units).
const VIOLATION: f64 = 1e-12;

impl<'a> BlockPolytope<'a> {
    /// `lo`, `hi`: the pixel range minus the image's pixels (so lo ≤ 0 ≤ hi).
    pub fn new(basis: &'a RowBasis, lo: Vec<f64>, hi: Vec<f64>) -> BlockPolytope<'a> {
        assert_eq!(lo.len(), basis.rows);
        assert_eq!(hi.len(), basis.rows);
        BlockPolytope {
            basis,
            rows: basis.rows,
            dim: basis.dim,
            row_norms: &basis.norms,
            lo,
            hi,
        }
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
        (0..self.rows).map(|i| dot(self.row(i), a)).collect()
    }

    /// Nᵀ v: the null-space coordinates of the pixel change v's projection.
    pub fn coordinates_of(&self, v: &[f64]) -> Vec<f64> {
        let mut a = vec![0.0; self.dim];
        for (i, &vi) in v.iter().enumerate() {
            if vi != 0.0 {
                for (aj, nj) in a.iter_mut().zip(self.row(i)) {
                    *aj += vi * nj;
                }
            }
        }
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
    pub fn project(&self, c: &[f64]) -> BlockSolution {
        assert_eq!(c.len(), self.dim);
        let k = self.dim;
        let mut a = c.to_vec();
        let mut delta = self.delta_of(&a);
        // J (k × k, column-major, orthogonal) and R (upper triangular, column-major in a k × k
        // array) with Jᵀ N_A = [R; 0] for the active normals N_A.
        let mut j_mat = vec![0.0; k * k];
        for i in 0..k {
            j_mat[i * k + i] = 1.0;
        }
        let mut r_mat = vec![0.0; k * k];
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
                for i in 0..k {
                    d[i] = dot(&j_mat[i * k..(i + 1) * k], &normal);
                }
                step.fill(0.0);
                for i in q..k {
                    let di = d[i];
                    if di != 0.0 {
                        for (s, jv) in step.iter_mut().zip(&j_mat[i * k..(i + 1) * k]) {
                            *s += di * jv;
                        }
                    }
                }
                for i in (0..q).rev() {
                    let mut v = d[i];
                    for l in i + 1..q {
                        v -= r_mat[l * k + i] * r[l];
                    }
                    r[i] = v / r_mat[i * k + i];
                }
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
                    // Add p: rotate d₂ onto its first entry, columns of J alike.
                    for i in (q + 1..k).rev() {
                        if d[i] != 0.0 {
                            let (c, s) = givens(d[i - 1], d[i]);
                            d[i - 1] = c * d[i - 1] + s * d[i];
                            d[i] = 0.0;
                            rotate_columns(&mut j_mat, k, i - 1, i, c, s);
                        }
                    }
                    for i in 0..=q {
                        r_mat[q * k + i] = d[i];
                    }
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
                for col in l..q - 1 {
                    for i in 0..k {
                        r_mat[col * k + i] = r_mat[(col + 1) * k + i];
                    }
                }
                for i in 0..k {
                    r_mat[(q - 1) * k + i] = 0.0;
                }
                for col in l..q - 1 {
                    let (c, s) = givens(r_mat[col * k + col], r_mat[col * k + col + 1]);
                    for cc in col..q - 1 {
                        let (x0, x1) = (r_mat[cc * k + col], r_mat[cc * k + col + 1]);
                        r_mat[cc * k + col] = c * x0 + s * x1;
                        r_mat[cc * k + col + 1] = -s * x0 + c * x1;
                    }
                    r_mat[col * k + col + 1] = 0.0;
                    rotate_columns(&mut j_mat, k, col, col + 1, c, s);
                }
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

/// (c, s) with c·a + s·b = ‖(a, b)‖ and −s·a + c·b = 0.
fn givens(a: f64, b: f64) -> (f64, f64) {
    let h = a.hypot(b);
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
    for (x, y) in ci.iter_mut().zip(cj.iter_mut()) {
        let (a, b) = (*x, *y);
        *x = c * a + s * b;
        *y = -s * a + c * b;
    }
}
