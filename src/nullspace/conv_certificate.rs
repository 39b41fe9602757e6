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
use faer::{Accum, Mat, Par, Side};

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

/// n · bandwidth² above which the factorisation is not attempted by default (a few seconds).
pub const MAX_FLOPS: f64 = 4e9;

/// Operator entries above which not even the sparse form is built (about 300 MB).
pub const MAX_NONZEROS: usize = 20_000_000;

/// Why no certificate was produced.
#[derive(Clone, Debug)]
pub enum NoCertificate {
    /// More than [`MAX_NONZEROS`] taps in the whole operator.
    TooLarge { nonzeros: usize },
    /// n · bandwidth² above the budget.
    TooCostly {
        gram_size: usize,
        bandwidth: usize,
        budget: f64,
    },
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
            NoCertificate::TooCostly {
                gram_size,
                bandwidth,
                budget,
            } => write!(
                f,
                "a banded Cholesky certificate would cost {gram_size} × {bandwidth}² = {:.2e} operations, above the budget of {budget:.0e}",
                *gram_size as f64 * (*bandwidth as f64).powi(2)
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
    certify_full_rank_within(conv, tolerance, MAX_FLOPS, &|_, _| {})
}

/// The nonzero entries of A by row and by column (index, value).
fn sparse_lines(conv: &Conv2d) -> (SparseLines, SparseLines) {
    let (rows, cols) = (conv.output_dim(), conv.input_dim());
    let mut by_row: SparseLines = vec![vec![]; rows];
    conv.geometry.for_each_tap(conv.out_channels, |r, col, k| {
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
    (by_row, by_col)
}

/// [`certify_full_rank`] where n · bandwidth² may reach `budget`; `progress` hears (blocks
/// factored, blocks).
pub fn certify_full_rank_within(
    conv: &Conv2d,
    tolerance: f64,
    budget: f64,
    progress: &dyn Fn(usize, usize),
) -> Result<RankCertificate, NoCertificate> {
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
    let (by_row, by_col) = sparse_lines(conv);
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
    if (n as f64) * (bandwidth as f64 + 1.0).powi(2) > budget {
        return Err(NoCertificate::TooCostly {
            gram_size: n,
            bandwidth,
            budget,
        });
    }
    // Dead rows/columns of the short side are exact zeros: they are left out by a unit diagonal
    // (and counted in the nullity separately).
    let mut live = vec![false; n];
    let short_lines = if rows_short { &by_row } else { &by_col };
    for (i, e) in short_lines.iter().enumerate() {
        live[position[i]] = !e.is_empty();
    }
    let mut diagonal = vec![0.0; n];
    for entries in pairs_from {
        for &(a, va) in entries {
            diagonal[position[a as usize]] += va * va;
        }
    }
    let largest_diagonal = diagonal.iter().copied().fold(0.0, f64::max);
    let block = block_size(n, bandwidth);
    let eps = f64::EPSILON;
    // Forming each entry sums at most `fan` products: |ΔG_ij| ≤ γ_fan √(G_ii G_jj). Cholesky's
    // backward error, whatever the order of its sums: |ΔG_ij| ≤ γ_k √(G_ii G_jj) with k the
    // longest inner product, here at most 2·block + 1 (the previous block's solve, then this
    // block's factor). A row holds at most 3·block entries of the block-tridiagonal pattern, which
    // bounds the 2-norm of both errors by 3·block times that; doubled for safety.
    let gamma = |k: usize| k as f64 * eps / (1.0 - k as f64 * eps);
    let rounding_margin = 2.0 * (3 * block) as f64 * (gamma(fan) + gamma(2 * block + 1)) * largest_diagonal;
    let shift = tolerance * tolerance + rounding_margin;
    let gram = BandedGram {
        lines: pairs_from,
        position: &position,
        live: &live,
        shift,
        block,
    };
    if !gram.factors(progress) {
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

/// Indices per block of the blocked factorisation: at least the bandwidth, so that only
/// neighbouring blocks couple, and large enough for dense kernels to run at speed.
fn block_size(n: usize, bandwidth: usize) -> usize {
    bandwidth.max(256).min(n.max(1))
}

/// The short-side Gram matrix Σ_lines v vᵀ (indices through `position`), shifted down by `shift`
/// on its live diagonal, with dead indices given a unit diagonal.
struct BandedGram<'a> {
    lines: &'a SparseLines,
    position: &'a [usize],
    live: &'a [bool],
    shift: f64,
    block: usize,
}

impl BandedGram<'_> {
    /// Whether the Cholesky factorisation succeeds, by blocks: with D_k and C_k the diagonal and
    /// sub-diagonal blocks, L_k = chol(D_k − Y_kᵀ Y_k) where L_{k−1} Y_k = C_kᵀ. The blocks are
    /// assembled from the lines as the factorisation reaches them and dense kernels (faer) do
    /// the work, so the band is never stored whole: memory is a few blocks. `progress` hears
    /// (blocks done, blocks).
    fn factors(&self, progress: &dyn Fn(usize, usize)) -> bool {
        let n = self.position.len();
        let s = self.block;
        let blocks = n.div_ceil(s);
        // Indices in block k (none past the last block).
        let size = |k: usize| if k < blocks { (n - k * s).min(s) } else { 0 };
        // Lines by the block of their first index: they reach that block and the next.
        let mut by_block: Vec<Vec<usize>> = vec![vec![]; blocks];
        for (l, entries) in self.lines.iter().enumerate() {
            if let Some(lo) = entries.iter().map(|&(i, _)| self.position[i as usize]).min() {
                by_block[lo / s].push(l);
            }
        }
        let mut diagonal = Mat::<f64>::zeros(size(0), size(0));
        let mut below = Mat::<f64>::zeros(0, 0);
        let mut next_diagonal = Mat::<f64>::zeros(size(1), size(1));
        let mut next_below = Mat::<f64>::zeros(size(1), size(0));
        let mut previous: Option<Mat<f64>> = None;
        for (k, lines_here) in by_block.iter().enumerate() {
            let start = k * s;
            for &l in lines_here {
                let entries = &self.lines[l];
                for &(a, va) in entries {
                    let i = self.position[a as usize];
                    for &(b, vb) in entries {
                        let j = self.position[b as usize];
                        let v = va * vb;
                        match (i - start < s, j - start < s) {
                            (true, true) => diagonal[(i - start, j - start)] += v,
                            (false, true) => next_below[(i - start - s, j - start)] += v,
                            (false, false) => next_diagonal[(i - start - s, j - start - s)] += v,
                            (true, false) => {}
                        }
                    }
                }
            }
            for d in 0..size(k) {
                diagonal[(d, d)] = if self.live[start + d] {
                    diagonal[(d, d)] - self.shift
                } else {
                    1.0
                };
            }
            if let Some(l_prev) = &previous {
                let mut y = below.transpose().to_owned();
                faer::linalg::triangular_solve::solve_lower_triangular_in_place(
                    l_prev.as_ref(),
                    y.as_mut(),
                    Par::rayon(0),
                );
                faer::linalg::matmul::matmul(
                    diagonal.as_mut(),
                    Accum::Add,
                    y.transpose(),
                    y.as_ref(),
                    -1.0,
                    Par::rayon(0),
                );
            }
            let Ok(factor) = diagonal.llt(Side::Lower) else {
                return false;
            };
            if !(0..size(k)).all(|d| factor.L()[(d, d)].is_finite()) {
                return false;
            }
            previous = Some(factor.L().to_owned());
            progress(k + 1, blocks);
            if k + 1 < blocks {
                diagonal = std::mem::replace(&mut next_diagonal, Mat::zeros(size(k + 2), size(k + 2)));
                below = std::mem::replace(&mut next_below, Mat::zeros(size(k + 2), size(k + 1)));
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The blocked factorisation succeeds exactly where a dense Cholesky of the same shifted Gram
    /// matrix does, across three blocks, with dead indices and shifts on both sides of λ_min.
    #[test]
    fn blocked_factorisation_agrees_with_a_dense_cholesky() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let (n, span) = (700, 40);
        // Lines over positions lo..lo + span, in a shuffled index order.
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            order.swap(i, rng.gen_range(0..=i));
        }
        let mut position = vec![0; n];
        for (p, &index) in order.iter().enumerate() {
            position[index] = p;
        }
        let dead: Vec<usize> = vec![3, 300, 699];
        let mut lines: SparseLines = vec![];
        for _ in 0..2 * n {
            let lo = rng.gen_range(0..n - span);
            let mut entries: Vec<(u32, f64)> = vec![];
            for _ in 0..6 {
                let p = rng.gen_range(lo..lo + span);
                if !dead.contains(&p) && !entries.iter().any(|&(i, _)| i as usize == order[p]) {
                    entries.push((order[p] as u32, rng.gen_range(-1.0..1.0)));
                }
            }
            lines.push(entries);
        }
        let mut live = vec![false; n];
        for entries in &lines {
            for &(i, _) in entries {
                live[position[i as usize]] = true;
            }
        }
        let mut gram = Mat::<f64>::zeros(n, n);
        for entries in &lines {
            for &(a, va) in entries {
                for &(b, vb) in entries {
                    gram[(position[a as usize], position[b as usize])] += va * vb;
                }
            }
        }
        let largest = (0..n).map(|i| gram[(i, i)]).fold(0.0, f64::max);
        let (mut succeeded, mut failed) = (0, 0);
        for fraction in [0.0, 1e-4, 1e-3, 1e-2, 0.05, 0.1, 0.3] {
            let shift = fraction * largest;
            let mut dense = gram.clone();
            for i in 0..n {
                dense[(i, i)] = if live[i] { dense[(i, i)] - shift } else { 1.0 };
            }
            let want = dense.llt(Side::Lower).is_ok();
            let blocked = BandedGram {
                lines: &lines,
                position: &position,
                live: &live,
                shift,
                block: block_size(n, span),
            };
            assert_eq!(blocked.factors(&|_, _| {}), want, "shift {fraction} × largest diagonal");
            if want {
                succeeded += 1;
            } else {
                failed += 1;
            }
        }
        assert!(succeeded > 0 && failed > 0, "{succeeded} succeeded, {failed} failed");
    }
}
