use super::LinearOperator;

/// An elementwise affine map with re-indexing: `y[j] = scale[j] · x[source[j]] + offset[j]`, or
/// `y[j] = offset[j]` where `source[j]` is `None` (padding).
///
/// Preprocessing (layout, channel order, scale, mean/std) and the reversible graph ops in front of
/// the first layer (Transpose, Reshape, Sub/Add/Mul/Div by constants, Pad) are all of this form, so
/// folding them keeps one value of this type. As an operator it is the linear part only.
#[derive(Clone, Debug)]
pub struct AffineGather {
    pub input_dim: usize,
    pub shape: Vec<usize>,
    pub source: Vec<Option<usize>>,
    pub scale: Vec<f64>,
    pub offset: Vec<f64>,
}

impl AffineGather {
    /// The identity on a tensor of `shape`.
    pub fn identity(shape: Vec<usize>) -> Self {
        let n: usize = shape.iter().product();
        AffineGather {
            input_dim: n,
            shape,
            source: (0..n).map(Some).collect(),
            scale: vec![1.0; n],
            offset: vec![0.0; n],
        }
    }
    pub fn len(&self) -> usize {
        self.source.len()
    }
    pub fn is_empty(&self) -> bool {
        self.source.is_empty()
    }
    /// The full affine map, offsets included.
    pub fn evaluate(&self, x: &[f64]) -> Vec<f64> {
        let mut y = vec![0.0; self.len()];
        self.apply(x, &mut y);
        for (v, o) in y.iter_mut().zip(&self.offset) {
            *v += o;
        }
        y
    }
    /// Re-indexes the output: entry `j` of the result is entry `index[j]` of self.
    pub fn reindexed(&self, shape: Vec<usize>, index: impl Iterator<Item = usize>) -> Self {
        let (mut source, mut scale, mut offset) = (vec![], vec![], vec![]);
        for i in index {
            source.push(self.source[i]);
            scale.push(self.scale[i]);
            offset.push(self.offset[i]);
        }
        AffineGather {
            input_dim: self.input_dim,
            shape,
            source,
            scale,
            offset,
        }
    }
}

impl LinearOperator for AffineGather {
    fn input_dim(&self) -> usize {
        self.input_dim
    }
    fn output_dim(&self) -> usize {
        self.source.len()
    }
    fn apply(&self, x: &[f64], y: &mut [f64]) {
        for ((yj, src), s) in y.iter_mut().zip(&self.source).zip(&self.scale) {
            *yj = src.map_or(0.0, |k| s * x[k]);
        }
    }
    fn adjoint(&self, y: &[f64], x: &mut [f64]) {
        x.fill(0.0);
        for ((yj, src), s) in y.iter().zip(&self.source).zip(&self.scale) {
            if let Some(k) = src {
                x[*k] += s * yj;
            }
        }
    }
}
