//! Linear operators defined by their action and adjoint, never by a dense matrix.
//!
//! The front end of a model (preprocessing, layout ops and the first linear layer) is one such
//! operator; null-space projection, search and verification are written once against this trait.

mod blocks;
mod compose;
mod conv;
mod conv_tiles;
mod gather;
pub mod kernels;
mod mask;
mod resample;
mod shape;

pub use blocks::{Block, BlockOperator};
pub use compose::Compose;
pub use conv::{Conv2d, ConvGeometry};
pub use conv_tiles::ConvTiles;
pub use gather::AffineGather;
pub use mask::ColumnMask;
pub use resample::Resample;
pub use shape::{strides_of, unravel};

/// y = A x and x = Aᵀ y for a real matrix A of shape `output_dim × input_dim`.
pub trait LinearOperator: Send + Sync {
    fn input_dim(&self) -> usize;
    fn output_dim(&self) -> usize;
    /// Overwrites `y` (length `output_dim`) with A x.
    fn apply(&self, x: &[f64], y: &mut [f64]);
    /// Overwrites `x` (length `input_dim`) with Aᵀ y.
    fn adjoint(&self, y: &[f64], x: &mut [f64]);

    fn apply_vec(&self, x: &[f64]) -> Vec<f64> {
        let mut y = vec![0.0; self.output_dim()];
        self.apply(x, &mut y);
        y
    }
    fn adjoint_vec(&self, y: &[f64]) -> Vec<f64> {
        let mut x = vec![0.0; self.input_dim()];
        self.adjoint(y, &mut x);
        x
    }
    /// The dense matrix, column by column: for tests and small oracles only.
    fn to_dense(&self) -> faer::Mat<f64> {
        let (m, n) = (self.output_dim(), self.input_dim());
        let mut a = faer::Mat::<f64>::zeros(m, n);
        let mut e = vec![0.0; n];
        for j in 0..n {
            e[j] = 1.0;
            let col = self.apply_vec(&e);
            for (i, v) in col.into_iter().enumerate() {
                a[(i, j)] = v;
            }
            e[j] = 0.0;
        }
        a
    }
}

pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    kernels::dot(a, b)
}

pub fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

/// The dot test: relative mismatch of <A x, y> and <x, Aᵀ y> for the given vectors.
pub fn dot_test(op: &dyn LinearOperator, x: &[f64], y: &[f64]) -> f64 {
    let lhs = dot(&op.apply_vec(x), y);
    let rhs = dot(x, &op.adjoint_vec(y));
    (lhs - rhs).abs() / lhs.abs().max(rhs.abs()).max(f64::MIN_POSITIVE)
}

impl<T: LinearOperator + ?Sized> LinearOperator for &T {
    fn input_dim(&self) -> usize {
        (**self).input_dim()
    }
    fn output_dim(&self) -> usize {
        (**self).output_dim()
    }
    fn apply(&self, x: &[f64], y: &mut [f64]) {
        (**self).apply(x, y)
    }
    fn adjoint(&self, y: &[f64], x: &mut [f64]) {
        (**self).adjoint(y, x)
    }
}

impl<T: LinearOperator + ?Sized> LinearOperator for std::sync::Arc<T> {
    fn input_dim(&self) -> usize {
        (**self).input_dim()
    }
    fn output_dim(&self) -> usize {
        (**self).output_dim()
    }
    fn apply(&self, x: &[f64], y: &mut [f64]) {
        (**self).apply(x, y)
    }
    fn adjoint(&self, y: &[f64], x: &mut [f64]) {
        (**self).adjoint(y, x)
    }
}
