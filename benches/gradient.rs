//! Speed of the gradient engine on the real ViT-S/14 (1×3×224×224): one forward pass and the input
//! gradient of the top class, against tract's forward pass alone and the engine's forward alone.
//! `cargo bench --bench gradient` (criterion). Skipped, with a message, where
//! `.cache/blindspot/vit_s_focus.onnx` is not fetched (scripts/fetch-models.sh).

use blindspot::differentiable::Differentiable;
use blindspot::model::Model;
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

fn benches(c: &mut Criterion) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".cache/blindspot/vit_s_focus.onnx");
    if !path.is_file() {
        eprintln!(
            "ViT-S/14 gradient benchmark skipped: {} not fetched (scripts/fetch-models.sh)",
            path.display()
        );
        return;
    }
    let model = Model::load(&path, None).unwrap();
    let n: usize = model.input_shape.iter().product();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    // Pixels uniform in [0, 1], as ViT-S/14 takes them; exact in f32, as tract is fed.
    let input: Vec<f64> = (0..n).map(|_| rng.gen::<f32>() as f64).collect();
    let fed: Vec<f32> = input.iter().map(|&v| v as f32).collect();
    let runner = model.runner(&model.output_names, true).unwrap();
    let engine = Differentiable::new(&model).unwrap();
    let target = engine.default_target(&input).unwrap();

    let mut g = c.benchmark_group("vit_s14_224");
    // Runs of a quarter to a few seconds: the same number of iterations in every sample.
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(20));
    g.bench_function("tract_forward", |b| b.iter(|| runner.run(black_box(&fed)).unwrap()));
    g.bench_function("engine_forward", |b| {
        b.iter(|| engine.outputs(black_box(&input)).unwrap())
    });
    g.bench_function("engine_forward_and_input_gradient", |b| {
        b.iter(|| engine.gradient(black_box(&input), target).unwrap())
    });
    g.finish();
}

criterion_group!(gradient_benches, benches);
criterion_main!(gradient_benches);
