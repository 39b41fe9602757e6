//! Bad input gets one line on stderr, exit code 2, no panic and no partial output.
mod common;

use common::cli::{blindspot, collide_verified};

use common::onnx_builder as ob;
use std::path::Path;

fn assert_clean_failure(args: &[&str], needle: &str) {
    let (code, _, err) = blindspot(args);
    assert_eq!(code, 2, "{args:?}: exit code {code}, stderr {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: not one line: {err}");
    assert!(err.starts_with("blindspot: "), "{err}");
    assert!(err.contains(needle), "{args:?}: {err:?} does not mention {needle:?}");
    assert!(!err.contains("panicked"), "{err}");
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn bad_files_get_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let text = d.join("notes.onnx");
    std::fs::write(&text, "this is not a model\n").unwrap();
    let good = d.join("mlp.onnx");
    std::fs::write(&good, ob::mlp_gemm(true, 1)).unwrap();
    let truncated = d.join("truncated.onnx");
    std::fs::write(&truncated, ob::truncated(&ob::mlp_gemm(true, 1))).unwrap();
    let sin = d.join("sin.onnx");
    std::fs::write(&sin, ob::unsupported_first_op(1)).unwrap();
    let nan = d.join("nan.onnx");
    std::fs::write(&nan, ob::nan_weights()).unwrap();
    let broken_png = d.join("broken.png");
    std::fs::write(&broken_png, b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let image = d.join("ok.png");
    image::GrayImage::from_pixel(8, 8, image::Luma([128]))
        .save(&image)
        .unwrap();

    assert_clean_failure(&["audit", s(&d.join("missing.onnx"))], "cannot read model");
    assert_clean_failure(&["audit", s(&text)], "not a readable ONNX model");
    assert_clean_failure(&["audit", s(&truncated)], "truncated.onnx");
    assert_clean_failure(&["audit", s(&nan)], "NaN");
    let out = d.join("out-sin");
    assert_clean_failure(&["collide", s(&sin), s(&image), "--out", s(&out)], "Sin");
    assert!(!out.exists(), "partial output after a failed collide");
    let out = d.join("out-png");
    assert_clean_failure(
        &["collide", s(&good), s(&broken_png), "--out", s(&out)],
        "cannot decode image",
    );
    assert!(!out.exists());
    assert_clean_failure(
        &["collide", s(&good), s(&d.join("nope.png")), "--out", s(&out)],
        "cannot open image",
    );
    assert_clean_failure(
        &["collide", s(&good), s(&image), "--mode", "target", "--out", s(&out)],
        "--target",
    );
    assert!(!out.exists());
    assert_clean_failure(
        &["collide", s(&good), s(&image), "--distance", "l1", "--out", s(&out)],
        "--distance applies to --mode target only",
    );
    assert!(!out.exists());
    assert_clean_failure(
        &["collide", s(&good), s(&image), "--strength", "nan", "--out", s(&out)],
        "not a finite length > 0",
    );
    assert_clean_failure(&["collide", s(&good), s(&image), "--bogus"], "--bogus");
    assert!(!out.exists());
    assert_clean_failure(
        &["attack", s(&good), s(&image), "--eps", "8", "--out", s(&out)],
        "did you mean 8/255?",
    );
    assert!(!out.exists());

    // A .npy of the wrong shape, and one with NaN.
    let wrong = d.join("wrong.npy");
    std::fs::write(&wrong, blindspot::model::npy::encode_f32(&[1, 1, 4, 4], &[0.0; 16])).unwrap();
    let right = d.join("right.npy");
    std::fs::write(&right, blindspot::model::npy::encode_f32(&[1, 1, 8, 8], &[0.5; 64])).unwrap();
    let nan_npy = d.join("nan.npy");
    let mut v = [0.5f32; 64];
    v[3] = f32::NAN;
    std::fs::write(&nan_npy, blindspot::model::npy::encode_f32(&[1, 1, 8, 8], &v)).unwrap();
    assert_clean_failure(&["verify", s(&good), s(&right), s(&wrong)], "shape [1, 1, 4, 4]");
    assert_clean_failure(&["verify", s(&good), s(&right), s(&nan_npy)], "NaN");
    assert_clean_failure(&["verify", s(&good), s(&right), s(&text)], "not a readable .npy");
}

#[test]
fn unsupported_first_op_is_named_by_audit() {
    let dir = tempfile::tempdir().unwrap();
    let sin = dir.path().join("sin.onnx");
    std::fs::write(&sin, ob::unsupported_first_op(1)).unwrap();
    // Exit 2 naming the op and its node, and no nullity claim of any kind (not even a bound).
    for json in [true, false] {
        let args: &[&str] = if json {
            &["audit", s(&sin), "--json"]
        } else {
            &["audit", s(&sin)]
        };
        let (code, out, err) = blindspot(args);
        assert_eq!(code, 2, "{err}");
        assert!(out.is_empty(), "{out}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains("Sin") && err.contains("sine"), "{err}");
        assert!(!err.contains("nullity 1") && !err.contains("at least"), "{err}");
    }
}

#[test]
fn collide_then_verify_round_trip_through_npy() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = d.join("patch.onnx");
    std::fs::write(&model, ob::patch_conv_nchw_normalised(2)).unwrap();
    let image = d.join("x.png");
    image::RgbImage::from_fn(30, 20, |x, y| image::Rgb([(x * 8) as u8, (y * 12) as u8, 90]))
        .save(&image)
        .unwrap();
    let out = d.join("out");
    let (code, _, err) = blindspot(&[
        "collide",
        s(&model),
        s(&image),
        "--mean",
        "0.5",
        "--std",
        "0.25",
        "--count",
        "1",
        "--quiet",
        "--out",
        s(&out),
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, stdout, err) = blindspot(&[
        "verify",
        s(&model),
        s(&out.join("original.npy")),
        s(&out.join("collide-000.npy")),
        "--mean",
        "0.5",
        "--std",
        "0.25",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let r: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(r["front_end_rel_diff"].as_f64().unwrap() < 1e-5);
    assert!(r["l2"].as_f64().unwrap() > 0.01);
    let layers = r["layers"].as_array().unwrap();
    assert!(layers.len() >= 4);
    // The inputs differ before the conv (Sub, Div) and agree, to f32 rounding, after it.
    let conv = layers.iter().position(|l| l["name"] == "stem_out").unwrap();
    for l in &layers[conv..] {
        assert!(l["rel_diff"].as_f64().unwrap() < 1e-5, "{l}");
    }
    assert!(layers[0]["max_abs_diff"].as_f64().unwrap() > 1e-3);
    assert!(r["max_rel_diff_from_front_end_on"].as_f64().unwrap() < 1e-5);
}

#[test]
fn a_model_without_null_space_says_so_with_its_smallest_singular_value() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = d.join("wide.onnx");
    std::fs::write(&model, ob::wide_dense(3)).unwrap();
    let image = d.join("x.png");
    image::GrayImage::from_pixel(4, 4, image::Luma([100]))
        .save(&image)
        .unwrap();
    let (code, out, err) = blindspot(&["audit", s(&model), "--json"]);
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["front_end"]["nullity"], 0);
    let sigma_min = json["first_layer"]["matrix"]["sigma_min"].as_f64().unwrap();
    assert!(sigma_min > 0.0);
    let out_dir = d.join("out");
    let (code, _, err) = blindspot(&["collide", s(&model), s(&image), "--out", s(&out_dir)]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("no exact collision exists") && err.contains("smallest singular value"),
        "{err}"
    );
    assert!(!out_dir.exists());
    // A budget must be a fraction of σ_max.
    for bad in ["nan", "0", "1.5"] {
        let (code, _, err) = blindspot(&["audit", s(&model), "--budget", bad]);
        assert_eq!(code, 2, "--budget {bad}: {err}");
        assert!(err.contains("fraction of sigma_max"), "{err}");
    }
}

#[test]
fn truncated_models_at_any_length_give_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = ob::patch_conv_nchw_normalised(1);
    let p = dir.path().join("cut.onnx");
    for cut in (1..bytes.len()).step_by(bytes.len() / 25) {
        std::fs::write(&p, &bytes[..cut]).unwrap();
        let (code, _, err) = blindspot(&["audit", s(&p)]);
        assert!(code == 0 || code == 2, "cut at {cut}: exit {code}: {err}");
        assert!(!err.contains("panicked"), "cut at {cut}: {err}");
        if code == 2 {
            assert_eq!(err.trim_end().lines().count(), 1, "cut at {cut}: {err}");
        }
    }
}

#[test]
fn inputs_that_are_not_images_are_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Token ids: an int64 input.
    let mut tokens = ob::mlp_gemm_spec(true, 1);
    tokens.input_elem_type = 7;
    let tokens_path = d.join("tokens.onnx");
    ob::write_model(&tokens_path, &tokens);
    assert_clean_failure(&["audit", s(&tokens_path)], "int64 values");
    assert_clean_failure(&["audit", s(&tokens_path)], "image-like float input");
    // A requested shape whose pixel maps could not be held (4e10 values): refused, not aborted.
    let mlp = d.join("mlp.onnx");
    std::fs::write(&mlp, ob::mlp_gemm(true, 1)).unwrap();
    assert_clean_failure(
        &["audit", s(&mlp), "--input-shape", "1,1,200000,200000"],
        "more values than blindspot's pixel maps can hold",
    );
    assert_clean_failure(&["audit", s(&mlp), "--input-shape", "1,64"], "the rank differs");
    // Two real inputs and no --input/--hold: refused, with every input named and shaped.
    let mut pair = ob::mlp_gemm_spec(true, 1);
    pair.extra_inputs.push(("second_image".to_string(), vec![1, 1, 8, 8]));
    let pair_path = d.join("pair.onnx");
    ob::write_model(&pair_path, &pair);
    assert_clean_failure(
        &["audit", s(&pair_path)],
        "the model has 2 inputs (input [1,1,8,8], second_image [1,1,8,8]): name the image input with --input NAME",
    );
    let patch = d.join("patch.onnx");
    std::fs::write(&patch, ob::patch_conv_nchw_normalised(2)).unwrap();
    assert_clean_failure(
        &["audit", s(&patch), "--layout", "nhwc"],
        "an image has 1, 3 or 4, not 12",
    );
}

#[test]
fn input_shape_overrides_a_static_declared_batch() {
    // Deployment code runs a model exported with a fixed batch of 10 on one image: so does
    // --input-shape.
    let dir = tempfile::tempdir().unwrap();
    let mut spec = ob::patch_conv_nchw_normalised_spec(2);
    spec.input_shape = vec![10, 3, 12, 12];
    spec.output_shape = vec![10, 4];
    let path = dir.path().join("batch10.onnx");
    ob::write_model(&path, &spec);
    let (code, out, err) = blindspot(&["audit", s(&path), "--input-shape", "1,3,12,12", "--json"]);
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["input"]["shape"], serde_json::json!([1, 3, 12, 12]));
    assert_eq!(
        json["front_end"]["nullity"],
        9 * 42,
        "9 patches of 48 inputs → 6 outputs"
    );
}

#[test]
fn external_data_is_read_from_beside_the_model_and_a_missing_or_short_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spec = ob::patch_conv_nchw_normalised_spec(2);
    let (model, data) = ob::model_bytes_with_external_data(&spec, "patch.onnx.data");
    assert!(data.len() > 4 * 200, "the weights live outside the model");
    let path = d.join("patch.onnx");
    std::fs::write(&path, &model).unwrap();
    let inline = d.join("inline.onnx");
    std::fs::write(&inline, ob::model_bytes(&spec)).unwrap();
    let image = d.join("x.png");
    image::RgbImage::from_fn(12, 12, |x, y| image::Rgb([(x * 20) as u8, (y * 20) as u8, 90]))
        .save(&image)
        .unwrap();

    // Missing, then short: one line naming the file, nothing written.
    let out = d.join("out");
    assert_clean_failure(&["audit", s(&path)], "patch.onnx.data");
    std::fs::write(d.join("patch.onnx.data"), &data[..data.len() - 4]).unwrap();
    assert_clean_failure(&["collide", s(&path), s(&image), "--out", s(&out)], "the file is short");
    assert!(!out.exists());

    // Complete: the same audit as the inline model, and a collision verified by tract.
    std::fs::write(d.join("patch.onnx.data"), &data).unwrap();
    let audit = |p: &Path| {
        let (code, out, err) = blindspot(&["audit", s(p), "--json"]);
        assert_eq!(code, 0, "{err}");
        let json: serde_json::Value = serde_json::from_str(&out).unwrap();
        json["front_end"].clone()
    };
    let (external, inline) = (audit(&path), audit(&inline));
    assert_eq!(external["nullity"], 9 * 42);
    assert_eq!(external["nullity"], inline["nullity"]);
    assert_eq!(external["smallest_singular_value"], inline["smallest_singular_value"]);
    collide_verified(&path, &image, &out);
}

#[test]
fn an_open_height_and_width_take_the_image_size() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut spec = ob::patch_conv_nchw_normalised_spec(2);
    spec.input_shape = vec![1, 3, 0, 0]; // height and width left open (dim_value 0: no size)
    let path = d.join("open.onnx");
    ob::write_model(&path, &spec);
    let image = d.join("x.png");
    image::RgbImage::from_fn(12, 12, |x, y| image::Rgb([(x * 20) as u8, (y * 20) as u8, 90]))
        .save(&image)
        .unwrap();
    // Without an image there is no size to take.
    assert_clean_failure(&["audit", s(&path)], "give --input-shape");
    let report = collide_verified(&path, &image, &d.join("out"));
    assert_eq!(report["input"]["shape"], serde_json::json!([1, 3, 12, 12]));
    assert_eq!(report["front_end"]["nullity"], 9 * 42);
}

#[test]
fn initializers_listed_as_graph_inputs_are_constants() {
    // Exporters before IR version 4 list every weight among the graph's inputs: the model still
    // has one input, the image, and the same front end.
    let dir = tempfile::tempdir().unwrap();
    let mut spec = ob::patch_conv_nchw_normalised_spec(2);
    let plain = dir.path().join("plain.onnx");
    ob::write_model(&plain, &spec);
    spec.initializers_as_inputs = true;
    let listed = dir.path().join("listed.onnx");
    ob::write_model(&listed, &spec);
    let graph = blindspot::model::onnx_graph::OnnxGraph::from_bytes(&std::fs::read(&listed).unwrap()).unwrap();
    assert!(graph.graph.input.len() > 4, "the weights are listed as inputs");
    let audit = |p: &Path| {
        let (code, out, err) = blindspot(&["audit", s(p), "--json"]);
        assert_eq!(code, 0, "{err}");
        serde_json::from_str::<serde_json::Value>(&out).unwrap()
    };
    let (a, b) = (audit(&plain), audit(&listed));
    assert_eq!(b["input"]["name"], a["input"]["name"]);
    assert_eq!(b["front_end"]["nullity"], 9 * 42);
    assert_eq!(
        b["front_end"]["smallest_singular_value"],
        a["front_end"]["smallest_singular_value"]
    );
    // tract runs it with the weights as constants too.
    let image = dir.path().join("x.png");
    image::RgbImage::from_fn(12, 12, |x, y| image::Rgb([(x * 20) as u8, (y * 20) as u8, 90]))
        .save(&image)
        .unwrap();
    collide_verified(&listed, &image, &dir.path().join("out"));
}
