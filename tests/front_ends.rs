//! Front ends of small ONNX models: operators, null spaces against a dense-SVD oracle, the
//! front-end output against tract, and collisions verified through the whole model.
mod common;

use blindspot::frontend::FrontEndKind;
use blindspot::linop::{dot_test, Compose, LinearOperator};
use blindspot::model::preprocess::load_image;
use blindspot::nullspace::front_end_null_space;
use blindspot::pipeline::collide::{collide, CollideRequest, SearchSettings};
use blindspot::search::Mode;
use blindspot::{open, Preprocess, RankRule};
use common::onnx_builder as ob;
use faer::Mat;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;

fn random_vec(n: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
    (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect()
}

/// Rank of a dense matrix by an independent rule (σ > 1e-9 σ_max): random weights leave a wide gap.
fn oracle_rank(a: &Mat<f64>) -> usize {
    let sv = a.singular_values().unwrap();
    let max = sv.iter().cloned().fold(0.0, f64::max);
    sv.iter().filter(|&&s| s > 1e-9 * max).count()
}

struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    pre: Preprocess,
    kind: FrontEndKind,
    /// Nullity worked out by hand from the architecture.
    nullity: usize,
}

fn cases() -> Vec<Case> {
    let norm = Preprocess {
        mean: Some(vec![0.5, 0.4, 0.3]),
        std: Some(vec![0.2, 0.25, 0.3]),
        ..Default::default()
    };
    vec![
        Case {
            name: "mlp_gemm_transb",
            bytes: ob::mlp_gemm(true, 1),
            pre: Preprocess::default(),
            kind: FrontEndKind::Dense,
            nullity: 64 - 20,
        },
        Case {
            name: "mlp_gemm",
            bytes: ob::mlp_gemm(false, 2),
            pre: Preprocess {
                scale: 255.0,
                ..Default::default()
            },
            kind: FrontEndKind::Dense,
            nullity: 64 - 20,
        },
        Case {
            name: "mlp_matmul_add",
            bytes: ob::mlp_matmul_add(3),
            pre: Preprocess::default(),
            kind: FrontEndKind::Dense,
            nullity: 64 - 20,
        },
        Case {
            name: "patch_conv_nchw_normalised",
            bytes: ob::patch_conv_nchw_normalised(4),
            pre: norm.clone(),
            kind: FrontEndKind::PatchifyConv,
            nullity: 9 * (48 - 6),
        },
        Case {
            name: "patch_conv_nhwc_transpose",
            bytes: ob::patch_conv_nhwc_transpose(5),
            pre: Preprocess {
                channels: blindspot::model::preprocess::ChannelOrder::Bgr,
                ..Default::default()
            },
            kind: FrontEndKind::PatchifyConv,
            nullity: 16 * (27 - 5),
        },
        // 10 = 3·3 + 1: the last row and column of pixels feed no patch (19 pixels).
        Case {
            name: "patch_conv_uneven",
            bytes: ob::patch_conv_uneven(6),
            pre: Preprocess::default(),
            kind: FrontEndKind::PatchifyConv,
            nullity: 9 * (9 - 4) + 19,
        },
        Case {
            name: "vit_like_tokens",
            bytes: ob::vit_like_tokens(7),
            pre: Preprocess::default(),
            kind: FrontEndKind::Dense,
            nullity: 4 * (16 - 6),
        },
        // pads 1 on a 10×10 input, kernel = stride = 4: a 3×3 grid of patches; border patches see
        // fewer than 32 pixels. Nullity: Σ over patches (in-image values − 6).
        Case {
            name: "patch_conv_padded",
            bytes: ob::patch_conv_padded(8),
            pre: Preprocess::default(),
            kind: FrontEndKind::PatchifyConv,
            nullity: padded_nullity(),
        },
        // 3×3 kernel, stride 1, pads 1, 4 output channels: 256 outputs ≥ 64 pixels, full column rank.
        Case {
            name: "overlapping_conv",
            bytes: ob::overlapping_conv(9),
            pre: Preprocess::default(),
            kind: FrontEndKind::Conv,
            nullity: 0,
        },
        // 3×3 kernel, stride 2, 2 output channels on 8×8: 18 outputs, so 64 − 18 ignored directions.
        Case {
            name: "strided_overlapping_conv",
            bytes: ob::strided_overlapping_conv(10),
            pre: Preprocess::default(),
            kind: FrontEndKind::Conv,
            nullity: 64 - 18,
        },
    ]
}

fn padded_nullity() -> usize {
    // Rows covered by patch p: [4p − 1, 4p + 3) ∩ [0, 10): sizes 3, 4, 3 (the last patch ends at 10).
    let sizes = [3usize, 4, 3];
    let mut total = 0;
    for h in sizes {
        for w in sizes {
            total += (2 * h * w).saturating_sub(6);
        }
    }
    // Covered pixels: rows 0..10 all covered (3 + 4 + 3 = 10), so nothing is uncovered.
    total
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(format!("{name}.onnx"));
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn null_space_matches_dense_svd_and_hand_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for case in cases() {
        let path = write(dir.path(), case.name, &case.bytes);
        let (_, fe) = open(&path, None, &case.pre).unwrap();
        assert_eq!(fe.kind, case.kind, "{}", case.name);
        let op = fe
            .blocks()
            .unwrap_or_else(|| panic!("{}: {:?}", case.name, fe.limitation));
        let ns = front_end_null_space(&fe, RankRule::default()).unwrap().unwrap();
        let dense = op.to_dense();
        let n = dense.ncols();
        assert_eq!(ns.nullity, n - oracle_rank(&dense), "{}: against dense SVD", case.name);
        assert_eq!(ns.nullity, case.nullity, "{}: against the hand count", case.name);

        // The pixel-space blocks are the composition of layer and graph map.
        let composed = Compose {
            outer: fe.layer.as_ref().unwrap(),
            inner: fe.layer_input_map.as_ref().unwrap(),
        };
        let other = composed.to_dense();
        let diff = (&dense - &other).norm_max();
        assert!(
            diff <= 1e-12 * dense.norm_max(),
            "{}: blocks differ from composition by {diff}",
            case.name
        );

        // Dot tests of every operator.
        for op in [
            op as &dyn LinearOperator,
            fe.layer.as_ref().unwrap(),
            fe.layer_input_map.as_ref().unwrap(),
            &composed,
        ] {
            let x = random_vec(op.input_dim(), &mut rng);
            let y = random_vec(op.output_dim(), &mut rng);
            assert!(dot_test(op, &x, &y) < 1e-12, "{}: dot test", case.name);
        }

        // The basis is orthonormal, spans the null space, and the projector is idempotent.
        let basis = ns.dense_basis();
        assert_eq!(basis.ncols(), ns.nullity);
        let gram = basis.transpose() * &basis;
        assert!(
            (&gram - Mat::<f64>::identity(ns.nullity, ns.nullity)).norm_max() < 1e-12,
            "{}",
            case.name
        );
        assert!(
            (&dense * &basis).norm_max() < 1e-12 * dense.norm_max() * (n as f64),
            "{}",
            case.name
        );
        let v = random_vec(n, &mut rng);
        let pv = ns.project(&v);
        let ppv = ns.project(&pv);
        assert!(pv.iter().zip(&ppv).all(|(a, b)| (a - b).abs() < 1e-12), "{}", case.name);
        let apv = op.apply_vec(&pv);
        let av = op.apply_vec(&v);
        let scale = av.iter().map(|v| v.abs()).fold(0.0, f64::max);
        assert!(apv.iter().all(|v| v.abs() < 1e-12 * scale), "{}", case.name);
    }
}

#[test]
fn front_end_output_matches_tract() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for case in cases() {
        let path = write(dir.path(), case.name, &case.bytes);
        let (model, fe) = open(&path, None, &case.pre).unwrap();
        let pixels: Vec<f64> = (0..fe.input_dim()).map(|_| rng.gen_range(0.0..1.0)).collect();
        let tensor = blindspot::model::preprocess::to_tensor(&fe.preprocess_map, &pixels);
        let runner = model.runner(&[fe.output_value.clone().unwrap()], true).unwrap();
        let tract_out = &runner.run(&tensor).unwrap()[0].data;
        // Evaluate ours on the pixels as the f32 tensor represents them.
        let ours = fe
            .evaluate(&blindspot::model::preprocess::from_tensor(&fe.preprocess_map, &tensor))
            .unwrap();
        let scale = ours.iter().map(|v| v.abs()).fold(0.0, f64::max);
        let err = ours
            .iter()
            .zip(tract_out)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(
            err < 1e-5 * scale,
            "{}: front end differs from tract by {err} (scale {scale})",
            case.name
        );
    }
}

fn write_test_image(path: &Path, w: u32, h: u32, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // A smooth picture with a few saturated pixels, as real photos have.
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let base = |k: u32| ((x * 13 + y * 7 + k * 50) % 256) as u8;
        if rng.gen_bool(0.05) {
            image::Rgb([255, 0, 255])
        } else {
            image::Rgb([base(0), base(1), base(2)])
        }
    });
    img.save(path).unwrap();
}

#[test]
fn collisions_verify_in_every_mode_and_the_control_does_not() {
    let dir = tempfile::tempdir().unwrap();
    for case in cases() {
        let path = write(dir.path(), case.name, &case.bytes);
        let (model, fe) = open(&path, None, &case.pre).unwrap();
        if fe.grid.channels == 2 {
            continue; // images decode to 1 or 3 channels; the 2-channel case is covered above
        }
        let (img, tgt) = (dir.path().join("x.png"), dir.path().join("t.png"));
        write_test_image(&img, 17, 13, 1);
        write_test_image(&tgt, 9, 9, 2);
        for mode in [Mode::Random, Mode::Far, Mode::Target] {
            let out = dir.path().join(format!("{}-{mode:?}", case.name));
            let req = CollideRequest {
                image: load_image(&img, &fe.grid).unwrap(),
                target: Some(load_image(&tgt, &fe.grid).unwrap()),
                search: SearchSettings {
                    distance: blindspot::search::Distance::L2,
                    mode,
                    count: 2,
                    strength: None,
                    seed: 7,
                    rule: RankRule::default(),
                },
            };
            if case.nullity == 0 {
                let err = collide(&model, &fe, &req, &|| {}).err().unwrap().to_string();
                assert!(err.contains("no exact collision exists"), "{}: {err}", case.name);
                continue;
            }
            let result = collide(&model, &fe, &req, &|| {}).unwrap();
            result.write(&out, &model.input_shape).unwrap();
            for c in &result.report.collisions {
                let what = format!("{} {mode:?} #{}", case.name, c.index);
                assert!(
                    c.search.pixel_min >= 0.0 && c.search.pixel_max <= 1.0,
                    "{what}: outside the box"
                );
                assert!(c.comparison.l2 > 1e-3, "{what}: no change (l2 {})", c.comparison.l2);
                let fe_rel = c.comparison.front_end_rel_diff.unwrap();
                let out_rel = c.comparison.outputs.iter().map(|o| o.rel_diff).fold(0.0, f64::max);
                let ctrl_fe = c.control.front_end_rel_diff.unwrap();
                let ctrl_out = c.control.outputs.iter().map(|o| o.rel_diff).fold(0.0, f64::max);
                assert!(
                    fe_rel < 1e-5 && out_rel < 1e-5,
                    "{what}: collision moved the model (front {fe_rel}, out {out_rel})"
                );
                assert!(
                    ctrl_fe > 100.0 * fe_rel.max(1e-7) && ctrl_out > 100.0 * out_rel.max(1e-7),
                    "{what}: control too small (front {ctrl_fe}, out {ctrl_out})"
                );
                assert_eq!(c.comparison.argmax_equal, Some(true), "{what}");
            }
            for f in &result.report.files {
                assert!(out.join(f).is_file(), "{} missing", f);
            }
            if mode == Mode::Target {
                let c = &result.report.collisions[0];
                assert!(c.psnr_to_target.unwrap().is_finite());
            }
        }
    }
}

#[test]
fn same_seed_same_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "m", &ob::patch_conv_nchw_normalised(1));
    let img = dir.path().join("x.png");
    write_test_image(&img, 12, 12, 3);
    let (model, fe) = open(&path, None, &Preprocess::default()).unwrap();
    let run = |out: &Path, seed: u64| {
        let req = CollideRequest {
            image: load_image(&img, &fe.grid).unwrap(),
            target: None,
            search: SearchSettings {
                distance: blindspot::search::Distance::L2,
                mode: Mode::Random,
                count: 2,
                strength: None,
                seed,
                rule: RankRule::default(),
            },
        };
        collide(&model, &fe, &req, &|| {})
            .unwrap()
            .write(out, &model.input_shape)
            .unwrap();
        std::fs::read(out.join("collide-001.npy")).unwrap()
    };
    let a = run(&dir.path().join("a"), 5);
    let b = run(&dir.path().join("b"), 5);
    let c = run(&dir.path().join("c"), 6);
    assert_eq!(a, b);
    assert_ne!(a, c);
}

/// 3 × 40 × 40 = 4,800 pixels: more than one dense SVD takes, so the convolution stays matrix-free.
/// Four 3×3 filters at stride 1 give 6,400 outputs for 4,800 inputs: no exact null space, and the
/// audit must say so from the structure, not make one up.
#[test]
fn overlapping_conv_too_large_for_one_matrix_is_matrix_free() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "overlap", &ob::overlapping_conv_sized(1, 3, 40));
    let (model, fe) = open(&path, None, &Preprocess::default()).unwrap();
    assert_eq!(fe.kind, FrontEndKind::Conv);
    assert!(fe.matrix_free().is_some() && fe.blocks().is_none());
    let ns = front_end_null_space(&fe, RankRule::default()).unwrap().unwrap();
    let report = blindspot::pipeline::audit::audit(&model, &fe, Some(&ns), RankRule::default(), &|_| {}).unwrap();
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["front_end"]["kind"], "conv");
    assert_eq!(json["front_end"]["nullity_lower_bound"], 0);
    assert_eq!(json["first_layer"]["matrix"]["rows"], 4);
    assert_eq!(json["first_layer"]["matrix"]["cols"], 27);
    assert!(json["front_end"]["limitation"].is_null());
    assert!(json["front_end"]["method"]
        .as_str()
        .unwrap()
        .contains("conjugate gradients"));
}

/// The Jacobian of the first layer's output by finite differences through tract: an oracle for the
/// dense whole-image convolution that shares no code with it.
#[test]
fn dense_convolution_matches_the_jacobian_from_tract() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "strided", &ob::strided_overlapping_conv(3));
    let (model, fe) = open(&path, None, &Preprocess::default()).unwrap();
    let n = fe.input_dim();
    let jacobian = common::oracles::jacobian_through_tract(&model, fe.output_value.as_ref().unwrap());
    let ours = fe.blocks().unwrap().to_dense();
    let err = (&ours - &jacobian).norm_max();
    assert!(
        err < 1e-6 * ours.norm_max(),
        "dense conv differs from tract's Jacobian by {err}"
    );
    let ns = front_end_null_space(&fe, RankRule::default()).unwrap().unwrap();
    assert_eq!(ns.nullity, n - oracle_rank(&jacobian));
}

#[test]
fn tolerance_override_changes_rank_and_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "mlp", &ob::mlp_gemm(true, 1));
    let (model, fe) = open(&path, None, &Preprocess::default()).unwrap();
    let strict = RankRule::default();
    let loose = RankRule { relative: Some(0.5) };
    let ns_strict = front_end_null_space(&fe, strict).unwrap().unwrap();
    let ns_loose = front_end_null_space(&fe, loose).unwrap().unwrap();
    assert!(ns_loose.nullity > ns_strict.nullity);
    let r = blindspot::pipeline::audit::audit(&model, &fe, Some(&ns_loose), loose, &|_| {}).unwrap();
    let m = &r.first_layer.unwrap().matrix;
    assert!((m.tolerance - 0.5 * m.sigma_max).abs() < 1e-12 * m.sigma_max);
    // Default rule: numpy's matrix_rank tolerance for f32 weights, by hand.
    let r = blindspot::pipeline::audit::audit(&model, &fe, Some(&ns_strict), strict, &|_| {}).unwrap();
    let m = r.first_layer.unwrap().matrix;
    let expected = 64.0 * f32::EPSILON as f64 * m.sigma_max;
    assert!((m.tolerance - expected).abs() < 1e-12 * expected);
    assert_eq!(r.layers.len(), 2);
    assert_eq!((r.layers[0].rows, r.layers[0].cols, r.layers[0].rank), (20, 64, 20));
    assert_eq!((r.layers[1].rows, r.layers[1].cols, r.layers[1].rank), (5, 20, 5));
}
