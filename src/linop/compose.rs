use super::LinearOperator;

/// `outer ∘ inner`: x ↦ outer(inner(x)).
pub struct Compose<A, B> {
    pub outer: A,
    pub inner: B,
}

impl<A: LinearOperator, B: LinearOperator> LinearOperator for Compose<A, B> {
    fn input_dim(&self) -> usize {
        self.inner.input_dim()
    }
    fn output_dim(&self) -> usize {
        self.outer.output_dim()
    }
    fn apply(&self, x: &[f64], y: &mut [f64]) {
        let mid = self.inner.apply_vec(x);
        self.outer.apply(&mid, y);
    }
    fn adjoint(&self, y: &[f64], x: &mut [f64]) {
        let mid = self.outer.adjoint_vec(y);
        self.inner.adjoint(&mid, x);
    }
}
