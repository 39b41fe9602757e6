//! The demo's panels beyond collisions: explanations of a collision, the adversarial image and
//! its null-space variants, and the similarity that calls a wrecked image identical.

use super::demo::*;
use crate::explain::{Method, Settings};
use crate::figure::png_bytes;
use crate::frontend::FrontEnd;
use crate::model::digits::EmbeddedDigit;
use crate::model::preprocess::{ImageNotes, Pixels};
use crate::pipeline::explain::{explain_pixels, ExplainRequest};
use crate::similarity::compare::{compare, Input, SimilarityFigures};
use crate::RankRule;
use anyhow::Result;
use rand::SeedableRng;

/// Every method of [`EXPLAIN_METHODS`] on `source`, its `far` collision `z` (the tensor as fed) and
/// the random control; one figure per method.
pub(crate) fn explanation_panel(
    model: &crate::Model,
    fe: &FrontEnd,
    source: &EmbeddedDigit,
    image: (Pixels, ImageNotes),
    z: Vec<f32>,
    seed: u64,
) -> Result<(Vec<DemoExplanation>, Vec<OutputFile>)> {
    let digit = DigitRef {
        label: source.label,
        row: source.row,
    };
    let name = model
        .path
        .file_stem()
        .map_or("model".into(), |s| s.to_string_lossy().into_owned());
    let (mut explanations, mut files) = (vec![], vec![]);
    for method in EXPLAIN_METHODS {
        let req = ExplainRequest {
            method,
            output_index: None,
            settings: Settings {
                seed,
                ..Settings::default()
            },
        };
        let explained = explain_pixels(
            model,
            (&fe.preprocess_map, &fe.grid),
            image.clone(),
            Some((format!("{name} far collision"), z.clone())),
            fe.output_value.as_deref(),
            &req,
            &|| {},
        );
        let e = match explained {
            Ok(e) => e,
            // Grad-CAM needs a layer laid out in space after the first linear layer.
            Err(err) if method == Method::GradCam => {
                explanations.push(DemoExplanation {
                    method,
                    source: digit,
                    output_index: None,
                    agreement: None,
                    gradient_agreement: None,
                    figure: None,
                    not_defined: Some(format!("{err:#}")),
                });
                continue;
            }
            Err(err) => return Err(err),
        };
        let figure = format!("{name}/explain-{}.png", method.name());
        if let Some((_, bytes)) = e.figures.iter().find(|(f, _)| f == "explain.png") {
            files.push((figure.clone(), bytes.clone()));
        }
        explanations.push(DemoExplanation {
            method,
            source: digit,
            output_index: Some(e.report.output_index),
            agreement: e.report.agreement.clone(),
            gradient_agreement: e.report.by_design.as_ref().map(|d| d.compare.gradient_agreement),
            figure: Some(figure),
            not_defined: None,
        });
    }
    Ok((explanations, files))
}

/// `attack` on a digit: PGD-40 at [`ATTACK_EPS`] with [`ATTACK_VARIANTS`] variants; its overview
/// figure as `<model>/attack.png`.
pub(crate) fn attack_panel(
    model: &crate::Model,
    fe: &FrontEnd,
    source: &EmbeddedDigit,
    pixels: (Pixels, ImageNotes),
    seed: u64,
    name: &str,
) -> Result<(DemoAttack, OutputFile)> {
    use crate::pipeline::attack::{attack_pixels, AttackMethod, AttackSettings, VARIANT_MARGIN};
    let settings = AttackSettings {
        threat: crate::attack::ThreatModel::linf(ATTACK_EPS),
        method: AttackMethod::Pgd,
        steps: 40,
        step_size: None,
        random_start: false,
        target_class: None,
        variants: ATTACK_VARIANTS,
        variant_margin: VARIANT_MARGIN,
        seed,
        rule: RankRule::default(),
    };
    let result = attack_pixels(model, fe, pixels, &settings, &|| ())?;
    let r = &result.report;
    let min = |v: &mut dyn Iterator<Item = f64>| v.fold(f64::INFINITY, f64::min);
    let figure = format!("{name}/attack.png");
    let panel = DemoAttack {
        source: DigitRef {
            label: source.label,
            row: source.row,
        },
        eps: r.eps,
        attack_eps: r.attack_eps,
        clean_class: r.original.prediction.class,
        adversarial_class: r.adversarial.prediction.class,
        success: r.adversarial.success,
        variants: r.variants.len(),
        variants_all_within_threat: r.variants_all_within_threat == Some(true),
        variants_all_same_prediction: r.variants_all_same_prediction == Some(true),
        min_pairwise_l2: r.pairwise.as_ref().and_then(|p| p.min_l2).unwrap_or(0.0),
        min_l2_to_adversarial: min(&mut r.variants.iter().map(|v| v.versus_adversarial.l2)),
        max_output_rel_diff: r.variants_max_output_rel_diff.unwrap_or(0.0),
        min_control_output_rel_diff: min(&mut r
            .variants
            .iter()
            .flat_map(|v| v.control.outputs.iter().map(|o| o.rel_diff))),
        figure: figure.clone(),
    };
    Ok((panel, (figure, png_bytes(&result.overview())?)))
}

/// `compare` of a digit with its `far` collision `z` (the tensor as fed) and with a random control
/// of the same pixel L2 (clipped to [0, 1]).
pub(crate) fn similarity_panel(
    model: &crate::Model,
    fe: &FrontEnd,
    source: &EmbeddedDigit,
    x: Pixels,
    z: &[f32],
    seed: u64,
) -> Result<DemoSimilarity> {
    let zp = x.with_data(crate::model::preprocess::from_tensor(&fe.preprocess_map, z));
    let l2 = crate::model::preprocess::distance(&x.data, &zp.data);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let control = x.with_data(crate::verify::control_perturbation(&x.data, l2, &mut rng));
    let input = |p: Pixels| Input {
        tensor: Some(crate::model::preprocess::to_tensor(&fe.preprocess_map, &p.data)),
        pixels: p,
    };
    let original = input(x.clone());
    let collision = Input {
        pixels: zp,
        tensor: Some(z.to_vec()),
    };
    let figures = |other: &Input| -> Result<SimilarityFigures> {
        Ok(compare(("original", &original), ("other", other), Some(model), None)?.figures())
    };
    Ok(DemoSimilarity {
        source: DigitRef {
            label: source.label,
            row: source.row,
        },
        l2,
        control_l2: crate::model::preprocess::distance(&x.data, &control.data),
        collision: figures(&collision)?,
        control: figures(&input(control))?,
    })
}
