//! Exact collisions beyond the first layer: the frozen Jacobian against finite differences and a
//! dense SVD, its adjoint by the dot test, and walks that stay inside one activation region.

use blindspot::differentiable::{DType, Device, Differentiable};
use blindspot::linop::{dot_test, LinearOperator};
use blindspot::model::embedded;
use blindspot::model::preprocess::load_image;
use blindspot::piecewise::{default_layer, local_nullity, walk, Direction, PixelJacobian, WalkOptions};
use blindspot::Preprocess;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;

fn digit(name: &str) -> Vec<f64> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/digits").join(name);
    let model = embedded::find("lenet").unwrap().load().unwrap();
    let grid = Preprocess::default().grid(&model.input_shape).unwrap();
    load_image(&path, &grid).unwrap().0.data
}

fn engine(name: &str) -> (blindspot::Model, Differentiable) {
    let model = embedded::find(name).unwrap().load().unwrap();
    let engine = Differentiable::on(&model, &Device::Cpu, DType::F64).unwrap();
    (model, engine)
}

#[test]
fn the_frozen_jacobian_is_the_derivative_and_its_adjoint_passes_the_dot_test() {
    for name in ["lenet", "mlp", "patch_cnn"] {
        let (model, engine) = engine(name);
        let layer = default_layer(&engine).unwrap();
        let gather = Preprocess::default().gather(&model.input_shape).unwrap();
        // A digit with noise: no pixel on a bound and no two units tied, so that a difference step
        // stays inside one region.
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let x: Vec<f64> = digit("3-1900.png")
            .iter()
            .map(|v| 0.1 + 0.8 * v + rng.gen_range(-0.05..0.05))
            .collect();
        let j = PixelJacobian::at(&engine, &gather, &x, &layer).unwrap();
        let v: Vec<f64> = (0..j.input_dim()).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let w: Vec<f64> = (0..j.output_dim()).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let mismatch = dot_test(&j, &v, &w);
        assert!(mismatch < 1e-12, "{name}: dot test {mismatch:e}");
        // Central differences of the real forward pass: exact for an affine map inside the region,
        // so a step small enough to stay inside gives J v to rounding.
        let jv = j.apply_vec(&v);
        let layer_at = |pixels: &[f64]| -> Vec<f64> {
            let pass = engine
                .forward(&engine.input_tensor(&gather.evaluate(pixels)).unwrap())
                .unwrap();
            pass.values[&layer].flatten_all().unwrap().to_vec1::<f64>().unwrap()
        };
        let h = 1e-6;
        let plus: Vec<f64> = x.iter().zip(&v).map(|(a, b)| a + h * b).collect();
        let minus: Vec<f64> = x.iter().zip(&v).map(|(a, b)| a - h * b).collect();
        let (yp, ym) = (layer_at(&plus), layer_at(&minus));
        let scale = jv.iter().map(|v| v.abs()).fold(0.0, f64::max);
        assert!(scale > 0.0, "{name}");
        let err = jv
            .iter()
            .zip(yp.iter().zip(&ym))
            .map(|(a, (p, m))| (a - (p - m) / (2.0 * h)).abs())
            .fold(0.0, f64::max);
        eprintln!(
            "{name} at {layer}: dot test {mismatch:.1e}, J v against central differences {:.1e}",
            err / scale
        );
        assert!(
            err < 1e-7 * scale,
            "{name}: J v against central differences: {err:e} (scale {scale:e})"
        );
    }
}

#[test]
fn the_local_nullity_is_the_dense_svd_of_the_columns() {
    let (model, engine) = engine("lenet");
    let layer = default_layer(&engine).unwrap();
    let gather = Preprocess::default().gather(&model.input_shape).unwrap();
    let j = PixelJacobian::at(&engine, &gather, &digit("7-3901.png"), &layer).unwrap();
    let rows = j.rows(&|| {}).unwrap();
    let found = local_nullity(Some(&rows), j.input_dim(), j.output_dim());
    // The oracle: J column by column from forward passes, and its rank by the same rule.
    let dense = j.to_dense();
    let columns: Vec<Vec<f64>> = (0..dense.nrows())
        .map(|i| (0..dense.ncols()).map(|k| dense[(i, k)]).collect())
        .collect();
    let oracle = local_nullity(Some(&columns), j.input_dim(), j.output_dim());
    assert!(found.nullity_exact);
    assert_eq!(found.nullity, oracle.nullity);
    assert!(found.nullity >= j.input_dim() - j.output_dim());
    for (r, c) in rows.iter().zip(&columns) {
        let err = r.iter().zip(c).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(
            err < 1e-12,
            "a row of J from the adjoint differs from the forward columns by {err:e}"
        );
    }
    eprintln!(
        "lenet {layer}: nullity {} (lower bound {}), {}",
        found.nullity, found.nullity_lower_bound, found.method
    );
}

#[test]
fn a_walk_collides_at_the_layer_inside_one_region() {
    let (model, engine) = engine("lenet");
    let layer = default_layer(&engine).unwrap();
    let gather = Preprocess::default().gather(&model.input_shape).unwrap();
    for (name, seed) in [("3-1900.png", 1u64), ("8-4402.png", 2)] {
        let x = digit(name);
        let j = PixelJacobian::at(&engine, &gather, &x, &layer).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let r: Vec<f64> = (0..x.len()).map(|_| rng.gen_range(-1.0..1.0)).collect();
        for direction in [Direction::Random(r), Direction::Far] {
            let opts = WalkOptions {
                strength: 3.0,
                max_holds: 5000,
            };
            let out = walk(&j, &x, &direction, &opts, &|| {}).unwrap();
            let l2 = out.z.iter().zip(&x).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt();
            assert!(out.z.iter().all(|v| (0.0..=1.0).contains(v)), "{name}: outside the box");
            assert_eq!(out.units_flipped, 0, "{name}: {out:?}");
            let at = |p: &[f64]| -> Vec<f64> {
                let pass = engine
                    .forward(&engine.input_tensor(&gather.evaluate(p)).unwrap())
                    .unwrap();
                pass.values[&layer].flatten_all().unwrap().to_vec1::<f64>().unwrap()
            };
            let (a, b) = (at(&x), at(&out.z));
            let scale = a.iter().map(|v| v.abs()).fold(0.0, f64::max);
            let dev = a.iter().zip(&b).map(|(p, q)| (p - q).abs()).fold(0.0, f64::max) / scale;
            eprintln!(
                "{name}: L2 {l2:.3}, layer deviation {dev:.2e} (f64), units held {}, pixels held {}, steps {}, {}",
                out.units_held, out.pixels_held, out.steps, out.stopped
            );
            assert!(dev < 1e-10, "{name}: the layer moved by {dev:e}");
            assert!(l2 >= 1.0, "{name}: L2 {l2}");
        }
    }
}
