//! `explain`: one attribution method on an image, and with a compared input (a collision from
//! `collide`) on that input and on a random control of the same pixel L2, side by side, with
//! agreement figures and, for the methods whose maps differ by design, the check that says why.

use crate::differentiable::{Differentiable, Target};
use crate::explain::figure;
use crate::explain::{agreement, method, Agreement, AttributionMap, Details, Method, PixelGrid, Settings};
use crate::linop::AffineGather;
use crate::model::argmax;
use crate::model::preprocess::{from_tensor, to_tensor, Grid, GridImage, ImageNotes, Pixels};
use crate::model::Model;
use crate::pipeline::artifacts::Artifacts;
use crate::pipeline::audit::InputInfo;
use crate::verify::{control_perturbation, pixel_distances, value_diff};
use crate::Preprocess;
use anyhow::{bail, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

/// An explanation: which method, of which output, with which settings.
#[derive(Clone, Debug)]
pub struct ExplainRequest {
    pub method: Method,
    /// Flat index into the first output; `None`: its argmax on the original.
    pub output_index: Option<usize>,
    pub settings: Settings,
}

impl ExplainRequest {
    /// Gradient evaluations the whole run makes (for progress bars), with or without a compared
    /// tensor (the comparison explains it and a control too).
    pub fn evaluations(&self, compared: bool) -> u64 {
        let per_input = match self.method {
            Method::IntegratedGradients => self.settings.steps,
            Method::SmoothGrad => self.settings.samples,
            _ => 1,
        };
        (per_input * if compared { 3 } else { 1 }) as u64
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct SettingsReport {
    /// The attributed output (always the first) and the flat element of it.
    pub target_output: usize,
    /// Integrated gradients: "zeros", the baseline's file, or "given" (a tensor set in the library).
    pub baseline: Option<String>,
    pub steps: Option<usize>,
    pub integration: Option<&'static str>,
    pub samples: Option<usize>,
    pub noise: Option<f64>,
    pub noise_sigma: Option<f64>,
    pub seed: u64,
    pub layer: Option<String>,
    pub layer_shape: Option<Vec<usize>>,
    pub layer_kind: Option<crate::explain::gradcam::LayerKind>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Scores {
    pub original: f64,
    pub compare: Option<f64>,
    pub control: Option<f64>,
}

/// How far an input is from the original, in pixels and at the model's outputs.
#[derive(Clone, Debug, Serialize)]
pub struct InputChange {
    pub pixel_l2: f64,
    pub pixel_linf: f64,
    /// Largest relative change of any model output (the gradient engine's, f32).
    pub output_rel_diff: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Changes {
    pub compare: InputChange,
    pub control: InputChange,
}

#[derive(Clone, Debug, Serialize)]
pub struct AgreementPair {
    pub compare: Agreement,
    pub control: Agreement,
}

/// For maps that multiply a gradient ĝ by an input difference: how much of map_z − map_x is
/// (z − x) ⊙ ĝ_x, and how far the gradients themselves agree.
#[derive(Clone, Debug, Serialize)]
pub struct DesignCheck {
    /// Agreement of ĝ_z with ĝ_x (input × gradient: the gradients; integrated gradients: the mean
    /// path gradients).
    pub gradient_agreement: Agreement,
    /// max |map_z − map_x|.
    pub map_difference_max_abs: f64,
    /// max |map_z − map_x − (z − x) ⊙ ĝ_x|: what the input difference does not explain.
    pub explained_difference_max_abs: f64,
    /// explained_difference_max_abs / map_difference_max_abs.
    pub explained_difference_rel: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct ByDesign {
    pub statement: String,
    pub compare: DesignCheck,
    pub control: DesignCheck,
}

/// Integrated gradients' completeness: Σ map = score(x) − score(baseline), up to quadrature.
#[derive(Clone, Debug, Serialize)]
pub struct CompletenessCheck {
    pub sum: f64,
    /// score(input) − score(baseline).
    pub expected: f64,
    /// |sum − expected| / |expected|.
    pub rel_gap: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Completeness {
    pub original: CompletenessCheck,
    pub compare: Option<CompletenessCheck>,
    pub control: Option<CompletenessCheck>,
}

#[derive(Serialize)]
pub struct ExplainReport {
    pub model: String,
    pub image: ImageNotes,
    pub compare: Option<String>,
    pub method: Method,
    pub input: InputInfo,
    pub output_index: usize,
    pub output_name: String,
    pub settings: SettingsReport,
    pub scores: Scores,
    /// Where there is a compared input: how far it and the control are from the original.
    pub inputs: Option<Changes>,
    pub agreement: Option<AgreementPair>,
    /// Input × gradient and integrated gradients: why their maps differ for a collision.
    pub by_design: Option<ByDesign>,
    pub completeness: Option<Completeness>,
    /// The colour scale of every figure: Σ over channels of |map|, divided by this value.
    pub colour_scale_max: f64,
    pub note: String,
    pub files: Vec<String>,
    pub seconds: f64,
}

/// One input and its map.
pub struct Explained {
    pub pixels: Pixels,
    pub tensor: Vec<f32>,
    pub map: AttributionMap,
}

/// Everything `explain` computed, the PNGs encoded, before anything is written.
pub struct Explanation {
    pub report: ExplainReport,
    pub input_shape: Vec<usize>,
    pub original: Explained,
    pub compare: Option<Explained>,
    pub control: Option<Explained>,
    /// (file name, bytes) of every figure.
    pub figures: Vec<(String, Vec<u8>)>,
}

/// Explains `image` (on the model's grid) and, where given, a named tensor shaped like the model
/// input (a collision written by `collide`) beside it: [`explain_pixels`] with the front end's
/// output as Grad-CAM's boundary.
pub fn explain(
    model: &Model,
    pre: &Preprocess,
    image: GridImage,
    compare: Option<(String, Vec<f32>)>,
    req: &ExplainRequest,
    progress: &dyn Fn(),
) -> Result<Explanation> {
    let gather = pre.gather(&model.input_shape)?;
    let grid = pre.grid(&model.input_shape)?;
    let first_layer_output = crate::front_end(model, pre).ok().and_then(|fe| fe.output_value);
    explain_pixels(
        model,
        (&gather, &grid),
        image,
        compare,
        first_layer_output.as_deref(),
        req,
        progress,
    )
}

fn as_f64(t: &[f32]) -> Vec<f64> {
    t.iter().map(|&v| v as f64).collect()
}

/// The compared input and its control, each against the original.
struct Pair<'a> {
    engine: &'a Differentiable,
    outputs: &'a [crate::model::Value],
    original: &'a Explained,
    compare: &'a Explained,
    control: &'a Explained,
}

impl Pair<'_> {
    fn changes(&self) -> Result<Changes> {
        let change = |e: &Explained| input_change(self.engine, self.outputs, self.original, e);
        Ok(Changes {
            compare: change(self.compare)?,
            control: change(self.control)?,
        })
    }

    fn agreements(&self) -> AgreementPair {
        AgreementPair {
            compare: agreement(&self.original.map.values, &self.compare.map.values),
            control: agreement(&self.original.map.values, &self.control.map.values),
        }
    }

    /// Where the method multiplies by the gradient, the check that equal gradients give maps
    /// that differ exactly as the inputs do.
    fn by_design(&self, method: Method) -> Result<Option<ByDesign>> {
        if self.original.map.multiplied_gradient.is_none() {
            return Ok(None);
        }
        Ok(Some(ByDesign {
            statement: by_design_statement(method),
            compare: design_check(self.original, self.compare)?,
            control: design_check(self.original, self.control)?,
        }))
    }
}

/// A figure: its file name and PNG bytes.
type Figure = (String, Vec<u8>);

/// The overlays of the maps shown (one colour scale for all: the largest heat) and the figure
/// of the images above their overlays, as PNG files; and that scale.
fn figures_of(shown: &[&Explained], place: &PixelGrid) -> Result<(Vec<Figure>, f64)> {
    let heats: Vec<Vec<f64>> = shown.iter().map(|e| figure::heat(&e.map.values, place)).collect();
    let scale = heats.iter().flatten().copied().fold(0.0, f64::max);
    let overlays: Vec<Pixels> = shown
        .iter()
        .zip(&heats)
        .map(|(e, h)| figure::overlay(&e.pixels, h, scale))
        .collect();
    let labels = ["original", "compare", "control"];
    let mut figures = vec![];
    for (label, o) in labels.iter().zip(&overlays) {
        figures.push((
            format!("map-{label}.png"),
            figure::png_bytes(&figure::with_colour_bar(crate::figure::grid(&[vec![o.clone()]])))?,
        ));
    }
    let images: Vec<Pixels> = shown.iter().map(|e| e.pixels.clone()).collect();
    figures.push((
        "explain.png".into(),
        figure::png_bytes(&figure::with_colour_bar(crate::figure::grid(&[images, overlays])))?,
    ));
    Ok((figures, scale))
}

/// How far an input is from the original: pixel L2 and L∞, and the largest relative change of
/// any model output (the engine's, in f32 as fed).
fn input_change(
    engine: &Differentiable,
    outputs: &[crate::model::Value],
    original: &Explained,
    e: &Explained,
) -> Result<InputChange> {
    let (l2, linf, _) = pixel_distances(&original.pixels.data, &e.pixels.data);
    let out = engine.outputs(&as_f64(&e.tensor))?;
    let output_rel_diff = outputs
        .iter()
        .zip(&out)
        .map(|(a, b)| value_diff(a, b).rel_diff)
        .fold(0.0, f64::max);
    Ok(InputChange {
        pixel_l2: l2,
        pixel_linf: linf,
        output_rel_diff,
    })
}

/// The explanation of pixels already on the model's grid; `compare` is a named input tensor.
/// `first_layer_output` names the front end's output value (Grad-CAM's default layer comes after).
pub fn explain_pixels(
    model: &Model,
    (gather, grid): (&AffineGather, &Grid),
    (pixels, notes): GridImage,
    compare: Option<(String, Vec<f32>)>,
    first_layer_output: Option<&str>,
    req: &ExplainRequest,
    progress: &dyn Fn(),
) -> Result<Explanation> {
    let started = Instant::now();
    let engine = Differentiable::new(model)?;
    let x_tensor = to_tensor(gather, &pixels.data);
    let x = as_f64(&x_tensor);
    let outputs = engine.outputs(&x)?;
    let index = req.output_index.unwrap_or_else(|| argmax(&outputs[0].data));
    let target = Target { output: 0, index };
    crate::explain::score_of(&outputs, target)?;
    let place = PixelGrid::of(gather, grid);
    let attribution = method(req.method, &req.settings, &engine, &x, first_layer_output, Some(&place))?;
    if let Some((name, z)) = &compare {
        if z.len() != x.len() {
            bail!("{name} holds {} values; the model input {}", z.len(), x.len());
        }
    }

    let original = Explained {
        map: attribution.attribute_with_progress(&engine, &x, target, progress)?,
        pixels,
        tensor: x_tensor,
    };
    let mut compared = None;
    if let Some((_, z_tensor)) = &compare {
        let z_pixels = original.pixels.with_data(from_tensor(gather, z_tensor));
        let (l2, _, _) = pixel_distances(&original.pixels.data, &z_pixels.data);
        let mut rng = ChaCha8Rng::seed_from_u64(req.settings.seed);
        let c_pixels = original
            .pixels
            .with_data(control_perturbation(&original.pixels.data, l2, &mut rng));
        let c_tensor = to_tensor(gather, &c_pixels.data);
        let run = |p: Pixels, t: Vec<f32>| -> Result<Explained> {
            let map = attribution.attribute_with_progress(&engine, &as_f64(&t), target, progress)?;
            Ok(Explained {
                pixels: p,
                tensor: t,
                map,
            })
        };
        compared = Some((run(z_pixels, z_tensor.clone())?, run(c_pixels, c_tensor)?));
    }
    let details = attribution.details();
    let (compare_explained, control_explained) = compared.unzip();

    let (mut inputs, mut agreements, mut by_design) = (None, None, None);
    if let (Some(z), Some(c)) = (&compare_explained, &control_explained) {
        let pair = Pair {
            engine: &engine,
            outputs: &outputs,
            original: &original,
            compare: z,
            control: c,
        };
        inputs = Some(pair.changes()?);
        agreements = Some(pair.agreements());
        by_design = pair.by_design(req.method)?;
    }
    let completeness = original.map.baseline_score.map(|_| Completeness {
        original: completeness_of(&original.map),
        compare: compare_explained.as_ref().map(|e| completeness_of(&e.map)),
        control: control_explained.as_ref().map(|e| completeness_of(&e.map)),
    });

    // Figures: one colour scale for every map shown.
    let shown: Vec<&Explained> = [Some(&original), compare_explained.as_ref(), control_explained.as_ref()]
        .into_iter()
        .flatten()
        .collect();
    let (figures, scale) = figures_of(&shown, &place)?;

    let mut files: Vec<String> = vec!["original.npy".into(), "map-original.npy".into()];
    if compare.is_some() {
        files.extend(["compare.npy", "map-compare.npy", "control.npy", "map-control.npy"].map(String::from));
    }
    files.extend(figures.iter().map(|f| f.0.clone()).chain(["report.json".to_string()]));

    let output_name = engine.output_names()[0].clone();
    let mut report = ExplainReport {
        model: model.path.display().to_string(),
        image: notes,
        compare: compare.as_ref().map(|c| c.0.clone()),
        method: req.method,
        input: InputInfo::of(model),
        output_index: index,
        output_name,
        settings: settings_report(req, &details),
        scores: Scores {
            original: original.map.score,
            compare: compare_explained.as_ref().map(|e| e.map.score),
            control: control_explained.as_ref().map(|e| e.map.score),
        },
        inputs,
        agreement: agreements,
        by_design,
        completeness,
        colour_scale_max: scale,
        note: String::new(),
        files,
        seconds: 0.0,
    };
    report.note = note(&report);
    report.seconds = started.elapsed().as_secs_f64();
    Ok(Explanation {
        report,
        input_shape: model.input_shape.clone(),
        original,
        compare: compare_explained,
        control: control_explained,
        figures,
    })
}

fn settings_report(req: &ExplainRequest, details: &Details) -> SettingsReport {
    let s = &req.settings;
    let ig = req.method == Method::IntegratedGradients;
    let sg = req.method == Method::SmoothGrad;
    SettingsReport {
        target_output: 0,
        baseline: ig.then(|| s.baseline.describe()),
        steps: ig.then_some(s.steps),
        integration: ig.then_some("Riemann midpoint: alpha_k = (k + 1/2) / steps"),
        samples: sg.then_some(s.samples),
        noise: sg.then_some(s.noise),
        noise_sigma: details.noise_sigma,
        seed: s.seed,
        layer: details.layer.clone(),
        layer_shape: details.layer_shape.clone(),
        layer_kind: details.layer_kind,
    }
}

fn by_design_statement(method: Method) -> String {
    match method {
        Method::InputXGradient => "input × gradient is x ⊙ g(x). For a collision z the gradient is the same, g(z) = g(x) (z − x lies in the null space of the first linear layer, so the downstream gradient and Wᵀ of it are the same), but the input is not: map(z) − map(x) = (z − x) ⊙ g(x) up to rounding, a difference by design. gradient_agreement shows g(z) = g(x); explained_difference_max_abs is what (z − x) ⊙ g(x) leaves unexplained.".into(),
        _ => "integrated gradients are (x − b) ⊙ ḡ(x), ḡ the mean gradient on the path from the baseline b. For a collision z the path points b + α (z − b) and b + α (x − b) differ by α (z − x), in the null space, so they collide at every α and ḡ(z) = ḡ(x); the maps differ by exactly (z − x) ⊙ ḡ(x), a difference by design, and both sum to the same score(x) − score(b) (completeness). gradient_agreement compares ḡ(z) with ḡ(x); explained_difference_max_abs is what (z − x) ⊙ ḡ(x) leaves unexplained.".into(),
    }
}

fn design_check(x: &Explained, z: &Explained) -> Result<DesignCheck> {
    let (Some(gx), Some(gz)) = (&x.map.multiplied_gradient, &z.map.multiplied_gradient) else {
        bail!("the method keeps no gradient to check its difference against");
    };
    let (mut diff, mut unexplained) = (0.0f64, 0.0f64);
    for (((mz, mx), (tz, tx)), g) in z
        .map
        .values
        .iter()
        .zip(&x.map.values)
        .zip(z.tensor.iter().zip(&x.tensor))
        .zip(gx)
    {
        let d = mz - mx;
        diff = diff.max(d.abs());
        unexplained = unexplained.max((d - (*tz as f64 - *tx as f64) * g).abs());
    }
    Ok(DesignCheck {
        gradient_agreement: agreement(gx, gz),
        map_difference_max_abs: diff,
        explained_difference_max_abs: unexplained,
        explained_difference_rel: if diff > 0.0 { unexplained / diff } else { 0.0 },
    })
}

fn completeness_of(map: &AttributionMap) -> CompletenessCheck {
    let sum: f64 = map.values.iter().sum();
    let expected = map.score - map.baseline_score.unwrap_or(0.0);
    CompletenessCheck {
        sum,
        expected,
        rel_gap: (sum - expected).abs() / expected.abs().max(f64::MIN_POSITIVE),
    }
}

/// Methods whose maps must agree for a collision, as opposed to those that differ by design.
pub fn must_agree(method: Method) -> bool {
    matches!(method, Method::Gradient | Method::SmoothGrad | Method::GradCam)
}

/// One sentence (or three) a reader needs to read the figures.
fn note(r: &ExplainReport) -> String {
    let what = format!(
        "{} map of output element {} of {} with respect to the input tensor as fed",
        r.method.name(),
        r.output_index,
        r.output_name
    );
    let what = if r.colour_scale_max == 0.0 {
        let why = match r.method {
            Method::GradCam => format!(
                ": Σ_c α_c A_c ≤ 0 at every position of {} (a head that is not global average pooling weighs each position differently, and the averaged α_c lose that), so ReLU leaves nothing; `layer` picks another layer",
                r.settings.layer.as_deref().unwrap_or("the layer")
            ),
            _ => String::new(),
        };
        format!("{what}. Every map is zero{why}")
    } else {
        what
    };
    let (Some(inputs), Some(a)) = (&r.inputs, &r.agreement) else {
        return format!("{what}.");
    };
    let collision = inputs.compare.output_rel_diff < 1e-4;
    let kind = if collision {
        let clipped = if inputs.control.pixel_l2 < 0.99 * inputs.compare.pixel_l2 {
            format!(", after clipping to [0, 1] an L2 of {:.3}", inputs.control.pixel_l2)
        } else {
            String::new()
        };
        format!(
            "The compared input is a collision: it moves the pixels by an L2 of {:.3} and the outputs by a relative {:.1e} (the control, a random direction of the same L2{clipped}: {:.1e}).",
            inputs.compare.pixel_l2, inputs.compare.output_rel_diff, inputs.control.output_rel_diff
        )
    } else {
        format!(
            "The compared input is not a collision: it moves the outputs by a relative {:.1e} (the control: {:.1e}), so its map has no reason to agree.",
            inputs.compare.output_rel_diff, inputs.control.output_rel_diff
        )
    };
    let verdict = match (&r.by_design, must_agree(r.method)) {
        (_, true) => format!(
            " This map depends on the input only through values after the first linear layer, so a collision's map must equal the original's up to float32 rounding: rel_diff {:.1e}, Pearson {:.6}, top-10% overlap {:.3} for the compared input; rel_diff {:.1e}, Pearson {:.4}, overlap {:.3} for the control.",
            a.compare.rel_diff, a.compare.pearson, a.compare.top10_overlap, a.control.rel_diff, a.control.pearson, a.control.top10_overlap
        ),
        (Some(d), false) => format!(
            " This map multiplies a gradient by an input difference, so it differs for a collision by design (rel_diff {:.1e}): the gradients agree to a relative {:.1e}, and (z − x) ⊙ gradient explains the difference up to {:.1e} (absolute; the difference itself is {:.3e}); for the control the gradients differ by {:.1e}.",
            a.compare.rel_diff,
            d.compare.gradient_agreement.rel_diff,
            d.compare.explained_difference_max_abs,
            d.compare.map_difference_max_abs,
            d.control.gradient_agreement.rel_diff
        ),
        (None, false) => String::new(),
    };
    format!("{what}. {kind}{verdict}")
}

impl Explanation {
    /// Writes every file into `dir`, each one whole or not at all; everything was computed first.
    pub fn write(&self, dir: &Path) -> Result<()> {
        self.artifacts()?.write(dir)
    }

    /// The tensors as fed and their maps (`.npy`), the figures and report.json.
    pub fn artifacts(&self) -> Result<Artifacts> {
        let mut files = Artifacts::default();
        let shape = &self.input_shape;
        let f32s = |v: &[f64]| -> Vec<f32> { v.iter().map(|&a| a as f32).collect() };
        let labelled = [
            ("original", Some(&self.original)),
            ("compare", self.compare.as_ref()),
            ("control", self.control.as_ref()),
        ];
        for (label, e) in labelled {
            let Some(e) = e else { continue };
            files.npy(&format!("{label}.npy"), shape, &e.tensor);
            files.npy(&format!("map-{label}.npy"), shape, &f32s(&e.map.values));
        }
        for (name, bytes) in &self.figures {
            files.bytes(name, bytes.clone());
        }
        files.json("report.json", &self.report)?;
        Ok(files)
    }
}
