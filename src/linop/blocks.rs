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

impl LinearOperator for BlockOperator {
    fn input_dim(&self) -> usize {
        self.input_dim
    }
    fn output_dim(&self) -> usize {
        self.output_dim
    }
    fn apply(&self, x: &[f64], y: &mut [f64]) {
        y.fill(0.0);
        for b in &self.blocks {
            let m = &*b.matrix;
            for (jj, &j) in b.cols.iter().enumerate() {
                let xj = x[j];
                if xj == 0.0 {
                    continue;
                }
                let col = m.col(jj);
                for (ii, &i) in b.rows.iter().enumerate() {
                    y[i] += col[ii] * xj;
                }
            }
        }
    }
    fn adjoint(&self, y: &[f64], x: &mut [f64]) {
        x.fill(0.0);
        for b in &self.blocks {
            let m = &*b.matrix;
            for (jj, &j) in b.cols.iter().enumerate() {
                let col = m.col(jj);
                x[j] += b.rows.iter().enumerate().map(|(ii, &i)| col[ii] * y[i]).sum::<f64>();
            }
        }
    }
}
