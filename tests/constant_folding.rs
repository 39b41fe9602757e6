//! Weights and pads an exporter computes in the graph from constants (int8 weights cast and
//! scaled, DequantizeLinear per axis and per block, pads through a chain of Casts) are folded
//! into initializers: the front end of such a model is the front end of the same model with the
//! computed values stored, and tract (which runs the model as written) verifies its collisions.
mod common;

use blindspot::model::onnx_graph::OnnxGraph;
use common::cli::{blindspot, collide_verified};
use common::onnx_builder as ob;
use ob::{ModelSpec, Node};
use std::path::Path;

/// The patch-conv fixture's stem weight, quantised per output channel: (q, scale, zero point)
/// and the weight they stand for, (q − zp)·scale in f32.
fn quantised_stem(spec: &ModelSpec) -> (Vec<i8>, Vec<f32>, Vec<i8>, Vec<f32>) {
    let w = spec.initializer("stem_conv.weight").unwrap().f32().unwrap().to_vec();
    let per = w.len() / 6;
    let mut q = vec![0i8; w.len()];
    let mut scale = vec![0f32; 6];
    let zero: Vec<i8> = (0..6).map(|o| o as i8 - 3).collect();
    let mut dequantised = vec![0f32; w.len()];
    for o in 0..6 {
        let row = &w[o * per..(o + 1) * per];
        scale[o] = row.iter().fold(0f32, |m, v| m.max(v.abs())) / 100.0;
        for k in 0..per {
            let v = (row[k] / scale[o]).round() + zero[o] as f32;
            q[o * per + k] = v as i8;
            dequantised[o * per + k] = (q[o * per + k] as f32 - zero[o] as f32) * scale[o];
        }
    }
    (q, scale, zero, dequantised)
}

fn with_computed_weight(spec: &ModelSpec, nodes: Vec<Node>, add: &dyn Fn(&mut ModelSpec)) -> ModelSpec {
    let mut m = spec.clone();
    m.initializers.retain(|i| i.name != "stem_conv.weight");
    add(&mut m);
    for (k, n) in nodes.into_iter().enumerate() {
        m.nodes.insert(k, n);
    }
    m
}

fn audit(path: &Path) -> serde_json::Value {
    let (code, out, err) = blindspot(&["audit", path.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{}: {err}", path.display());
    serde_json::from_str::<serde_json::Value>(&out).unwrap()["front_end"].clone()
}

#[test]
fn computed_weights_fold_to_the_stored_model_and_collide_under_tract() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let base = ob::patch_conv_nchw_normalised_spec(4);
    let (q, scale, zero, dequantised) = quantised_stem(&base);
    let mut stored = base.clone();
    stored.initializers.retain(|i| i.name != "stem_conv.weight");
    stored.init_f32("stem_conv.weight", &[6, 3, 4, 4], dequantised.clone());
    let image = d.join("x.png");
    image::RgbImage::from_fn(12, 12, |x, y| image::Rgb([(x * 20) as u8, (y * 20) as u8, 90]))
        .save(&image)
        .unwrap();

    // Cast(int8) → Sub(zero point) → Mul(scale), as weight-only quantisation exports write it.
    let cast_mul = with_computed_weight(
        &base,
        vec![
            Node::new("w_cast", "Cast", &["w_q"], &["w_f"]).int("to", 1),
            Node::new("zp_cast", "Cast", &["w_zp"], &["zp_f"]).int("to", 1),
            Node::new("w_centre", "Sub", &["w_f", "zp_f"], &["w_c"]),
            Node::new("w_scale_mul", "Mul", &["w_c", "w_scale"], &["stem_conv.weight"]),
        ],
        &|m| {
            m.init_i8("w_q", &[6, 3, 4, 4], q.clone())
                .init_i8("w_zp", &[6, 1, 1, 1], zero.clone())
                .init_f32("w_scale", &[6, 1, 1, 1], scale.clone());
        },
    );
    // DequantizeLinear per output channel (axis 0).
    let dequantize = with_computed_weight(
        &base,
        vec![Node::new(
            "w_dq",
            "DequantizeLinear",
            &["w_q", "w_scale", "w_zp"],
            &["stem_conv.weight"],
        )
        .int("axis", 0)],
        &|m| {
            m.init_i8("w_q", &[6, 3, 4, 4], q.clone())
                .init_f32("w_scale", &[6], scale.clone())
                .init_i8("w_zp", &[6], zero.clone());
        },
    );
    let stored_path = d.join("stored.onnx");
    ob::write_model(&stored_path, &stored);
    let reference = audit(&stored_path);
    assert_eq!(reference["nullity"], 9 * 42);
    for (name, spec) in [("cast_mul", cast_mul), ("dequantize", dequantize)] {
        let path = d.join(format!("{name}.onnx"));
        ob::write_model(&path, &spec);
        // The folded weight is the stored one, value for value.
        let graph = OnnxGraph::from_bytes(&std::fs::read(&path).unwrap()).unwrap();
        let folded = graph
            .constant("stem_conv.weight")
            .unwrap()
            .expect("folded into a constant");
        let expected: Vec<f64> = dequantised.iter().map(|&v| v as f64).collect();
        assert_eq!(folded.values, expected, "{name}");
        let front = audit(&path);
        for field in ["kind", "nullity", "smallest_singular_value", "input_dim", "output_dim"] {
            assert_eq!(front[field], reference[field], "{name}: {field}");
        }
        collide_verified(&path, &image, &d.join(format!("out-{name}")));
    }
}

#[test]
fn blockwise_dequantisation_folds_per_block_of_the_axis() {
    // Opset 21: block_size 4 on axis 3 of the [6, 3, 4, 4] weight, one scale and zero point per
    // row of 4 taps (72 blocks), checked against the formula (q − zp)·scale by hand.
    let base = ob::patch_conv_nchw_normalised_spec(5);
    let q: Vec<i8> = (0..288).map(|k| ((k * 37) % 200) as i8).collect();
    let scales: Vec<f32> = (0..72).map(|b| 0.001 * (b + 1) as f32).collect();
    let zeros: Vec<i8> = (0..72).map(|b| (b % 5) as i8 - 2).collect();
    let spec = with_computed_weight(
        &base,
        vec![Node::new(
            "w_dq",
            "DequantizeLinear",
            &["w_q", "w_scale", "w_zp"],
            &["stem_conv.weight"],
        )
        .int("axis", 3)
        .int("block_size", 4)],
        &|m| {
            m.init_i8("w_q", &[6, 3, 4, 4], q.clone())
                .init_f32("w_scale", &[6, 3, 4, 1], scales.clone())
                .init_i8("w_zp", &[6, 3, 4, 1], zeros.clone());
        },
    )
    .with_opset(21);
    let graph = OnnxGraph::from_bytes(&ob::model_bytes(&spec)).unwrap();
    let folded = graph.constant("stem_conv.weight").unwrap().expect("folded");
    assert_eq!(folded.shape, vec![6, 3, 4, 4]);
    for (k, v) in folded.values.iter().enumerate() {
        // Element k = ((o·3 + c)·4 + y)·4 + x: its block is (o, c, y), one of 72.
        let block = k / 4;
        let expected = ((q[k] as f32 - zeros[block] as f32) * scales[block]) as f64;
        assert_eq!(*v, expected, "element {k}");
    }
}

#[test]
fn pads_computed_through_casts_fold_and_the_front_end_walks_through_pad() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = ob::patch_conv_nchw_normalised_spec(6);
    // normalised → Pad(pads = Cast(Cast(int64 zeros) to int32) to int64) → the stem conv.
    spec.init_i64("pads_raw", &[8], vec![0; 8]);
    let conv = spec.nodes.iter().position(|n| n.op_type == "Conv").unwrap();
    spec.nodes[conv].inputs[0] = "padded".to_string();
    for (k, n) in [
        Node::new("pads_to_i32", "Cast", &["pads_raw"], &["pads_i32"]).int("to", 6),
        Node::new("pads_to_i64", "Cast", &["pads_i32"], &["pads"]).int("to", 7),
        Node::new("pad", "Pad", &["normalised", "pads"], &["padded"]),
    ]
    .into_iter()
    .enumerate()
    {
        spec.nodes.insert(conv + k, n);
    }
    let path = dir.path().join("pad.onnx");
    ob::write_model(&path, &spec);
    let front = audit(&path);
    assert_eq!(front["kind"], "patchify_conv", "{front}");
    assert_eq!(front["nullity"], 9 * 42);
    assert!(front["ops"].as_array().unwrap().iter().any(|o| o == "Pad"), "{front}");
}
