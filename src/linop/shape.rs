//! Row-major index arithmetic shared by the operators that move values between tensor layouts.

/// Row-major strides of a tensor of `shape`.
pub fn strides_of(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for a in (0..shape.len().saturating_sub(1)).rev() {
        s[a] = s[a + 1] * shape[a + 1];
    }
    s
}

/// Flat index → multi-index.
pub fn unravel(mut t: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for a in (0..shape.len()).rev() {
        idx[a] = t % shape[a];
        t /= shape[a];
    }
    idx
}
