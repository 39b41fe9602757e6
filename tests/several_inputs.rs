//! Models with several inputs (a siamese matcher: two images through the same weights): the
//! image input is chosen with --input, every other one is held at a fixed value with --hold.
mod common;

use blindspot::model::onnx_write::{ModelSpec, Node, INPUT, OUTPUT};
use blindspot::{HeldInput, InputChoice, LoadRequest, Model};
use common::cli::{blindspot, collide_verified_with};
use common::onnx_builder as ob;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;

const SIDE: usize = 8;
const PATCH: usize = 4;
const FEATURES: usize = 3;
const SECOND: &str = "second_image";

/// input, second_image [1,1,8,8] → the same patch conv (W [3,1,4,4], stride 4) on each → Sub →
/// logits [1,3,2,2]: the difference of the two images' features.
fn siamese(seed: u64) -> (ModelSpec, Vec<f32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let weight: Vec<f32> = (0..FEATURES * PATCH * PATCH)
        .map(|_| rng.gen_range(-0.25f32..0.25))
        .collect();
    let side = SIDE as i64;
    let half = (SIDE / PATCH) as i64;
    let mut m = ModelSpec::new("siamese", &[1, 1, side, side], &[1, FEATURES as i64, half, half]);
    m.extra_inputs.push((SECOND.to_string(), vec![1, 1, side, side]));
    m.init_f32("tower.weight", &[FEATURES as i64, 1, 4, 4], weight.clone());
    for (name, input, output) in [("tower_a", INPUT, "features_a"), ("tower_b", SECOND, "features_b")] {
        m.node(
            Node::new(name, "Conv", &[input, "tower.weight"], &[output])
                .ints("kernel_shape", &[4, 4])
                .ints("strides", &[4, 4]),
        );
    }
    m.node(Node::new("difference", "Sub", &["features_a", "features_b"], &[OUTPUT]));
    (m, weight)
}

/// The siamese output by hand, in f64: per patch and feature, Σ W (a − b).
fn siamese_by_hand(weight: &[f32], a: &[f32], b: &[f32]) -> Vec<f64> {
    let half = SIDE / PATCH;
    let mut out = vec![0.0; FEATURES * half * half];
    for f in 0..FEATURES {
        for py in 0..half {
            for px in 0..half {
                let mut sum = 0.0;
                for ky in 0..PATCH {
                    for kx in 0..PATCH {
                        let i = (py * PATCH + ky) * SIDE + px * PATCH + kx;
                        sum += weight[(f * PATCH + ky) * PATCH + kx] as f64 * (a[i] as f64 - b[i] as f64);
                    }
                }
                out[(f * half + py) * half + px] = sum;
            }
        }
    }
    out
}

fn write_npy(path: &Path, data: &[f32]) {
    std::fs::write(path, blindspot::model::npy::encode_f32(&[1, 1, SIDE, SIDE], data)).unwrap();
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_held_input_is_fed_unchanged_to_every_run() {
    let dir = tempfile::tempdir().unwrap();
    let (spec, weight) = siamese(3);
    let model_path = dir.path().join("siamese.onnx");
    ob::write_model(&model_path, &spec);
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let a: Vec<f32> = (0..SIDE * SIDE).map(|_| rng.gen_range(0.0f32..1.0)).collect();
    for (k, fill) in [0.0f32, 0.7].into_iter().enumerate() {
        let b: Vec<f32> = (0..SIDE * SIDE).map(|i| fill * (i % 5) as f32 / 4.0).collect();
        let held_path = dir.path().join(format!("held-{k}.npy"));
        write_npy(&held_path, &b);
        let choice = InputChoice {
            image: Some(INPUT.to_string()),
            held: vec![HeldInput {
                name: SECOND.to_string(),
                file: held_path,
            }],
        };
        let model = Model::load_with(
            &model_path,
            &LoadRequest {
                inputs: Some(&choice),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(model.input_name, INPUT);
        assert_eq!(model.held_inputs, [SECOND]);
        let runner = model.runner(&model.output_names, true).unwrap();
        let got = &runner.run(&a).unwrap()[0].data;
        let want = siamese_by_hand(&weight, &a, &b);
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-5, "held value {fill}: tract {g}, by hand {w}");
        }
        // The held input is a constant to blindspot's reading of the graph too: the front end is
        // the chosen input's tower alone.
        let fe = blindspot::front_end(&model, &Default::default()).unwrap();
        assert_eq!(fe.input_name, INPUT);
        assert!(fe.limitation.is_none(), "{:?}", fe.limitation);
    }
}

#[test]
fn siamese_audit_and_collision_with_the_other_image_held() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (spec, _) = siamese(4);
    let model = d.join("siamese.onnx");
    ob::write_model(&model, &spec);
    // The same tower as a one-input model: its nullity (4 patches × (16 − 3)) is the reference.
    let mut tower = spec.clone();
    tower.extra_inputs.clear();
    tower.nodes.retain(|n| n.name == "tower_a");
    tower.nodes[0].outputs = vec![OUTPUT.to_string()];
    let tower_path = d.join("tower.onnx");
    ob::write_model(&tower_path, &tower);
    let (code, tower_out, err) = blindspot(&["audit", s(&tower_path), "--json"]);
    assert_eq!(code, 0, "{err}");
    let tower_json: serde_json::Value = serde_json::from_str(&tower_out).unwrap();
    assert_eq!(tower_json["front_end"]["nullity"], 4 * (16 - 3));

    let photo = d.join("photo.png");
    let other = d.join("other.png");
    for (path, seed) in [(&photo, 1u64), (&other, 2)] {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let img = image::GrayImage::from_fn(SIDE as u32, SIDE as u32, |_, _| image::Luma([rng.gen_range(40u8..215)]));
        img.save(path).unwrap();
    }
    let hold = format!("{SECOND}={}", s(&other));
    let (code, out, err) = blindspot(&["audit", s(&model), "--input", INPUT, "--hold", &hold, "--json"]);
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["front_end"]["nullity"], tower_json["front_end"]["nullity"]);
    assert_eq!(json["input"]["name"], INPUT);
    assert_eq!(json["input"]["held"][0], SECOND);
    // Without --input, the one input not held is the image.
    let (code, _, err) = blindspot(&["audit", s(&model), "--hold", &hold, "--json"]);
    assert_eq!(code, 0, "{err}");

    let report = collide_verified_with(&model, &photo, &d.join("collide"), &["--hold", &hold]);
    assert_eq!(report["input"]["held"][0], SECOND);
}

#[test]
fn inputs_not_named_or_not_fed_are_refused_with_every_name() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (spec, _) = siamese(5);
    let model = d.join("siamese.onnx");
    ob::write_model(&model, &spec);
    let good = d.join("held.npy");
    write_npy(&good, &vec![0.5; SIDE * SIDE]);
    let photo = d.join("photo.png");
    image::GrayImage::from_pixel(SIDE as u32, SIDE as u32, image::Luma([128u8]))
        .save(&photo)
        .unwrap();
    let wrong = d.join("wrong.npy");
    std::fs::write(&wrong, blindspot::model::npy::encode_f32(&[1, 1, 4, 4], &[0.5; 16])).unwrap();
    let nan = d.join("nan.npy");
    let mut values = vec![0.5f32; SIDE * SIDE];
    values[7] = f32::NAN;
    write_npy(&nan, &values);
    let hold = |file: &Path| format!("{SECOND}={}", s(file));
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![],
            "input [1,1,8,8], second_image [1,1,8,8]): name the image input with --input NAME",
        ),
        (vec!["--input".into(), INPUT.into()], "give each with --hold NAME=FILE"),
        (
            vec!["--hold".into(), format!("third={}", s(&good))],
            "no input of that name; its inputs: input [1,1,8,8], second_image [1,1,8,8]",
        ),
        (
            vec!["--input".into(), "picture".into(), "--hold".into(), hold(&good)],
            "--input picture: the model has no input of that name",
        ),
        (
            vec!["--hold".into(), hold(&wrong)],
            "has shape [1, 1, 4, 4], the input second_image is declared [1,1,8,8]",
        ),
        (vec!["--hold".into(), hold(&nan)], "holds NaN or infinite values"),
        (vec!["--hold".into(), hold(&d.join("missing.png"))], "missing.png"),
        (vec!["--hold".into(), "second_image".into()], "--hold takes NAME=FILE"),
        (
            vec!["--input".into(), SECOND.into(), "--hold".into(), hold(&good)],
            "both the image (--input) and held (--hold)",
        ),
    ];
    for (extra, needle) in cases {
        let out_dir = d.join("out");
        let mut args = vec!["collide".to_string(), s(&model).into(), s(&photo).into()];
        args.extend(extra.iter().cloned());
        args.extend(["--quiet".into(), "--out".into(), s(&out_dir).into()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, _, err) = blindspot(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err:?} does not mention {needle:?}");
        assert!(!out_dir.exists(), "{args:?} wrote files");
    }
}
