//! Null-space projection for operators without block structure (overlapping convolutions on
//! whole images): z = v − Aᵀu with A Aᵀ u = A v, solved by (preconditioned) conjugate gradients.
//! Only `apply` and `adjoint` are used. The stopping rule is on the true residual ‖A z‖ / ‖A v‖,
//! which is exactly what a collision needs: how much of the step the first layer still sees.
//!
//! A preconditioner (an approximate inverse of A Aᵀ, e.g. the circulant one of
//! `conv_spectrum::CirculantPreconditioner`) only changes how fast the iteration gets there: the
//! stop is still decided on a residual recomputed from z, so a poor preconditioner costs
//! iterations, never accuracy.

use crate::linop::{dot, norm, LinearOperator};
use std::sync::Arc;

/// An approximation of (A Aᵀ)⁻¹ on the output space of A, symmetric positive definite (so that
/// CG stays CG). It only has to be good enough to cluster the spectrum of M A Aᵀ.
pub trait Preconditioner: Send + Sync {
    /// M r, a vector of the same length as `r`.
    fn apply(&self, r: &[f64]) -> Vec<f64>;
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

    fn precondition(&self, r: &[f64]) -> Vec<f64> {
        match &self.preconditioner {
            Some(m) => m.apply(r),
            None => r.to_vec(),
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
        // r = A v − A Aᵀ u = A z.
        let mut r = a.apply_vec(&z_of(&u));
        let mut s = self.precondition(&r);
        let mut p = s.clone();
        let mut rs = dot(&r, &s);
        let mut iterations = 0;
        let mut since_restart = 0;
        // Whether `r` was recomputed from z (not updated by the recursion) since the last step.
        let mut r_is_true = true;
        // A Aᵀ p and its intermediate, reused across iterations
        let (mut atp, mut q) = (vec![0.0; a.input_dim()], vec![0.0; a.output_dim()]);
        while iterations < self.max_iterations {
            if norm(&r) <= limit {
                // The recursive residual says stop; only the true one may decide. If it
                // disagrees, restart from it (the recursion drifted).
                if r_is_true {
                    break;
                }
                let true_r = a.apply_vec(&z_of(&u));
                if norm(&true_r) <= limit {
                    break;
                }
                r = true_r;
                s = self.precondition(&r);
                p = s.clone();
                rs = dot(&r, &s);
                since_restart = 0;
            }
            a.adjoint(&p, &mut atp);
            a.apply(&atp, &mut q);
            let pq = dot(&p, &q);
            if pq <= 0.0 || rs <= 0.0 {
                break;
            }
            let alpha = rs / pq;
            for i in 0..u.len() {
                u[i] += alpha * p[i];
                r[i] -= alpha * q[i];
            }
            iterations += 1;
            since_restart += 1;
            r_is_true = false;
            // The recursive residual drifts; restart from the true one now and then.
            if since_restart % 50 == 0 {
                r = a.apply_vec(&z_of(&u));
                r_is_true = true;
            }
            s = self.precondition(&r);
            let rs_next = dot(&r, &s);
            let beta = rs_next / rs;
            rs = rs_next;
            for i in 0..p.len() {
                p[i] = s[i] + beta * p[i];
            }
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
