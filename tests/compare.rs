//! `blindspot compare`: PSNR and SSIM equal scikit-image's on committed pairs, an exact collision
//! is invisible to the model's feature metrics while the pixel metrics see a large change (and
//! a random control of the same size is the other way round), the LPIPS-style distance by hand,
//! and the command line's JSON and exit codes.

use blindspot::model::embedded;
use blindspot::model::preprocess::{decode_image, to_tensor, Pixels};
use blindspot::model::Value;
use blindspot::nullspace::null_space_for_collisions;
use blindspot::pipeline::collide::{collide_pixels, SearchSettings};
use blindspot::search::Mode;
use blindspot::similarity::compare::{compare, load_plain, Input};
use blindspot::similarity::features::{feature_similarity, layer_distance};
use blindspot::similarity::{psnr, ssim};
use blindspot::verify::control_perturbation;
use blindspot::{front_end, Preprocess, RankRule};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

#[test]
fn psnr_and_ssim_equal_scikit_image_on_the_committed_pairs() {
    let reference: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo("tests/data/ssim_reference.json")).unwrap()).unwrap();
    let pairs = reference["pairs"].as_array().unwrap();
    assert_eq!(pairs.len(), 5);
    for p in pairs {
        let (a, b) = (p["a"].as_str().unwrap(), p["b"].as_str().unwrap());
        let x = load_plain(&repo(a)).unwrap().pixels;
        let y = load_plain(&repo(b)).unwrap().pixels;
        let shape: Vec<usize> = p["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(vec![x.height, x.width, x.channels], shape, "{a}");
        let (s, q) = (ssim(&x, &y).unwrap(), psnr(&x, &y).unwrap());
        let (s_ref, q_ref) = (p["ssim"].as_f64().unwrap(), p["psnr"].as_f64().unwrap());
        assert!(
            (s - s_ref).abs() <= 1e-4,
            "{a} vs {b}: SSIM {s} vs scikit-image {s_ref}"
        );
        assert!(
            (q - q_ref).abs() <= 1e-6,
            "{a} vs {b}: PSNR {q} vs scikit-image {q_ref}"
        );
    }
}

#[test]
fn identical_images_give_ssim_one_and_infinite_psnr_shown_as_null() {
    let x = load_plain(&repo("tests/data/compare/cat.png")).unwrap();
    assert_eq!(ssim(&x.pixels, &x.pixels).unwrap(), 1.0);
    assert_eq!(psnr(&x.pixels, &x.pixels).unwrap(), f64::INFINITY);
    let r = compare(("a", &x), ("a", &x), None, None).unwrap();
    let json = serde_json::to_value(&r).unwrap();
    assert!(json["psnr"].is_null());
    assert_eq!(json["identical"], true);
    assert_eq!(json["ssim"], 1.0);
}

#[test]
fn ssim_rejects_images_smaller_than_its_window_and_different_sizes() {
    let tiny = Pixels {
        height: 10,
        width: 20,
        channels: 1,
        data: vec![0.5; 200],
    };
    assert!(ssim(&tiny, &tiny).unwrap_err().to_string().contains("11x11"));
    let x = load_plain(&repo("models/digits/3-1900.png")).unwrap().pixels;
    let cat = load_plain(&repo("tests/data/compare/cat.png")).unwrap().pixels;
    assert!(ssim(&x, &cat).unwrap_err().to_string().contains("differ in size"));
}

fn value(name: &str, shape: &[usize], data: &[f64]) -> Value {
    Value {
        name: name.into(),
        shape: shape.to_vec(),
        data: data.to_vec(),
    }
}

#[test]
fn lpips_style_distance_matches_a_hand_computation_on_two_layers() {
    // Feature map [1, C=2, h=1, w=2], channel-major: positions (3,4)|(0,1) against (4,3)|(2,0).
    // Unit vectors: (.6,.8) vs (.8,.6) → .04 + .04 = .08; (0,1) vs (1,0) → 2. Mean over positions 1.04.
    let a1 = value("map", &[1, 2, 1, 2], &[3.0, 0.0, 4.0, 1.0]);
    let b1 = value("map", &[1, 2, 1, 2], &[4.0, 2.0, 3.0, 0.0]);
    let d1 = layer_distance(&a1, &b1).unwrap();
    assert!((d1 - 1.04).abs() < 1e-9, "{d1}");
    // Tokens [1, T=2, D=2]: token 0 only rescaled (distance 0), token 1 (1,0) vs (0,-1) → 2. Mean 1.
    let a2 = value("tokens", &[1, 2, 2], &[1.0, 1.0, 1.0, 0.0]);
    let b2 = value("tokens", &[1, 2, 2], &[5.0, 5.0, 0.0, -1.0]);
    let d2 = layer_distance(&a2, &b2).unwrap();
    assert!((d2 - 1.0).abs() < 1e-9, "{d2}");
    // The layers are averaged with equal weights: (1.04 + 1) / 2.
    assert!(((d1 + d2) / 2.0 - 1.02).abs() < 1e-9);
    assert!(layer_distance(&value("x", &[2, 3], &[0.0; 6]), &value("x", &[2, 3], &[0.0; 6])).is_err());
}

struct Case {
    collision: (f64, f64, f64, f64),
    control: (f64, f64, f64, f64),
}

/// A `far` collision of digit 3-1900 and a random control of the same L2 on an embedded model:
/// (PSNR, SSIM, feature distance, cosine distance) of each against the original.
fn far_collision_and_control(name: &str) -> Case {
    let model = embedded::find(name).unwrap().load().unwrap();
    let fe = front_end(&model, &Preprocess::default()).unwrap();
    let ns = null_space_for_collisions(&fe, RankRule::default()).unwrap();
    let bytes = std::fs::read(repo("models/digits/3-1900.png")).unwrap();
    let original = decode_image(&bytes, "3-1900.png", &fe.grid).unwrap();
    let settings = SearchSettings {
        distance: blindspot::search::Distance::L2,
        mode: Mode::Far,
        count: 1,
        strength: None,
        seed: 0,
        rule: RankRule::default(),
    };
    let found = collide_pixels(&model, &fe, &ns, original, None, &settings, &|| {}).unwrap();
    let x = &found.original;
    let z = &found.found[0];
    let l2 = found.report.collisions[0].comparison.l2;
    let control = x.with_data(control_perturbation(&x.data, l2, &mut ChaCha8Rng::seed_from_u64(1)));
    let input = |p: &Pixels| Input {
        pixels: p.clone(),
        tensor: Some(to_tensor(&fe.preprocess_map, &p.data)),
    };
    let figures = |other: &Pixels| {
        let r = compare(("x", &input(x)), ("z", &input(other)), Some(&model), None).unwrap();
        (
            r.psnr.unwrap(),
            r.ssim,
            r.feature_distance.unwrap(),
            r.cosine_distance.unwrap(),
        )
    };
    let case = Case {
        collision: figures(z),
        control: figures(&control),
    };
    eprintln!(
        "{name}: far collision (L2 {l2:.3}) PSNR/SSIM/feature/cosine {:?}; control {:?}",
        case.collision, case.control
    );
    case
}

#[test]
fn a_far_collision_is_invisible_to_the_features_but_not_to_psnr_and_ssim() {
    for name in ["mlp", "patch_cnn"] {
        let c = far_collision_and_control(name);
        let (p, s, f, cos) = c.collision;
        assert!(f <= 1e-6 && cos <= 1e-6, "{name}: feature {f}, cosine {cos}");
        // The pixels moved more than the control's (clipped to [0, 1]) did. SSIM measured: mlp
        // 0.78, patch_cnn 0.96 (its control 0.87).
        let (pc, _, fc, cosc) = c.control;
        assert!(
            p < 25.0 && p < pc && s < 0.97,
            "{name}: PSNR {p} (control {pc}), SSIM {s}"
        );
        assert!(
            fc > 1e-3 && fc > 1e4 * f.max(1e-12),
            "{name}: control feature distance {fc}"
        );
        assert!(cosc > 1e-5, "{name}: control cosine distance {cosc}");
    }
}

#[test]
fn default_layers_and_penultimate_of_the_embedded_models() {
    let model = embedded::find("mlp").unwrap().load().unwrap();
    let t = vec![0.5f32; 784];
    let r = feature_similarity(&model, &t, &t, None).unwrap();
    assert_eq!(r.feature_distance, 0.0);
    assert!(r.cosine_distance.abs() < 1e-15, "{}", r.cosine_distance);
    assert!(!r.layers.is_empty() && r.layers.len() <= 4);
    assert!(!model.output_names.contains(&r.penultimate));
    let chosen = vec![r.layers[0].name.clone()];
    let one = feature_similarity(&model, &t, &t, Some(&chosen)).unwrap();
    assert_eq!(one.layers.len(), 1);
    let err = feature_similarity(&model, &t, &t, Some(&["no_such_value".to_string()])).unwrap_err();
    assert!(err.to_string().contains("no_such_value"));
}

fn blindspot(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_blindspot"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

#[test]
fn cli_json_has_the_pixel_and_feature_fields() {
    let (a, b) = (
        "tests/data/compare/mlp-3-1900-original.npy",
        "tests/data/compare/mlp-3-1900-far.npy",
    );
    let out = blindspot(&["compare", a, b, "--model", "models/mlp.onnx", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for field in ["psnr", "ssim", "feature_distance", "cosine_distance"] {
        assert!(j[field].is_f64(), "{field} missing in {j}");
    }
    assert!(j["feature_distance"].as_f64().unwrap() <= 1e-6);
    assert!(j["psnr"].as_f64().unwrap() < 25.0);

    let out = blindspot(&["compare", a, b, "--json"]);
    assert!(out.status.success());
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(j["psnr"].is_f64() && j["ssim"].is_f64());
    assert!(j.get("feature_distance").is_none() && j.get("cosine_distance").is_none());

    let out = blindspot(&["compare", "models/digits/3-1900.png", "models/digits/3-1901.png"]);
    assert!(out.status.success());
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("PSNR") && table.contains("SSIM"), "{table}");
}

#[test]
fn bad_inputs_exit_2_with_one_line() {
    let dir = std::env::temp_dir().join(format!("blindspot-compare-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let nan = dir.join("nan.npy");
    let mut data = vec![0.5f32; 784];
    data[3] = f32::NAN;
    std::fs::write(&nan, blindspot::model::npy::encode_f32(&[1, 1, 28, 28], &data)).unwrap();
    let wrong = dir.join("wrong.npy");
    std::fs::write(&wrong, blindspot::model::npy::encode_f32(&[1, 1, 14, 14], &[0.5; 196])).unwrap();
    let digit = "models/digits/3-1900.png";
    let cases: Vec<Vec<&str>> = vec![
        vec!["compare", digit, "no/such/file.png"],
        vec!["compare", digit, "tests/data/compare/cat.png"],
        vec!["compare", digit, nan.to_str().unwrap()],
        vec!["compare", digit, wrong.to_str().unwrap(), "--model", "models/mlp.onnx"],
        vec!["compare", digit, "Cargo.toml"],
    ];
    for args in cases {
        let out = blindspot(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("blindspot: "), "{err}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_demo_reports_the_far_collision_and_control_similarity() {
    let opts = blindspot::pipeline::demo::DemoOptions { seed: 0, pairs: 1 };
    let demo = blindspot::pipeline::demo::run(&opts, &|_| {}).unwrap();
    let mut seen = 0;
    for m in &demo.report.models {
        let Some(sim) = &m.similarity else {
            continue;
        };
        seen += 1;
        let (c, k) = (&sim.collision, &sim.control);
        assert!(
            c.feature_distance.unwrap() <= 1e-6 && c.cosine_distance.unwrap() <= 1e-6,
            "{}",
            m.name
        );
        assert!(k.feature_distance.unwrap() > 1e-3, "{}", m.name);
        assert!(
            c.psnr.unwrap() < 30.0 && c.psnr.unwrap() < k.psnr.unwrap(),
            "{}",
            m.name
        );
    }
    assert!(seen >= 2, "mlp and patch_cnn have far collisions");
    assert!(blindspot::pipeline::tables::demo_table(&demo.report).contains("Similarity"));
}

#[test]
fn default_layers_of_a_transformer_are_token_sequences_not_statistics_or_heads() {
    let model = embedded::find("vit_tiny").unwrap().load().unwrap();
    let n: usize = model.input_shape.iter().product();
    let (a, b) = (vec![0.3f32; n], vec![0.6f32; n]);
    let r = feature_similarity(&model, &a, &b, None).unwrap();
    assert_eq!(r.layers.len(), 4);
    let first_tokens = r.layers.iter().position(|l| l.shape.len() == 3).unwrap();
    for (i, l) in r.layers.iter().enumerate() {
        let channels = if l.shape.len() == 4 {
            l.shape[1]
        } else {
            *l.shape.last().unwrap()
        };
        assert!(channels > 1, "{}: {:?}", l.name, l.shape);
        assert!(l.shape.len() != 4 || i < first_tokens, "{}: {:?}", l.name, l.shape);
    }
}
