//! The gradient engine against tract.
#![allow(dead_code)]

use blindspot::differentiable::Differentiable;
use blindspot::model::Model;

/// max |engine − tract| / max |tract| over every output, for the input as f64 (tract is fed its
/// f32 rounding); each output's figure goes to stderr.
pub fn forward_gap(model: &Model, engine: &Differentiable, input: &[f64]) -> f64 {
    let fed: Vec<f32> = input.iter().map(|&v| v as f32).collect();
    let reference = model.runner(&model.output_names, true).unwrap().run(&fed).unwrap();
    let ours = engine.outputs(input).unwrap();
    assert_eq!(reference.len(), ours.len());
    let mut worst: f64 = 0.0;
    for r in &reference {
        let o = ours.iter().find(|o| o.name == r.name).unwrap();
        assert_eq!(r.shape, o.shape, "{}", r.name);
        let scale = r.data.iter().map(|v| v.abs()).fold(0.0, f64::max).max(1e-30);
        let diff = r
            .data
            .iter()
            .zip(&o.data)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        eprintln!(
            "{}: {} max |diff| {diff:.3e}, relative {:.3e}",
            model.path.display(),
            r.name,
            diff / scale
        );
        worst = worst.max(diff / scale);
    }
    worst
}
