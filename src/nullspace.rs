//! Numerical rank and null spaces of the front end, block by block (faer, f64).

use crate::linop::{Block, BlockOperator};
use anyhow::{bail, Result};
use faer::{Mat, Par};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;

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
            Some(rel) => format!("--tol {rel} × sigma_max"),
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

/// faer runs small matrices faster on one thread.
fn parallelism_for(rows: usize, cols: usize) -> Par {
    if rows.max(cols) < 200 {
        Par::Seq
    } else {
        Par::rayon(0)
    }
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
    faer::set_global_parallelism(parallelism_for(m.nrows(), m.ncols()));
    let mut sv = m
        .singular_values()
        .map_err(|e| anyhow::anyhow!("SVD did not converge: {e:?}"))?;
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

/// The null space of a block operator: orthonormal bases per distinct block, plus the pixels no
/// block reads (each of them a null direction on its own).
pub struct NullSpace {
    pub dim: usize,
    pub nullity: usize,
    pub uncovered: Vec<usize>,
    /// Rank of each distinct block matrix with the number of blocks sharing it.
    pub block_ranks: Vec<(usize, MatrixRank)>,
    groups: Vec<(Arc<Basis>, Vec<Vec<usize>>)>,
    /// What the null space was computed from, to restrict it later (see [`NullSpace::pinned`]).
    source: Arc<Source>,
    /// Pixels held fixed: outside every block and every null direction.
    pinned: Vec<bool>,
}

type SubMatrixKey = (*const Mat<f64>, Vec<bool>);

struct Source {
    op: BlockOperator,
    weight_dims: (usize, usize),
    eps: f64,
    rule: RankRule,
}

impl NullSpace {
    /// The smallest singular value over all blocks: how close the front end comes to ignoring
    /// a direction (0 when pixels are read by nothing).
    pub fn smallest_singular_value(&self) -> f64 {
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
        let source = Arc::new(Source {
            op: op.clone(),
            weight_dims,
            eps,
            rule,
        });
        Self::build(op, source, vec![false; op.input_dim])
    }

    /// The null directions that leave the `pinned` pixels exactly where they are: the null space
    /// of the front end restricted to the other pixels. A collision search uses it for pixels that
    /// sit on the edge of [0, 1] and must stay there.
    pub fn pinned(&self, pinned: &[bool]) -> Result<NullSpace> {
        let pinned: Vec<bool> = pinned.iter().zip(&self.pinned).map(|(a, b)| *a || *b).collect();
        // Keyed by the block's matrix and which of its columns stay free.
        let mut sub_matrices: HashMap<SubMatrixKey, Arc<Mat<f64>>> = HashMap::new();
        let mut blocks = vec![];
        for block in &self.source.op.blocks {
            let keep: Vec<bool> = block.cols.iter().map(|&k| !pinned[k]).collect();
            if keep.iter().all(|&k| k) {
                blocks.push(block.clone());
                continue;
            }
            let kept: Vec<usize> = (0..keep.len()).filter(|&j| keep[j]).collect();
            if kept.is_empty() {
                continue;
            }
            let matrix = sub_matrices
                .entry((Arc::as_ptr(&block.matrix), keep))
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
            output_dim: self.source.op.output_dim,
            blocks,
        };
        Self::build(&op, self.source.clone(), pinned)
    }

    fn build(op: &BlockOperator, source: Arc<Source>, pinned: Vec<bool>) -> Result<NullSpace> {
        let (weight_dims, eps, rule) = (source.weight_dims, source.eps, source.rule);
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
                    let (basis, rank) = basis_of(&block.matrix, weight_dims, eps, rule)?;
                    block_ranks.push((0, rank));
                    groups.push((Arc::new(basis), vec![]));
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
        Ok(NullSpace {
            dim: op.input_dim,
            nullity,
            uncovered,
            block_ranks,
            groups,
            source,
            pinned,
        })
    }

    /// Orthogonal projection of `v` onto the null space.
    pub fn project(&self, v: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; self.dim];
        for &k in &self.uncovered {
            out[k] = v[k];
        }
        for (basis, blocks) in &self.groups {
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

    /// An orthonormal basis of the whole null space as dense columns (small cases and tests).
    pub fn dense_basis(&self) -> Mat<f64> {
        let mut cols: Vec<Vec<f64>> = self.uncovered.iter().map(|&k| unit(self.dim, k)).collect();
        for (basis, blocks) in &self.groups {
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
    let svd = p.svd().expect("SVD of a projector");
    let rank = n - rb.ncols();
    svd.U().subcols(0, rank).to_owned()
}

/// Columns beyond which only the row space is kept (a full V would not fit in memory).
const FULL_SVD_MAX_COLS: usize = 4096;

fn basis_of(m: &Mat<f64>, weight_dims: (usize, usize), eps: f64, rule: RankRule) -> Result<(Basis, MatrixRank)> {
    check_finite(m)?;
    let (rows, cols) = (m.nrows(), m.ncols());
    faer::set_global_parallelism(parallelism_for(rows, cols));
    let full = cols <= FULL_SVD_MAX_COLS;
    let svd = if full { m.svd() } else { m.thin_svd() }.map_err(|e| anyhow::anyhow!("SVD did not converge: {e:?}"))?;
    let s = svd.S().column_vector();
    let sv: Vec<f64> = (0..s.nrows()).map(|i| s[i]).collect();
    let rank = rank_from_singular_values(rows, cols, sv, weight_dims, eps, rule);
    let v = svd.V();
    let basis = if full && rank.nullity <= rank.rank {
        Basis::Null(v.subcols(rank.rank, rank.nullity).to_owned())
    } else {
        Basis::Row(v.subcols(0, rank.rank).to_owned())
    };
    Ok((basis, rank))
}
