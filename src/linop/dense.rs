use super::LinearOperator;
use faer::Mat;

/// A dense matrix as an operator (dense first layers, small oracles).
pub struct DenseOperator {
    pub matrix: Mat<f64>,
}

impl LinearOperator for DenseOperator {
    fn input_dim(&self) -> usize {
        self.matrix.ncols()
    }
    fn output_dim(&self) -> usize {
        self.matrix.nrows()
    }
    fn apply(&self, x: &[f64], y: &mut [f64]) {
        y.fill(0.0);
        for (j, &xj) in x.iter().enumerate() {
            if xj != 0.0 {
                let col = self.matrix.col(j);
                for (i, yi) in y.iter_mut().enumerate() {
                    *yi += col[i] * xj;
                }
            }
        }
    }
    fn adjoint(&self, y: &[f64], x: &mut [f64]) {
        for (j, xj) in x.iter_mut().enumerate() {
            let col = self.matrix.col(j);
            *xj = (0..y.len()).map(|i| col[i] * y[i]).sum();
        }
    }
}
