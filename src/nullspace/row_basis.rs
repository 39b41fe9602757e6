//! A block's orthonormal null basis stored row by row: what the exact per-block search reads.

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

    /// Row-major: the null-space coordinates of pixel 0, then pixel 1, …
    pub fn data(&self) -> &[f64] {
        &self.data
    }

    /// Euclidean norm of each row.
    pub fn norms(&self) -> &[f64] {
        &self.norms
    }

    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
}
