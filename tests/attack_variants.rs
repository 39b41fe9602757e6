//! `blindspot attack --variants`: many adversarial images with one wrong answer. Every variant is
//! checked here independently of the library's own flags: inside the ε-ball around the clean
//! image and inside [0, 1] exactly (f64, on the pixels), tract's class equal to the adversarial
//! image's, tract's logits equal to float rounding, and far from the other variants. The region
//! projection behind them is checked against a water-filling oracle.
mod common;

use common::cli::blindspot;

use blindspot::attack::{Norm, ThreatModel};
use blindspot::linop::{Block, BlockOperator};
use blindspot::model::argmax;
use blindspot::model::digits::{png_name, EMBEDDED};
use blindspot::model::embedded::MODELS;
use blindspot::model::npy::read_f32;
use blindspot::model::preprocess::distance;
use blindspot::model::preprocess::{decode_image, to_tensor, ImageNotes, Pixels};
use blindspot::model::Model;
use blindspot::nullspace::{NullSpace, RankRule};
use blindspot::pipeline::attack::{attack_pixels, AttackMethod, AttackSettings, VARIANT_MARGIN};
use blindspot::search::{project_into, Region};
use blindspot::{front_end, Preprocess};
use faer::Mat;
use std::sync::Arc;

fn settings(threat: ThreatModel, method: AttackMethod, variants: usize) -> AttackSettings {
    AttackSettings {
        threat,
        method,
        steps: 20,
        step_size: None,
        random_start: false,
        target_class: None,
        variants,
        variant_margin: VARIANT_MARGIN,
        seed: 3,
        rule: RankRule::default(),
    }
}

fn digit(model: &Model, label: u8, row: usize) -> (Pixels, ImageNotes) {
    let d = EMBEDDED.iter().find(|d| d.label == label && d.row == row).unwrap();
    let grid = Preprocess::default().grid(&model.input_shape).unwrap();
    decode_image(d.png, &png_name(d.label, d.row), &grid).unwrap()
}

/// tract's first output for the pixels, fed as the f32 tensor the model receives.
fn tract_logits(model: &Model, map: &blindspot::linop::AffineGather, pixels: &[f64]) -> Vec<f64> {
    let runner = model.runner(&model.output_names, true).unwrap();
    runner.run(&to_tensor(map, pixels)).unwrap()[0].data.clone()
}

fn inside(threat: &ThreatModel, x: &[f64], z: &[f64]) -> bool {
    let in_box = z.iter().all(|&v| (0.0..=1.0).contains(&v));
    let in_ball = match threat.norm {
        Norm::Linf => x.iter().zip(z).all(|(a, b)| (b - a).abs() <= threat.eps),
        Norm::L2 => x.iter().zip(z).map(|(a, b)| (b - a) * (b - a)).sum::<f64>().sqrt() <= threat.eps,
    };
    in_box && in_ball
}

#[test]
fn variants_stay_inside_the_ball_and_the_box_and_share_the_adversarial_answer() {
    for name in ["mlp", "patch_cnn", "vit_tiny"] {
        let model = MODELS.iter().find(|m| m.name == name).unwrap().load().unwrap();
        let fe = front_end(&model, &Preprocess::default()).unwrap();
        for threat in [ThreatModel::linf(0.1), ThreatModel::l2(1.5)] {
            let image = digit(&model, 7, 3900);
            let x = image.0.data.clone();
            let s = settings(threat, AttackMethod::Pgd, 3);
            let result = attack_pixels(&model, &fe, image, &s, &|| ()).unwrap();
            let z = &result.adversarial.data;
            let what = format!("{name} {threat:?}");
            assert!(inside(&threat, &x, z), "{what}: adversarial image outside");
            let z_logits = tract_logits(&model, &fe.preprocess_map, z);
            let scale = z_logits.iter().map(|v| v.abs()).fold(0.0, f64::max);
            assert_eq!(result.variants.len(), 3);
            for (k, v) in result.variants.iter().enumerate() {
                let v = &v.data;
                assert!(inside(&threat, &x, v), "{what}: variant {k} outside the threat model");
                let logits = tract_logits(&model, &fe.preprocess_map, v);
                assert_eq!(
                    argmax(&logits),
                    argmax(&z_logits),
                    "{what}: variant {k} changed the class"
                );
                let dev = logits
                    .iter()
                    .zip(&z_logits)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f64::max);
                assert!(dev <= 1e-5 * scale, "{what}: variant {k} logits differ by {dev:e}");
                let moved = distance(v, z);
                assert!(moved > 0.05, "{what}: variant {k} is the adversarial image ({moved})");
                // The same change in a random direction is seen by the model.
                let record = &result.report.variants[k];
                let control = record.control.outputs[0].rel_diff;
                let own = record.versus_adversarial.outputs[0].rel_diff;
                assert!(
                    control > 100.0 * own.max(1e-9),
                    "{what}: control {control:e} vs {own:e}"
                );
                assert!(record.to_original.within_threat && record.same_prediction);
            }
            for i in 0..3 {
                for j in i + 1..3 {
                    let d = distance(&result.variants[i].data, &result.variants[j].data);
                    assert!(d > 0.05, "{what}: variants {i} and {j} only {d} apart");
                }
            }
        }
    }
}

#[test]
fn an_attack_that_uses_the_whole_linf_ball_leaves_no_variant() {
    // FGSM puts every pixel with a non-zero gradient on a face of the ε-box, in the direction of
    // a row-space vector; every null direction inside the box is orthogonal to it and so zero
    // there (README: "Attacks"). The margin is what makes room.
    let model = MODELS.iter().find(|m| m.name == "mlp").unwrap().load().unwrap();
    let fe = front_end(&model, &Preprocess::default()).unwrap();
    let threat = ThreatModel::linf(0.1);
    let mut s = settings(threat, AttackMethod::Fgsm, 2);
    s.variant_margin = 0.0;
    let cramped = attack_pixels(&model, &fe, digit(&model, 3, 1900), &s, &|| ()).unwrap();
    for v in &cramped.variants {
        assert!(distance(&v.data, &cramped.adversarial.data) < 1e-9);
    }
    s.variant_margin = VARIANT_MARGIN;
    let roomy = attack_pixels(&model, &fe, digit(&model, 3, 1900), &s, &|| ()).unwrap();
    for v in &roomy.variants {
        assert!(distance(&v.data, &roomy.adversarial.data) > 0.1);
    }
    assert!((roomy.report.attack_eps - 0.075).abs() < 1e-15);
}

#[test]
fn the_same_seed_gives_the_same_variants() {
    let model = MODELS.iter().find(|m| m.name == "patch_cnn").unwrap().load().unwrap();
    let fe = front_end(&model, &Preprocess::default()).unwrap();
    let mut s = settings(ThreatModel::linf(0.1), AttackMethod::Pgd, 2);
    s.random_start = true;
    let a = attack_pixels(&model, &fe, digit(&model, 2, 1400), &s, &|| ()).unwrap();
    let b = attack_pixels(&model, &fe, digit(&model, 2, 1400), &s, &|| ()).unwrap();
    assert_eq!(a.adversarial.data, b.adversarial.data);
    for (u, v) in a.variants.iter().zip(&b.variants) {
        assert_eq!(u.data, v.data);
    }
}

/// The nearest point of {Σ z = Σ a} ∩ [lo, hi] to w: z = clamp(w − μ) for the μ that keeps the
/// sum, by bisection (Σ clamp(w − μ) decreases in μ).
fn water_filling(w: &[f64], lo: &[f64], hi: &[f64], sum: f64) -> Vec<f64> {
    let at = |mu: f64| -> Vec<f64> { (0..w.len()).map(|i| (w[i] - mu).clamp(lo[i], hi[i])).collect() };
    let (mut a, mut b) = (-10.0, 10.0);
    for _ in 0..200 {
        let m = 0.5 * (a + b);
        if at(m).iter().sum::<f64>() > sum {
            a = m;
        } else {
            b = m;
        }
    }
    at(0.5 * (a + b))
}

#[test]
fn projection_into_an_linf_region_matches_the_water_filling_oracle() {
    // A = [1 … 1]: collisions keep the sum. The region is the ε-box around x inside [0, 1].
    let n = 12;
    let op = BlockOperator {
        input_dim: n,
        output_dim: 1,
        blocks: vec![Block {
            rows: vec![0],
            cols: (0..n).collect(),
            matrix: Arc::new(Mat::from_fn(1, n, |_, _| 1.0)),
        }],
    };
    let ns = NullSpace::of(&op, (1, n), f32::EPSILON as f64, RankRule::default()).unwrap();
    let x: Vec<f64> = (0..n).map(|i| [0.0, 0.03, 0.5, 0.97, 1.0, 0.4][i % 6]).collect();
    let eps = 0.1;
    let region = Region::linf_ball(&x, eps);
    // The anchor: a point of the region (as an attack's result is).
    let anchor: Vec<f64> = (0..n).map(|i| (x[i] + [0.05, -0.05][i % 2]).clamp(0.0, 1.0)).collect();
    assert!(region.contains(&anchor));
    let w: Vec<f64> = (0..n).map(|i| [1.0, 0.0, 0.7, 0.2][i % 4]).collect();
    let p = project_into(&ns, &anchor, &region, &w, 5000);
    let oracle = water_filling(&w, region.lo(), region.hi(), anchor.iter().sum());
    let err = p.z.iter().zip(&oracle).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(err < 1e-6, "{err:e}: {:?} vs {oracle:?}", p.z);
    assert!(region.contains(&p.z), "inside the region exactly");
    for (v, a) in p.z.iter().zip(&x) {
        assert!((v - a).abs() <= eps);
    }
    let drift = p.z.iter().sum::<f64>() - anchor.iter().sum::<f64>();
    assert!(drift.abs() < 1e-14, "stays on A z = A anchor: {drift:e}");
}

#[test]
fn projection_into_an_l2_region_stays_in_the_ball_box_and_affine_set() {
    let n = 10;
    let op = BlockOperator {
        input_dim: n,
        output_dim: 2,
        blocks: vec![Block {
            rows: vec![0, 1],
            cols: (0..n).collect(),
            matrix: Arc::new(Mat::from_fn(
                2,
                n,
                |i, j| if i == 0 { 1.0 } else { j as f64 / n as f64 },
            )),
        }],
    };
    let ns = NullSpace::of(&op, (2, n), f32::EPSILON as f64, RankRule::default()).unwrap();
    let x: Vec<f64> = (0..n).map(|i| 0.1 + 0.08 * i as f64).collect();
    let eps = 0.3;
    let region = Region::l2_ball(&x, eps);
    let w: Vec<f64> = (0..n).map(|i| if i % 2 == 0 { 1.0 } else { 0.0 }).collect();
    let p = project_into(&ns, &x, &region, &w, 5000);
    assert!(region.contains(&p.z));
    assert!(distance(&p.z, &x) <= eps);
    // On the ball's surface: the target is far outside it.
    assert!(distance(&p.z, &x) > eps * (1.0 - 1e-6), "{}", distance(&p.z, &x));
    let a = |z: &[f64]| -> (f64, f64) {
        (
            z.iter().sum(),
            z.iter().enumerate().map(|(j, v)| v * j as f64 / n as f64).sum(),
        )
    };
    let (s0, s1) = a(&x);
    let (t0, t1) = a(&p.z);
    assert!((s0 - t0).abs() < 1e-13 && (s1 - t1).abs() < 1e-13);
}

#[test]
fn the_command_writes_tensors_as_fed_and_a_report_tract_agrees_with() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("attack");
    let model_path = concat!(env!("CARGO_MANIFEST_DIR"), "/models/patch_cnn.onnx");
    let image = concat!(env!("CARGO_MANIFEST_DIR"), "/models/digits/7-3900.png");
    let (code, stdout, err) = blindspot(&[
        "attack",
        model_path,
        image,
        "--eps",
        "32/255",
        "--variants",
        "2",
        "--seed",
        "1",
        "--json",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!((report["eps"].as_f64().unwrap() - 32.0 / 255.0).abs() < 1e-15);
    assert_eq!(report["norm"], "linf");
    assert_eq!(report["method"], "pgd");
    for f in report["files"].as_array().unwrap() {
        assert!(out.join(f.as_str().unwrap()).is_file(), "{f} missing");
    }
    let model = Model::load(std::path::Path::new(model_path), None).unwrap();
    let runner = model.runner(&model.output_names, true).unwrap();
    let (shape, original) = read_f32(&out.join("original.npy")).unwrap();
    assert_eq!(shape, model.input_shape);
    let class_of = |file: &str| -> usize {
        let (_, t) = read_f32(&out.join(file)).unwrap();
        argmax(&runner.run(&t).unwrap()[0].data)
    };
    let adversarial_class = report["adversarial"]["prediction"]["class"].as_u64().unwrap() as usize;
    assert_eq!(class_of("adversarial.npy"), adversarial_class);
    assert_eq!(
        class_of("original.npy"),
        report["original"]["prediction"]["class"].as_u64().unwrap() as usize
    );
    for v in report["variants"].as_array().unwrap() {
        let npy = v["npy"].as_str().unwrap();
        assert_eq!(class_of(npy), adversarial_class, "{npy}");
        let (_, t) = read_f32(&out.join(npy)).unwrap();
        // The embedded models take pixels as they are: the tensor is the pixels in float32.
        let linf = t
            .iter()
            .zip(&original)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(linf as f64 <= 32.0 / 255.0 + 1e-7, "{npy}: {linf}");
        assert!(v["within_threat"].as_bool().unwrap());
    }
    assert!(report["pairwise"]["min_l2"].as_f64().unwrap() > 0.1);
    assert_eq!(report["variants_all_same_prediction"], true);
}

#[test]
fn bad_attack_requests_fail_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("never");
    let mlp = concat!(env!("CARGO_MANIFEST_DIR"), "/models/mlp.onnx");
    let lenet = concat!(env!("CARGO_MANIFEST_DIR"), "/models/lenet.onnx");
    let image = concat!(env!("CARGO_MANIFEST_DIR"), "/models/digits/7-3900.png");
    let o = out.to_str().unwrap();
    for (args, code, needle) in [
        (
            vec!["attack", mlp, image, "--eps", "0.1", "--target-class", "10", "--out", o],
            2,
            "out of range",
        ),
        (vec!["attack", mlp, image, "--eps", "1/0", "--out", o], 2, "finite"),
        (
            vec!["attack", lenet, image, "--eps", "0.1", "--variants", "2", "--out", o],
            1,
            "no exact collision exists",
        ),
        (
            vec![
                "attack",
                mlp,
                image,
                "--eps",
                "0.1",
                "--variants",
                "1",
                "--variant-margin",
                "1",
                "--out",
                o,
            ],
            2,
            "margin",
        ),
    ] {
        let (got, _, err) = blindspot(&args);
        assert_eq!(got, code, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(!out.exists(), "{args:?} wrote output");
    }
}

#[test]
fn variants_of_an_adversarial_text_line_for_the_ppocr_direction_classifier() {
    let (Some(model_path), Some(image)) = (
        common::real_data::cached("ppocr_cls.onnx"),
        common::real_data::cached("imageTextN.png"),
    ) else {
        return;
    };
    let model = Model::load(&model_path, Some(&[1, 3, 48, 192])).unwrap();
    let pre = Preprocess {
        mean: Some(vec![0.5; 3]),
        std: Some(vec![0.5; 3]),
        ..Preprocess::default()
    };
    let fe = front_end(&model, &pre).unwrap();
    let threat = ThreatModel::linf(8.0 / 255.0);
    let mut s = settings(threat, AttackMethod::Pgd, 2);
    s.steps = 10;
    let pixels = blindspot::model::preprocess::load_image(&image, &fe.grid).unwrap();
    let x = pixels.0.data.clone();
    let result = attack_pixels(&model, &fe, pixels, &s, &|| ()).unwrap();
    let r = &result.report;
    assert!(r.adversarial.success, "PGD-10 at 8/255 flips the text direction");
    let z_logits = tract_logits(&model, &fe.preprocess_map, &result.adversarial.data);
    for (k, v) in result.variants.iter().enumerate() {
        assert!(inside(&threat, &x, &v.data), "variant {k} outside");
        let logits = tract_logits(&model, &fe.preprocess_map, &v.data);
        assert_eq!(argmax(&logits), argmax(&z_logits));
        let dev = logits
            .iter()
            .zip(&z_logits)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(dev <= 1e-5, "variant {k}: probabilities differ by {dev:e}");
        let front = r.variants[k].versus_adversarial.front_end_rel_diff.unwrap();
        let control = r.variants[k].control.front_end_rel_diff.unwrap();
        assert!(
            front < 1e-5 && control > 1e3 * front,
            "front end {front:e} vs control {control:e}"
        );
        assert!(distance(&v.data, &result.adversarial.data) > 0.2);
    }
}
