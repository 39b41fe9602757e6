//! `blindspot survey`: how many input directions standard vision architectures ignore at their
//! first linear layer, computed (not typed in) from each catalogued front end with generic random
//! weights by the operator machinery `audit` uses, and measured on model files beside it.
//!
//! The count with generic weights is a property of the architecture: exact zeros of the operator
//! (pixels no tap reads, outputs that read only padding) plus the excess of inputs over outputs,
//! group by group. Real weights can only ignore more (dead or zero-sum filters, rank
//! deficiency), which is why model files get a measured row beside the structural one.

pub mod architectures;
pub mod figure;
pub mod tables;

use crate::frontend::FrontEnd;
use crate::linop::{Block, BlockOperator, Conv2d, ConvGeometry};
use crate::nullspace::conv_spectrum::{structural_nullity_with, Effort, StructuralNullity};
use crate::nullspace::front_end_null_space;
use crate::nullspace::{NullSpace, RankRule};
use crate::survey::architectures::{Architecture, BeforeFirstLayer, FirstConv, CATALOGUE, FAMILIES};
use crate::survey::figure::{draw_survey, Bar};
use anyhow::{bail, Context, Result};
use faer::Mat;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;

/// The first linear layer of a row, as the survey computed it.
#[derive(Clone, Debug, Serialize)]
pub struct LayerSummary {
    /// "Conv" (patch embeddings and per-patch dense layers included), "Gemm" or "MatMul".
    pub op: String,
    /// Channels, height, width of the layer's input tensor (after any space-to-depth).
    pub input: Vec<usize>,
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel: Vec<usize>,
    pub stride: Vec<usize>,
    /// top, left, bottom, right
    pub pads: Vec<usize>,
    pub dilation: Vec<usize>,
    pub groups: usize,
    /// Output positions (height, width).
    pub output: Vec<usize>,
    /// "Conv 3→768, 32×32 stride 32, pad 0, groups 1" and the like.
    pub description: String,
}

/// Where the first layer splits the image into disjoint patches: the numbers of one patch.
#[derive(Clone, Debug, Serialize)]
pub struct PatchSummary {
    /// Values one patch holds (channels × kernel area).
    pub fan_in: usize,
    /// Outputs one patch feeds (the embedding width).
    pub width: usize,
    pub patches: usize,
    /// Pixels no patch covers (image sides that are no multiple of the patch).
    pub unread_pixels: usize,
}

/// One line of the survey: a catalogue entry, or a model file (`measured_nullity` set).
#[derive(Clone, Debug, Serialize)]
pub struct SurveyRow {
    pub name: String,
    pub family: String,
    pub task: String,
    /// Channels, height, width of the image tensor.
    pub input: Vec<usize>,
    pub preprocessing: String,
    /// What sits between the normalised image and the first layer.
    pub before_first_layer: String,
    pub first_layer: LayerSummary,
    pub input_dim: usize,
    pub output_dim: usize,
    /// Ignored directions with generic (random, full-rank) weights of the same geometry.
    pub structural_nullity: usize,
    /// Whether `structural_nullity` is proved for the random draw (exact SVDs, a symbol bound or
    /// a Cholesky certificate), rather than the generic count alone.
    pub nullity_proved: bool,
    /// structural_nullity / input_dim.
    pub null_fraction: f64,
    /// Ignored directions per patch, where the layer works patch by patch.
    pub per_patch_nullity: Option<usize>,
    pub patch: Option<PatchSummary>,
    /// σ_min / σ_max of the generic operator on its short side (estimate): how close the
    /// architecture comes to ignoring a direction where it ignores none exactly.
    pub sigma_ratio: f64,
    /// How `structural_nullity` was obtained, briefly; `method_detail` in full.
    pub method: String,
    pub method_detail: String,
    pub interpretation: String,
    pub source: String,
    /// Model files only: the nullity `audit` measures with the file's own weights (`None` in a
    /// file row where audit cannot decide it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measured_nullity: Option<usize>,
    /// Model files only: audit's method for `measured_nullity`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measured_method: Option<String>,
    /// "catalogue" or "model file".
    pub kind: String,
}

/// Machine epsilon of the generic weights, which are f64: the rank rule's tolerance for them.
/// (With f32's, a random square block's smallest singular value, about σ_max/n, would sit at
/// the tolerance n·eps·σ_max and make the generic count depend on the draw.)
pub const GENERIC_EPS: f64 = f64::EPSILON;

/// The family of model-file rows.
pub const MODEL_FILES: &str = "model files";

/// Survey settings.
#[derive(Clone, Debug)]
pub struct SurveySettings {
    /// Square side for every catalogue entry instead of its own input size.
    pub input: Option<usize>,
    /// Seed of the generic random weights.
    pub seed: u64,
}

/// Entries in the catalogue.
pub const CATALOGUE_LEN: usize = CATALOGUE.len();

/// Every catalogue entry, in catalogue order; `progress` hears each name as it is done.
pub fn survey_catalogue(settings: &SurveySettings, progress: &(dyn Fn(&str) + Sync)) -> Result<Vec<SurveyRow>> {
    CATALOGUE
        .par_iter()
        .enumerate()
        .map(|(i, arch)| {
            let row = survey_architecture(arch, settings.input, settings.seed.wrapping_add(i as u64));
            progress(arch.name);
            row
        })
        .collect()
}

/// `survey.png`: the null fraction of every row, grouped by family.
pub fn draw_figure(rows: &[SurveyRow], path: &Path) -> Result<()> {
    let bars: Vec<Bar> = rows
        .iter()
        .map(|r| Bar {
            // the figure marks measured rows itself
            label: r.name.trim_end_matches(" (measured)").to_string(),
            family: r.family.clone(),
            null_fraction: r.null_fraction,
            measured: r.kind != "catalogue",
        })
        .collect();
    let mut families = FAMILIES.to_vec();
    families.push(MODEL_FILES);
    draw_survey(
        &bars,
        &families,
        "Input directions the first linear layer ignores (generic weights; model files measured)",
        path,
    )
}

/// The shape of the first layer's input tensor for an image of `input` (C, H, W).
pub fn layer_input(before: BeforeFirstLayer, input: [usize; 3]) -> Result<[usize; 3]> {
    let [c, h, w] = input;
    match before {
        BeforeFirstLayer::Nothing => Ok(input),
        BeforeFirstLayer::SpaceToDepth { block } => {
            if block == 0 || h % block != 0 || w % block != 0 {
                bail!("space-to-depth by {block} needs sides divisible by it, not {h}×{w}");
            }
            Ok([c * block * block, h / block, w / block])
        }
    }
}

/// The catalogue entry's first layer on `input` (its own size where `None`) with random weights.
pub fn generic_conv(arch: &Architecture, side: Option<usize>, seed: u64) -> Result<Conv2d> {
    let input = image_input(arch, side);
    let layer_in = layer_input(arch.before, input)?;
    random_conv(&arch.first_layer, layer_in, seed).with_context(|| format!("{}: input {input:?}", arch.name))
}

fn image_input(arch: &Architecture, side: Option<usize>) -> [usize; 3] {
    side.map_or(arch.input, |s| [arch.input[0], s, s])
}

/// A convolution of the geometry `layer` on a `[c, h, w]` tensor with uniform(−1, 1) weights.
pub fn random_conv(layer: &FirstConv, [c, h, w]: [usize; 3], seed: u64) -> Result<Conv2d> {
    if layer.groups == 0 || !c.is_multiple_of(layer.groups) || !layer.out_channels.is_multiple_of(layer.groups) {
        bail!(
            "{} groups do not divide {c} input and {} output channels",
            layer.groups,
            layer.out_channels
        );
    }
    let Some(out) = ConvGeometry::output_size([h, w], layer.kernel, layer.stride, layer.dilation, layer.pads) else {
        bail!(
            "a {}×{} kernel does not fit a {h}×{w} input",
            layer.kernel[0],
            layer.kernel[1]
        );
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let fan_in = c / layer.groups * layer.kernel[0] * layer.kernel[1];
    Ok(Conv2d {
        geometry: ConvGeometry {
            in_shape: [c, h, w],
            kernel: layer.kernel,
            strides: layer.stride,
            dilations: layer.dilation,
            pads: layer.pads,
            group: layer.groups,
            out,
        },
        out_channels: layer.out_channels,
        weight: (0..layer.out_channels * fan_in)
            .map(|_| rng.gen_range(-1.0..1.0))
            .collect(),
    })
}

/// One catalogue entry, computed.
pub fn survey_architecture(arch: &Architecture, side: Option<usize>, seed: u64) -> Result<SurveyRow> {
    let conv = generic_conv(arch, side, seed)?;
    let structure = structural_nullity_with(&conv, GENERIC_EPS, RankRule::default(), Effort::SURVEY, &|_, _| {});
    let before = match arch.before {
        BeforeFirstLayer::Nothing => "nothing (per-channel normalisation only)".to_string(),
        BeforeFirstLayer::SpaceToDepth { block } => {
            format!("space-to-depth {block}×{block} (Slice/Concat, a pixel permutation)")
        }
    };
    Ok(conv_row(
        &conv,
        &structure,
        RowText {
            name: arch.name.to_string(),
            family: arch.family.to_string(),
            task: arch.task.to_string(),
            input: image_input(arch, side).to_vec(),
            preprocessing: arch.preprocessing.to_string(),
            before_first_layer: before,
            source: arch.source.to_string(),
            kind: "catalogue".into(),
        },
    ))
}

struct RowText {
    name: String,
    family: String,
    task: String,
    input: Vec<usize>,
    preprocessing: String,
    before_first_layer: String,
    source: String,
    kind: String,
}

fn conv_summary(conv: &Conv2d) -> LayerSummary {
    let g = &conv.geometry;
    let [c, h, w] = g.in_shape;
    let same = |v: [usize; 2]| v[0] == v[1];
    let pair = |v: [usize; 2], sep: &str| {
        if same(v) {
            v[0].to_string()
        } else {
            format!("{}{sep}{}", v[0], v[1])
        }
    };
    let pads = if g.pads.iter().all(|&p| p == g.pads[0]) {
        g.pads[0].to_string()
    } else {
        format!("{:?}", g.pads)
    };
    let mut description = format!(
        "Conv {c}→{}, {}×{} stride {}, pad {pads}",
        conv.out_channels,
        g.kernel[0],
        g.kernel[1],
        pair(g.strides, "×")
    );
    if g.dilations != [1, 1] {
        description += &format!(", dilation {}", pair(g.dilations, "×"));
    }
    if g.group != 1 {
        description += &format!(", groups {}", g.group);
    }
    LayerSummary {
        op: "Conv".into(),
        input: vec![c, h, w],
        in_channels: c,
        out_channels: conv.out_channels,
        kernel: g.kernel.to_vec(),
        stride: g.strides.to_vec(),
        pads: g.pads.to_vec(),
        dilation: g.dilations.to_vec(),
        groups: g.group,
        output: g.out.to_vec(),
        description,
    }
}

/// The short form of a `structural_nullity` method string.
fn method_summary(s: &StructuralNullity) -> String {
    let m = &s.method;
    if s.nullity.is_none() {
        return "generic count (exact zeros + inputs − outputs); full rank of the rest not proved at this size".into();
    }
    if m.starts_with("patch-wise") {
        "exact SVD of every distinct patch block".into()
    } else if m.contains("banded Cholesky") {
        "full rank proved (banded Cholesky certificate)".into()
    } else if m.contains("section") {
        "full rank proved (symbol bound over the torus)".into()
    } else {
        m.split(':').next().unwrap_or(m).to_string()
    }
}

fn conv_row(conv: &Conv2d, s: &StructuralNullity, text: RowText) -> SurveyRow {
    let g = &conv.geometry;
    let nullity = s.nullity.unwrap_or(s.expected_nullity);
    let (n, m) = (s.input_dim, s.output_dim);
    let patchwise = g.is_patchify() && g.pads == [0; 4];
    let positions = g.out[0] * g.out[1];
    let patch = patchwise.then(|| PatchSummary {
        fan_in: g.in_shape[0] * g.kernel[0] * g.kernel[1],
        width: conv.out_channels,
        patches: positions,
        unread_pixels: s.unread_pixels,
    });
    // Every patch is the same block: what it ignores is the total less the unread pixels, shared
    // out evenly.
    let per_patch_nullity = patch
        .as_ref()
        .filter(|_| s.nullity.is_some() && positions > 0)
        .map(|p| (nullity - p.unread_pixels.min(nullity)) / positions);
    let sigma_ratio = s.sigma_min / s.sigma_max.max(f64::MIN_POSITIVE);
    let percent = |k: usize, of: usize| 100.0 * k as f64 / of.max(1) as f64;
    let interpretation = match (&patch, per_patch_nullity) {
        (Some(p), Some(k)) if k > 0 => format!(
            "each {}×{} patch holds {} values and the embedding keeps {}: {k} directions per patch ({:.0} %) are ignored, exact collisions for every image",
            g.kernel[0], g.kernel[1], p.fan_in, p.width, percent(k, p.fan_in)
        ),
        (Some(p), _) if nullity > 0 => format!(
            "patches ignore nothing ({} values → {} outputs) but {} pixels lie outside every patch",
            p.fan_in, p.width, p.unread_pixels
        ),
        (Some(p), _) => format!(
            "{} values per patch → {} outputs: no exact null space; approximate collisions only (σ_min/σ_max ≈ {sigma_ratio:.1e})",
            p.fan_in, p.width
        ),
        (None, _) if nullity > 0 && m < n => format!(
            "the overlapping stem has {:.0} % fewer outputs than inputs: at least {} directions are ignored, exact collisions for every image",
            percent(n - m, n),
            n - m
        ),
        (None, _) if nullity > 0 => format!(
            "{nullity} exact null directions from pixels the layer never reads or dead filters"
        ),
        (None, _) => format!(
            "{:.1}× more outputs than inputs: no exact null space; approximate collisions along the smallest singular values (σ_min/σ_max ≈ {sigma_ratio:.1e})",
            m as f64 / n.max(1) as f64
        ),
    };
    SurveyRow {
        name: text.name,
        family: text.family,
        task: text.task,
        input: text.input,
        preprocessing: text.preprocessing,
        before_first_layer: text.before_first_layer,
        first_layer: conv_summary(conv),
        input_dim: n,
        output_dim: m,
        structural_nullity: nullity,
        nullity_proved: s.nullity.is_some(),
        null_fraction: nullity as f64 / n.max(1) as f64,
        per_patch_nullity,
        patch,
        sigma_ratio,
        method: method_summary(s),
        method_detail: s.method.clone(),
        interpretation,
        source: text.source,
        measured_nullity: None,
        measured_method: None,
        kind: text.kind,
    }
}

/// A model file: the structural row of its first layer's geometry (random weights) with the
/// nullity `audit` measures on the file's own weights beside it.
pub fn survey_model(path: &Path, input_shape: Option<&[usize]>, seed: u64) -> Result<SurveyRow> {
    let (model, fe) = crate::frontend::open(path, input_shape, &crate::Preprocess::default())
        .with_context(|| format!("survey {}", path.display()))?;
    let measured = front_end_null_space(&fe, RankRule::default())?;
    let name = path
        .file_stem()
        .map_or_else(|| path.display().to_string(), |s| s.to_string_lossy().into_owned());
    let input = model.input_shape.iter().skip(1).copied().collect::<Vec<_>>();
    let Some(layer) = fe.first_layer.as_ref() else {
        bail!("{}: no first linear layer found", path.display());
    };
    let text = RowText {
        name: format!("{name} (measured)"),
        family: MODEL_FILES.into(),
        task: "model file".into(),
        input,
        preprocessing: "as fed: the model's input tensor".into(),
        before_first_layer: fe
            .ops
            .iter()
            .take(fe.ops.len().saturating_sub(1))
            .cloned()
            .collect::<Vec<_>>()
            .join(", "),
        source: path.display().to_string(),
        kind: "model file".into(),
    };
    let mut row = match &layer.geometry {
        Some(geometry) => {
            let first = FirstConv {
                out_channels: layer.weight_shape[0],
                kernel: geometry.kernel,
                stride: geometry.strides,
                pads: geometry.pads,
                dilation: geometry.dilations,
                groups: geometry.group,
            };
            let conv = random_conv(&first, geometry.in_shape, seed)?;
            let structure =
                structural_nullity_with(&conv, GENERIC_EPS, RankRule::default(), Effort::SURVEY, &|_, _| {});
            conv_row(&conv, &structure, text)
        }
        None => dense_row(&fe, layer.op.clone(), text, seed)?,
    };
    row.measured_nullity = measured.as_ref().filter(|n| n.nullity_exact).map(|n| n.nullity);
    row.measured_method = Some(measured.map_or_else(
        || fe.limitation.clone().unwrap_or_else(|| "not computed".into()),
        |n| n.method,
    ));
    Ok(row)
}

/// A dense (Gemm/MatMul) first layer: the same blocks with random matrices of the same shapes.
fn dense_row(fe: &FrontEnd, op: String, text: RowText, seed: u64) -> Result<SurveyRow> {
    let Some(operator) = fe.blocks() else {
        bail!("{}: the dense front end has no block form", text.source);
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut random = std::collections::HashMap::new();
    let blocks = operator
        .blocks
        .iter()
        .map(|b| {
            let key = Arc::as_ptr(&b.matrix);
            let matrix = random
                .entry(key)
                .or_insert_with(|| {
                    Arc::new(Mat::from_fn(b.matrix.nrows(), b.matrix.ncols(), |_, _| {
                        rng.gen_range(-1.0..1.0)
                    }))
                })
                .clone();
            Block {
                rows: b.rows.clone(),
                cols: b.cols.clone(),
                matrix,
            }
        })
        .collect();
    let generic = BlockOperator {
        input_dim: operator.input_dim,
        output_dim: operator.output_dim,
        blocks,
    };
    let layer = fe.first_layer.as_ref().expect("checked by the caller");
    let dims = (layer.matrix.nrows(), layer.matrix.ncols());
    let ns = NullSpace::of(&generic, dims, GENERIC_EPS, RankRule::default())?;
    let (n, m) = (generic.input_dim, generic.output_dim);
    let nullity = ns.nullity;
    let interpretation = if nullity > 0 {
        format!(
            "the dense layer keeps {} of {} input directions: {nullity} are ignored, exact collisions for every input",
            n - nullity,
            n
        )
    } else {
        "the dense layer keeps every input direction: no exact null space".into()
    };
    Ok(SurveyRow {
        name: text.name,
        family: text.family,
        task: text.task,
        input: text.input,
        preprocessing: text.preprocessing,
        before_first_layer: text.before_first_layer,
        first_layer: LayerSummary {
            op: op.clone(),
            input: vec![n],
            in_channels: dims.1,
            out_channels: dims.0,
            kernel: vec![],
            stride: vec![],
            pads: vec![],
            dilation: vec![],
            groups: 1,
            output: vec![],
            description: format!("{op} {}→{} ({} blocks)", dims.1, dims.0, generic.blocks.len()),
        },
        input_dim: n,
        output_dim: m,
        structural_nullity: nullity,
        nullity_proved: true,
        null_fraction: nullity as f64 / n.max(1) as f64,
        per_patch_nullity: None,
        patch: None,
        sigma_ratio: ns.smallest_singular_value()
            / ns.block_ranks
                .iter()
                .map(|(_, rank)| rank.sigma_max)
                .fold(f64::MIN_POSITIVE, f64::max),
        method: "exact SVD of every distinct block".into(),
        method_detail: ns.method.clone(),
        interpretation,
        source: text.source,
        measured_nullity: None,
        measured_method: None,
        kind: text.kind,
    })
}
