//! Real models whose first layer is an overlapping, strided convolution, fetched by
//! `scripts/fetch-models.sh`: the PP-OCR text-direction classifier (exact collisions on a real
//! photo of text), and two detectors with more first-layer outputs than pixels — NudeNet's YOLOv8n
//! and the PP-OCRv4 text detector — where no exact collision exists and a budget buys approximate
//! ones with a guaranteed bound.
mod common;

use blindspot::frontend::FrontEndKind;
use blindspot::model::preprocess::load_image;
use blindspot::nullspace::front_end_null_space;
use blindspot::pipeline::audit::audit;
use blindspot::pipeline::collide::{collide, CollideRequest, SearchSettings};
use blindspot::search::Mode;
use blindspot::{open, Preprocess, RankRule};
use common::real_data::cached;

/// One random collision of `photo` along directions within `budget` × σ_max.
fn budget_request(photo: &std::path::Path, grid: &blindspot::model::preprocess::Grid, budget: f64) -> CollideRequest {
    CollideRequest {
        image: load_image(photo, grid).unwrap(),
        target: None,
        search: SearchSettings {
            distance: blindspot::search::Distance::L2,
            mode: Mode::Random,
            count: 1,
            strength: None,
            seed: 1,
            rule: RankRule { relative: Some(budget) },
        },
    }
}

/// YOLOv8 output [1, 4 + classes, anchors]: the (anchor, class) pairs scoring above `threshold`.
fn detections(values: &[f64], shape: &[usize], threshold: f64) -> Vec<(usize, usize)> {
    let (rows, anchors) = (shape[1], shape[2]);
    let mut found = vec![];
    for a in 0..anchors {
        for class in 0..rows - 4 {
            if values[(4 + class) * anchors + a] > threshold {
                found.push((a, class));
            }
        }
    }
    found
}

#[test]
fn nudenet_yolov8n_has_no_exact_null_space_and_a_budget_buys_bounded_collisions() {
    // chelsea.png: astronaut.png holds so many saturated pixels that a small budget barely moves it.
    let (Some(model_path), Some(photo)) = (cached("nudenet_320n.onnx"), cached("chelsea.png")) else {
        return;
    };
    let shape = [1, 3, 320, 320];
    let (model, fe) = open(&model_path, Some(&shape), &Preprocess::default()).unwrap();
    assert_eq!(fe.kind, FrontEndKind::Conv);
    let (n, m) = (fe.input_dim(), fe.output_dim());
    assert_eq!((n, m), (307_200, 409_600));
    let exact = front_end_null_space(&fe, RankRule::default()).unwrap().unwrap();
    let report = audit(&model, &fe, Some(&exact), RankRule::default(), &|_| {}).unwrap();
    assert_eq!(report.front_end.nullity_lower_bound, 0);
    eprintln!(
        "nudenet exact: nullity {:?}, method {:?}, smallest singular value {:?}",
        report.front_end.nullity, report.front_end.method, report.front_end.smallest_singular_value
    );
    // Without a budget, collide and attack --variants refuse with "no exact collision exists"
    // (exit 1), whether the nullity is proved 0 or could not be established.
    let Err(refusal) = blindspot::nullspace::null_space_for_collisions(&fe, RankRule::default()) else {
        panic!("an exact null space was found where none exists");
    };
    assert!(
        format!("{refusal:#}").contains("no exact collision exists"),
        "{refusal:#}"
    );

    let dir = tempfile::tempdir().unwrap();
    let runner = model.runner(&model.output_names, true).unwrap();
    for budget in [3e-3, 1e-2] {
        let found = collide(&model, &fe, &budget_request(&photo, &fe.grid, budget), &|| {}).unwrap();
        found.write(dir.path(), &model.input_shape).unwrap();
        let c = &found.report.collisions[0];
        let (response, bound) = (
            c.search.front_end_response.unwrap(),
            c.front_end_response_bound.unwrap(),
        );
        let out = c.comparison.outputs[0].rel_diff;
        let control = c.control.outputs[0].rel_diff;
        // The guarantee holds, and bounds what tract's float32 first layer saw as well.
        assert!(
            response <= bound * (1.0 + 1e-9),
            "response {response:.3e} > bound {bound:.3e}"
        );
        assert!(c.comparison.front_end_max_abs_diff.unwrap() <= bound + 1e-3);
        assert!(out * 10.0 < control, "output {out:.2e} vs control {control:.2e}");
        assert!(c.comparison.l2 > 1.0);
        let before = runner.run(&found.original_tensor).unwrap();
        let after = runner.run(&found.tensors[0]).unwrap();
        let (b, a) = (
            detections(&before[0].data, &before[0].shape, 0.25),
            detections(&after[0].data, &after[0].shape, 0.25),
        );
        eprintln!(
            "budget {budget}: L2 {:.2} (PSNR {:.1} dB), response {response:.3e} ≤ bound {bound:.3e}, output rel {out:.2e} (control {control:.2e}), detections {} → {}",
            c.comparison.l2, c.comparison.psnr_to_original, b.len(), a.len()
        );
        let top = |v: &[f64], shape: &[usize]| {
            let (rows, anchors) = (shape[1], shape[2]);
            v[4 * anchors..rows * anchors].iter().copied().fold(0.0, f64::max)
        };
        eprintln!(
            "  top class score {:.4} → {:.4}",
            top(&before[0].data, &before[0].shape),
            top(&after[0].data, &after[0].shape)
        );
        assert_eq!(b, a, "a budget of {budget} keeps every detection above 0.25");
    }
}

#[test]
fn ppocr_direction_classifier_collides_on_a_real_text_photo_in_every_mode() {
    let (Some(model_path), Some(photo), Some(target)) = (
        cached("ppocr_cls.onnx"),
        cached("imageTextN.png"),
        cached("chelsea.png"),
    ) else {
        return;
    };
    let half = Preprocess {
        mean: Some(vec![0.5; 3]),
        std: Some(vec![0.5; 3]),
        ..Default::default()
    };
    let rule = RankRule::default();
    let (model, fe) = open(&model_path, Some(&[1, 3, 48, 192]), &half).unwrap();
    assert_eq!(fe.kind, FrontEndKind::Conv);
    assert_eq!(fe.ops, ["Conv", "BatchNormalization"]);
    assert_eq!((fe.input_dim(), fe.output_dim()), (27_648, 18_432));
    let ns = front_end_null_space(&fe, rule).unwrap().unwrap();
    let report = audit(&model, &fe, Some(&ns), rule, &|_| {}).unwrap();
    eprintln!(
        "PP-OCR cls 3×48×192: {:?} by {:?}",
        report.front_end.nullity, report.front_end.method
    );
    assert_eq!(report.front_end.nullity_lower_bound, 9_216);
    assert_eq!(report.front_end.nullity, Some(9_216));

    // The same structure on a 3×16×16 crop against the dense SVD of the whole crop.
    let pixel_conv = fe.matrix_free().unwrap().pixel_conv.as_ref().unwrap();
    let mut crop = pixel_conv.clone();
    crop.geometry.in_shape = [3, 16, 16];
    crop.geometry.out = [8, 8];
    let structure = blindspot::nullspace::conv_spectrum::structural_nullity(&crop, f32::EPSILON as f64, rule);
    let (_, small) = open(&model_path, Some(&[1, 3, 16, 16]), &half).unwrap();
    let dense = front_end_null_space(&small, rule).unwrap().unwrap();
    assert!(dense.method.contains("dense SVD of the whole operator"));
    assert_eq!(dense.nullity, 256);
    assert_eq!(structure.nullity, Some(256), "{}", structure.method);

    let dir = tempfile::tempdir().unwrap();
    for mode in [Mode::Random, Mode::Far, Mode::Target] {
        let request = CollideRequest {
            image: load_image(&photo, &fe.grid).unwrap(),
            target: (mode == Mode::Target).then(|| load_image(&target, &fe.grid).unwrap()),
            search: SearchSettings {
                distance: blindspot::search::Distance::L2,
                mode,
                count: 1,
                strength: None,
                seed: 2,
                rule,
            },
        };
        let found = collide(&model, &fe, &request, &|| {}).unwrap();
        found.write(dir.path(), &model.input_shape).unwrap();
        let c = &found.report.collisions[0];
        let front = c.comparison.front_end_rel_diff.unwrap();
        let out = c.comparison.outputs[0].rel_diff;
        let control = c.control.outputs[0].rel_diff;
        eprintln!(
            "{mode:?}: L2 {:.2}, PSNR {:.1} dB, front {front:.2e}, output {out:.2e}, control {control:.2e}, kept {:?}",
            c.comparison.l2, c.comparison.psnr_to_original, c.comparison.argmax_equal
        );
        assert!(c.comparison.l2 > 1.0, "{mode:?} moved only {}", c.comparison.l2);
        assert!(
            front <= 1e-5 && out <= 1e-5,
            "{mode:?}: front {front:.2e}, output {out:.2e}"
        );
        assert!(control >= 100.0 * out.max(1e-7));
        assert_eq!(c.comparison.argmax_equal, Some(true));
        assert!(c.search.pixel_min >= 0.0 && c.search.pixel_max <= 1.0);
    }
}

/// The PP-OCRv4 text detector: 3→16 outputs per stride-2 position for 12 input values, so no
/// exact null space is expected; a budget of 1e-2 σ_max buys bounded collisions that leave the
/// detected text mask (probability > 0.3) in place.
#[test]
fn ppocr_text_detector_has_no_exact_null_space_and_keeps_its_text_mask_under_a_budget() {
    let (Some(model_path), Some(photo)) = (cached("ppocr_det.onnx"), cached("imageTextN.png")) else {
        return;
    };
    let imagenet = Preprocess {
        mean: Some(vec![0.485, 0.456, 0.406]),
        std: Some(vec![0.229, 0.224, 0.225]),
        ..Default::default()
    };
    let (model, fe) = open(&model_path, Some(&[1, 3, 256, 544]), &imagenet).unwrap();
    assert_eq!(fe.ops, ["Conv", "BatchNormalization"]);
    let exact = front_end_null_space(&fe, RankRule::default()).unwrap().unwrap();
    let report = audit(&model, &fe, Some(&exact), RankRule::default(), &|_| {}).unwrap();
    let front = &report.front_end;
    eprintln!(
        "PP-OCRv4 det: nullity {:?} (lower bound {}), σ_min ≈ {:?} ≤ {:?}; {:?}",
        front.nullity,
        front.nullity_lower_bound,
        front.smallest_singular_value,
        front.smallest_singular_value_upper_bound,
        front.method
    );
    assert_eq!(front.nullity_lower_bound, 0);
    assert!(front.nullity.is_none_or(|n| n == 0));
    let (estimate, bound) = (
        front.smallest_singular_value.unwrap(),
        front.smallest_singular_value_upper_bound.unwrap(),
    );
    assert!(
        estimate > 0.0 && estimate <= bound * 1.5,
        "σ_min ≈ {estimate:.3e}, ≤ {bound:.3e}"
    );
    let budget = 1e-2;
    let found = collide(&model, &fe, &budget_request(&photo, &fe.grid, budget), &|| {}).unwrap();
    let c = &found.report.collisions[0];
    let (response, bound) = (
        c.search.front_end_response.unwrap(),
        c.front_end_response_bound.unwrap(),
    );
    assert!(response <= bound * (1.0 + 1e-9));
    let runner = model.runner(&model.output_names, true).unwrap();
    let mask = |t: &[f32]| -> Vec<bool> { runner.run(t).unwrap()[0].data.iter().map(|&p| p > 0.3).collect() };
    let (before, after) = (mask(&found.original_tensor), mask(&found.tensors[0]));
    let peak = runner.run(&found.original_tensor).unwrap()[0]
        .data
        .iter()
        .copied()
        .fold(0.0, f64::max);
    eprintln!("peak text probability {peak:.3}");
    let both = before.iter().zip(&after).filter(|(a, b)| **a && **b).count();
    let either = before.iter().zip(&after).filter(|(a, b)| **a || **b).count();
    let iou = both as f64 / either.max(1) as f64;
    eprintln!(
        "budget {budget}: L2 {:.3}, response {response:.3e} ≤ {bound:.3e}, output rel {:.2e} (control {:.2e}), text pixels {} → {}, IoU {iou:.4}",
        c.comparison.l2,
        c.comparison.outputs[0].rel_diff,
        c.control.outputs[0].rel_diff,
        before.iter().filter(|&&b| b).count(),
        after.iter().filter(|&&b| b).count()
    );
    assert!(before.iter().any(|&b| b), "the detector finds text in imageTextN");
    assert!(iou >= 0.99);
    assert!(c.comparison.outputs[0].rel_diff * 5.0 < c.control.outputs[0].rel_diff);
}
