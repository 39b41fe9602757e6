//! Numerical rank and null spaces of the front end, block by block (faer, f64).

pub mod circulant_preconditioner;
pub mod conv_certificate;
pub mod conv_spectrum;
pub mod dense_svd;
mod front_end;
pub mod matrix_free_projection;
pub mod polyphase;
mod row_basis;

pub use front_end::{
    front_end_null_space, front_end_null_space_with, null_space_for_collisions, null_space_for_variants,
    searchable_null_space, tiled_null_space, CONV_TILE,
};
pub use row_basis::RowBasis;

use crate::linop::{Block, BlockOperator, ColumnMask, LinearOperator};
use crate::nullspace::matrix_free_projection::{CgProjector, Preconditioner};
use anyhow::{bail, Result};
use dense_svd::Vectors;
use faer::Mat;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One block of a block-diagonal null space: its pixels and an orthonormal basis of its null
/// directions, row by row (one row per pixel).
#[derive(Clone)]
pub struct NullBlock {
    pub pixels: Vec<usize>,
    pub basis: Arc<RowBasis>,
}

/// A block-diagonal null space: the collision polytope is the product of one polytope per block,
/// a box for the free pixels, and a point for every other pixel (held).
pub struct Decomposition {
    pub blocks: Vec<NullBlock>,
    /// Pixels no block reads: each one a null direction on its own.
    pub free: Vec<usize>,
}

/// How the rank tolerance is set.
#[derive(Clone, Copy, Debug, Default)]
pub struct RankRule {
    /// `--tol REL`: tolerance = REL · σ_max. Otherwise numpy's `matrix_rank` rule for the stored
    /// precision: max(m, n) · eps · σ_max with (m, n) the layer's weight matrix.
    pub relative: Option<f64>,
}

impl RankRule {
    pub fn tolerance(&self, sigma_max: f64, weight_dims: (usize, usize), eps: f64) -> f64 {
        match self.relative {
            Some(rel) => rel * sigma_max,
            None => weight_dims.0.max(weight_dims.1) as f64 * eps * sigma_max,
        }
    }
    pub fn describe(&self) -> String {
        match self.relative {
            Some(rel) => format!("{rel} × sigma_max (the relative tolerance asked for)"),
            None => "max(rows, cols) of the weight matrix × eps(stored dtype) × sigma_max (numpy matrix_rank)".into(),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct MatrixRank {
    pub rows: usize,
    pub cols: usize,
    pub rank: usize,
    pub nullity: usize,
    pub tolerance: f64,
    pub sigma_max: f64,
    /// The smallest of the min(rows, cols) singular values.
    pub sigma_min: f64,
    #[serde(skip)]
    pub singular_values: Vec<f64>,
}

fn check_finite(m: &Mat<f64>) -> Result<()> {
    for j in 0..m.ncols() {
        for i in 0..m.nrows() {
            if !m[(i, j)].is_finite() {
                bail!("the matrix holds a non-finite value ({}) at ({i}, {j})", m[(i, j)]);
            }
        }
    }
    Ok(())
}

fn rank_from_singular_values(
    rows: usize,
    cols: usize,
    sv: Vec<f64>,
    weight_dims: (usize, usize),
    eps: f64,
    rule: RankRule,
) -> MatrixRank {
    let sigma_max = sv.first().copied().unwrap_or(0.0);
    let sigma_min = sv.last().copied().unwrap_or(0.0);
    let tolerance = rule.tolerance(sigma_max, weight_dims, eps);
    let rank = sv.iter().filter(|&&s| s > tolerance).count();
    MatrixRank {
        rows,
        cols,
        rank,
        nullity: cols - rank,
        tolerance,
        sigma_max,
        sigma_min,
        singular_values: sv,
    }
}

/// Rank of a matrix from its singular values alone.
pub fn rank_of(m: &Mat<f64>, weight_dims: (usize, usize), eps: f64, rule: RankRule) -> Result<MatrixRank> {
    check_finite(m)?;
    let mut sv = dense_svd::singular_values(m.as_ref())?;
    sv.sort_by(|a, b| b.total_cmp(a));
    Ok(rank_from_singular_values(
        m.nrows(),
        m.ncols(),
        sv,
        weight_dims,
        eps,
        rule,
    ))
}

/// An orthonormal basis of either the null space or the row space of one block matrix, whichever
/// is smaller; both give the same projector.
enum Basis {
    Null(Mat<f64>),
    Row(Mat<f64>),
}

/// The null space of the front end, as a projector: orthonormal bases per distinct block where the
/// operator is block-diagonal (plus the pixels no block reads, each a null direction on its own),
/// or conjugate gradients on the operator itself where it is not (overlapping convolutions).
pub struct NullSpace {
    pub dim: usize,
    /// The number of null directions: exact where `nullity_exact`, otherwise a lower bound.
    pub nullity: usize,
    pub nullity_exact: bool,
    /// How `nullity` was obtained.
    pub method: String,
    /// The largest singular value among the directions counted as null: ‖A δ‖ ≤ this · ‖δ‖ for
    /// every δ in the span, since the blocks' rows are disjoint too. Rounding-level for exact null
    /// spaces; the budget's price for approximate ones (`--tol`).
    pub response_bound: f64,
    pub uncovered: Vec<usize>,
    /// Rank of each distinct block matrix with the number of blocks sharing it.
    pub block_ranks: Vec<(usize, MatrixRank)>,
    repr: Repr,
    /// Pixels held fixed: outside every block and every null direction.
    pinned: Vec<bool>,
}

enum Repr {
    Blocks {
        groups: Vec<(Arc<Basis>, Vec<Vec<usize>>)>,
        /// What the null space was computed from, to restrict it later (see [`NullSpace::pinned`]).
        source: Arc<Source>,
    },
    MatrixFree {
        source: Arc<MatrixFreeSource>,
        /// The last projection's multiplier: the next, nearby projection starts from it.
        warm: Mutex<Option<Vec<f64>>>,
        /// The largest ‖A z‖ / ‖A v‖ any projection has returned.
        worst_residual: Mutex<f64>,
    },
}

/// A front end known only by its action: the null space is reached by projection alone.
pub struct MatrixFreeSource {
    /// Pixels → first-layer output, linear part.
    pub operator: Arc<dyn LinearOperator>,
    pub preconditioner: Option<Arc<dyn Preconditioner>>,
    /// Exact where `nullity_exact`, otherwise a lower bound.
    pub nullity: usize,
    pub nullity_exact: bool,
    pub method: String,
    /// Of the whole operator on its short side: an estimate where the structure gives no more.
    pub smallest_singular_value: f64,
    /// A rigorous upper bound of it (the measured response of a concrete direction).
    pub smallest_singular_value_upper_bound: Option<f64>,
}

/// Conjugate-gradient accuracy of an exact projection: ‖A z‖ ≤ this · ‖A v‖.
pub const EXACT_RELATIVE: f64 = 1e-10;

struct Source {
    op: BlockOperator,
    weight_dims: (usize, usize),
    eps: f64,
    rule: RankRule,
    /// Restricted block matrices and the bases of every matrix met so far, kept across
    /// [`NullSpace::pinned`] calls: a search pins a few more pixels each round, and most blocks
    /// keep the restriction (and so the SVD) they had in the round before.
    cache: Mutex<SourceCache>,
}

#[derive(Default)]
struct SourceCache {
    restricted: HashMap<(usize, Vec<bool>), Arc<Mat<f64>>>,
    /// By matrix address; the entry holds the matrix, so the address stays its own.
    bases: HashMap<usize, CachedBasis>,
}

/// A block matrix with its basis and rank.
type CachedBasis = (Arc<Mat<f64>>, Arc<Basis>, MatrixRank);

impl Source {
    fn new(op: &BlockOperator, weight_dims: (usize, usize), eps: f64, rule: RankRule) -> Arc<Source> {
        Arc::new(Source {
            op: op.clone(),
            weight_dims,
            eps,
            rule,
            cache: Mutex::new(SourceCache::default()),
        })
    }

    fn basis(&self, matrix: &Arc<Mat<f64>>) -> Result<(Arc<Basis>, MatrixRank)> {
        let key = Arc::as_ptr(matrix) as usize;
        if let Some((_, basis, rank)) = self.cache.lock().unwrap().bases.get(&key) {
            return Ok((basis.clone(), rank.clone()));
        }
        let (basis, rank) = basis_of(matrix, self.weight_dims, self.eps, self.rule)?;
        let basis = Arc::new(basis);
        self.cache
            .lock()
            .unwrap()
            .bases
            .insert(key, (matrix.clone(), basis.clone(), rank.clone()));
        Ok((basis, rank))
    }
}

impl NullSpace {
    /// The smallest singular value over all blocks: how close the front end comes to ignoring
    /// a direction (0 when pixels are read by nothing).
    pub fn smallest_singular_value(&self) -> f64 {
        if let Repr::MatrixFree { source, .. } = &self.repr {
            return source.smallest_singular_value;
        }
        if !self.uncovered.is_empty() {
            return 0.0;
        }
        self.block_ranks
            .iter()
            .map(|(_, r)| if r.cols > r.rows { 0.0 } else { r.sigma_min })
            .fold(f64::INFINITY, f64::min)
    }

    /// Null space of `op`, with the rank tolerance taken from the layer's weight matrix shape.
    pub fn of(op: &BlockOperator, weight_dims: (usize, usize), eps: f64, rule: RankRule) -> Result<NullSpace> {
        Self::build(op, Source::new(op, weight_dims, eps, rule), vec![false; op.input_dim])
    }

    /// The null directions that leave the `pinned` pixels exactly where they are: the null space
    /// of the front end restricted to the other pixels. A collision search uses it for pixels that
    /// sit on the edge of [0, 1] and must stay there.
    pub fn pinned(&self, pinned: &[bool]) -> Result<NullSpace> {
        let pinned: Vec<bool> = pinned.iter().zip(&self.pinned).map(|(a, b)| *a || *b).collect();
        let source = match &self.repr {
            Repr::Blocks { source, .. } => source,
            Repr::MatrixFree { source, .. } => return Ok(Self::matrix_free_pinned(source.clone(), pinned)),
        };
        // Keyed by the block's matrix and which of its columns stay free.
        let mut blocks = vec![];
        for block in &source.op.blocks {
            let keep: Vec<bool> = block.cols.iter().map(|&k| !pinned[k]).collect();
            if keep.iter().all(|&k| k) {
                blocks.push(block.clone());
                continue;
            }
            let kept: Vec<usize> = (0..keep.len()).filter(|&j| keep[j]).collect();
            if kept.is_empty() {
                continue;
            }
            let matrix = source
                .cache
                .lock()
                .unwrap()
                .restricted
                .entry((Arc::as_ptr(&block.matrix) as usize, keep))
                .or_insert_with(|| {
                    Arc::new(Mat::from_fn(block.rows.len(), kept.len(), |i, j| {
                        block.matrix[(i, kept[j])]
                    }))
                })
                .clone();
            blocks.push(Block {
                rows: block.rows.clone(),
                cols: kept.iter().map(|&j| block.cols[j]).collect(),
                matrix,
            });
        }
        let op = BlockOperator {
            input_dim: self.dim,
            output_dim: source.op.output_dim,
            blocks,
        };
        Self::build(&op, source.clone(), pinned)
    }

    fn build(op: &BlockOperator, source: Arc<Source>, pinned: Vec<bool>) -> Result<NullSpace> {
        let mut covered = pinned.clone();
        let mut by_matrix: HashMap<*const Mat<f64>, usize> = HashMap::new();
        let mut groups: Vec<(Arc<Basis>, Vec<Vec<usize>>)> = vec![];
        let mut block_ranks = vec![];
        let mut nullity = 0;
        for block in &op.blocks {
            for &k in &block.cols {
                covered[k] = true;
            }
            let key = Arc::as_ptr(&block.matrix);
            let g = match by_matrix.get(&key) {
                Some(&g) => g,
                None => {
                    let (basis, rank) = source.basis(&block.matrix)?;
                    block_ranks.push((0, rank));
                    groups.push((basis, vec![]));
                    by_matrix.insert(key, groups.len() - 1);
                    groups.len() - 1
                }
            };
            block_ranks[g].0 += 1;
            nullity += block_ranks[g].1.nullity;
            groups[g].1.push(block.cols.clone());
        }
        let uncovered: Vec<usize> = (0..op.input_dim).filter(|&k| !covered[k]).collect();
        nullity += uncovered.len();
        let response_bound = block_ranks
            .iter()
            .map(|(_, r)| {
                let treated_as_null = r.singular_values.iter().copied().filter(|&s| s <= r.tolerance);
                let implicit_zero = if r.cols > r.rows { 0.0 } else { f64::NEG_INFINITY };
                treated_as_null.fold(implicit_zero, f64::max)
            })
            .fold(0.0, f64::max);
        let method = if op.blocks.len() == 1 && op.blocks[0].cols.len() == op.input_dim {
            "dense SVD of the whole operator on this image size (faer, f64)"
        } else {
            "dense SVD per block (faer, f64) + pixels no block reads"
        };
        Ok(NullSpace {
            dim: op.input_dim,
            nullity,
            nullity_exact: true,
            method: method.into(),
            response_bound,
            uncovered,
            block_ranks,
            repr: Repr::Blocks { groups, source },
            pinned,
        })
    }

    /// The null space of `op` with the `pinned` pixels held fixed from the start (the gaps between
    /// the tiles of a convolution, say).
    pub fn of_pinned(
        op: &BlockOperator,
        weight_dims: (usize, usize),
        eps: f64,
        rule: RankRule,
        pinned: Vec<bool>,
    ) -> Result<NullSpace> {
        Self::build(op, Source::new(op, weight_dims, eps, rule), pinned)
    }

    /// The null space of an operator known by its action (see [`MatrixFreeSource`]).
    pub fn matrix_free(source: MatrixFreeSource) -> NullSpace {
        let dim = source.operator.input_dim();
        Self::matrix_free_pinned(Arc::new(source), vec![false; dim])
    }

    fn matrix_free_pinned(source: Arc<MatrixFreeSource>, pinned: Vec<bool>) -> NullSpace {
        let held = pinned.iter().filter(|&&p| p).count();
        NullSpace {
            dim: source.operator.input_dim(),
            // Pinning k pixels removes at most k null directions.
            nullity: source.nullity.saturating_sub(held),
            nullity_exact: source.nullity_exact && held == 0,
            method: source.method.clone(),
            response_bound: 0.0,
            uncovered: vec![],
            block_ranks: vec![],
            repr: Repr::MatrixFree {
                source,
                warm: Mutex::new(None),
                worst_residual: Mutex::new(0.0),
            },
            pinned,
        }
    }

    /// Whether projections are iterative (conjugate gradients) rather than exact block products.
    pub fn is_matrix_free(&self) -> bool {
        matches!(self.repr, Repr::MatrixFree { .. })
    }

    /// A rigorous upper bound of [`Self::smallest_singular_value`] where that is an estimate.
    pub fn smallest_singular_value_upper_bound(&self) -> Option<f64> {
        match &self.repr {
            Repr::Blocks { .. } => None,
            Repr::MatrixFree { source, .. } => source.smallest_singular_value_upper_bound,
        }
    }

    /// The largest residual ‖A z‖ of any exact projection so far (0 for block bases, which are
    /// exact to rounding).
    pub fn worst_projection_residual(&self) -> f64 {
        match &self.repr {
            Repr::Blocks { .. } => 0.0,
            Repr::MatrixFree { worst_residual, .. } => *worst_residual.lock().unwrap(),
        }
    }

    /// ‖A x‖ where only the action of A is known (matrix-free null spaces); 0 otherwise, where
    /// projections are exact to rounding anyway.
    pub fn response_norm(&self, x: &[f64]) -> f64 {
        match &self.repr {
            Repr::Blocks { .. } => 0.0,
            Repr::MatrixFree { source, .. } => crate::linop::norm(&source.operator.apply_vec(x)),
        }
    }

    /// Projection of `v` accurate to ‖A z‖ ≤ max(`relative` · ‖A v‖, `floor`): a search's
    /// intermediate steps need less than its last one, and a collision needs the change's response
    /// small beside the image's own response (`floor` = 1e-10 ‖A x‖), not beside the change's.
    pub fn project_within(&self, v: &[f64], relative: f64, floor: f64) -> Vec<f64> {
        let (source, warm, worst) = match &self.repr {
            Repr::Blocks { .. } => return self.project(v),
            Repr::MatrixFree {
                source,
                warm,
                worst_residual,
            } => (source, warm, worst_residual),
        };
        let keep: Vec<bool> = self.pinned.iter().map(|p| !p).collect();
        let free: Vec<f64> = v.iter().zip(&keep).map(|(x, &k)| if k { *x } else { 0.0 }).collect();
        let masked = ColumnMask {
            op: &*source.operator,
            keep: &keep,
        };
        let response = crate::linop::norm(&masked.apply_vec(&free));
        let mut projector = CgProjector::new(masked);
        projector.tolerance = if response > 0.0 {
            relative.max(floor / response).min(1e-2)
        } else {
            relative
        };
        if let Some(p) = &source.preconditioner {
            projector = projector.with_preconditioner(p.clone());
        }
        let start = warm.lock().unwrap().take();
        let (z, u, report) = projector.project(&free, start.as_deref());
        *warm.lock().unwrap() = Some(u);
        if relative <= EXACT_RELATIVE {
            let mut w = worst.lock().unwrap();
            *w = w.max(report.relative_residual * response);
        }
        z
    }

    /// Orthogonal projection of `v` onto the null space.
    pub fn project(&self, v: &[f64]) -> Vec<f64> {
        let groups = match &self.repr {
            Repr::Blocks { groups, .. } => groups,
            Repr::MatrixFree { .. } => return self.project_within(v, EXACT_RELATIVE, 0.0),
        };
        let mut out = vec![0.0; self.dim];
        for &k in &self.uncovered {
            out[k] = v[k];
        }
        for (basis, blocks) in groups {
            let n = blocks[0].len();
            // All blocks sharing a basis are projected in one matrix product.
            let stacked = Mat::from_fn(n, blocks.len(), |i, b| v[blocks[b][i]]);
            let projected = match &**basis {
                Basis::Null(nb) => nb * (nb.transpose() * &stacked),
                Basis::Row(rb) => &stacked - rb * (rb.transpose() * &stacked),
            };
            for (b, cols) in blocks.iter().enumerate() {
                for (i, &k) in cols.iter().enumerate() {
                    out[k] = projected[(i, b)];
                }
            }
        }
        out
    }

    /// The null space as independent blocks, where it is block-diagonal: each block's pixels
    /// with an orthonormal basis of its null directions (shared between blocks with the same
    /// matrix), the pixels no block reads (free) and the pixels held fixed. `None` for null spaces
    /// known only by projection (matrix-free).
    pub fn decomposition(&self) -> Option<Decomposition> {
        let Repr::Blocks { groups, .. } = &self.repr else {
            return None;
        };
        let mut blocks = vec![];
        for (basis, members) in groups {
            let nb = match &**basis {
                Basis::Null(nb) => nb.clone(),
                Basis::Row(rb) => complement(rb),
            };
            if nb.ncols() == 0 {
                // A block without null directions holds its pixels where they are.
                continue;
            }
            let shared = Arc::new(RowBasis::new(&nb));
            for pixels in members {
                blocks.push(NullBlock {
                    pixels: pixels.clone(),
                    basis: shared.clone(),
                });
            }
        }
        Some(Decomposition {
            blocks,
            free: self.uncovered.clone(),
        })
    }

    /// An orthonormal basis of the whole null space as dense columns (small cases and tests).
    pub fn dense_basis(&self) -> Mat<f64> {
        let groups = match &self.repr {
            Repr::Blocks { groups, .. } => groups,
            Repr::MatrixFree { .. } => {
                // The range of the projector, from its columns.
                let p = Mat::from_fn(self.dim, self.dim, |_, _| 0.0);
                let mut p = p;
                for j in 0..self.dim {
                    let col = self.project(&unit(self.dim, j));
                    for (i, v) in col.into_iter().enumerate() {
                        p[(i, j)] = v;
                    }
                }
                let svd = dense_svd::decompose(p.as_ref(), Vectors::Thin).expect("SVD of a projector");
                let rank = svd.s.iter().filter(|&&s| s > 0.5).count();
                return svd.u.expect("U was asked for").subcols(0, rank).to_owned();
            }
        };
        let mut cols: Vec<Vec<f64>> = self.uncovered.iter().map(|&k| unit(self.dim, k)).collect();
        for (basis, blocks) in groups {
            let nb = match &**basis {
                Basis::Null(nb) => nb.clone(),
                Basis::Row(rb) => complement(rb),
            };
            for block in blocks {
                for j in 0..nb.ncols() {
                    let mut c = vec![0.0; self.dim];
                    for (i, &k) in block.iter().enumerate() {
                        c[k] = nb[(i, j)];
                    }
                    cols.push(c);
                }
            }
        }
        Mat::from_fn(self.dim, cols.len(), |i, j| cols[j][i])
    }
}

fn unit(n: usize, k: usize) -> Vec<f64> {
    let mut e = vec![0.0; n];
    e[k] = 1.0;
    e
}

fn complement(rb: &Mat<f64>) -> Mat<f64> {
    let n = rb.nrows();
    let p = Mat::<f64>::identity(n, n) - rb * rb.transpose();
    let svd = dense_svd::decompose(p.as_ref(), Vectors::Thin).expect("SVD of a projector");
    let rank = n - rb.ncols();
    svd.u.expect("U was asked for").subcols(0, rank).to_owned()
}

/// Columns beyond which only the row space is kept (a full V would not fit in memory).
const FULL_SVD_MAX_COLS: usize = 4096;

fn basis_of(m: &Mat<f64>, weight_dims: (usize, usize), eps: f64, rule: RankRule) -> Result<(Basis, MatrixRank)> {
    check_finite(m)?;
    let (rows, cols) = (m.nrows(), m.ncols());
    let full = cols <= FULL_SVD_MAX_COLS;
    let svd = dense_svd::decompose(m.as_ref(), if full { Vectors::Full } else { Vectors::Thin })?;
    let rank = rank_from_singular_values(rows, cols, svd.s, weight_dims, eps, rule);
    let v = svd.v.expect("V was asked for");
    let basis = if full && rank.nullity <= rank.rank {
        Basis::Null(v.subcols(rank.rank, rank.nullity).to_owned())
    } else {
        Basis::Row(v.subcols(0, rank.rank).to_owned())
    };
    Ok((basis, rank))
}
