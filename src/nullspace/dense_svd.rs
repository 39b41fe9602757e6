//! Dense SVDs whose thread count is chosen per call.
//!
//! faer's convenience methods (`Mat::svd`, `singular_values`) read a process-wide parallelism
//! setting. Setting it from library code races when several searches run at once (the parallel
//! test runner, a batch, Python threads), and a sequential and a parallel SVD round differently:
//! the same seed would stop giving the same files. Every dense SVD in blockwise goes through here.

use anyhow::{anyhow, Result};
use faer::diag::Diag;
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::svd::{svd, svd_scratch, ComputeSvdVectors};
use faer::traits::ComplexField;
use faer::{Mat, MatRef, Par};

/// Which singular vectors to compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vectors {
    None,
    /// The first min(rows, cols) columns of U and V.
    Thin,
    /// All of U and V.
    Full,
}

/// A = U diag(s) Vᴴ, singular values largest first.
pub struct Svd<T> {
    pub s: Vec<f64>,
    pub u: Option<Mat<T>>,
    pub v: Option<Mat<T>>,
}

/// One thread for small matrices (faster there), all of rayon's otherwise; a function of the
/// shape alone, so a given matrix always rounds the same way.
pub fn parallelism_for(rows: usize, cols: usize) -> Par {
    if rows.max(cols) < 200 {
        Par::Seq
    } else {
        Par::rayon(0)
    }
}

/// The SVD of `a` with the vectors asked for.
pub fn decompose<T: ComplexField<Real = f64>>(a: MatRef<'_, T>, vectors: Vectors) -> Result<Svd<T>> {
    let (m, n) = a.shape();
    let size = m.min(n);
    if size == 0 {
        let cols = |len: usize| match vectors {
            Vectors::None => None,
            Vectors::Thin => Some(Mat::zeros(len, 0)),
            Vectors::Full => Some(Mat::identity(len, len)),
        };
        return Ok(Svd {
            s: vec![],
            u: cols(m),
            v: cols(n),
        });
    }
    let par = parallelism_for(m, n);
    let (compute, width_u, width_v) = match vectors {
        Vectors::None => (ComputeSvdVectors::No, 0, 0),
        Vectors::Thin => (ComputeSvdVectors::Thin, size, size),
        Vectors::Full => (ComputeSvdVectors::Full, m, n),
    };
    let mut s = Diag::<T>::zeros(size);
    let mut u = (vectors != Vectors::None).then(|| Mat::<T>::zeros(m, width_u));
    let mut v = (vectors != Vectors::None).then(|| Mat::<T>::zeros(n, width_v));
    let mut buffer = MemBuffer::new(svd_scratch::<T>(m, n, compute, compute, par, Default::default()));
    svd(
        a,
        s.as_mut(),
        u.as_mut().map(|u| u.as_mut()),
        v.as_mut().map(|v| v.as_mut()),
        par,
        MemStack::new(&mut buffer),
        Default::default(),
    )
    .map_err(|e| anyhow!("SVD did not converge: {e:?}"))?;
    let s = s.column_vector().iter().map(faer::traits::math_utils::real).collect();
    Ok(Svd { s, u, v })
}

/// Singular values alone, largest first.
pub fn singular_values<T: ComplexField<Real = f64>>(a: MatRef<'_, T>) -> Result<Vec<f64>> {
    Ok(decompose(a, Vectors::None)?.s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconstructs_the_matrix_and_matches_the_sequential_and_parallel_paths_in_shape() {
        let a = Mat::<f64>::from_fn(7, 4, |i, j| ((i * 5 + j * 3) % 7) as f64 - 2.5 + (i == j) as u8 as f64);
        for vectors in [Vectors::Thin, Vectors::Full] {
            let d = decompose(a.as_ref(), vectors).unwrap();
            let (u, v) = (d.u.unwrap(), d.v.unwrap());
            let mut err: f64 = 0.0;
            for i in 0..7 {
                for j in 0..4 {
                    let r: f64 = (0..4).map(|k| u[(i, k)] * d.s[k] * v[(j, k)]).sum();
                    err = err.max((r - a[(i, j)]).abs());
                }
            }
            assert!(err < 1e-12, "{vectors:?}: reconstruction error {err}");
            assert!(d.s.windows(2).all(|w| w[0] >= w[1]));
        }
        let sv = singular_values(a.as_ref()).unwrap();
        // The Frobenius norm is the root of the sum of squared singular values.
        let frob: f64 = (0..7)
            .flat_map(|i| (0..4).map(move |j| (i, j)))
            .map(|(i, j)| a[(i, j)].powi(2))
            .sum();
        assert!((sv.iter().map(|s| s * s).sum::<f64>() - frob).abs() < 1e-10 * frob);
    }
}
