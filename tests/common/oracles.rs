//! Oracles that share no code with what they check.
#![allow(dead_code)]

use blindspot::Model;
use faer::Mat;

/// The Jacobian of the value `name` with respect to the model input, by finite differences
/// through tract (unit steps: exact for the affine front end up to float32 rounding).
pub fn jacobian_through_tract(model: &Model, name: &str) -> Mat<f64> {
    let n: usize = model.input_shape.iter().product();
    let runner = model.runner(&[name.to_string()], false).unwrap();
    let base = runner.run(&vec![0.0f32; n]).unwrap()[0].data.clone();
    let mut jacobian = Mat::<f64>::zeros(base.len(), n);
    for j in 0..n {
        let mut e = vec![0.0f32; n];
        e[j] = 1.0;
        let out = &runner.run(&e).unwrap()[0].data;
        for i in 0..base.len() {
            jacobian[(i, j)] = out[i] - base[i];
        }
    }
    jacobian
}
