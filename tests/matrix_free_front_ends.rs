//! Front ends whose first layer is an overlapping convolution on an image too large for one dense
//! matrix: the null space is reached by conjugate gradients, collisions are verified through the
//! whole model by tract, and approximate null spaces from tiles keep their guaranteed bound.
mod common;

use blindspot::frontend::FrontEndKind;
use blindspot::linop::{dot_test, norm, Block, BlockOperator, Conv2d, ConvGeometry, LinearOperator};
use blindspot::model::preprocess::{ImageNotes, Pixels};
use blindspot::nullspace::front_end_null_space;
use blindspot::nullspace::{MatrixFreeSource, NullSpace};
use blindspot::pipeline::collide::{collide_pixels, SearchSettings};
use blindspot::search::Mode;
use blindspot::{open, Preprocess, RankRule};
use common::onnx_builder as ob;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;

fn random_vec(rng: &mut ChaCha8Rng, n: usize) -> Vec<f64> {
    (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect()
}

/// A convolution with square kernel, stride and symmetric padding on a [c, h, w] image.
fn conv_of(in_shape: [usize; 3], m: usize, k: usize, s: usize, p: usize, group: usize, weight: Vec<f64>) -> Conv2d {
    let out = ConvGeometry::output_size([in_shape[1], in_shape[2]], [k, k], [s, s], [1, 1], [p; 4]).unwrap();
    Conv2d {
        geometry: ConvGeometry {
            in_shape,
            kernel: [k, k],
            strides: [s, s],
            dilations: [1, 1],
            pads: [p; 4],
            group,
            out,
        },
        out_channels: m,
        weight,
    }
}

/// Conjugate gradients on a dense operator against the same operator's SVD basis.
#[test]
fn conjugate_gradient_null_space_equals_the_dense_one() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (rows, cols) = (30, 70);
    let matrix = faer::Mat::from_fn(rows, cols, |_, _| rng.gen_range(-1.0..1.0));
    let op = BlockOperator {
        input_dim: cols,
        output_dim: rows,
        blocks: vec![Block {
            rows: (0..rows).collect(),
            cols: (0..cols).collect(),
            matrix: Arc::new(matrix),
        }],
    };
    let dense = NullSpace::of(&op, (rows, cols), f32::EPSILON as f64, RankRule::default()).unwrap();
    let free = NullSpace::matrix_free(MatrixFreeSource {
        operator: Arc::new(op.clone()),
        preconditioner: None,
        nullity: cols - rows,
        nullity_exact: true,
        method: "test".into(),
        smallest_singular_value: f64::NAN,
        smallest_singular_value_upper_bound: None,
    });
    for _ in 0..3 {
        let v = random_vec(&mut rng, cols);
        let (a, b) = (dense.project(&v), free.project(&v));
        let gap: f64 = a.iter().zip(&b).map(|(x, y)| (x - y).powi(2)).sum::<f64>().sqrt();
        assert!(gap <= 1e-8 * norm(&v), "projections differ by {gap:.2e}");
    }
    // Pinned pixels stay put and the rest is still null.
    let pinned: Vec<bool> = (0..cols).map(|i| i % 5 == 0).collect();
    let (dense_pinned, free_pinned) = (dense.pinned(&pinned).unwrap(), free.pinned(&pinned).unwrap());
    let v = random_vec(&mut rng, cols);
    let (a, b) = (dense_pinned.project(&v), free_pinned.project(&v));
    assert!(b.iter().zip(&pinned).all(|(x, &p)| !p || *x == 0.0));
    let gap: f64 = a.iter().zip(&b).map(|(x, y)| (x - y).powi(2)).sum::<f64>().sqrt();
    assert!(gap <= 1e-8 * norm(&v), "pinned projections differ by {gap:.2e}");
    assert!(norm(&op.apply_vec(&b)) <= 1e-9 * norm(&op.apply_vec(&v)));
}

/// A 3→4, 3×3, stride-2 stem with ImageNet normalisation and a BatchNormalization holding one dead
/// channel, on 48×48 pixels: every mode's collision leaves tract's first-layer output and logits
/// unchanged to 1e-5 relative, while a random change of the same size moves them.
#[test]
fn strided_stem_collides_in_every_mode_through_the_whole_model() {
    let side = 48;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stem.onnx");
    ob::write_model(&path, &ob::large_strided_stem_bn_spec(7, side));
    let (model, fe) = open(&path, None, &Preprocess::default()).unwrap();
    assert_eq!(fe.kind, FrontEndKind::Conv);
    assert_eq!(fe.ops, ["Sub", "Div", "Conv", "BatchNormalization"]);
    let ns = front_end_null_space(&fe, RankRule::default()).unwrap().unwrap();
    let n = fe.input_dim();
    assert!(ns.nullity >= n - fe.output_dim());
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    // A smooth image with values on the box edges as well.
    let pixels = |rng: &mut ChaCha8Rng| -> Pixels {
        let phase: f64 = rng.gen_range(0.0..6.0);
        let data = (0..n)
            .map(|i| (0.5 + 0.7 * ((i as f64) * 0.013 + phase).sin()).clamp(0.0, 1.0))
            .collect();
        Pixels {
            height: side as usize,
            width: side as usize,
            channels: 3,
            data,
        }
    };
    let notes = || ImageNotes::default();
    let original = pixels(&mut rng);
    for mode in [Mode::Random, Mode::Far, Mode::Target] {
        let target = (mode == Mode::Target).then(|| (pixels(&mut rng), notes()));
        let settings = SearchSettings {
            distance: blindspot::search::Distance::L2,
            mode,
            count: 1,
            strength: None,
            seed: 5,
            rule: RankRule::default(),
        };
        let found = collide_pixels(&model, &fe, &ns, (original.clone(), notes()), target, &settings, &|| {}).unwrap();
        for c in &found.report.collisions {
            let front = c.comparison.front_end_rel_diff.unwrap();
            let out = c.comparison.outputs[0].rel_diff;
            let control = c.control.outputs[0].rel_diff;
            assert!(c.comparison.l2 > 1.0, "{mode:?}: moved only {}", c.comparison.l2);
            assert!(
                front <= 1e-5 && out <= 1e-5,
                "{mode:?}: front {front:.2e}, output {out:.2e}"
            );
            assert!(control >= 100.0 * out.max(1e-7), "{mode:?}: control {control:.2e}");
            assert!(c.search.pixel_min >= 0.0 && c.search.pixel_max <= 1.0);
            let response = c.search.front_end_response.unwrap();
            assert!(
                response <= 1e-8 * c.comparison.l2 * 100.0,
                "{mode:?}: response {response:.2e}"
            );
        }
    }
    assert!(ns.worst_projection_residual() <= 1e-6);
}

/// Tiles of a convolution: on inputs that vanish in the gaps the tile operator is the convolution;
/// no output reads two tiles; and every direction of a `--tol` null space keeps its bound.
#[test]
fn conv_tiles_are_the_convolution_and_bound_their_directions() {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    for (c, m, k, s, p, side, tile, budget) in [
        (3, 16, 3, 2, 1, 37, 8, 0.25),
        (2, 5, 5, 1, 2, 30, 7, 0.3),
        (3, 8, 7, 4, 3, 45, 16, 0.05),
    ] {
        let conv = conv_of([c, side, side], m, k, s, p, 1, random_vec(&mut rng, m * c * k * k));
        let tiles = conv.tiles(tile);
        let op = &tiles.blocks;
        let x: Vec<f64> = random_vec(&mut rng, conv.input_dim())
            .into_iter()
            .zip(&tiles.gaps)
            .map(|(v, &g)| if g { 0.0 } else { v })
            .collect();
        let (a, b) = (conv.apply_vec(&x), op.apply_vec(&x));
        let gap: f64 = a.iter().zip(&b).map(|(u, v)| (u - v).abs()).fold(0.0, f64::max);
        assert!(
            gap <= 1e-12 * norm(&a),
            "tiles differ from the convolution by {gap:.2e}"
        );
        let mut seen = vec![false; conv.output_dim()];
        for block in &op.blocks {
            for &r in &block.rows {
                assert!(!std::mem::replace(&mut seen[r], true), "an output reads two tiles");
            }
        }
        let y = random_vec(&mut rng, conv.output_dim());
        assert!(dot_test(op, &x, &y) < 1e-12);
        let ns = NullSpace::of_pinned(
            op,
            (m, c * k * k),
            f32::EPSILON as f64,
            RankRule { relative: Some(budget) },
            tiles.gaps.clone(),
        )
        .unwrap();
        let smallest = ns
            .block_ranks
            .iter()
            .map(|(_, r)| r.sigma_min / r.sigma_max)
            .fold(f64::INFINITY, f64::min);
        let sigma_max = ns.block_ranks.iter().map(|(_, r)| r.sigma_max).fold(0.0, f64::max);
        assert!(
            ns.nullity > 0,
            "no direction under {budget}: smallest σ/σ_max {smallest:.3e} (config {c} {m} {k} {s})"
        );
        for _ in 0..3 {
            let d = ns.project(&random_vec(&mut rng, conv.input_dim()));
            assert!(d.iter().zip(&tiles.gaps).all(|(v, &g)| !g || *v == 0.0));
            let response = norm(&conv.apply_vec(&d));
            // Exact null directions (bound 0) still see rounding.
            let rounding = 1e-12 * sigma_max * norm(&d);
            assert!(
                response <= ns.response_bound * norm(&d) * (1.0 + 1e-9) + rounding,
                "response {response:.3e} above the bound {:.3e}",
                ns.response_bound * norm(&d)
            );
        }
    }
}

/// The banded Cholesky certificate against the dense SVD: whenever it proves a rank, the dense
/// nullity agrees, on fat and tall convolutions, padded and valid, grouped, with dead channels
/// and with zero-sum filters.
#[test]
fn rank_certificate_agrees_with_the_dense_svd() {
    use blindspot::nullspace::conv_certificate::{certify_full_rank, NoCertificate};
    let mut rng = ChaCha8Rng::seed_from_u64(31);
    // (in channels, out channels, kernel, stride, pad, side, group, dead channel, zero-sum)
    let configs = [
        (3, 8, 3, 2, 1, 16, 1, false, false),
        (3, 16, 3, 2, 1, 12, 1, false, false),
        (3, 8, 3, 2, 1, 16, 1, true, false),
        (3, 8, 3, 2, 1, 16, 1, false, true),
        (1, 2, 3, 1, 0, 10, 1, false, true),
        (1, 2, 3, 1, 1, 10, 1, false, true),
        (2, 3, 3, 2, 0, 9, 1, false, false),
        (3, 32, 7, 4, 3, 16, 1, false, false),
        (4, 4, 3, 1, 1, 9, 4, false, false),
        (4, 6, 3, 2, 1, 10, 2, true, false),
        (3, 12, 5, 2, 2, 11, 1, false, true),
        (2, 4, 2, 1, 0, 8, 1, false, false),
    ];
    let mut proved = 0;
    for (i, &(c, m, k, s, p, side, group, dead, zero_sum)) in configs.iter().enumerate() {
        let per_group = c / group;
        let mut weight = random_vec(&mut rng, m * per_group * k * k);
        if zero_sum {
            for filter in weight.chunks_mut(k * k) {
                let mean = filter.iter().sum::<f64>() / (k * k) as f64;
                filter.iter_mut().for_each(|v| *v -= mean);
            }
        }
        if dead {
            weight[..per_group * k * k].fill(0.0);
        }
        let conv = conv_of([c, side, side], m, k, s, p, group, weight);
        let sv = conv.to_dense().singular_values().unwrap();
        let sigma_max = sv.iter().copied().fold(0.0, f64::max);
        let tolerance = m.max(per_group * k * k) as f64 * f32::EPSILON as f64 * sigma_max;
        let rank = sv.iter().filter(|&&v| v > tolerance).count();
        let dense_nullity = conv.input_dim() - rank;
        match certify_full_rank(&conv, tolerance) {
            Ok(proof) => {
                assert_eq!(proof.nullity, dense_nullity, "config {i}: {proof:?}");
                proved += 1;
            }
            Err(NoCertificate::NotPositiveDefinite { .. }) => {
                // Then the live short side really is (nearly) rank-deficient.
                let live_short = conv.input_dim().min(conv.output_dim());
                assert!(rank < live_short, "config {i}: full rank {rank} but no certificate");
            }
            Err(e) => panic!("config {i}: {e}"),
        }
    }
    assert!(proved >= 10, "only {proved} of {} configurations proved", configs.len());
}

/// The column mask the pinned projection runs on: the dot test, and the mask applied on both sides.
#[test]
fn column_mask_passes_the_dot_test() {
    use blindspot::linop::ColumnMask;
    let mut rng = ChaCha8Rng::seed_from_u64(41);
    let conv = conv_of([2, 9, 11], 3, 3, 2, 1, 1, random_vec(&mut rng, 3 * 2 * 9));
    let keep: Vec<bool> = (0..conv.input_dim()).map(|i| i % 3 != 0).collect();
    let masked = ColumnMask { op: &conv, keep: &keep };
    let (x, y) = (
        random_vec(&mut rng, conv.input_dim()),
        random_vec(&mut rng, conv.output_dim()),
    );
    assert!(dot_test(&masked, &x, &y) < 1e-12);
    let xt = masked.adjoint_vec(&y);
    assert!(xt.iter().zip(&keep).all(|(v, &k)| k || *v == 0.0));
    let zeroed: Vec<f64> = x.iter().zip(&keep).map(|(v, &k)| if k { *v } else { 0.0 }).collect();
    assert_eq!(masked.apply_vec(&x), conv.apply_vec(&zeroed));
}

/// A linear Resize (to half size) in front of a 3×3 conv on 96×96 pixels: the front end is the
/// conv after the resampling, known only by its action; a collision found by conjugate gradients
/// leaves tract's first-layer output and logits unchanged to 1e-5.
#[test]
fn a_conv_behind_a_linear_resize_collides_through_the_whole_model() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("resized.onnx");
    ob::write_model(&path, &ob::resized_stem_spec(9, 96));
    let (model, fe) = open(&path, None, &Preprocess::default()).unwrap();
    assert_eq!(fe.ops, ["Resize", "Conv"]);
    assert!(fe.resample().is_some());
    let ns = front_end_null_space(&fe, RankRule::default()).unwrap().unwrap();
    let (n, m) = (fe.input_dim(), fe.output_dim());
    assert_eq!((n, m), (27_648, 9_216));
    assert!(!ns.nullity_exact && ns.nullity == n - m, "{}", ns.method);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let original = Pixels {
        height: 96,
        width: 96,
        channels: 3,
        data: (0..n).map(|_| rng.gen_range(0.2..0.8)).collect(),
    };
    let settings = SearchSettings {
        distance: blindspot::search::Distance::L2,
        mode: Mode::Random,
        count: 1,
        strength: None,
        seed: 3,
        rule: RankRule::default(),
    };
    let found = collide_pixels(
        &model,
        &fe,
        &ns,
        (original, ImageNotes::default()),
        None,
        &settings,
        &|| {},
    )
    .unwrap();
    let c = &found.report.collisions[0];
    let (front, out) = (
        c.comparison.front_end_rel_diff.unwrap(),
        c.comparison.outputs[0].rel_diff,
    );
    assert!(
        c.comparison.l2 > 1.0 && front <= 1e-5 && out <= 1e-5,
        "L2 {}, {front:.2e}, {out:.2e}",
        c.comparison.l2
    );
    assert!(c.control.outputs[0].rel_diff >= 100.0 * out.max(1e-7));
}

/// The separable resampling behind linear Resize: the dot test, and a hand-computed value.
#[test]
fn resample_passes_the_dot_test_and_interpolates_by_hand() {
    use blindspot::linop::Resample;
    let mut rng = ChaCha8Rng::seed_from_u64(51);
    // [2, 3, 4] → [2, 5, 2]: axis 1 upsampled with two taps, axis 2 picked, axis 0 kept.
    let taps = vec![
        (0..2).map(|i| vec![(i, 1.0)]).collect(),
        (0..5)
            .map(|o| {
                let x = o as f64 * 0.5;
                let low = x.floor() as usize;
                vec![(low, 1.0 - (x - low as f64)), ((low + 1).min(2), x - low as f64)]
            })
            .collect(),
        vec![vec![(1, 1.0)], vec![(3, 1.0)]],
    ];
    let r = Resample {
        in_shape: vec![2, 3, 4],
        out_shape: vec![2, 5, 2],
        taps,
    };
    let (x, y) = (random_vec(&mut rng, 24), random_vec(&mut rng, 20));
    assert!(dot_test(&r, &x, &y) < 1e-12);
    let out = r.apply_vec(&x);
    // Output (1, 1, 0): halfway between input rows 0 and 1 of channel 1, column 1.
    let by_hand = 0.5 * x[12 + 1] + 0.5 * x[12 + 4 + 1];
    assert!((out[10 + 2] - by_hand).abs() < 1e-15);
}
