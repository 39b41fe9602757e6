//! `blindspot demo`: the whole idea on the embedded models and digits, without a network and
//! without a file from outside the repository. Every model is audited; where its front end has a
//! null space, digits get collisions in all three modes (one made to look like another digit),
//! each verified through the whole model beside a random control; `lenet` shows the honest
//! other case, a first layer that ignores nothing. The explanation panel runs the attribution
//! methods on a digit, its `far` collision and the control: the maps a collision cannot change
//! (gradient, SmoothGrad, Grad-CAM) and the one that changes by design (input × gradient).

use crate::explain::{Agreement, Method};
use crate::figure::png_bytes;
use crate::frontend::{FrontEnd, FrontEndKind};
use crate::model::argmax;
use crate::model::digits::{png_name, EmbeddedDigit, EMBEDDED};
use crate::model::embedded::{EmbeddedModel, MODELS};
use crate::model::npy::encode_f32;
use crate::model::preprocess::psnr;
use crate::model::preprocess::{decode_image, ImageNotes, Pixels};
use crate::nullspace::front_end_null_space;
use crate::pipeline::artifacts::{write_files, Artifacts};
use crate::pipeline::audit::{audit, AuditReport};
use crate::pipeline::collide::{collide_pixels, CollisionRecord, SearchSettings};
use crate::pipeline::demo_panels::{attack_panel, explanation_panel, similarity_panel};
use crate::pipeline::explain::AgreementPair;
use crate::search::Mode;
use crate::similarity::compare::SimilarityFigures;
use crate::{front_end, Preprocess, RankRule};
use anyhow::{Context, Result};
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

/// Each source digit and the digit its `target` collision is made to look like.
pub const PAIRS: &[(u8, u8)] = &[(7, 3), (1, 8), (4, 9)];
pub const MODES: [Mode; 3] = [Mode::Random, Mode::Far, Mode::Target];

#[derive(Clone, Debug)]
pub struct DemoOptions {
    pub seed: u64,
    /// How many of [`PAIRS`] to use per model (1 for a fast run).
    pub pairs: usize,
}

impl DemoOptions {
    /// Searches if every model had a null space (a model without one is skipped).
    pub fn searches_at_most(&self) -> usize {
        MODELS.len() * self.pairs.clamp(1, PAIRS.len()) * MODES.len()
    }
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            seed: 0,
            pairs: PAIRS.len(),
        }
    }
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct DigitRef {
    pub label: u8,
    /// Row of the digit in `mnist_5k.csv.gz`; the PNG is `models/digits/<label>-<row>.png`.
    pub row: usize,
}

#[derive(Serialize)]
pub struct DemoCollision {
    pub source: DigitRef,
    pub target: Option<DigitRef>,
    pub mode: Mode,
    /// The model's class for the source digit (and so for the collision, when kept).
    pub prediction: usize,
    /// The model's class for the target digit the collision looks like.
    pub target_prediction: Option<usize>,
    /// PSNR (dB) of the source digit itself to the target digit, for comparison.
    pub psnr_source_to_target: Option<f64>,
    /// Share of ‖target − source‖² that lies in the null space: the most a collision could take
    /// of the target even without the pixel range (random directions: the null fraction).
    pub target_difference_in_null_space: Option<f64>,
    pub prediction_kept: bool,
    #[serde(flatten)]
    pub record: CollisionRecord,
}

/// One row of the demo table; the figures are over the collisions that moved.
#[derive(Serialize)]
pub struct Summary {
    pub collisions: usize,
    /// Collisions that differ from their digit at all. On a digit whose black background and
    /// saturated ink sit on the edge of [0, 1], a layer may leave no null direction that stays
    /// inside: the exact search proves it block by block (`blocks_without_room`).
    pub moved: usize,
    pub prediction_kept: usize,
    /// Largest relative deviation at any model output over all collisions.
    pub max_output_rel_diff: f64,
    pub max_front_end_rel_diff: f64,
    /// Smallest relative deviation any control (random perturbation of the same L2) caused.
    pub min_control_output_rel_diff: f64,
    pub min_control_front_end_rel_diff: f64,
    /// Mean PSNR (dB) of the `target` collisions to the digits they imitate.
    pub mean_psnr_to_target: Option<f64>,
    /// The same for the untouched source digits: how alike the pairs were to begin with.
    pub mean_psnr_source_to_target: Option<f64>,
}

#[derive(Serialize)]
pub struct ModelDemo {
    pub name: String,
    pub file: String,
    /// The first linear layer in words, e.g. `Conv 1→8 k4 s4`.
    pub first_layer: String,
    pub front_end_kind: FrontEndKind,
    pub input_dim: usize,
    pub nullity: usize,
    pub null_fraction: f64,
    /// Over the whole front end (normalisation folded in): how close it comes to ignoring a direction.
    pub smallest_singular_value: f64,
    pub exact_collision_exists: bool,
    /// Said plainly where no exact collision exists.
    pub statement: Option<String>,
    pub summary: Option<Summary>,
    pub figure: Option<String>,
    pub collisions: Vec<DemoCollision>,
    /// Attribution maps of the first digit with a `far` collision, that collision and the control.
    pub explanations: Vec<DemoExplanation>,
    /// PSNR, SSIM and the model's feature distances of the first digit's `far` collision and of
    /// a random control of the same L2 (see `blindspot compare`).
    pub similarity: Option<DemoSimilarity>,
    /// PGD on the first digit and null-space variants of its result (see `blindspot attack`).
    pub attack: Option<DemoAttack>,
    pub audit: AuditReport,
}

/// Many adversarial images with one wrong answer: PGD on a digit, then variants inside the same
/// ε-ball that the model cannot tell from the adversarial image.
#[derive(Serialize)]
pub struct DemoAttack {
    pub source: DigitRef,
    pub eps: f64,
    pub attack_eps: f64,
    pub clean_class: usize,
    pub adversarial_class: usize,
    pub success: bool,
    pub variants: usize,
    pub variants_all_within_threat: bool,
    pub variants_all_same_prediction: bool,
    /// Smallest L2 between two variants, and the smallest from a variant to the adversarial image.
    pub min_pairwise_l2: f64,
    pub min_l2_to_adversarial: f64,
    /// Largest relative output deviation of a variant from the adversarial image (tract), and the
    /// smallest of their random controls.
    pub max_output_rel_diff: f64,
    pub min_control_output_rel_diff: f64,
    pub figure: String,
}

/// The demo's attack: PGD-40, L∞, ε 32/255, three variants.
pub const ATTACK_EPS: f64 = 32.0 / 255.0;
pub(crate) const ATTACK_VARIANTS: usize = 3;

/// One attribution method on a digit, its `far` collision and the random control.
#[derive(Serialize)]
pub struct DemoExplanation {
    pub method: Method,
    pub source: DigitRef,
    pub output_index: Option<usize>,
    /// The collision's map against the original's, and the control's.
    pub agreement: Option<AgreementPair>,
    /// Input × gradient: how far the gradients agree although the maps differ by design.
    pub gradient_agreement: Option<Agreement>,
    pub figure: Option<String>,
    /// Why the method has no map for this model (Grad-CAM without a spatial layer).
    pub not_defined: Option<String>,
}

/// How alike a digit and its `far` collision are to a person and to the model, beside the control.
#[derive(Serialize)]
pub struct DemoSimilarity {
    pub source: DigitRef,
    /// Pixel L2 of the collision, and of the control after clipping to [0, 1] (it was drawn at
    /// the collision's L2).
    pub l2: f64,
    pub control_l2: f64,
    pub collision: SimilarityFigures,
    pub control: SimilarityFigures,
}

/// The methods the panel shows.
pub const EXPLAIN_METHODS: [Method; 4] = [
    Method::Gradient,
    Method::SmoothGrad,
    Method::GradCam,
    Method::InputXGradient,
];

#[derive(Serialize)]
pub struct DemoReport {
    pub seed: u64,
    pub seconds: f64,
    pub models: Vec<ModelDemo>,
}

/// A file to write: path relative to the output folder, and its bytes.
pub(crate) type OutputFile = (String, Vec<u8>);

/// What the demo computed, before anything is written.
pub struct Demo {
    pub report: DemoReport,
    /// Per model: its figure and the collisions' files (relative path, bytes).
    files: Vec<OutputFile>,
}

fn embedded_digit(label: u8) -> &'static EmbeddedDigit {
    EMBEDDED
        .iter()
        .find(|d| d.label == label)
        .expect("every class has embedded digits")
}

fn describe_first_layer(fe: &FrontEnd) -> String {
    let Some(l) = &fe.first_layer else {
        return "none found".into();
    };
    let w = &l.weight_shape;
    match l.op.as_str() {
        "Conv" if w.len() == 4 => {
            let s = l.strides.first().copied().unwrap_or(1);
            format!("Conv {}→{} k{} s{s}", w[1] * l.group, w[0], w[2])
        }
        _ => format!("{} {}→{}", l.op, l.matrix.ncols(), l.matrix.nrows()),
    }
}

/// Runs the demo; `progress` is called once per collision.
pub fn run(opts: &DemoOptions, progress: &dyn Fn(&str)) -> Result<Demo> {
    let started = Instant::now();
    let mut models = vec![];
    let mut files = vec![];
    for (m, embedded) in MODELS.iter().enumerate() {
        let (demo, model_files) = run_model(embedded, m, opts, progress)
            .with_context(|| format!("demo on the embedded model {}", embedded.name))?;
        models.push(demo);
        files.extend(model_files);
    }
    Ok(Demo {
        report: DemoReport {
            seed: opts.seed,
            seconds: started.elapsed().as_secs_f64(),
            models,
        },
        files,
    })
}
impl DemoCollision {
    /// One collision of the demo: the digit it starts from (and the target digit in target
    /// mode), the predictions, how much of the digits' difference the null space holds.
    fn of(
        (source, target): (&EmbeddedDigit, &EmbeddedDigit),
        (original, target_pixels): (&Pixels, &Pixels),
        (prediction, target_prediction): (usize, usize),
        mode: Mode,
        ns: &crate::NullSpace,
        record: CollisionRecord,
    ) -> DemoCollision {
        let targeted = mode == Mode::Target;
        DemoCollision {
            source: DigitRef {
                label: source.label,
                row: source.row,
            },
            target: targeted.then_some(DigitRef {
                label: target.label,
                row: target.row,
            }),
            mode,
            prediction,
            target_prediction: targeted.then_some(target_prediction),
            psnr_source_to_target: targeted.then(|| psnr(&original.data, &target_pixels.data)),
            target_difference_in_null_space: targeted.then(|| share_in(ns, original, target_pixels)),
            prediction_kept: record.comparison.argmax_equal == Some(true),
            record,
        }
    }
}

impl ModelDemo {
    /// The model's row before any search: its front end and null space.
    fn new(
        embedded: &EmbeddedModel,
        fe: &FrontEnd,
        nullity: usize,
        smallest_singular_value: f64,
        audit: AuditReport,
    ) -> ModelDemo {
        ModelDemo {
            name: embedded.name.into(),
            file: embedded.path.into(),
            first_layer: describe_first_layer(fe),
            front_end_kind: fe.kind,
            input_dim: fe.input_dim(),
            nullity,
            null_fraction: nullity as f64 / fe.input_dim() as f64,
            smallest_singular_value,
            exact_collision_exists: nullity > 0,
            statement: None,
            summary: None,
            figure: None,
            collisions: vec![],
            explanations: vec![],
            similarity: None,
            attack: None,
            audit,
        }
    }
}

fn run_model(
    embedded: &EmbeddedModel,
    index: usize,
    opts: &DemoOptions,
    progress: &dyn Fn(&str),
) -> Result<(ModelDemo, Vec<OutputFile>)> {
    let rule = RankRule::default();
    let model = embedded.load()?;
    let fe = front_end(&model, &Preprocess::default())?;
    let ns = front_end_null_space(&fe, rule)?;
    let audit_report = audit(&model, &fe, ns.as_ref(), rule, &|_| {})?;
    let nullity = ns.as_ref().map_or(0, |n| n.nullity);
    let smallest_singular_value = ns.as_ref().map_or(f64::NAN, |n| n.smallest_singular_value());
    let mut demo = ModelDemo::new(embedded, &fe, nullity, smallest_singular_value, audit_report);
    let Some(ns) = ns.filter(|n| n.nullity > 0) else {
        demo.statement = Some(match &fe.limitation {
            Some(l) if nullity == 0 && smallest_singular_value.is_nan() => format!("not computed: {l}"),
            _ => format!(
                "no exact collision exists: the first layer ignores no direction (nullity 0, smallest singular value {:.3e})",
                smallest_singular_value
            ),
        });
        return Ok((demo, vec![]));
    };

    let logits = model.runner(&model.output_names, true)?;
    let predict = |p: &Pixels| -> Result<usize> {
        let tensor = crate::model::preprocess::to_tensor(&fe.preprocess_map, &p.data);
        Ok(argmax(&logits.run(&tensor)?[0].data))
    };
    let decode = |d: &EmbeddedDigit| -> Result<(Pixels, ImageNotes)> {
        decode_image(d.png, &format!("models/digits/{}", png_name(d.label, d.row)), &fe.grid)
    };
    let mut files = vec![];
    let mut grid_rows = vec![];
    // The first `far` collision that moved: the digit and the tensor as fed.
    let mut far_of_first: Option<(&EmbeddedDigit, Vec<f32>)> = None;
    for (p, &(source_label, target_label)) in PAIRS.iter().take(opts.pairs.max(1)).enumerate() {
        let (source, target) = (embedded_digit(source_label), embedded_digit(target_label));
        let original = decode(source)?;
        let target_pixels = decode(target)?;
        let prediction = predict(&original.0)?;
        let target_prediction = predict(&target_pixels.0)?;
        let mut row = vec![original.0.clone()];
        let mut diffs = vec![];
        for (k, mode) in MODES.into_iter().enumerate() {
            progress(&format!("{} {source_label} {mode:?}", embedded.name));
            let settings = SearchSettings {
                distance: crate::search::Distance::L2,
                mode,
                count: 1,
                strength: None,
                seed: opts.seed + (100 * index + 10 * p + k) as u64,
                rule,
            };
            let target_arg = (mode == Mode::Target).then(|| target_pixels.clone());
            let found = collide_pixels(&model, &fe, &ns, original.clone(), target_arg, &settings, &|| {})?;
            let mode_name = format!("{mode:?}").to_lowercase();
            let stem = format!("{}/{}-{}-{mode_name}", embedded.name, source.label, source.row);
            let mut record = found
                .report
                .collisions
                .into_iter()
                .next()
                .context("no collision returned")?;
            record.png = format!("{stem}.png");
            record.npy = format!("{stem}.npy");
            let z = &found.found[0];
            if far_of_first.is_none() && mode == Mode::Far && record.comparison.l2 > MOVED {
                far_of_first = Some((source, found.tensors[0].clone()));
            }
            files.push((record.png.clone(), png_bytes(&z.to_rgb8())?));
            files.push((record.npy.clone(), encode_f32(&model.input_shape, &found.tensors[0])));
            if mode == Mode::Target {
                row.push(target_pixels.0.clone());
            }
            row.push(z.clone());
            diffs.push(crate::figure::difference(&original.0, z));
            demo.collisions.push(DemoCollision::of(
                (source, target),
                (&original.0, &target_pixels.0),
                (prediction, target_prediction),
                mode,
                &ns,
                record,
            ));
        }
        row.extend(diffs);
        grid_rows.push(row);
    }
    if let Some((source, z)) = &far_of_first {
        demo.similarity = Some(similarity_panel(&model, &fe, source, decode(source)?.0, z, opts.seed)?);
    }
    if demo.exact_collision_exists {
        progress(&format!("{} attack", embedded.name));
        let source = embedded_digit(PAIRS[0].0);
        let (attack, figure) = attack_panel(&model, &fe, source, decode(source)?, opts.seed, embedded.name)?;
        demo.attack = Some(attack);
        files.push(figure);
    }
    if let Some((source, z)) = far_of_first {
        progress(&format!("{} explanations", embedded.name));
        let (explanations, figures) = explanation_panel(&model, &fe, source, decode(source)?, z, opts.seed)?;
        demo.explanations = explanations;
        files.extend(figures);
    }
    let summary = summarise(&demo.collisions);
    if summary.moved == 0 {
        demo.statement = Some(no_room_statement(&demo));
    } else {
        let figure = format!("{}.png", embedded.name);
        files.push((figure.clone(), png_bytes(&crate::figure::grid(&grid_rows))?));
        demo.figure = Some(figure);
    }
    demo.summary = Some(summary);
    Ok((demo, files))
}

/// ‖P (t − x)‖² / ‖t − x‖² for the null-space projector P.
fn share_in(ns: &crate::NullSpace, x: &Pixels, t: &Pixels) -> f64 {
    let diff: Vec<f64> = t.data.iter().zip(&x.data).map(|(a, b)| a - b).collect();
    let projected = ns.project(&diff);
    let energy = |v: &[f64]| v.iter().map(|a| a * a).sum::<f64>();
    energy(&projected) / energy(&diff).max(f64::MIN_POSITIVE)
}

/// Below this L2 (pixel units) a "collision" is the digit itself.
const MOVED: f64 = 1e-9;

fn summarise(all: &[DemoCollision]) -> Summary {
    let collisions: Vec<&DemoCollision> = all.iter().filter(|c| c.record.comparison.l2 > MOVED).collect();
    let max_of = |f: &dyn Fn(&DemoCollision) -> f64| collisions.iter().map(|c| f(c)).fold(0.0, f64::max);
    let min_of = |f: &dyn Fn(&DemoCollision) -> f64| collisions.iter().map(|c| f(c)).fold(f64::INFINITY, f64::min);
    let worst_output = |c: &crate::verify::Comparison| c.outputs.iter().map(|o| o.rel_diff).fold(0.0, f64::max);
    let mean = |v: Vec<f64>| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
    Summary {
        collisions: all.len(),
        moved: collisions.len(),
        prediction_kept: collisions.iter().filter(|c| c.prediction_kept).count(),
        max_output_rel_diff: max_of(&|c| worst_output(&c.record.comparison)),
        max_front_end_rel_diff: max_of(&|c| c.record.comparison.front_end_rel_diff.unwrap_or(f64::NAN)),
        min_control_output_rel_diff: min_of(&|c| worst_output(&c.record.control)),
        min_control_front_end_rel_diff: min_of(&|c| c.record.control.front_end_rel_diff.unwrap_or(f64::NAN)),
        mean_psnr_to_target: mean(collisions.iter().filter_map(|c| c.record.psnr_to_target).collect()),
        mean_psnr_source_to_target: mean(collisions.iter().filter_map(|c| c.psnr_source_to_target).collect()),
    }
}

/// Why a model with a null space got no collision that moved.
fn no_room_statement(demo: &ModelDemo) -> String {
    let worst = demo
        .collisions
        .iter()
        .map(|c| (c.record.search.blocks_without_room, c.record.search.blocks))
        .min_by_key(|(without, _)| *without)
        .unwrap_or((0, 0));
    format!(
        "{} ignored directions, but no collision inside the pixel range on these digits: at least {} of {} blocks have no room in every search (proved per block by an LP), their black background and saturated ink on the edge of [0, 1]",
        demo.nullity, worst.0, worst.1
    )
}

impl Demo {
    /// Writes the figures, the collisions (PNG and the exact `.npy` tensors) and `report.json`
    /// into `dir`, each file whole or not at all.
    pub fn write(&self, dir: &Path) -> Result<()> {
        write_files(dir, &self.files)?;
        let mut report = Artifacts::default();
        report.json("report.json", &self.report)?;
        report.write(dir)
    }
}
