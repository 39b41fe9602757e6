//! The embedded digit models and `blindspot demo`: accuracy on the held-out digits through tract,
//! the demo end to end with every collision verified, and lenet's honest "no null space".
mod common;

use blindspot::model::digits::{self, EMBEDDED, HELD_OUT_PER_CLASS, PER_CLASS, PIXELS};
use blindspot::model::embedded::{self, MODELS};
use blindspot::model::preprocess::decode_image;
use blindspot::pipeline::demo::{self, DemoOptions};
use blindspot::{front_end, Preprocess};
use common::real_data::cached;

fn argmax(v: &[f64]) -> usize {
    (0..v.len()).fold(0, |best, i| if v[i] > v[best] { i } else { best })
}

/// The model card's figures, as the trainer recorded them.
fn recorded_metrics() -> serde_json::Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/models/metrics.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn embedded_models_meet_their_targets_on_held_out_digits_through_tract() {
    let Some(data) = cached("mnist_5k.csv.gz") else {
        return;
    };
    let split = digits::split(digits::read_csv_gz(&data).unwrap());
    assert_eq!((split.train.len(), split.held_out.len()), (4000, 1000));
    let metrics = recorded_metrics();
    for m in MODELS {
        let model = m.load().unwrap();
        assert_eq!(model.input_shape, vec![1, 1, 28, 28], "{}", m.name);
        assert!(m.onnx.len() < 2_000_000, "{}: {} bytes", m.name, m.onnx.len());
        let runner = model.runner(&model.output_names, true).unwrap();
        let correct = split
            .held_out
            .iter()
            .filter(|d| {
                let logits = &runner.run(&d.pixels).unwrap()[0].data;
                assert_eq!(logits.len(), 10);
                argmax(logits) == d.label as usize
            })
            .count();
        let card = metrics
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == m.name)
            .unwrap_or_else(|| panic!("{} has no entry in models/metrics.json", m.name));
        let target = if m.name == "mlp" { 930 } else { 950 };
        assert!(
            correct >= target,
            "{}: {correct}/1000 held-out digits, target {target}",
            m.name
        );
        assert_eq!(
            correct as u64,
            card["held_out"]["candle_correct"].as_u64().unwrap(),
            "{}: tract disagrees with the accuracy candle measured",
            m.name
        );
    }
}

#[test]
fn embedded_digits_are_the_held_out_digits_they_name() {
    let Some(data) = cached("mnist_5k.csv.gz") else {
        return;
    };
    let split = digits::split(digits::read_csv_gz(&data).unwrap());
    for class in 0..10u8 {
        let rows: Vec<usize> = split
            .held_out
            .iter()
            .filter(|d| d.label == class)
            .map(|d| d.row)
            .collect();
        assert_eq!(rows.len(), HELD_OUT_PER_CLASS);
        // The file lists 500 digits per class in order: the held-out ones are the last 100.
        let first = class as usize * PER_CLASS + PER_CLASS - HELD_OUT_PER_CLASS;
        assert_eq!(rows, (first..first + HELD_OUT_PER_CLASS).collect::<Vec<_>>());
    }
    let grid = blindspot::model::preprocess::Preprocess::default()
        .grid(&[1, 1, 28, 28])
        .unwrap();
    for e in EMBEDDED {
        let d = split
            .held_out
            .iter()
            .find(|d| d.row == e.row)
            .expect("embedded digit is held out");
        assert_eq!(d.label, e.label);
        let (pixels, _) = decode_image(e.png, "embedded", &grid).unwrap();
        assert_eq!(pixels.data.len(), PIXELS);
        for (a, b) in pixels.data.iter().zip(&d.pixels) {
            assert!((a - *b as f64).abs() < 1e-6, "row {}: PNG differs from the CSV", e.row);
        }
    }
}

#[test]
fn mnist_csv_errors_name_the_line() {
    let good: String = (0..PIXELS).map(|_| "0,").collect::<String>() + "3\n";
    assert_eq!(digits::read_csv(good.as_bytes()).unwrap()[0].label, 3);
    let short = good.clone() + "1,2,3\n";
    let err = format!("{:#}", digits::read_csv(short.as_bytes()).err().unwrap());
    assert!(err.contains("line 2"), "{err}");
    let bad_label: String = (0..PIXELS).map(|_| "0,").collect::<String>() + "12\n";
    let err = format!("{:#}", digits::read_csv(bad_label.as_bytes()).err().unwrap());
    assert!(err.contains("line 1") && err.contains("label"), "{err}");
}

#[test]
fn demo_runs_end_to_end_and_every_collision_verifies() {
    let opts = DemoOptions { seed: 3, pairs: 1 };
    let result = demo::run(&opts, &|_| {}).unwrap();
    let dir = tempfile::tempdir().unwrap();
    result.write(dir.path()).unwrap();
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(report["models"].as_array().unwrap().len(), MODELS.len());
    for m in &result.report.models {
        if m.name == "lenet" {
            continue;
        }
        assert!(m.exact_collision_exists, "{}", m.name);
        assert_eq!(m.collisions.len(), 3, "{}: one collision per mode", m.name);
        let moved = m.summary.as_ref().unwrap().moved;
        if m.name == "vit_tiny" && moved == 0 {
            // 32 of 49 directions seen per patch: black and saturated pixels can pin every patch.
            let statement = m.statement.as_ref().unwrap();
            assert!(statement.contains("no collision inside the pixel range"), "{statement}");
            assert!(
                m.collisions.iter().all(
                    |c| c.record.search.blocks > 0 && c.record.search.blocks_without_room == c.record.search.blocks
                ),
                "every block proved without room"
            );
            assert!(m.figure.is_none());
            continue;
        }
        assert_eq!(moved, 3, "{}: every search moved", m.name);
        assert!(dir.path().join(m.figure.as_ref().unwrap()).is_file());
        for c in &m.collisions {
            let what = format!("{} {:?}", m.name, c.mode);
            let r = &c.record;
            assert!(c.prediction_kept, "{what}");
            assert!(
                r.search.pixel_min >= 0.0 && r.search.pixel_max <= 1.0,
                "{what}: outside [0, 1]"
            );
            assert!(
                r.comparison.l2 > 0.1,
                "{what}: the collision barely moved (L2 {})",
                r.comparison.l2
            );
            let out = r.comparison.outputs[0].rel_diff;
            let front = r.comparison.front_end_rel_diff.unwrap();
            let control = r.control.outputs[0].rel_diff;
            assert!(out < 1e-5 && front < 1e-5, "{what}: output {out}, front end {front}");
            assert!(control > 100.0 * out.max(1e-7), "{what}: control {control} vs {out}");
            // The saved tensor is what the model was fed: it runs to the same logits.
            let (shape, tensor) = blindspot::model::npy::read_f32(&dir.path().join(&r.npy)).unwrap();
            assert_eq!(shape, vec![1, 1, 28, 28]);
            let model = embedded::find(&m.name).unwrap().load().unwrap();
            let runner = model.runner(&model.output_names, true).unwrap();
            let logits = &runner.run(&tensor).unwrap()[0].data;
            assert_eq!(argmax(logits), c.prediction, "{what}");
            assert!(dir.path().join(&r.png).is_file());
            if c.mode == blindspot::search::Mode::Target {
                assert!(
                    r.psnr_to_target.unwrap() > c.psnr_source_to_target.unwrap(),
                    "{what}: no closer to the target"
                );
            }
        }
    }
    let table = blindspot::pipeline::tables::demo_table(&result.report);
    assert!(table.contains("no exact collision exists"), "{table}");
}

/// The explanation panel: for every model with a collision that moved, the gradient and SmoothGrad
/// maps of the collision are the original's to float32 rounding and the control's are not; input ×
/// gradient differs by design while its gradients agree; the mlp has no layer for Grad-CAM.
#[test]
fn demo_explanation_panel_agrees_for_collisions_and_not_for_controls() {
    use blindspot::explain::Method;
    let result = demo::run(&DemoOptions { seed: 0, pairs: 3 }, &|_| {}).unwrap();
    let dir = tempfile::tempdir().unwrap();
    result.write(dir.path()).unwrap();
    let mut panels = 0;
    for m in &result.report.models {
        for e in &m.explanations {
            let what = format!("{} {}", m.name, e.method.name());
            if let Some(why) = &e.not_defined {
                assert!(m.name == "mlp" && e.method == Method::GradCam, "{what}: {why}");
                continue;
            }
            assert!(dir.path().join(e.figure.as_ref().unwrap()).is_file(), "{what}");
            let a = e.agreement.as_ref().unwrap();
            match e.method {
                Method::InputXGradient => {
                    assert!(a.compare.rel_diff > 1e-3, "{what}: {:?}", a.compare);
                    assert!(e.gradient_agreement.unwrap().rel_diff < 1e-5, "{what}");
                }
                Method::GradCam if a.compare.max_abs_diff == 0.0 && a.compare.pearson.is_nan() => {
                    // Zero everywhere at the default layer (patch_cnn's dense head): said in the table.
                }
                _ => {
                    assert!(a.compare.rel_diff < 1e-5, "{what}: {:?}", a.compare);
                    assert!(a.control.rel_diff > 1e-3, "{what}: control {:?}", a.control);
                }
            }
            panels += 1;
        }
    }
    assert!(panels >= 8, "{panels} maps");
    assert!(blindspot::pipeline::tables::demo_table(&result.report).contains("Explanations of the first digit"));
}

/// lenet's whole first convolution, Jacobian by finite differences through tract, has full
/// column rank: the demo's "no null space" and its smallest singular value, from an oracle.
#[test]
fn lenet_control_has_no_null_space_by_an_independent_jacobian() {
    let result = demo::run(&DemoOptions { seed: 0, pairs: 1 }, &|_| {}).unwrap();
    let lenet = result.report.models.iter().find(|m| m.name == "lenet").unwrap();
    assert!(!lenet.exact_collision_exists);
    assert_eq!(lenet.nullity, 0);
    assert!(lenet.collisions.is_empty());
    assert!(lenet.statement.as_ref().unwrap().contains("no exact collision exists"));

    let model = embedded::find("lenet").unwrap().load().unwrap();
    let fe = front_end(&model, &Preprocess::default()).unwrap();
    let jacobian = common::oracles::jacobian_through_tract(&model, fe.output_value.as_ref().unwrap());
    let sv = jacobian.singular_values().unwrap();
    let (max, min) = (
        sv.iter().cloned().fold(0.0, f64::max),
        sv.iter().cloned().fold(f64::INFINITY, f64::min),
    );
    assert_eq!(sv.len(), PIXELS);
    assert!(
        min > 1e-3 * max,
        "the oracle finds a near-null direction: σ_min {min}, σ_max {max}"
    );
    let ours = lenet.smallest_singular_value;
    assert!((ours - min).abs() < 1e-3 * min, "σ_min: ours {ours}, oracle {min}");
}

#[test]
fn demo_attack_panel_variants_keep_the_adversarial_answer_inside_eps() {
    let dir = tempfile::tempdir().unwrap();
    let result = demo::run(&DemoOptions { seed: 0, pairs: 1 }, &|_| {}).unwrap();
    result.write(dir.path()).unwrap();
    for m in &result.report.models {
        let Some(a) = &m.attack else {
            assert!(
                !m.exact_collision_exists,
                "{}: a null space but no attack panel",
                m.name
            );
            continue;
        };
        assert!((a.eps - demo::ATTACK_EPS).abs() < 1e-15 && a.attack_eps < a.eps);
        assert!(
            a.variants_all_within_threat && a.variants_all_same_prediction,
            "{}",
            m.name
        );
        assert!(
            a.min_pairwise_l2 > 0.1 && a.min_l2_to_adversarial > 0.1,
            "{}: variants too close",
            m.name
        );
        assert!(
            a.min_control_output_rel_diff > 1e3 * a.max_output_rel_diff,
            "{}: variants {:e} vs controls {:e}",
            m.name,
            a.max_output_rel_diff,
            a.min_control_output_rel_diff
        );
        assert!(dir.path().join(&a.figure).is_file());
    }
    let lenet = result.report.models.iter().find(|m| m.name == "lenet").unwrap();
    assert!(lenet.attack.is_none());
}

#[test]
fn same_seed_same_demo_files() {
    let files = |seed: u64| {
        let dir = tempfile::tempdir().unwrap();
        let result = demo::run(&DemoOptions { seed, pairs: 1 }, &|_| {}).unwrap();
        result.write(dir.path()).unwrap();
        let mlp = &result.report.models[0];
        mlp.collisions
            .iter()
            .map(|c| std::fs::read(dir.path().join(&c.record.npy)).unwrap())
            .collect::<Vec<_>>()
    };
    let (a, b, c) = (files(11), files(11), files(12));
    assert_eq!(a, b);
    assert_ne!(a, c);
}
