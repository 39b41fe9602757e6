//! The factorisation of the active bounds' normals (J, R with Jᵀ N_A = [R; 0]) that the
//! active-set methods update by Givens rotations as bounds join and leave.

use super::*;

/// Jᵀ N_A = [R; 0] for the active normals N_A: J (k × k, orthogonal; column-major) and R (upper
/// triangular; row-major, so that back-substitution and the rotations of a drop run along
/// contiguous rows), updated by Givens rotations as bounds are added and dropped.
#[derive(Clone)]
pub(crate) struct Factor {
    pub(crate) k: usize,
    pub(crate) q: usize,
    pub(crate) j: Vec<f64>,
    pub(crate) r: Vec<f64>,
    /// Jᵀ v for the vector v given to `tracking` or `track` (the LP's objective), rotated with
    /// J's columns: two entries per rotation instead of a k × k product per iteration.
    pub(crate) tracked: Vec<f64>,
}

// Indices name rows and columns of J and R, as in the paper.
#[allow(clippy::needless_range_loop)]
impl Factor {
    pub(crate) fn new(k: usize) -> Factor {
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
    pub(crate) fn tracking(k: usize, v: &[f64]) -> Factor {
        let mut f = Factor::new(k);
        f.tracked = v.to_vec();
        f
    }

    /// Keeps Jᵀ v up to date from now on (a new objective for a factorisation carried over).
    pub(crate) fn track(&mut self, v: &[f64]) {
        let mut tracked = vec![0.0; self.k];
        self.transpose_times(v, &mut tracked);
        self.tracked = tracked;
    }

    /// Jᵀ v for the vector given to [`Factor::tracking`] or [`Factor::track`].
    pub(crate) fn tracked(&self) -> &[f64] {
        &self.tracked
    }

    /// Rotates columns i, i + 1 of J, and the tracked vector with them.
    pub(crate) fn rotate(&mut self, i: usize, c: f64, s: f64) {
        rotate_columns(&mut self.j, self.k, i, i + 1, c, s);
        if !self.tracked.is_empty() {
            let (a, b) = (self.tracked[i], self.tracked[i + 1]);
            self.tracked[i] = c * a + s * b;
            self.tracked[i + 1] = -s * a + c * b;
        }
    }

    /// d = Jᵀ v.
    pub(crate) fn transpose_times(&self, v: &[f64], d: &mut [f64]) {
        // Column i of J is row i of the column-major storage read as row-major.
        kernels::rows_times(&self.j, v, &mut d[..self.k]);
    }

    /// out = J₂ d₂: the part of J d outside the span of the active normals.
    pub(crate) fn null_part(&self, d: &[f64], out: &mut [f64]) {
        let (k, q) = (self.k, self.q);
        kernels::combine_rows(&self.j[q * k..], &d[q..k], &mut out[..k]);
    }

    /// Solves R x = b (b of length q) by back-substitution.
    pub(crate) fn solve_r(&self, b: &[f64], x: &mut [f64]) {
        let (k, q) = (self.k, self.q);
        for i in (0..q).rev() {
            let row = &self.r[i * k..i * k + q];
            x[i] = (b[i] - dot(&row[i + 1..], &x[i + 1..q])) / row[i];
        }
    }

    /// Adds the normal n with d = Jᵀ n (overwritten): rotates d₂ onto its first entry.
    pub(crate) fn add(&mut self, d: &mut [f64]) {
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
    pub(crate) fn drop(&mut self, l: usize) {
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
pub(crate) fn givens(a: f64, b: f64) -> (f64, f64) {
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
pub(crate) fn rotate_columns(m: &mut [f64], k: usize, i: usize, j: usize, c: f64, s: f64) {
    let (lo, hi) = m.split_at_mut(j * k);
    let ci = &mut lo[i * k..(i + 1) * k];
    let cj = &mut hi[..k];
    kernels::rotate(ci, cj, c, s);
}
