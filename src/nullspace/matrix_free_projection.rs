//! Null-space projection for operators without block structure (overlapping convolutions on
//! whole images): z = v − Aᵀu with A Aᵀ u = A v, solved by (preconditioned) conjugate gradients.
//! Only `apply` and `adjoint` are used. The stopping rule is on the true residual ‖A z‖ / ‖A v‖,
//! which is exactly what a collision needs: how much of the step the first layer still sees.
//!
//! A preconditioner (an approximate inverse of A Aᵀ, e.g. the circulant one of
//! `circulant_preconditioner::CirculantPreconditioner`) only changes how fast the iteration gets there: the
//! stop is still decided on a residual recomputed from z, so a poor preconditioner costs
//! iterations, never accuracy.

use crate::linop::{dot, norm, LinearOperator};
use std::sync::Arc;

/// An approximation of (A Aᵀ)⁻¹ on the output space of A, symmetric positive definite (so that
/// CG stays CG). It only has to be good enough to cluster the spectrum of M A Aᵀ.
pub trait Preconditioner: Send + Sync {
    /// out = M r, `out` as long as `r`.
    fn apply_into(&self, r: &[f64], out: &mut [f64]);

    /// M r, a vector of the same length as `r`.
    fn apply(&self, r: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; r.len()];
        self.apply_into(r, &mut out);
        out
    }
}

/// How one projection ended.
#[derive(Clone, Debug, PartialEq)]
pub struct CgReport {
    pub iterations: usize,
    /// ‖A z‖ / ‖A v‖ of the returned z, recomputed from scratch.
    pub relative_residual: f64,
    pub converged: bool,
}

pub struct CgProjector<A> {
    pub op: A,
    /// Stop when ‖A z‖ ≤ tolerance · ‖A v‖.
    pub tolerance: f64,
    pub max_iterations: usize,
    /// Turns CG into PCG; `None` is plain CG.
    pub preconditioner: Option<Arc<dyn Preconditioner>>,
}

impl<A: LinearOperator> CgProjector<A> {
    pub fn new(op: A) -> Self {
        CgProjector {
            op,
            tolerance: 1e-10,
            max_iterations: 2000,
            preconditioner: None,
        }
    }

    /// The same projector, preconditioned by `m` ≈ (A Aᵀ)⁻¹.
    pub fn with_preconditioner(mut self, m: Arc<dyn Preconditioner>) -> Self {
        self.preconditioner = Some(m);
        self
    }

    /// s = M r.
    fn precondition(&self, r: &[f64], s: &mut [f64]) {
        match &self.preconditioner {
            Some(m) => m.apply_into(r, s),
            None => s.copy_from_slice(r),
        }
    }

    /// Projects `v` onto the null space of A. `warm` is a previous `u` (the multiplier of a
    /// nearby call), returned updated for the next one.
    pub fn project(&self, v: &[f64], warm: Option<&[f64]>) -> (Vec<f64>, Vec<f64>, CgReport) {
        let a = &self.op;
        let av = a.apply_vec(v);
        let target = norm(&av);
        let mut u = warm.map_or_else(|| vec![0.0; a.output_dim()], <[f64]>::to_vec);
        let z_of = |u: &[f64]| -> Vec<f64> {
            let atu = a.adjoint_vec(u);
            v.iter().zip(&atu).map(|(x, y)| x - y).collect()
        };
        if target == 0.0 {
            return (
                v.to_vec(),
                vec![0.0; a.output_dim()],
                CgReport {
                    iterations: 0,
                    relative_residual: 0.0,
                    converged: true,
                },
            );
        }
        let limit = self.tolerance * target;
        let (n, m) = (a.output_dim(), a.input_dim());
        // r = A v − A Aᵀ u = A z; the true residual, recomputed from z into `r`.
        let (mut r, mut z) = (vec![0.0; n], vec![0.0; m]);
        let true_residual = |u: &[f64], z: &mut Vec<f64>, r: &mut [f64]| {
            a.adjoint(u, z);
            z.iter_mut().zip(v).for_each(|(z, x)| *z = x - *z);
            a.apply(z, r);
        };
        true_residual(&u, &mut z, &mut r);
        let mut s = vec![0.0; n];
        self.precondition(&r, &mut s);
        let mut p = s.clone();
        let mut rs = dot(&r, &s);
        let mut r_norm = norm(&r);
        let mut iterations = 0;
        let mut since_restart = 0;
        // Whether `r` was recomputed from z (not updated by the recursion) since the last step.
        let mut r_is_true = true;
        // A Aᵀ p (in q) and its intermediate Aᵀ p (in z, which is free between true residuals)
        let mut q = vec![0.0; n];
        while iterations < self.max_iterations {
            if r_norm <= limit {
                // The recursive residual says stop; only the true one may decide. If it
                // disagrees, restart from it (the recursion drifted).
                if r_is_true {
                    break;
                }
                true_residual(&u, &mut z, &mut r);
                r_norm = norm(&r);
                if r_norm <= limit {
                    break;
                }
                self.precondition(&r, &mut s);
                p.copy_from_slice(&s);
                rs = dot(&r, &s);
                since_restart = 0;
            }
            a.adjoint(&p, &mut z);
            a.apply(&z, &mut q);
            let pq = dot(&p, &q);
            if pq <= 0.0 || rs <= 0.0 {
                break;
            }
            let alpha = rs / pq;
            let mut r2 = 0.0;
            for ((u, r), (p, q)) in u.iter_mut().zip(r.iter_mut()).zip(p.iter().zip(&q)) {
                *u += alpha * p;
                *r -= alpha * q;
                r2 += *r * *r;
            }
            r_norm = r2.sqrt();
            iterations += 1;
            since_restart += 1;
            r_is_true = false;
            // The recursive residual drifts; restart from the true one now and then.
            if since_restart % 50 == 0 {
                true_residual(&u, &mut z, &mut r);
                r_norm = norm(&r);
                r_is_true = true;
            }
            self.precondition(&r, &mut s);
            let rs_next = dot(&r, &s);
            // Flexible (Polak–Ribière) β = (r_next − r)ᵀ s_next / rᵀ s, with r_next − r = −α q:
            // it keeps the directions conjugate when M is not exactly linear (the circulant
            // preconditioner runs in f32). After a true-residual restart that identity does not
            // hold, and Fletcher–Reeves is used.
            let beta = if r_is_true {
                rs_next / rs
            } else {
                (-alpha * dot(&q, &s) / rs).max(0.0)
            };
            rs = rs_next;
            p.iter_mut().zip(&s).for_each(|(p, s)| *p = s + beta * *p);
        }
        let z = z_of(&u);
        let relative_residual = norm(&a.apply_vec(&z)) / target;
        let converged = relative_residual <= self.tolerance * 10.0;
        (
            z,
            u,
            CgReport {
                iterations,
                relative_residual,
                converged,
            },
        )
    }
}
