//! `blindspot explain`: attribution maps of a collision against the original's and a random
//! control's. The maps that depend on the input only through values after the first linear layer
//! (gradient, SmoothGrad with the same noise, Grad-CAM) must agree to float rounding; input ×
//! gradient and integrated gradients differ by exactly (z − x) ⊙ gradient, by design.

mod common;

use blindspot::differentiable::{DType, Device, Differentiable, Target};
use blindspot::explain::{agreement, Attribution, Gradient, Method, Settings};
use blindspot::model::embedded;
use blindspot::model::preprocess::load_image;
use blindspot::model::Model;
use blindspot::nullspace::null_space_for_collisions;
use blindspot::pipeline::collide::{collide_pixels, SearchSettings};
use blindspot::pipeline::explain::{explain_pixels, ExplainRequest, Explanation};
use blindspot::search::Mode;
use blindspot::{front_end, Preprocess, RankRule};
use common::real_data::cached;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use std::process::Command;

fn digit(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/digits").join(name)
}

/// An image, a collision of it made as `blindspot collide --mode random --count 1` makes it, and
/// what explain_pixels needs.
struct Case {
    model: Model,
    pre: Preprocess,
    image: PathBuf,
    collision: Vec<f32>,
    first_layer_output: Option<String>,
}

fn case(model: Model, pre: Preprocess, image: &Path, mode: Mode, seed: u64) -> Case {
    let fe = front_end(&model, &pre).unwrap();
    let ns = null_space_for_collisions(&fe, RankRule::default()).unwrap();
    let original = load_image(image, &fe.grid).unwrap();
    let settings = SearchSettings {
        distance: blindspot::search::Distance::L2,
        mode,
        count: 1,
        strength: None,
        seed,
        rule: RankRule::default(),
    };
    let found = collide_pixels(&model, &fe, &ns, original, None, &settings, &|| {}).unwrap();
    let c = &found.report.collisions[0];
    assert!(
        c.comparison.l2 > 0.5,
        "the collision must move the image (L2 {})",
        c.comparison.l2
    );
    Case {
        collision: found.tensors[0].clone(),
        first_layer_output: fe.output_value.clone(),
        model,
        pre,
        image: image.to_path_buf(),
    }
}

fn embedded_case(name: &str) -> Case {
    let model = embedded::find(name).unwrap().load().unwrap();
    // vit_tiny's first layer sees 32 of every 49 patch directions and most digits leave its
    // collisions no room inside [0, 1] (README); this 0 has room in mode far (L2 2.3).
    let (image, mode) = if name == "vit_tiny" {
        ("0-401.png", Mode::Far)
    } else {
        ("7-3900.png", Mode::Random)
    };
    case(model, Preprocess::default(), &digit(image), mode, 1)
}

fn run(c: &Case, method: Method, settings: Settings) -> anyhow::Result<Explanation> {
    let gather = c.pre.gather(&c.model.input_shape).unwrap();
    let grid = c.pre.grid(&c.model.input_shape).unwrap();
    let image = load_image(&c.image, &grid).unwrap();
    let req = ExplainRequest {
        method,
        output_index: None,
        settings,
    };
    explain_pixels(
        &c.model,
        (&gather, &grid),
        image,
        Some(("collision".into(), c.collision.clone())),
        c.first_layer_output.as_deref(),
        &req,
        &|| {},
    )
}

fn print(name: &str, e: &Explanation) {
    let r = &e.report;
    let a = r.agreement.as_ref().unwrap();
    let i = r.inputs.as_ref().unwrap();
    eprintln!(
        "{name} {:?} layer {:?}: output {} L2 {:.3} out rel {:.1e} (control {:.1e}) | compare rel {:.2e} pearson {:.7} top10 {:.3} | control rel {:.2e} pearson {:.4} top10 {:.3}",
        r.method,
        r.settings.layer,
        r.output_index,
        i.compare.pixel_l2,
        i.compare.output_rel_diff,
        i.control.output_rel_diff,
        a.compare.rel_diff,
        a.compare.pearson,
        a.compare.top10_overlap,
        a.control.rel_diff,
        a.control.pearson,
        a.control.top10_overlap
    );
    if let Some(d) = &r.by_design {
        eprintln!(
            "    by design: gradient rel {:.2e}, map diff {:.3e}, unexplained {:.3e} ({:.1e}); control gradient rel {:.2e}, unexplained {:.3e}",
            d.compare.gradient_agreement.rel_diff,
            d.compare.map_difference_max_abs,
            d.compare.explained_difference_max_abs,
            d.compare.explained_difference_rel,
            d.control.gradient_agreement.rel_diff,
            d.control.explained_difference_max_abs
        );
    }
    if let Some(c) = &r.completeness {
        eprintln!(
            "    completeness: original sum {:.5} expected {:.5} gap {:.2e}; compare gap {:.2e}",
            c.original.sum,
            c.original.expected,
            c.original.rel_gap,
            c.compare.as_ref().unwrap().rel_gap
        );
    }
}

#[test]
fn collision_maps_agree_for_gradient_smoothgrad_and_gradcam_while_the_control_maps_do_not() {
    for name in ["mlp", "patch_cnn", "vit_tiny"] {
        let c = embedded_case(name);
        for method in [Method::Gradient, Method::SmoothGrad, Method::GradCam] {
            if name == "mlp" && method == Method::GradCam {
                continue;
            }
            // patch_cnn's head is a dense layer, not global average pooling: at its last feature
            // map (conv2.relu) Grad-CAM's map is zero everywhere (tested below); conv2 is not.
            let layer = (name == "patch_cnn" && method == Method::GradCam).then(|| "conv2".to_string());
            let e = run(
                &c,
                method,
                Settings {
                    layer,
                    ..Default::default()
                },
            )
            .unwrap();
            print(name, &e);
            let a = e.report.agreement.as_ref().unwrap();
            assert!(
                a.compare.rel_diff < 1e-4,
                "{name} {method:?}: collision map rel_diff {}",
                a.compare.rel_diff
            );
            assert!(a.compare.pearson > 1.0 - 1e-8 && a.compare.top10_overlap > 0.99);
            assert!(
                a.control.rel_diff > 1e-2,
                "{name} {method:?}: control map rel_diff {}",
                a.control.rel_diff
            );
            assert!(a.control.rel_diff > 100.0 * a.compare.rel_diff);
            assert_eq!(e.report.scores.original, e.original.map.score);
            assert!(e.report.by_design.is_none());
        }
    }
}

#[test]
fn gradcam_default_layers_and_a_map_that_is_zero_by_definition() {
    let vit = run(&embedded_case("vit_tiny"), Method::GradCam, Settings::default()).unwrap();
    assert_eq!(
        vit.report.settings.layer.as_deref(),
        Some("ln"),
        "the last token sequence"
    );
    let c = embedded_case("patch_cnn");
    let e = run(&c, Method::GradCam, Settings::default()).unwrap();
    assert_eq!(
        e.report.settings.layer.as_deref(),
        Some("conv2.relu"),
        "the last feature map"
    );
    assert_eq!(e.report.colour_scale_max, 0.0);
    assert!(e.report.note.contains("Every map is zero"), "{}", e.report.note);
    assert!(e.report.agreement.as_ref().unwrap().compare.top10_overlap.is_nan());
}

#[test]
fn gradcam_on_a_dense_model_says_why_there_is_no_layer() {
    let c = embedded_case("mlp");
    let err = run(&c, Method::GradCam, Settings::default())
        .err()
        .expect("mlp has no spatial layer");
    let msg = format!("{err:#}");
    assert!(!msg.contains('\n') && msg.contains("spatial layer"), "{msg}");
}

#[test]
fn input_x_gradient_differs_by_exactly_the_input_difference_times_the_shared_gradient() {
    for name in ["mlp", "patch_cnn"] {
        let c = embedded_case(name);
        let e = run(&c, Method::InputXGradient, Settings::default()).unwrap();
        print(name, &e);
        let d = e.report.by_design.as_ref().expect("by-design check");
        assert!(d.compare.gradient_agreement.rel_diff < 1e-4);
        assert!(d.compare.map_difference_max_abs > 1e-3, "the maps do differ");
        assert!(
            d.compare.explained_difference_rel < 1e-4,
            "{}",
            d.compare.explained_difference_rel
        );
        assert!(d.control.gradient_agreement.rel_diff > 1e-2);
        assert!(d.control.explained_difference_rel > 1e-2);
        // The same check by hand: map_z − map_x = (z − x) ⊙ g(x).
        let (x, z) = (&e.original, e.compare.as_ref().unwrap());
        let g = x.map.multiplied_gradient.as_ref().unwrap();
        let scale = x.map.values.iter().map(|v| v.abs()).fold(0.0, f64::max);
        for (i, g) in g.iter().enumerate() {
            let expected = (z.tensor[i] as f64 - x.tensor[i] as f64) * g;
            assert!((z.map.values[i] - x.map.values[i] - expected).abs() < 1e-4 * scale);
        }
    }
}

#[test]
fn integrated_gradients_are_complete_and_differ_by_design() {
    let c = embedded_case("patch_cnn");
    let coarse = run(&c, Method::IntegratedGradients, Settings::default()).unwrap();
    print("patch_cnn", &coarse);
    let fine = run(
        &c,
        Method::IntegratedGradients,
        Settings {
            steps: 512,
            ..Default::default()
        },
    )
    .unwrap();
    print("patch_cnn 512", &fine);
    let (cc, fc) = (
        coarse.report.completeness.as_ref().unwrap(),
        fine.report.completeness.as_ref().unwrap(),
    );
    assert!(cc.original.rel_gap < 0.05, "32 steps: {}", cc.original.rel_gap);
    assert!(fc.original.rel_gap < 0.005, "512 steps: {}", fc.original.rel_gap);
    assert!(fc.original.rel_gap < cc.original.rel_gap);
    // Both maps sum to the same score(x) − score(b): the collision's score is the original's.
    let fz = fc.compare.as_ref().unwrap();
    assert!((fz.expected - fc.original.expected).abs() < 1e-5 * fc.original.expected.abs());
    assert!((fz.sum - fc.original.sum).abs() < 0.01 * fc.original.expected.abs());
    let d = coarse.report.by_design.as_ref().unwrap();
    assert!(d.compare.gradient_agreement.rel_diff < 1e-4);
    assert!(d.compare.explained_difference_rel < 1e-4);
    assert!(d.control.explained_difference_rel > 1e-2);
}

#[test]
fn gradient_map_equals_a_central_finite_difference_along_a_random_direction() {
    for name in ["mlp", "patch_cnn", "vit_tiny"] {
        let model = embedded::find(name).unwrap().load().unwrap();
        let engine = Differentiable::on(&model, &Device::Cpu, DType::F64).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let n: usize = model.input_shape.iter().product();
        let x: Vec<f64> = (0..n).map(|_| rng.gen::<f64>()).collect();
        let d: Vec<f64> = (0..n).map(|_| rng.gen::<f64>() - 0.5).collect();
        let norm = d.iter().map(|v| v * v).sum::<f64>().sqrt();
        let d: Vec<f64> = d.iter().map(|v| v / norm).collect();
        let target = Target { output: 0, index: 3 };
        let map = Gradient.attribute(&engine, &x, target).unwrap();
        let along: f64 = map.values.iter().zip(&d).map(|(g, v)| g * v).sum();
        let h = 1e-5;
        let score = |s: f64| -> f64 {
            let p: Vec<f64> = x.iter().zip(&d).map(|(a, b)| a + s * b).collect();
            engine.outputs(&p).unwrap()[0].data[3]
        };
        let fd = (score(h) - score(-h)) / (2.0 * h);
        eprintln!("{name}: gradient·d {along:.10e}, finite difference {fd:.10e}");
        assert!(
            (along - fd).abs() < 1e-6 * along.abs().max(1e-3),
            "{name}: {along} vs {fd}"
        );
    }
}

#[test]
fn agreement_metrics_match_hand_computed_values() {
    let a = [1.0, -2.0, 3.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 4.0];
    let b = [1.5, -2.0, 3.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, -4.0];
    let m = agreement(&a, &b);
    assert_eq!(m.max_abs_diff, 8.0);
    assert_eq!(m.rel_diff, 2.0);
    // k = 1: top |a| is index 9, top |b| is index 9 too (|−4| = 4).
    assert_eq!(m.top10_overlap, 1.0);
    // Pearson by hand: means 0.65 and 0.0... computed in closed form below.
    let (ma, mb) = (6.5 / 10.0, -1.0 / 10.0);
    let cov: f64 = a.iter().zip(&b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma) * (x - ma)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb) * (y - mb)).sum();
    assert!((m.pearson - cov / (va * vb).sqrt()).abs() < 1e-15);
    // Identical maps: no difference, correlation 1, full overlap.
    let same = agreement(&a, &a);
    assert_eq!((same.max_abs_diff, same.rel_diff, same.top10_overlap), (0.0, 0.0, 1.0));
    assert!((same.pearson - 1.0).abs() < 1e-15);
    // Twenty values, k = 2: the top two of a are {0, 1}, of b {1, 2}: overlap 1/2.
    let mut a20 = [0.0; 20];
    let mut b20 = [0.0; 20];
    (a20[0], a20[1], a20[2]) = (9.0, -8.0, 1.0);
    (b20[0], b20[1], b20[2]) = (1.0, 8.0, -9.0);
    assert_eq!(agreement(&a20, &b20).top10_overlap, 0.5);
    // Anti-correlated maps: Pearson −1.
    let neg: Vec<f64> = a.iter().map(|v| -v).collect();
    assert!((agreement(&a, &neg).pearson + 1.0).abs() < 1e-15);
    // A constant map has no correlation: NaN (null in report.json).
    assert!(agreement(&[1.0; 4], &[1.0, 2.0, 3.0, 4.0]).pearson.is_nan());
}

fn blindspot(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_blindspot"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn cli_explain_writes_maps_figures_and_report() {
    let dir = tempfile::tempdir().unwrap();
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/patch_cnn.onnx");
    let (model, image) = (model.to_str().unwrap(), digit("7-3900.png"));
    let image = image.to_str().unwrap();
    let collide_out = dir.path().join("collide");
    let o = blindspot(&[
        "collide",
        model,
        image,
        "--count",
        "1",
        "--out",
        collide_out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let z = collide_out.join("collide-000.npy");
    let out = dir.path().join("explain");
    let o = blindspot(&[
        "explain",
        model,
        image,
        "--method",
        "smoothgrad",
        "--samples",
        "4",
        "--compare",
        z.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let printed: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(printed["output_index"], report["output_index"]);
    assert_eq!(report["method"], "smoothgrad");
    assert_eq!(report["settings"]["samples"], 4);
    assert!(report["output_index"].as_u64().unwrap() < 10);
    assert!(report["note"].as_str().unwrap().contains("collision"));
    for pair in ["compare", "control"] {
        for field in ["max_abs_diff", "rel_diff", "pearson", "top10_overlap"] {
            assert!(report["agreement"][pair][field].is_number(), "{pair}.{field}");
        }
    }
    assert!(report["agreement"]["compare"]["rel_diff"].as_f64().unwrap() < 1e-4);
    assert!(report["agreement"]["control"]["rel_diff"].as_f64().unwrap() > 1e-2);
    for f in [
        "original.npy",
        "compare.npy",
        "control.npy",
        "map-original.npy",
        "map-compare.npy",
        "map-control.npy",
        "map-original.png",
        "map-compare.png",
        "map-control.png",
        "explain.png",
        "report.json",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let (shape, map) = blindspot::model::npy::read_f32(&out.join("map-original.npy")).unwrap();
    assert_eq!(shape, vec![1, 1, 28, 28]);
    assert!(map.iter().any(|v| *v != 0.0));
    // original.npy is the input as fed: the collision file holds the same tensor collide wrote.
    assert_eq!(
        blindspot::model::npy::read_f32(&out.join("original.npy")).unwrap().1,
        blindspot::model::npy::read_f32(&collide_out.join("original.npy"))
            .unwrap()
            .1
    );
    assert!(image::open(out.join("explain.png")).unwrap().width() > 300);
    assert!(std::fs::read_dir(&out)
        .unwrap()
        .all(|e| !e.unwrap().file_name().to_string_lossy().ends_with(".tmp")));
    // Integrated gradients from a grey baseline file: the report names it, and the map sums to
    // score(x) − score(grey) within the quadrature error.
    let grey = dir.path().join("grey.npy");
    std::fs::write(&grey, blindspot::model::npy::encode_f32(&[1, 1, 28, 28], &[0.5; 784])).unwrap();
    let ig_out = dir.path().join("ig");
    let o = blindspot(&[
        "explain",
        model,
        image,
        "--method",
        "integrated-gradients",
        "--steps",
        "64",
        "--baseline",
        grey.to_str().unwrap(),
        "--out",
        ig_out.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ig: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(ig["settings"]["baseline"], grey.to_str().unwrap());
    assert_eq!(ig["settings"]["steps"], 64);
    assert!(ig["completeness"]["original"]["rel_gap"].as_f64().unwrap() < 0.05);
    assert!(ig["agreement"].is_null() && ig["by_design"].is_null());
    // The table mode names the rows.
    let o = blindspot(&["explain", model, image, "--out", out.to_str().unwrap()]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("output index"));
}

#[test]
fn cli_bad_compare_file_exits_2_with_one_line_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/patch_cnn.onnx");
    let image = digit("7-3900.png");
    let wrong_shape = dir.path().join("wrong.npy");
    std::fs::write(
        &wrong_shape,
        blindspot::model::npy::encode_f32(&[1, 28, 28], &[0.0; 784]),
    )
    .unwrap();
    let nan = dir.path().join("nan.npy");
    let mut data = vec![0.5f32; 784];
    data[17] = f32::NAN;
    std::fs::write(&nan, blindspot::model::npy::encode_f32(&[1, 1, 28, 28], &data)).unwrap();
    let missing = dir.path().join("missing.npy");
    for (bad, says) in [(&wrong_shape, "shape"), (&nan, "NaN"), (&missing, "cannot read")] {
        let out = dir.path().join("out");
        let o = blindspot(&[
            "explain",
            model.to_str().unwrap(),
            image.to_str().unwrap(),
            "--compare",
            bad.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains(says), "{err}");
        assert!(!out.exists(), "nothing is written on error");
    }
    let o = blindspot(&[
        "explain",
        model.to_str().unwrap(),
        image.to_str().unwrap(),
        "--output-index",
        "10",
        "--out",
        dir.path().join("out").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("out of range"));
    let o = blindspot(&[
        "explain",
        model.to_str().unwrap(),
        image.to_str().unwrap(),
        "--baseline",
        nan.to_str().unwrap(),
        "--out",
        dir.path().join("out").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("integrated-gradients only"));
    assert!(!dir.path().join("out").exists());
    for (method, layer, says) in [
        ("gradcam", "no.such.value", "no value named no.such.value"),
        ("gradcam", "flatten", "neither a feature map"),
        ("gradient", "conv2", "gradcam only"),
    ] {
        let o = blindspot(&[
            "explain",
            model.to_str().unwrap(),
            image.to_str().unwrap(),
            "--method",
            method,
            "--layer",
            layer,
            "--out",
            dir.path().join("out").to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains(says) && err.trim_end().lines().count() == 1, "{err}");
    }
    assert!(!dir.path().join("out").exists());
}

#[test]
fn vit_s14_gradient_and_gradcam_maps_of_a_collision_agree_to_float_rounding() {
    let (Some(model_path), Some(photo)) = (cached("vit_s_focus.onnx"), cached("chelsea.png")) else {
        return;
    };
    let model = Model::load(&model_path, None).unwrap();
    let c = case(model, Preprocess::default(), &photo, Mode::Random, 3);
    // Grad-CAM at the default layer (the decoder's last feature map, relu3 [1, 64, 128, 128]) and
    // at the backbone's last token sequence ([1, 257, 384]: class token dropped, 16×16 grid).
    let tokens = Some("/backbone/layernorm/Add_1_output_0".to_string());
    for (method, layer) in [
        (Method::Gradient, None),
        (Method::GradCam, None),
        (Method::GradCam, tokens),
    ] {
        let e = run(
            &c,
            method,
            Settings {
                layer,
                ..Default::default()
            },
        )
        .unwrap();
        print("vit_s14", &e);
        let a = e.report.agreement.as_ref().unwrap();
        assert!(a.compare.rel_diff < 1e-4, "{method:?}: {}", a.compare.rel_diff);
        assert!(a.compare.pearson > 1.0 - 1e-8);
        assert!(a.control.rel_diff > 1e-2, "{method:?}: control {}", a.control.rel_diff);
    }
}

#[test]
fn gradcam_weights_relu_and_bilinear_upsampling_match_a_hand_computation() {
    use blindspot::explain::gradcam::{bilinear, LayerKind};
    use blindspot::explain::{GradCam, PixelGrid};
    use blindspot::model::Value;
    let value = |shape: &[usize], data: &[f64]| Value {
        name: "layer".into(),
        shape: shape.to_vec(),
        data: data.to_vec(),
    };
    // Two channels on a 2×2 grid: α = (mean(1,1,1,1), mean(−2,0,0,0)) = (1, −0.5).
    let pixels = PixelGrid {
        height: 4,
        width: 4,
        position: (0..16).map(Some).collect(),
        channels_last: false,
    };
    let cam = GradCam {
        layer: "layer".into(),
        shape: vec![1, 2, 2, 2],
        kind: LayerKind::FeatureMap,
        pixels: pixels.clone(),
    };
    let a = value(&[1, 2, 2, 2], &[1.0, 2.0, 3.0, 4.0, 4.0, 3.0, 2.0, 1.0]);
    let g = value(&[1, 2, 2, 2], &[1.0, 1.0, 1.0, 1.0, -2.0, 0.0, 0.0, 0.0]);
    // ReLU(A₀ − 0.5 A₁) = ReLU(−1, 0.5, 2, 3.5).
    assert_eq!(cam.cam(&a, &g), vec![0.0, 0.5, 2.0, 3.5]);
    // A class token first ([1, 5, 2] = CLS + 2×2 patches): it is dropped from the weights and the map.
    let tokens = GradCam {
        shape: vec![1, 5, 2],
        kind: LayerKind::Tokens {
            grid: 2,
            class_token: true,
        },
        ..cam
    };
    let a = value(&[1, 5, 2], &[100.0, 100.0, 1.0, 4.0, 2.0, 3.0, 3.0, 2.0, 4.0, 1.0]);
    let g = value(&[1, 5, 2], &[50.0, 50.0, 1.0, -2.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0]);
    assert_eq!(tokens.cam(&a, &g), vec![0.0, 0.5, 2.0, 3.5]);
    // Half-pixel bilinear 2×2 → 4×4 (PyTorch's align_corners=False): a row [a, b] becomes
    // [a, 0.75 a + 0.25 b, 0.25 a + 0.75 b, b].
    let up = bilinear(&[0.0, 4.0, 8.0, 12.0], (2, 2), (4, 4));
    let row = |a: f64, b: f64| [a, 0.75 * a + 0.25 * b, 0.25 * a + 0.75 * b, b];
    let (top, bottom) = (row(0.0, 4.0), row(8.0, 12.0));
    for y in 0..4 {
        let fy = [0.0, 0.25, 0.75, 1.0][y];
        for x in 0..4 {
            assert!((up[y * 4 + x] - ((1.0 - fy) * top[x] + fy * bottom[x])).abs() < 1e-12);
        }
    }
    // The map on the input repeats the upsampled map over the input's channels.
    let three = PixelGrid {
        position: (0..48).map(|j| Some(j % 16)).collect(),
        ..pixels
    };
    let on_input = GradCam {
        pixels: three,
        ..tokens
    }
    .to_input(&[0.0, 4.0, 8.0, 12.0]);
    assert_eq!(&on_input[..16], &up[..]);
    assert_eq!(&on_input[32..], &up[..]);
}
