//! A proof that a convolution has full rank on its short side, for images too large for a dense
//! SVD: the Gram matrix of the short side (A Aᵀ over output positions, or Aᵀ A over pixels) is
//! banded once its indices run along the image's longer axis, and a banded Cholesky factorisation
//! of Gram − (τ² + δ) I that succeeds proves every singular value exceeds the rank tolerance τ.
//! δ covers the rounding of forming and factoring the Gram matrix in f64 (Demmel's bound), so the
//! proof is not weakened by the arithmetic that produced it.
//!
//! Then the nullity is exact: input values minus the outputs that read anything (short-fat), or
//! the pixels no tap reads (tall).

use crate::linop::{Conv2d, LinearOperator};

/// What the factorisation proved.
#[derive(Clone, Debug)]
pub struct RankCertificate {
    /// The operator's rank with tolerance τ: every live row (or column) of the short side.
    pub rank: usize,
    pub nullity: usize,
    /// "outputs" (A Aᵀ) or "pixels" (Aᵀ A).
    pub side: &'static str,
    pub gram_size: usize,
    pub bandwidth: usize,
    /// λ_min(Gram) > tolerance² + this rounding margin was proved.
    pub rounding_margin: f64,
}

/// Rows (or columns) of a sparse matrix: (index, value) pairs.
type SparseLines = Vec<Vec<(u32, f64)>>;

/// Floating-point operations above which the factorisation is not attempted (a few seconds).
pub const MAX_FLOPS: f64 = 4e9;

/// Operator entries above which not even the sparse form is built (about 300 MB).
pub const MAX_NONZEROS: usize = 20_000_000;

/// Why no certificate was produced.
#[derive(Clone, Debug)]
pub enum NoCertificate {
    /// More than [`MAX_NONZEROS`] taps in the whole operator.
    TooLarge { nonzeros: usize },
    /// n · bandwidth² above [`MAX_FLOPS`].
    TooCostly { gram_size: usize, bandwidth: usize },
    /// The shifted Gram matrix is not positive definite: some singular value of the live short
    /// side may be at or below the tolerance (this proves nothing either way).
    NotPositiveDefinite { gram_size: usize, bandwidth: usize },
}

impl std::fmt::Display for NoCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoCertificate::TooLarge { nonzeros } => write!(
                f,
                "a banded Cholesky certificate is not attempted: the operator has {nonzeros} non-zero entries (limit {MAX_NONZEROS})"
            ),
            NoCertificate::TooCostly { gram_size, bandwidth } => write!(
                f,
                "a banded Cholesky certificate would cost {gram_size} × {bandwidth}² operations, too many"
            ),
            NoCertificate::NotPositiveDefinite { gram_size, bandwidth } => write!(
                f,
                "the banded Cholesky certificate ({gram_size} × bandwidth {bandwidth}) failed: a singular value of the short side may be at or below the tolerance"
            ),
        }
    }
}

/// Tries to prove that every live row (short-fat) or live column (tall) of `conv` keeps a
/// singular value above `tolerance`.
pub fn certify_full_rank(conv: &Conv2d, tolerance: f64) -> Result<RankCertificate, NoCertificate> {
    let g = &conv.geometry;
    let [c, h, w] = g.in_shape;
    let [oh, ow] = g.out;
    let m = conv.out_channels;
    let (rows, cols) = (conv.output_dim(), conv.input_dim());
    // The sparse form holds every tap of every output: refuse before building it where that alone
    // would take gigabytes (any such operator is far beyond MAX_FLOPS anyway).
    let nonzeros = rows * (g.in_shape[0] / g.group.max(1)) * g.kernel[0] * g.kernel[1];
    if nonzeros > MAX_NONZEROS {
        return Err(NoCertificate::TooLarge { nonzeros });
    }
    // Sparse rows of A.
    let mut by_row: SparseLines = vec![vec![]; rows];
    g.for_each_tap(m, |r, col, k| {
        let v = conv.weight[k];
        if v != 0.0 {
            by_row[r].push((col as u32, v));
        }
    });
    let mut by_col: SparseLines = vec![vec![]; cols];
    for (r, entries) in by_row.iter().enumerate() {
        for &(col, v) in entries {
            by_col[col as usize].push((r as u32, v));
        }
    }
    let live_rows = by_row.iter().filter(|e| !e.is_empty()).count();
    let live_cols = by_col.iter().filter(|e| !e.is_empty()).count();
    let fan = by_row
        .iter()
        .map(Vec::len)
        .max()
        .unwrap_or(0)
        .max(by_col.iter().map(Vec::len).max().unwrap_or(0));
    // The short side, its indices ordered along the longer spatial axis (outermost), and the
    // sparse vectors whose pairwise products form the Gram matrix.
    let rows_short = live_rows <= live_cols;
    let (side, position, pairs_from): (&'static str, Vec<usize>, &SparseLines) = if rows_short {
        let order = |r: usize| {
            let (o, py, px) = (r / (oh * ow), (r / ow) % oh, r % ow);
            if ow >= oh {
                (px * oh + py) * m + o
            } else {
                (py * ow + px) * m + o
            }
        };
        ("outputs", (0..rows).map(order).collect(), &by_col)
    } else {
        let order = |k: usize| {
            let (ch, y, x) = (k / (h * w), (k / w) % h, k % w);
            if w >= h {
                (x * h + y) * c + ch
            } else {
                (y * w + x) * c + ch
            }
        };
        ("pixels", (0..cols).map(order).collect(), &by_row)
    };
    let n = position.len();
    let mut bandwidth = 0;
    for entries in pairs_from {
        let ps: Vec<usize> = entries.iter().map(|&(i, _)| position[i as usize]).collect();
        if let (Some(lo), Some(hi)) = (ps.iter().min(), ps.iter().max()) {
            bandwidth = bandwidth.max(hi - lo);
        }
    }
    if (n as f64) * (bandwidth as f64 + 1.0).powi(2) > MAX_FLOPS {
        return Err(NoCertificate::TooCostly {
            gram_size: n,
            bandwidth,
        });
    }
    // Lower band, row-major: band[i·(b+1) + (i − j)] = G[i][j] for i − b ≤ j ≤ i.
    let width = bandwidth + 1;
    let mut band = vec![0.0; n * width];
    for entries in pairs_from {
        for &(a, va) in entries {
            for &(b, vb) in entries {
                let (i, j) = (position[a as usize], position[b as usize]);
                if i >= j {
                    band[i * width + (i - j)] += va * vb;
                }
            }
        }
    }
    // Dead rows/columns of the short side are exact zeros: leave them out by giving them a unit
    // diagonal (they are counted in the nullity separately).
    let live: Vec<bool> = if rows_short {
        let mut l = vec![false; n];
        for (r, e) in by_row.iter().enumerate() {
            l[position[r]] = !e.is_empty();
        }
        l
    } else {
        let mut l = vec![false; n];
        for (k, e) in by_col.iter().enumerate() {
            l[position[k]] = !e.is_empty();
        }
        l
    };
    let largest_diagonal = (0..n).map(|i| band[i * width]).fold(0.0, f64::max);
    let eps = f64::EPSILON;
    // Forming each entry sums at most `fan` products: |ΔG_ij| ≤ γ_fan √(G_ii G_jj). Banded
    // Cholesky's backward error: |ΔG_ij| ≤ γ_(b+1) √(G_ii G_jj). A band of 2b + 1 such entries per
    // row bounds the 2-norm of both by (2b + 1) times that; doubled for safety.
    let gamma = |k: usize| k as f64 * eps / (1.0 - k as f64 * eps);
    let rounding_margin = 2.0 * (2 * bandwidth + 1) as f64 * (gamma(fan) + gamma(width + 1)) * largest_diagonal;
    let shift = tolerance * tolerance + rounding_margin;
    for i in 0..n {
        if live[i] {
            band[i * width] -= shift;
        } else {
            band[i * width] = 1.0;
        }
    }
    if !banded_cholesky(&mut band, n, bandwidth) {
        return Err(NoCertificate::NotPositiveDefinite {
            gram_size: n,
            bandwidth,
        });
    }
    let rank = if rows_short { live_rows } else { live_cols };
    Ok(RankCertificate {
        rank,
        nullity: cols - rank,
        side,
        gram_size: n,
        bandwidth,
        rounding_margin,
    })
}

/// In-place Cholesky of a symmetric banded matrix (lower band, row-major); false when a pivot is
/// not positive.
fn banded_cholesky(band: &mut [f64], n: usize, b: usize) -> bool {
    let width = b + 1;
    for i in 0..n {
        let first = i.saturating_sub(b);
        for j in first..=i {
            // G[i][j] − Σ_k L[i][k] L[j][k] over the columns both rows hold.
            let start = first.max(j.saturating_sub(b));
            let mut s = band[i * width + (i - j)];
            for k in start..j {
                s -= band[i * width + (i - k)] * band[j * width + (j - k)];
            }
            if i == j {
                if s <= 0.0 || !s.is_finite() {
                    return false;
                }
                band[i * width] = s.sqrt();
            } else {
                band[i * width + (i - j)] = s / band[j * width];
            }
        }
    }
    true
}
