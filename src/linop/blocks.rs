use super::LinearOperator;
use faer::Mat;
use std::sync::Arc;

/// One block of a block-structured operator: `y[rows] += matrix · x[cols]`.
#[derive(Clone)]
pub struct Block {
    pub rows: Vec<usize>,
    pub cols: Vec<usize>,
    /// Shared between blocks with the same matrix (every full patch of a patchify conv).
    pub matrix: Arc<Mat<f64>>,
}

/// A sum of dense blocks on index subsets: dense layers (one block), patchify convolutions (one
/// block per patch) and token-wise MatMuls (one block per token), in pixel or tensor coordinates.
#[derive(Clone)]
pub struct BlockOperator {
    pub input_dim: usize,
    pub output_dim: usize,
    pub blocks: Vec<Block>,
}

impl BlockOperator {
    /// The blocks grouped by the matrix they share, in order of first appearance.
    fn by_matrix(&self) -> Vec<(&Mat<f64>, Vec<&Block>)> {
        let mut groups: Vec<(&Mat<f64>, Vec<&Block>)> = vec![];
        let mut index: std::collections::HashMap<*const Mat<f64>, usize> = Default::default();
        for b in &self.blocks {
            let g = *index.entry(Arc::as_ptr(&b.matrix)).or_insert_with(|| {
                groups.push((&*b.matrix, vec![]));
                groups.len() - 1
            });
            groups[g].1.push(b);
        }
        groups
    }
}

impl LinearOperator for BlockOperator {
    fn input_dim(&self) -> usize {
        self.input_dim
    }
    fn output_dim(&self) -> usize {
        self.output_dim
    }
    fn apply(&self, x: &[f64], y: &mut [f64]) {
        y.fill(0.0);
        for (m, members) in self.by_matrix() {
            // The blocks' inputs side by side: one matrix product for all of them.
            let xs = Mat::from_fn(m.ncols(), members.len(), |jj, b| x[members[b].cols[jj]]);
            let ys = m * &xs;
            for (b, block) in members.iter().enumerate() {
                for (ii, &i) in block.rows.iter().enumerate() {
                    y[i] += ys[(ii, b)];
                }
            }
        }
    }
    fn adjoint(&self, y: &[f64], x: &mut [f64]) {
        x.fill(0.0);
        for (m, members) in self.by_matrix() {
            let ys = Mat::from_fn(m.nrows(), members.len(), |ii, b| y[members[b].rows[ii]]);
            let xs = m.transpose() * &ys;
            for (b, block) in members.iter().enumerate() {
                for (jj, &j) in block.cols.iter().enumerate() {
                    x[j] += xs[(jj, b)];
                }
            }
        }
    }
}
