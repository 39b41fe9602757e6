//! `blindspot survey`: the catalogue's counts against hand arithmetic, every overlapping stem
//! against the dense SVD on a small input, and measured rows against `audit`.
mod common;

use blindspot::linop::LinearOperator;
use blindspot::nullspace::conv_spectrum::structural_nullity;
use blindspot::nullspace::front_end_null_space;
use blindspot::nullspace::rank_of;
use blindspot::survey::architectures::{Architecture, CATALOGUE};
use blindspot::survey::{generic_conv, survey_architecture, survey_model, SurveyRow, GENERIC_EPS};
use blindspot::{Preprocess, RankRule};
use common::real_data::cached;

fn entry(name: &str) -> &'static Architecture {
    CATALOGUE
        .iter()
        .find(|a| a.name == name)
        .unwrap_or_else(|| panic!("{name} is not in the catalogue"))
}

fn row(name: &str) -> SurveyRow {
    survey_architecture(entry(name), None, 0).unwrap()
}

#[test]
fn vision_transformer_counts_match_hand_arithmetic() {
    // ViT-B/32 on 224: 7×7 = 49 patches of 3·32·32 = 3072 values, embedded in 768.
    let r = row("ViT-B/32");
    let patch = r.patch.as_ref().unwrap();
    assert_eq!((patch.fan_in, patch.width, patch.patches), (3072, 768, 49));
    assert_eq!(r.per_patch_nullity, Some(3072 - 768));
    assert_eq!(r.structural_nullity, 49 * 2304);
    assert_eq!(r.input_dim, 3 * 224 * 224);
    assert!((r.null_fraction - 0.75).abs() < 1e-12);
    assert!(r.nullity_proved, "{}", r.method_detail);

    // ViT-S/16: 14×14 = 196 patches of 768 values, embedded in 384.
    let r = row("ViT-S/16");
    let patch = r.patch.as_ref().unwrap();
    assert_eq!((patch.fan_in, patch.width, patch.patches), (768, 384, 196));
    assert_eq!(r.per_patch_nullity, Some(384));
    assert_eq!(r.structural_nullity, 196 * 384);
    assert!((r.null_fraction - 0.5).abs() < 1e-12);

    // ViT-B/16: 768 values → 768 outputs, square: nothing ignored exactly.
    let r = row("ViT-B/16");
    assert_eq!(r.per_patch_nullity, Some(0));
    assert_eq!(r.structural_nullity, 0);
}

#[test]
fn resnet50_stem_has_no_exact_null_space() {
    // 7×7 stride 2 pad 3, 3 → 64 on 224: 64·112·112 = 802,816 outputs from 150,528 values.
    let r = row("ResNet-50");
    assert_eq!((r.input_dim, r.output_dim), (150_528, 802_816));
    assert_eq!(r.first_layer.output, vec![112, 112]);
    assert_eq!(r.structural_nullity, 0);
    assert_eq!(r.null_fraction, 0.0);
    assert!(r.per_patch_nullity.is_none());
    assert!(r.interpretation.contains("no exact null space"), "{}", r.interpretation);
}

#[test]
fn input_override_changes_the_size_everywhere() {
    let r = survey_architecture(entry("ViT-B/32"), Some(448), 0).unwrap();
    assert_eq!(r.input, vec![3, 448, 448]);
    assert_eq!(r.patch.as_ref().unwrap().patches, 14 * 14);
    assert_eq!(r.structural_nullity, 196 * 2304);
    // A side the patch does not divide leaves pixels no patch reads: exact null directions too.
    let r = survey_architecture(entry("ViT-B/32"), Some(240), 0).unwrap();
    let unread = 3 * (240 * 240 - 224 * 224);
    assert_eq!(r.patch.as_ref().unwrap().unread_pixels, unread);
    assert_eq!(r.structural_nullity, 49 * 2304 + unread);
    // A kernel larger than the image is a clear error, not a panic.
    assert!(survey_architecture(entry("ViT-B/32"), Some(16), 0).is_err());
}

/// Every entry whose first layer overlaps (not patch-wise), on a small input: the survey's count
/// from structure equals the nullity of the dense matrix under the same rank rule.
#[test]
fn overlapping_stems_match_the_dense_svd_on_small_inputs() {
    let rule = RankRule::default();
    let mut checked = 0;
    for arch in CATALOGUE {
        let l = &arch.first_layer;
        let patchwise = l.kernel == l.stride && l.pads == [0; 4] && l.groups == 1 && l.dilation == [1, 1];
        if patchwise {
            continue;
        }
        // a few output positions per axis, the padding and the stride all in play
        let block = match arch.before {
            blindspot::survey::architectures::BeforeFirstLayer::SpaceToDepth { block } => block,
            _ => 1,
        };
        let span = |a: usize| l.dilation[a] * (l.kernel[a] - 1) + 1;
        let side = (span(0).max(span(1)) + 3 * l.stride[0].max(l.stride[1])).max(12) * block;
        let side = side.div_ceil(block) * block;
        let conv = generic_conv(arch, Some(side), 7).unwrap();
        let structure = structural_nullity(&conv, GENERIC_EPS, rule);
        let dims = (
            conv.out_channels,
            conv.geometry.in_shape[0] / conv.geometry.group * conv.geometry.kernel[0] * conv.geometry.kernel[1],
        );
        let dense = rank_of(&conv.to_dense(), dims, GENERIC_EPS, rule).unwrap();
        let ours = structure.nullity.unwrap_or(structure.expected_nullity);
        assert_eq!(
            ours, dense.nullity,
            "{} on {side}×{side}: survey {ours}, dense SVD {} ({})",
            arch.name, dense.nullity, structure.method
        );
        let row = survey_architecture(arch, Some(side), 7).unwrap();
        assert_eq!(row.structural_nullity, dense.nullity, "{}", arch.name);
        assert_eq!(row.input_dim, conv.input_dim());
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} overlapping entries");
}

/// The measured row of a real model agrees with `audit`, and its structural row is the same
/// geometry with generic weights.
#[test]
fn measured_rows_agree_with_audit() {
    let mut models = vec![];
    for (name, shape) in [
        ("ppocr_cls.onnx", Some(vec![1, 3, 48, 192])),
        ("vit_s_focus.onnx", None),
    ] {
        if let Some(p) = cached(name) {
            models.push((p, shape));
        }
    }
    for m in blindspot::model::embedded::MODELS {
        models.push((std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(m.path), None));
    }
    for (path, shape) in models {
        let row = survey_model(&path, shape.as_deref(), 0).unwrap();
        let (_, fe) = blindspot::open(&path, shape.as_deref(), &Preprocess::default()).unwrap();
        let ns = front_end_null_space(&fe, RankRule::default()).unwrap();
        let audit = ns.as_ref().filter(|n| n.nullity_exact).map(|n| n.nullity);
        assert_eq!(row.measured_nullity, audit, "{}", path.display());
        assert!(
            row.measured_nullity.is_some(),
            "{}: audit decides these",
            path.display()
        );
        assert_eq!(row.input_dim, fe.input_dim(), "{}", path.display());
        // real weights ignore at least what the architecture does
        assert!(
            row.measured_nullity.unwrap() >= row.structural_nullity,
            "{}: measured {:?} < structural {}",
            path.display(),
            row.measured_nullity,
            row.structural_nullity
        );
        eprintln!(
            "{}: structural {} measured {:?}",
            row.name, row.structural_nullity, row.measured_nullity
        );
    }
}
