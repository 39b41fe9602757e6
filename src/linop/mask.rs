use super::LinearOperator;

/// `A ∘ D` with D the diagonal 0/1 mask of the columns kept: the operator seen by the pixels that
/// are free to move, the others held where they are.
pub struct ColumnMask<'a, A: ?Sized> {
    pub op: &'a A,
    pub keep: &'a [bool],
}

impl<A: LinearOperator + ?Sized> LinearOperator for ColumnMask<'_, A> {
    fn input_dim(&self) -> usize {
        self.op.input_dim()
    }
    fn output_dim(&self) -> usize {
        self.op.output_dim()
    }
    fn apply(&self, x: &[f64], y: &mut [f64]) {
        let masked: Vec<f64> = x
            .iter()
            .zip(self.keep)
            .map(|(v, &k)| if k { *v } else { 0.0 })
            .collect();
        self.op.apply(&masked, y);
    }
    fn adjoint(&self, y: &[f64], x: &mut [f64]) {
        self.op.adjoint(y, x);
        for (v, &k) in x.iter_mut().zip(self.keep) {
            if !k {
                *v = 0.0;
            }
        }
    }
}
