//! Null-space projection for operators without block structure (overlapping convolutions on
//! whole images): z = v − Aᵀu with A Aᵀ u = A v, solved by conjugate gradients. Only `apply` and
//! `adjoint` are used. The stopping rule is on the true residual ‖A z‖ / ‖A v‖, which is exactly
//! what a collision needs: how much of the step the first layer still sees.

use crate::linop::{dot, norm, LinearOperator};

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
}

impl<A: LinearOperator> CgProjector<A> {
    pub fn new(op: A) -> Self {
        CgProjector {
            op,
            tolerance: 1e-10,
            max_iterations: 2000,
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
        // r = A v − A Aᵀ u = A z.
        let mut r = a.apply_vec(&z_of(&u));
        let mut p = r.clone();
        let mut rr = dot(&r, &r);
        let mut iterations = 0;
        let limit = self.tolerance * target;
        while iterations < self.max_iterations && rr.sqrt() > limit {
            let q = a.apply_vec(&a.adjoint_vec(&p));
            let pq = dot(&p, &q);
            if pq <= 0.0 {
                break;
            }
            let alpha = rr / pq;
            for i in 0..u.len() {
                u[i] += alpha * p[i];
                r[i] -= alpha * q[i];
            }
            iterations += 1;
            // The recursive residual drifts; restart from the true one now and then.
            if iterations % 50 == 0 {
                r = a.apply_vec(&z_of(&u));
            }
            let rr_next = dot(&r, &r);
            let beta = rr_next / rr;
            rr = rr_next;
            for i in 0..p.len() {
                p[i] = r[i] + beta * p[i];
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
