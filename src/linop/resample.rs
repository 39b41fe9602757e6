use super::LinearOperator;

/// A separable resampling of a row-major tensor: every output value is a weighted sum of input
/// values, the weights a product of one short list per axis (two taps for linear interpolation).
/// Linear Resize in front of the first layer is of this form.
#[derive(Clone, Debug)]
pub struct Resample {
    pub in_shape: Vec<usize>,
    pub out_shape: Vec<usize>,
    /// Per axis, per output position: (input position, weight).
    pub taps: Vec<Vec<Vec<(usize, f64)>>>,
}

impl Resample {
    /// Calls `f(output index, input index, weight)` for every tap.
    fn for_each_tap(&self, mut f: impl FnMut(usize, usize, f64)) {
        let rank = self.out_shape.len();
        let in_strides = super::strides_of(&self.in_shape);
        let n: usize = self.out_shape.iter().product();
        let mut idx = vec![0; rank];
        for t in 0..n {
            // All combinations of the axes' taps for this output.
            let mut stack = vec![(0usize, 0usize, 1.0f64)];
            while let Some((axis, offset, weight)) = stack.pop() {
                if axis == rank {
                    f(t, offset, weight);
                    continue;
                }
                for &(i, w) in &self.taps[axis][idx[axis]] {
                    stack.push((axis + 1, offset + i * in_strides[axis], weight * w));
                }
            }
            for a in (0..rank).rev() {
                idx[a] += 1;
                if idx[a] < self.out_shape[a] {
                    break;
                }
                idx[a] = 0;
            }
        }
    }
}

impl LinearOperator for Resample {
    fn input_dim(&self) -> usize {
        self.in_shape.iter().product()
    }
    fn output_dim(&self) -> usize {
        self.out_shape.iter().product()
    }
    fn apply(&self, x: &[f64], y: &mut [f64]) {
        y.fill(0.0);
        self.for_each_tap(|o, i, w| y[o] += w * x[i]);
    }
    fn adjoint(&self, y: &[f64], x: &mut [f64]) {
        x.fill(0.0);
        self.for_each_tap(|o, i, w| x[i] += w * y[o]);
    }
}
