//! The folds around the first layer (Slice, Focus fan-outs, nearest Resize in front of it;
//! BatchNormalization and per-channel arithmetic after it), each checked against tract's own
//! values on fixture models.
mod common;

use blindspot::frontend::folds::channel_affine_after;
use blindspot::linop::LinearOperator;
use blindspot::model::preprocess::{from_tensor, to_tensor};
use blindspot::{open, FrontEnd, Model, Preprocess};
use common::onnx_builder::{self as ob, ModelSpec, ResizeTarget, SliceCase};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn open_spec(spec: &ModelSpec) -> (tempfile::TempDir, Model, FrontEnd) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{}.onnx", spec.graph_name));
    ob::write_model(&path, spec);
    let (model, fe) = open(&path, None, &Preprocess::default()).unwrap();
    (dir, model, fe)
}

/// max |ours − theirs| / max |theirs|.
fn relative_error(ours: &[f64], theirs: &[f64]) -> f64 {
    assert_eq!(ours.len(), theirs.len(), "lengths differ");
    let scale = theirs.iter().map(|v| v.abs()).fold(0.0, f64::max);
    let err = ours.iter().zip(theirs).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    err / scale
}

/// Errors of the folded map (pixels → `layer_input`, the first layer's input) and of the whole
/// front end (pixels → first-layer output) against tract, for random pixels.
fn errors_against_tract(model: &Model, fe: &FrontEnd, layer_input: &str, seed: u64) -> (f64, f64) {
    let what = &model.path.display();
    let map = fe
        .layer_input_map
        .as_ref()
        .unwrap_or_else(|| panic!("{what}: not folded: {:?}", fe.limitation));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let pixels: Vec<f64> = (0..fe.input_dim()).map(|_| rng.gen_range(0.0..1.0)).collect();
    let tensor = to_tensor(&fe.preprocess_map, &pixels);
    // Ours on the pixels as the f32 tensor represents them.
    let pixels = from_tensor(&fe.preprocess_map, &tensor);
    let names = [layer_input.to_string(), fe.output_value.clone().unwrap()];
    let theirs = model.runner(&names, true).unwrap().run(&tensor).unwrap();
    assert_eq!(theirs[0].shape, map.shape, "{what}: shape of {layer_input}");
    let map_err = relative_error(&map.evaluate(&pixels), &theirs[0].data);
    let front_end_err = relative_error(&fe.evaluate(&pixels).unwrap(), &theirs[1].data);
    (map_err, front_end_err)
}

fn assert_matches_tract(spec: &ModelSpec, layer_input: &str, expected_ops: &[&str]) {
    let (_dir, model, fe) = open_spec(spec);
    let name = &spec.graph_name;
    assert!(fe.limitation.is_none(), "{name}: {:?}", fe.limitation);
    for op in expected_ops {
        assert!(fe.ops.iter().any(|o| o == op), "{name}: {op} not in {:?}", fe.ops);
    }
    let (map_err, front_end_err) = errors_against_tract(&model, &fe, layer_input, 3);
    eprintln!(
        "{name}: ops {:?}; map error {map_err:.2e}, front-end error {front_end_err:.2e}",
        fe.ops
    );
    assert!(map_err < 1e-6, "{name}: folded map differs from tract by {map_err:e}");
    assert!(
        front_end_err < 1e-6,
        "{name}: front end differs from tract by {front_end_err:e}"
    );
}

#[test]
fn focus_space_to_depth_folds_into_one_gather_that_matches_tract() {
    assert_matches_tract(&ob::focus_spec(1, false), "focused", &["Slice", "Concat", "Conv"]);
}

#[test]
fn focus_exported_as_chained_slices_matches_tract() {
    let spec = ob::focus_spec(2, true);
    let (_dir, _, fe) = open_spec(&spec);
    assert_eq!(fe.ops.iter().filter(|o| *o == "Slice").count(), 8, "{:?}", fe.ops);
    assert_matches_tract(&spec, "focused", &["Slice", "Concat"]);
}

#[test]
fn nhwc_normalisation_transpose_and_focus_compose_and_match_tract() {
    let spec = ob::nhwc_normalised_focus_spec(3);
    assert_matches_tract(
        &spec,
        "focused",
        &["Sub", "Div", "Transpose", "Slice", "Concat", "Conv"],
    );
    // The same model with the preprocessing flags as well: scale, mean and std compose too.
    let (_dir, model, _) = open_spec(&spec);
    let pre = Preprocess {
        scale: 255.0,
        mean: Some(vec![120.0, 110.0, 100.0]),
        std: Some(vec![60.0, 58.0, 57.0]),
        ..Default::default()
    };
    let fe = blindspot::front_end(&model, &pre).unwrap();
    let (map_err, front_end_err) = errors_against_tract(&model, &fe, "focused", 4);
    assert!(map_err < 1e-6 && front_end_err < 1e-6, "{map_err:e} {front_end_err:e}");
}

#[test]
fn slices_with_negative_steps_and_clamped_ends_match_tract() {
    let cases = [
        // Rows 1, 3, 5 and columns 4, 1 (counted from the end, walking backwards).
        SliceCase {
            starts: vec![1, -2],
            ends: vec![i64::MAX, -100],
            axes: Some(vec![2, -1]),
            steps: Some(vec![2, -3]),
        },
        // No axes or steps: the leading axes, step 1; channels 1..3, rows 2..7 (end clamped).
        SliceCase {
            starts: vec![0, 1, 2],
            ends: vec![1, 3, 1000],
            axes: None,
            steps: None,
        },
        // Steps without axes; a whole reversed axis (end INT64_MIN) and a start past the end.
        SliceCase {
            starts: vec![0, -1, 100, 0],
            ends: vec![1, i64::MIN, i64::MIN, 6],
            axes: None,
            steps: Some(vec![1, -1, -2, 1]),
        },
        // A crop of the middle, the usual center-crop export.
        SliceCase {
            starts: vec![1, 1],
            ends: vec![-1, 5],
            axes: Some(vec![2, 3]),
            steps: None,
        },
    ];
    for (i, case) in cases.iter().enumerate() {
        let mut spec = ob::slice_spec(10 + i as u64, case);
        spec.graph_name = format!("slice_{i}");
        assert_matches_tract(&spec, "sliced", &["Slice", "Conv"]);
    }
}

#[test]
fn nearest_resize_matches_tract_for_every_coordinate_and_rounding_mode() {
    use ResizeTarget::{Scales, Sizes};
    let cases: Vec<(&[(&str, &str)], ResizeTarget)> = vec![
        (&[], Scales([1.0, 1.0, 2.0, 3.0])),
        (
            &[("coordinate_transformation_mode", "half_pixel")],
            Scales([1.0, 1.0, 2.0, 2.0]),
        ),
        (
            &[
                ("coordinate_transformation_mode", "half_pixel"),
                ("nearest_mode", "round_prefer_ceil"),
            ],
            Sizes([1, 2, 8, 9]),
        ),
        (
            &[
                ("coordinate_transformation_mode", "asymmetric"),
                ("nearest_mode", "floor"),
            ],
            Scales([1.0, 1.0, 1.5, 0.5]),
        ),
        (
            &[
                ("coordinate_transformation_mode", "asymmetric"),
                ("nearest_mode", "ceil"),
            ],
            Scales([1.0, 1.0, 3.0, 2.0]),
        ),
        (
            &[
                ("coordinate_transformation_mode", "align_corners"),
                ("nearest_mode", "round_prefer_ceil"),
            ],
            Sizes([1, 2, 7, 6]),
        ),
        (
            &[("coordinate_transformation_mode", "align_corners")],
            Sizes([1, 2, 3, 2]),
        ),
        (
            &[
                ("coordinate_transformation_mode", "pytorch_half_pixel"),
                ("nearest_mode", "ceil"),
            ],
            Sizes([1, 2, 1, 3]),
        ),
        (
            &[
                ("coordinate_transformation_mode", "pytorch_half_pixel"),
                ("nearest_mode", "floor"),
            ],
            Sizes([1, 2, 9, 7]),
        ),
        // x / 2 lands halfway between two pixels on every odd output: the tie rules decide.
        (
            &[
                ("coordinate_transformation_mode", "asymmetric"),
                ("nearest_mode", "round_prefer_floor"),
            ],
            Scales([1.0, 1.0, 2.0, 2.0]),
        ),
        (
            &[
                ("coordinate_transformation_mode", "asymmetric"),
                ("nearest_mode", "round_prefer_ceil"),
            ],
            Scales([1.0, 1.0, 2.0, 2.0]),
        ),
        (
            &[("coordinate_transformation_mode", "tf_half_pixel_for_nn")],
            Scales([1.0, 1.0, 3.0, 0.75]),
        ),
        (
            &[("coordinate_transformation_mode", "half_pixel_symmetric")],
            Scales([1.0, 1.0, 1.7, 0.6]),
        ),
    ];
    for (i, (attrs, target)) in cases.into_iter().enumerate() {
        let mut spec = ob::resize_spec(20 + i as u64, attrs, target);
        spec.graph_name = format!("resize_{i}");
        eprintln!("{}: {attrs:?} {target:?}", spec.graph_name);
        assert_matches_tract(&spec, "resized", &["Resize", "Conv"]);
    }
}

#[test]
fn cubic_resize_is_refused_in_one_line_naming_the_op() {
    let spec = ob::resize_spec(30, &[("mode", "cubic")], ResizeTarget::Scales([1.0, 1.0, 2.0, 2.0]));
    let (_dir, _, fe) = open_spec(&spec);
    let limitation = fe.limitation.clone().expect("a limitation");
    assert!(
        limitation.contains("Resize") && limitation.contains("cubic"),
        "{limitation}"
    );
    assert_eq!(limitation.lines().count(), 1, "{limitation}");
    assert!(fe.layer.is_none() && fe.blocks().is_none());
}

/// Linear Resize is a separable resampling in front of the layer: the front end (pixels →
/// first-layer output) matches tract for up- and downsampling in every coordinate mode, and the
/// null directions of the whole operator (dense SVD, resampling included) leave tract's
/// first-layer output unchanged while a random change of the same size moves it.
#[test]
fn linear_resize_front_ends_match_tract_and_their_null_directions_collide() {
    use ResizeTarget::{Scales, Sizes};
    let cases: Vec<(&[(&str, &str)], ResizeTarget)> = vec![
        (&[("mode", "linear")], Scales([1.0, 1.0, 0.5, 0.5])),
        (&[("mode", "linear")], Scales([1.0, 1.0, 2.0, 1.5])),
        (
            &[("mode", "linear"), ("coordinate_transformation_mode", "align_corners")],
            Sizes([1, 2, 3, 7]),
        ),
        (
            &[("mode", "linear"), ("coordinate_transformation_mode", "asymmetric")],
            Scales([1.0, 1.0, 0.6, 1.0]),
        ),
        (
            &[
                ("mode", "linear"),
                ("coordinate_transformation_mode", "pytorch_half_pixel"),
            ],
            Sizes([1, 2, 4, 2]),
        ),
    ];
    for (i, (attrs, target)) in cases.into_iter().enumerate() {
        let mut spec = ob::resize_spec(40 + i as u64, attrs, target);
        spec.graph_name = format!("linear_resize_{i}");
        let (_dir, model, fe) = open_spec(&spec);
        let name = &spec.graph_name;
        assert!(fe.limitation.is_none(), "{name}: {:?}", fe.limitation);
        assert!(
            fe.resample().is_some() && fe.blocks().is_none(),
            "{name}: not resampled"
        );
        let mut rng = ChaCha8Rng::seed_from_u64(i as u64);
        let pixels: Vec<f64> = (0..fe.input_dim()).map(|_| rng.gen_range(0.0..1.0)).collect();
        let tensor = to_tensor(&fe.preprocess_map, &pixels);
        let pixels = from_tensor(&fe.preprocess_map, &tensor);
        let runner = model.runner(&[fe.output_value.clone().unwrap()], true).unwrap();
        let theirs = runner.run(&tensor).unwrap();
        let err = relative_error(&fe.evaluate(&pixels).unwrap(), &theirs[0].data);
        let ns = blindspot::nullspace::front_end_null_space(&fe, blindspot::RankRule::default())
            .unwrap()
            .unwrap();
        eprintln!(
            "{name}: front-end error {err:.2e}, nullity {} of {}",
            ns.nullity,
            fe.input_dim()
        );
        assert!(err < 1e-6, "{name}: front end differs from tract by {err:e}");
        assert!(ns.nullity_exact && ns.nullity >= fe.input_dim().saturating_sub(fe.output_dim()));
        if ns.nullity == 0 {
            continue;
        }
        // A small null step from mid-grey stays in the box; tract's first layer does not see it.
        let grey = vec![0.5; fe.input_dim()];
        let direction = ns.project(&pixels.iter().map(|v| v - 0.5).collect::<Vec<_>>());
        let scale = 0.4 / direction.iter().map(|v| v.abs()).fold(0.0, f64::max);
        let moved: Vec<f64> = grey.iter().zip(&direction).map(|(g, d)| g + scale * d).collect();
        let first = |p: &[f64]| runner.run(&to_tensor(&fe.preprocess_map, p)).unwrap()[0].data.clone();
        let (a, b) = (first(&grey), first(&moved));
        let change = relative_error(&b, &a);
        assert!(
            change < 1e-6,
            "{name}: a null step changed the first layer by {change:.2e}"
        );
    }
}

/// Per-channel (scale, shift) of inference BatchNormalization, by hand from the fixture's values.
fn batch_norm_by_hand(spec: &ModelSpec, epsilon: f32) -> (Vec<f64>, Vec<f64>) {
    let get = |name: &str| -> Vec<f64> {
        spec.initializer(name)
            .unwrap()
            .f32()
            .unwrap()
            .iter()
            .map(|&v| v as f64)
            .collect()
    };
    let (gamma, beta, mean, var) = (get("bn.scale"), get("bn.bias"), get("bn.mean"), get("bn.var"));
    let scale: Vec<f64> = (0..4).map(|c| gamma[c] / (var[c] + epsilon as f64).sqrt()).collect();
    let shift = (0..4).map(|c| beta[c] - mean[c] * scale[c]).collect();
    (scale, shift)
}

/// Applies `scale`/`shift` per channel to tract's conv output and compares with tract's value
/// after the folded ops.
fn affine_error_against_tract(model: &Model, scale: &[f64], shift: &[f64], after: &str) -> f64 {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let n: usize = model.input_shape.iter().product();
    let tensor: Vec<f32> = (0..n).map(|_| rng.gen_range(0.0..1.0)).collect();
    let names = ["stem_out".to_string(), after.to_string()];
    let values = model.runner(&names, true).unwrap().run(&tensor).unwrap();
    let (conv, theirs) = (&values[0], &values[1]);
    let per_channel = conv.shape[2] * conv.shape[3];
    let ours: Vec<f64> = conv
        .data
        .iter()
        .enumerate()
        .map(|(t, &y)| scale[t / per_channel] * y + shift[t / per_channel])
        .collect();
    relative_error(&ours, &theirs.data)
}

#[test]
fn batch_normalization_after_the_conv_folds_to_hand_computed_scale_and_shift() {
    let spec = ob::conv_batchnorm_relu_spec(40);
    let (_dir, model, _) = open_spec(&spec);
    let affine = channel_affine_after(&model.graph, "stem_out", 4).unwrap().unwrap();
    assert_eq!(affine.ops, ["BatchNormalization"]);
    assert_eq!(affine.output_value, "bn_out");
    let (scale, shift) = batch_norm_by_hand(&spec, 1e-3);
    for c in 0..4 {
        assert!(
            (affine.scale[c] - scale[c]).abs() <= 1e-15 * scale[c].abs(),
            "{c}: {affine:?}"
        );
        assert!(
            (affine.shift[c] - shift[c]).abs() <= 1e-15 * shift[c].abs().max(1.0),
            "{c}: {affine:?}"
        );
    }
    assert_eq!(affine.scale[1], 0.0, "the dead channel");
    let err = affine_error_against_tract(&model, &affine.scale, &affine.shift, "bn_out");
    eprintln!(
        "conv_batchnorm_relu: scale {:?}, shift {:?}; error {err:.2e}",
        affine.scale, affine.shift
    );
    assert!(
        err < 1e-6,
        "conv + affine differs from tract's BatchNormalization by {err:e}"
    );
}

#[test]
fn batch_normalization_then_mul_div_sub_add_fold_into_one_channel_affine() {
    let spec = ob::conv_batchnorm_arithmetic_spec(41);
    let (_dir, model, _) = open_spec(&spec);
    let affine = channel_affine_after(&model.graph, "stem_out", 4).unwrap().unwrap();
    assert_eq!(affine.ops, ["BatchNormalization", "Mul", "Div", "Sub", "Add"]);
    assert_eq!(affine.output_value, "affine_out");
    // By hand: ((bn(y) · gain) / divisor), then 0.7 − that, then − 0.4.
    let (bn_scale, bn_shift) = batch_norm_by_hand(&spec, 1e-5);
    let gain = [2.0, -1.0, 0.5, 3.0];
    let divisor = [4.0, 0.25, -2.0, 1.5];
    let (minuend, offset) = (0.7f32 as f64, -0.4f32 as f64);
    for c in 0..4 {
        let a = bn_scale[c] * gain[c] / divisor[c];
        let b = bn_shift[c] * gain[c] / divisor[c];
        let (scale, shift) = (-a, minuend - b + offset);
        assert!(
            (affine.scale[c] - scale).abs() <= 1e-14 * scale.abs(),
            "{c}: {affine:?}"
        );
        assert!(
            (affine.shift[c] - shift).abs() <= 1e-14 * shift.abs().max(1.0),
            "{c}: {affine:?}"
        );
    }
    let err = affine_error_against_tract(&model, &affine.scale, &affine.shift, "affine_out");
    eprintln!("conv_batchnorm_arithmetic: error {err:.2e}");
    assert!(err < 1e-6, "conv + affine differs from tract by {err:e}");
}

#[test]
fn channel_affine_stops_at_a_value_with_two_readers_and_is_none_before_a_relu() {
    let (_dir, model, _) = open_spec(&ob::conv_batchnorm_two_readers_spec(42));
    let affine = channel_affine_after(&model.graph, "stem_out", 4).unwrap().unwrap();
    assert_eq!(
        (affine.ops.as_slice(), affine.output_value.as_str()),
        (&["BatchNormalization".to_string()][..], "bn_out")
    );

    let (_dir, model, _) = open_spec(&ob::overlapping_conv_spec(43));
    assert_eq!(channel_affine_after(&model.graph, "stem_out", 4).unwrap(), None);
    // The model's output is where folding ends, even before an op that would fold.
    let (_dir, model, _) = open_spec(&ob::conv_batchnorm_relu_spec(44));
    assert_eq!(channel_affine_after(&model.graph, ob::OUTPUT, 3).unwrap(), None);
}

#[test]
fn a_fan_out_that_does_not_meet_in_a_concat_keeps_its_limitation() {
    let (_dir, _, fe) = open_spec(&ob::fan_out_into_add_spec(50));
    let limitation = fe.limitation.expect("a limitation");
    assert!(limitation.contains("feeds 2 nodes (Relu, Sigmoid)"), "{limitation}");
    assert!(fe.layer_input_map.is_none());
}

/// Right singular vectors of the zero singular values of a dense matrix (σ ≤ 1e-9 σ_max).
fn null_directions(a: &faer::Mat<f64>) -> Vec<Vec<f64>> {
    let svd = a.svd().unwrap();
    let sv: Vec<f64> = (0..a.nrows().min(a.ncols())).map(|i| svd.S()[i]).collect();
    let rank = sv.iter().filter(|&&s| s > 1e-9 * sv[0]).count();
    let v = svd.V();
    (rank..a.ncols())
        .map(|j| (0..a.ncols()).map(|i| v[(i, j)]).collect())
        .collect()
}

/// The folds are right in the sense that matters: a direction in the null space of the folded
/// operator leaves tract's first-layer output and logits where they were, while a random
/// direction of the same size moves them.
#[test]
fn null_directions_of_folded_front_ends_leave_tract_unchanged() {
    let specs = [
        ob::focus_spec(60, false),
        ob::nhwc_normalised_focus_spec(61),
        // Downsampling by 2: three pixels in four are read by nothing.
        ob::resize_spec(
            62,
            &[("coordinate_transformation_mode", "asymmetric")],
            ResizeTarget::Scales([1.0, 1.0, 0.5, 0.5]),
        ),
        // Rows 5 -> 7 (some read twice), columns 4 -> 2 (half read by nothing).
        ob::resize_spec(63, &[], ResizeTarget::Sizes([1, 2, 7, 2])),
    ];
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    for spec in &specs {
        let (_dir, model, fe) = open_spec(spec);
        let dense = fe.blocks().expect("a dense operator").to_dense();
        let directions = null_directions(&dense);
        let n = fe.input_dim();
        assert!(!directions.is_empty(), "{}: no null space", spec.graph_name);
        // A sum of null directions, and a random direction, both of norm 0.3 in pixel space.
        let mut along = vec![0.0; n];
        for d in &directions {
            let w: f64 = rng.gen_range(-1.0..1.0);
            along.iter_mut().zip(d).for_each(|(a, v)| *a += w * v);
        }
        let random: Vec<f64> = (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let scaled = |v: &[f64]| -> Vec<f64> {
            let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            v.iter().map(|x| 0.3 * x / norm).collect()
        };
        let x: Vec<f64> = (0..n).map(|_| rng.gen_range(0.2..0.8)).collect();
        let names = [fe.output_value.clone().unwrap(), ob::OUTPUT.to_string()];
        let runner = model.runner(&names, true).unwrap();
        let run = |pixels: &[f64]| runner.run(&to_tensor(&fe.preprocess_map, pixels)).unwrap();
        let base = run(&x);
        let moved = |d: &[f64]| -> (f64, f64) {
            let z: Vec<f64> = x.iter().zip(d).map(|(a, b)| a + b).collect();
            let out = run(&z);
            (
                relative_error(&out[0].data, &base[0].data),
                relative_error(&out[1].data, &base[1].data),
            )
        };
        let (front_null, logits_null) = moved(&scaled(&along));
        let (front_random, logits_random) = moved(&scaled(&random));
        eprintln!(
            "{}: nullity {} of {n}; null direction moves the first layer {front_null:.1e}, logits {logits_null:.1e}; random {front_random:.1e}, {logits_random:.1e}",
            spec.graph_name,
            directions.len()
        );
        assert!(front_null < 1e-5 && logits_null < 1e-5, "{}: moved", spec.graph_name);
        assert!(front_random > 1e-2, "{}: random control did not move", spec.graph_name);
    }
}

#[test]
fn a_reshape_to_a_shape_computed_from_the_input_shape_folds_and_matches_tract() {
    // torch's `x.view(x.size(0), -1)` with dynamic axes: the target shape is
    // Concat(Unsqueeze(Gather(Shape(x), 0)), [-1]), known once the input's shape is.
    use blindspot::model::onnx_write::{Node, INPUT, OUTPUT};
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let mut spec = ModelSpec::new("dynamic_view", &[1, 3, 8, 8], &[1, 10]);
    let weight: Vec<f32> = (0..10 * 192).map(|_| rng.gen_range(-0.1f32..0.1)).collect();
    spec.init_f32("head.weight", &[10, 192], weight)
        .init_i64("batch_axis", &[], vec![0])
        .init_i64("unsqueeze_axes", &[1], vec![0])
        .init_i64("rest", &[1], vec![-1]);
    spec.node(Node::new("shape", "Shape", &[INPUT], &["input_shape"]))
        .node(Node::new("batch", "Gather", &["input_shape", "batch_axis"], &["batch_size"]).int("axis", 0))
        .node(Node::new(
            "batch_1d",
            "Unsqueeze",
            &["batch_size", "unsqueeze_axes"],
            &["batch_dims"],
        ))
        .node(Node::new("view_shape", "Concat", &["batch_dims", "rest"], &["target_shape"]).int("axis", 0))
        .node(Node::new("view", "Reshape", &[INPUT, "target_shape"], &["flat"]))
        .node(Node::new("head", "Gemm", &["flat", "head.weight"], &[OUTPUT]).int("transB", 1));
    assert_matches_tract(&spec, "flat", &["Reshape", "Gemm"]);
    let (_dir, _model, fe) = open_spec(&spec);
    let ns = blindspot::nullspace::front_end_null_space(&fe, Default::default())
        .unwrap()
        .unwrap();
    assert_eq!(ns.nullity, 192 - 10);
}
