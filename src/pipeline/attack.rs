//! `attack`: an adversarial image by FGSM or PGD and, with variants, many more images the model
//! cannot tell from it — null-space moves of the adversarial image, each still inside the threat
//! model around the clean image — every one verified through the whole model by tract and saved
//! like `collide`'s collisions.

use crate::attack::{null_space_variants, Attack, Classifier, Fgsm, Goal, Norm, Pgd, ThreatModel};
use crate::frontend::FrontEnd;
use crate::model::argmax;
use crate::model::preprocess::{load_image, to_tensor, ImageNotes, Pixels};
use crate::model::{Model, Runner, Value};
use crate::nullspace::{null_space_for_variants, RankRule};
use crate::pipeline::artifacts::Artifacts;
use crate::pipeline::audit::InputInfo;
use crate::pipeline::collide::{FrontEndSummary, SearchOutcome};
use crate::similarity::ssim;
use crate::verify::{control_perturbation, pixel_distances, Comparison, Verifier};
use anyhow::{bail, Context, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum AttackMethod {
    /// One step of size ε (Goodfellow et al.).
    Fgsm,
    /// Projected gradient descent (Madry et al.).
    Pgd,
}

/// How to attack, once the image is in hand.
#[derive(Clone, Copy, Debug)]
pub struct AttackSettings {
    pub threat: ThreatModel,
    pub method: AttackMethod,
    /// PGD steps.
    pub steps: usize,
    /// PGD step size in pixel units; `None`: Madry's 2.5 ε / steps.
    pub step_size: Option<f64>,
    pub random_start: bool,
    /// Targeted attack towards this class; `None`: away from the clean prediction.
    pub target_class: Option<usize>,
    /// Null-space variants of the adversarial image.
    pub variants: usize,
    /// With variants: the fraction of ε kept free for them — the attack runs at (1 − margin) ε.
    /// An attack that uses the whole ball leaves no room: its result is a vertex of its own
    /// collision set inside the ball (see [`VARIANT_MARGIN`]).
    pub variant_margin: f64,
    pub seed: u64,
    pub rule: RankRule,
}

/// Default fraction of ε kept free for the variants.
///
/// Why any is needed: a gradient-sign or gradient step moves the image along the front end's row
/// space (the pixel gradient is Aᵀ times the gradient at the first layer), and every null-space
/// direction n is orthogonal to it. For FGSM-L∞, z = x + ε sign(g): a null move n inside the box
/// needs gᵢnᵢ ≤ 0 for every pixel, and Σ gᵢnᵢ = 0, so n = 0 wherever g ≠ 0. For L2, δ ∈ row space
/// and ‖δ + n‖² = ε² + ‖n‖² > ε². PGD's result is nearly such a vertex. So the attack runs in the
/// smaller ball of radius (1 − margin) ε and the variants use the whole ball.
pub const VARIANT_MARGIN: f64 = 0.25;

impl AttackSettings {
    /// Refuses settings no attack can run with, before any work.
    pub fn check(&self) -> Result<()> {
        if self.method == AttackMethod::Pgd && self.steps == 0 {
            bail!("`steps` must be at least 1");
        }
        if !(0.0..1.0).contains(&self.variant_margin) {
            bail!("`variant_margin` must be in [0, 1), not {}", self.variant_margin);
        }
        if let Some(s) = self.step_size {
            if !(s.is_finite() && s > 0.0) {
                bail!("`step_size` must be a positive number, not {s}");
            }
        }
        Ok(())
    }

    /// The threat model the attack itself runs in: the whole ε without variants, (1 − margin) ε
    /// with them.
    pub fn attack_threat(&self) -> ThreatModel {
        let eps = if self.variants > 0 {
            self.threat.eps * (1.0 - self.variant_margin)
        } else {
            self.threat.eps
        };
        ThreatModel { eps, ..self.threat }
    }

    fn step_size(&self) -> f64 {
        self.step_size
            .unwrap_or(2.5 * self.attack_threat().eps / self.steps.max(1) as f64)
    }

    fn attack(&self) -> Box<dyn Attack> {
        let threat = self.attack_threat();
        match self.method {
            AttackMethod::Fgsm => Box::new(Fgsm { threat }),
            AttackMethod::Pgd => Box::new(Pgd {
                threat,
                steps: self.steps,
                step_size: self.step_size(),
                random_start: self.random_start,
            }),
        }
    }
}

/// A class as tract computes it: the argmax of the model's first output and its value there.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Prediction {
    pub class: usize,
    pub score: f64,
}

#[derive(Serialize)]
pub struct ImageRecord {
    pub png: String,
    pub npy: String,
    pub prediction: Prediction,
}

/// How far an image is from the original, and whether it is inside the threat model.
#[derive(Serialize)]
pub struct ToOriginal {
    /// ‖image − original‖ in the threat model's norm (≤ eps).
    pub distance_to_original: f64,
    pub l2_to_original: f64,
    pub linf_to_original: f64,
    /// Inside the ε-ball and [0, 1], in f64 on the pixels.
    pub within_threat: bool,
    pub psnr_to_original: f64,
    pub ssim_to_original: f64,
}

impl ToOriginal {
    fn measure(threat: &ThreatModel, original: &Pixels, image: &Pixels) -> Result<ToOriginal> {
        let (x, z) = (&original.data, &image.data);
        let (l2, linf, psnr) = pixel_distances(x, z);
        Ok(ToOriginal {
            distance_to_original: threat.distance(x, z),
            l2_to_original: l2,
            linf_to_original: linf,
            within_threat: threat.contains(x, z),
            psnr_to_original: psnr,
            ssim_to_original: ssim(original, image)?,
        })
    }
}

#[derive(Serialize)]
pub struct AdversarialRecord {
    pub png: String,
    pub npy: String,
    pub prediction: Prediction,
    /// Whether tract's prediction achieves the goal.
    pub success: bool,
    #[serde(flatten)]
    pub to_original: ToOriginal,
}

#[derive(Serialize)]
pub struct VariantRecord {
    pub index: usize,
    pub png: String,
    pub npy: String,
    pub prediction: Prediction,
    /// Same class as the adversarial image.
    pub same_prediction: bool,
    #[serde(flatten)]
    pub to_original: ToOriginal,
    /// The search from the adversarial image (`front_end_response`: ‖A (variant − adversarial)‖₂).
    #[serde(flatten)]
    pub search: SearchOutcome,
    /// The variant against the adversarial image through the whole model (its `l2`, `linf` and
    /// `psnr_to_original` are to the adversarial image).
    pub versus_adversarial: Comparison,
    /// A random change of the adversarial image of the same L2 size, through the whole model.
    pub control: Comparison,
}

/// Distances among the variants (row i, column j: variant i to variant j).
#[derive(Serialize)]
pub struct Pairwise {
    pub l2: Vec<Vec<f64>>,
    pub linf: Vec<Vec<f64>>,
    /// Over the pairs i < j (null with fewer than two variants).
    pub min_l2: Option<f64>,
    pub mean_l2: Option<f64>,
    pub min_linf: Option<f64>,
}

#[derive(Serialize)]
pub struct AttackReport {
    pub model: String,
    pub input: InputInfo,
    pub image: ImageNotes,
    pub method: AttackMethod,
    pub norm: Norm,
    /// The threat model's radius: the adversarial image and every variant lie within it.
    pub eps: f64,
    /// The radius the attack ran in: `eps` without variants, (1 − `variant_margin`) `eps` with.
    pub attack_eps: f64,
    pub variant_margin: Option<f64>,
    /// PGD only.
    pub steps: Option<usize>,
    pub step_size: Option<f64>,
    pub random_start: bool,
    /// "untargeted" (away from the original's prediction) or "targeted".
    pub goal: &'static str,
    pub target_class: Option<usize>,
    pub seed: u64,
    pub original: ImageRecord,
    pub adversarial: AdversarialRecord,
    /// The front end whose null space the variants move in (null without variants).
    pub front_end: Option<FrontEndSummary>,
    pub variants: Vec<VariantRecord>,
    pub pairwise: Option<Pairwise>,
    /// Every variant inside the threat model and with the adversarial image's class (null
    /// without variants).
    pub variants_all_within_threat: Option<bool>,
    pub variants_all_same_prediction: Option<bool>,
    /// Largest relative difference of any model output between a variant and the adversarial
    /// image: float32 rounding for an exact collision.
    pub variants_max_output_rel_diff: Option<f64>,
    pub files: Vec<String>,
}

/// Everything `attack` computed, before anything is written.
pub struct Adversarial {
    pub report: AttackReport,
    pub original: Pixels,
    pub adversarial: Pixels,
    pub variants: Vec<Pixels>,
    pub original_tensor: Vec<f32>,
    pub adversarial_tensor: Vec<f32>,
    pub variant_tensors: Vec<Vec<f32>>,
}

/// Tract's prediction from the model's first output.
struct Predictor {
    runner: Runner,
    first_output: String,
}

impl Predictor {
    fn new(model: &Model) -> Result<Predictor> {
        let first = model.output_names.first().context("the model has no output")?;
        Ok(Predictor {
            runner: model.runner(std::slice::from_ref(first), true)?,
            first_output: first.clone(),
        })
    }

    /// The prediction for a tensor, and how many classes the first output holds.
    fn predict(&self, tensor: &[f32]) -> Result<(Prediction, usize)> {
        Self::from_scores(&self.runner.run(tensor)?[0].data)
    }

    /// The prediction among values a run already computed (the verifier's).
    fn among(&self, values: &[Value]) -> Result<Prediction> {
        let first = values
            .iter()
            .find(|v| v.name == self.first_output)
            .context("the verifier did not compute the model's first output")?;
        Ok(Self::from_scores(&first.data)?.0)
    }

    fn from_scores(scores: &[f64]) -> Result<(Prediction, usize)> {
        if scores.is_empty() {
            bail!("the model's first output is empty: nothing to attack");
        }
        let class = argmax(scores);
        Ok((
            Prediction {
                class,
                score: scores[class],
            },
            scores.len(),
        ))
    }
}

/// Attacks the image at `path`, then builds and verifies the variants.
pub fn attack(
    model: &Model,
    fe: &FrontEnd,
    path: &Path,
    settings: &AttackSettings,
    progress: &dyn Fn(),
) -> Result<Adversarial> {
    let image = load_image(path, &fe.grid)?;
    attack_pixels(model, fe, image, settings, progress)
}

/// The files an attack writes, in the order it writes them.
fn file_names(adversarial: &AdversarialRecord, variants: &[VariantRecord]) -> Vec<String> {
    let mut files: Vec<String> = vec![
        "original.png".into(),
        "original.npy".into(),
        adversarial.png.clone(),
        adversarial.npy.clone(),
    ];
    files.extend(variants.iter().flat_map(|r| [r.png.clone(), r.npy.clone()]));
    files.extend(["overview.png", "report.json"].map(String::from));
    files
}

/// What a variant is checked against: the adversarial image (pixels and prediction) through the
/// whole model, the original under the threat model, and a control of the same L2.
struct Checked<'a> {
    fe: &'a FrontEnd,
    verifier: &'a Verifier,
    predictor: &'a Predictor,
    original: &'a Pixels,
    adversarial: (&'a [f64], Prediction),
    threat: &'a ThreatModel,
}

impl Checked<'_> {
    fn variant(
        &self,
        index: usize,
        p: crate::search::Projection,
        tensor: &[f32],
        rng: &mut ChaCha8Rng,
    ) -> Result<(VariantRecord, Pixels)> {
        let (z, adversarial_prediction) = self.adversarial;
        let map = &self.fe.preprocess_map;
        let (versus_adversarial, values) = self.verifier.compare_values(z, &p.z, tensor)?;
        let prediction = self.predictor.among(&values)?;
        let control_pixels = control_perturbation(z, versus_adversarial.l2, rng);
        let control = self
            .verifier
            .compare(z, &control_pixels, &to_tensor(map, &control_pixels))?;
        let search = SearchOutcome::of(&p, self.fe, z);
        let pixels = self.original.with_data(p.z);
        let record = VariantRecord {
            index,
            png: format!("variant-{index:03}.png"),
            npy: format!("variant-{index:03}.npy"),
            prediction,
            same_prediction: prediction.class == adversarial_prediction.class,
            to_original: ToOriginal::measure(self.threat, self.original, &pixels)?,
            search,
            versus_adversarial,
            control,
        };
        Ok((record, pixels))
    }
}

/// [`attack`] for pixels already decoded onto the model's grid.
pub fn attack_pixels(
    model: &Model,
    fe: &FrontEnd,
    (original, image_notes): (Pixels, ImageNotes),
    settings: &AttackSettings,
    progress: &dyn Fn(),
) -> Result<Adversarial> {
    let threat = settings.threat;
    let x = &original.data;
    threat.check(x)?;
    settings.check()?;
    // Variants need a null space: find out before spending the attack.
    let null_space = if settings.variants > 0 {
        Some(null_space_for_variants(fe, settings.rule)?)
    } else {
        None
    };
    let predictor = Predictor::new(model)?;
    let original_tensor = to_tensor(&fe.preprocess_map, x);
    let (clean, classes) = predictor.predict(&original_tensor)?;
    let goal = match settings.target_class {
        Some(class) if class >= classes => {
            bail!("`target_class` {class} is out of range: the model's first output has {classes} classes")
        }
        Some(class) => Goal::Targeted { class },
        None => Goal::Untargeted { label: clean.class },
    };

    let mut rng = ChaCha8Rng::seed_from_u64(settings.seed);
    let attack = settings.attack();
    let classifier = Classifier::new(model, fe.preprocess_map.clone())?;
    let z = attack.perturb(&classifier, x, goal, &mut rng)?;
    let adversarial_tensor = to_tensor(&fe.preprocess_map, &z);
    let (adversarial_prediction, _) = predictor.predict(&adversarial_tensor)?;
    let adversarial_pixels = original.with_data(z);
    let z = &adversarial_pixels.data;
    let adversarial = AdversarialRecord {
        png: "adversarial.png".into(),
        npy: "adversarial.npy".into(),
        prediction: adversarial_prediction,
        success: goal.achieved(adversarial_prediction.class),
        to_original: ToOriginal::measure(&threat, &original, &adversarial_pixels)?,
    };

    let (mut records, mut variants, mut variant_tensors) = (vec![], vec![], vec![]);
    if let Some(ns) = &null_space {
        let found = null_space_variants(ns, x, z, threat, settings.variants, &mut rng, progress)?;
        let verifier = Verifier::new(model, fe.output_value.as_deref(), &adversarial_tensor)?;
        for (index, p) in found.into_iter().enumerate() {
            let tensor = to_tensor(&fe.preprocess_map, &p.z);
            let checked = Checked {
                fe,
                verifier: &verifier,
                predictor: &predictor,
                original: &original,
                adversarial: (z, adversarial_prediction),
                threat: &threat,
            };
            let (record, pixels) = checked.variant(index, p, &tensor, &mut rng)?;
            records.push(record);
            variants.push(pixels);
            variant_tensors.push(tensor);
        }
    }

    let files = file_names(&adversarial, &records);
    let any = !records.is_empty();
    let report = AttackReport {
        model: model.path.display().to_string(),
        input: InputInfo::of(model),
        image: image_notes,
        method: settings.method,
        norm: threat.norm,
        eps: threat.eps,
        attack_eps: settings.attack_threat().eps,
        variant_margin: (settings.variants > 0).then_some(settings.variant_margin),
        steps: (settings.method == AttackMethod::Pgd).then_some(settings.steps),
        step_size: (settings.method == AttackMethod::Pgd).then(|| settings.step_size()),
        random_start: settings.method == AttackMethod::Pgd && settings.random_start,
        goal: match goal {
            Goal::Untargeted { .. } => "untargeted",
            Goal::Targeted { .. } => "targeted",
        },
        target_class: settings.target_class,
        seed: settings.seed,
        original: ImageRecord {
            png: "original.png".into(),
            npy: "original.npy".into(),
            prediction: clean,
        },
        adversarial,
        front_end: null_space
            .as_ref()
            .map(|ns| FrontEndSummary::new(fe, ns, settings.rule)),
        pairwise: any.then(|| pairwise(&variants)),
        variants_all_within_threat: any.then(|| records.iter().all(|r| r.to_original.within_threat)),
        variants_all_same_prediction: any.then(|| records.iter().all(|r| r.same_prediction)),
        variants_max_output_rel_diff: any.then(|| {
            records
                .iter()
                .flat_map(|r| r.versus_adversarial.outputs.iter().map(|o| o.rel_diff))
                .fold(0.0, f64::max)
        }),
        variants: records,
        files,
    };
    Ok(Adversarial {
        report,
        original,
        adversarial: adversarial_pixels,
        variants,
        original_tensor,
        adversarial_tensor,
        variant_tensors,
    })
}

fn pairwise(variants: &[Pixels]) -> Pairwise {
    let n = variants.len();
    let (mut l2, mut linf) = (vec![vec![0.0; n]; n], vec![vec![0.0; n]; n]);
    let mut pairs = vec![];
    for i in 0..n {
        for j in i + 1..n {
            let (a, b, _) = pixel_distances(&variants[i].data, &variants[j].data);
            (l2[i][j], linf[i][j], l2[j][i], linf[j][i]) = (a, b, a, b);
            pairs.push((a, b));
        }
    }
    let min = |v: &mut dyn Iterator<Item = f64>| v.reduce(f64::min);
    Pairwise {
        min_l2: min(&mut pairs.iter().map(|p| p.0)),
        mean_l2: (!pairs.is_empty()).then(|| pairs.iter().map(|p| p.0).sum::<f64>() / pairs.len() as f64),
        min_linf: min(&mut pairs.iter().map(|p| p.1)),
        l2,
        linf,
    }
}

impl Adversarial {
    /// Writes every file into `dir`, each one whole or not at all.
    pub fn write(&self, dir: &Path, input_shape: &[usize]) -> Result<()> {
        self.artifacts(input_shape)?.write(dir)
    }

    /// The images (PNG), tensors as fed (`.npy`), overview and report.json this run hands back.
    pub fn artifacts(&self, input_shape: &[usize]) -> Result<Artifacts> {
        let mut files = Artifacts::default();
        let r = &self.report;
        files.png(&r.original.png, &self.original.to_rgb8())?;
        files.npy(&r.original.npy, input_shape, &self.original_tensor);
        files.png(&r.adversarial.png, &self.adversarial.to_rgb8())?;
        files.npy(&r.adversarial.npy, input_shape, &self.adversarial_tensor);
        for ((rec, v), t) in r.variants.iter().zip(&self.variants).zip(&self.variant_tensors) {
            files.png(&rec.png, &v.to_rgb8())?;
            files.npy(&rec.npy, input_shape, t);
        }
        files.png("overview.png", &self.overview())?;
        files.json("report.json", &self.report)?;
        Ok(files)
    }

    /// Top row: original | adversarial | variants (up to 4). Bottom row, each amplified to its own
    /// largest change: adversarial − original under the adversarial image, and under each variant
    /// variant − adversarial (the null-space change the model cannot see). Images more than twice
    /// as wide as high: one row per image instead, its difference beside it.
    pub fn overview(&self) -> image::RgbImage {
        use crate::figure::difference;
        let shown = &self.variants[..self.variants.len().min(4)];
        let mut top = vec![self.original.clone(), self.adversarial.clone()];
        top.extend(shown.iter().cloned());
        let mut bottom = vec![
            self.original.with_data(vec![1.0; self.original.data.len()]),
            difference(&self.original, &self.adversarial),
        ];
        bottom.extend(shown.iter().map(|v| difference(&self.adversarial, v)));
        // Wide images (a text line) go one image per row, its difference beside it.
        if self.original.width > 2 * self.original.height {
            let rows: Vec<Vec<Pixels>> = top.into_iter().zip(bottom).map(|(a, b)| vec![a, b]).collect();
            return crate::figure::grid(&rows);
        }
        crate::figure::grid(&[top, bottom])
    }
}
