//! `collide`: build collisions for an image, verify each through the whole model, save them.

use crate::figure::{amplified_difference, labelled_row};
use crate::frontend::{FrontEnd, FrontEndKind};
use crate::model::preprocess::psnr;
use crate::model::preprocess::{to_tensor, GridImage, ImageNotes, Pixels};
use crate::model::Model;
use crate::nullspace::{null_space_for_collisions, searchable_null_space, NullSpace, RankRule};
use crate::pipeline::artifacts::Artifacts;
use crate::pipeline::audit::InputInfo;
use crate::search::{search, Distance, Mode, Projection, SearchOptions};
use crate::verify::{control_perturbation, pixel_distances, Comparison, Verifier};
use anyhow::{bail, Result};
use image::RgbImage;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::path::Path;

/// A collision search: the image and, in target mode, the target (both on the model's grid),
/// and how to search.
pub struct CollideRequest {
    pub image: GridImage,
    pub target: Option<GridImage>,
    pub search: SearchSettings,
}

#[derive(Serialize)]
pub struct CollideReport {
    pub model: String,
    pub input: InputInfo,
    pub image: ImageNotes,
    pub target: Option<ImageNotes>,
    pub mode: Mode,
    /// The distance `target` mode minimised (`l2` in the other modes, which do not use it).
    pub distance: Distance,
    pub seed: u64,
    pub count: usize,
    pub strength: f64,
    pub front_end: FrontEndSummary,
    /// The null directions the search draws from: the front end's null space where it is
    /// block-diagonal; for a convolution known only by its action, the directions inside
    /// disjoint tiles (gaps held), a subspace with exact per-tile blocks.
    pub search_space: SearchSpace,
    pub collisions: Vec<CollisionRecord>,
    pub files: Vec<String>,
}

#[derive(Serialize)]
pub struct FrontEndSummary {
    pub kind: FrontEndKind,
    pub ops: Vec<String>,
    pub input_dim: usize,
    pub output_dim: usize,
    /// Exact where `nullity_exact`, otherwise a lower bound.
    pub nullity: usize,
    pub nullity_exact: bool,
    pub null_fraction: f64,
    pub method: String,
    pub rank_rule: String,
}

#[derive(Serialize)]
pub struct CollisionRecord {
    pub index: usize,
    pub png: String,
    pub npy: String,
    #[serde(flatten)]
    pub comparison: Comparison,
    pub psnr_to_target: Option<f64>,
    /// Mean |zᵢ − tᵢ| over the pixels (pixel units): what `--distance l1` minimises, per pixel.
    pub mean_abs_to_target: Option<f64>,
    #[serde(flatten)]
    pub search: SearchOutcome,
    /// Guaranteed ‖A (z − x)‖₂ ≤ σ ‖z − x‖ for σ the largest singular value of the directions
    /// used; it bounds `front_end_max_abs_diff` too, up to float32 rounding. Reported for `--tol`.
    pub front_end_response_bound: Option<f64>,
    pub control: Comparison,
}

impl FrontEndSummary {
    pub fn new(fe: &FrontEnd, ns: &NullSpace, rule: RankRule) -> FrontEndSummary {
        FrontEndSummary {
            kind: fe.kind,
            ops: fe.ops.clone(),
            input_dim: fe.input_dim(),
            output_dim: fe.output_dim(),
            nullity: ns.nullity,
            nullity_exact: ns.nullity_exact,
            null_fraction: ns.nullity as f64 / fe.input_dim() as f64,
            method: ns.method.clone(),
            rank_rule: rule.describe(),
        }
    }
}

/// How the null-space search reached a point, and what the first layer sees of the change.
#[derive(Serialize)]
pub struct SearchOutcome {
    pub pixel_min: f64,
    pub pixel_max: f64,
    /// The exact per-block solver's name, where the null space is block-diagonal; otherwise
    /// Dykstra's alternating projections with an exact finish.
    pub solver: String,
    /// Independent blocks of the collision set (0 where the search is not blockwise).
    pub blocks: usize,
    /// Blocks whose collision set is the image's own block alone (proved by an LP).
    pub blocks_without_room: usize,
    /// The largest KKT residual of the blocks' exact solves (relative); `None` for Dykstra.
    pub kkt_residual: Option<f64>,
    /// What the mode optimises, as reached: the L2 distance to the target (target), to the
    /// projected point x + s·r (random), or from the original (far).
    pub objective: Option<f64>,
    /// Far mode: the per-block LP's certified bound of the L1 move towards the far corner, and
    /// what the collision reaches of it.
    pub far_corner_bound: Option<f64>,
    pub far_corner_reached: Option<f64>,
    /// The exact solver: the largest amount (pixel units) by which rounding left a pixel outside
    /// its range before it was set onto the bound it had reached.
    pub bound_rounding: Option<f64>,
    /// Dykstra's iterations (0 for the exact solver).
    pub dykstra_iterations: usize,
    /// Fraction of Dykstra's final step kept to stay in the search region (1: none needed, and
    /// always 1 for the exact solver, which never shortens a step).
    pub pullback: f64,
    /// Pixels on the edge of the region's box where the collision leaves them.
    pub pixels_held_at_edge: usize,
    /// ‖A (z − anchor)‖₂ in f64, A the front end's linear part: what the first layer sees of the
    /// change from the image the search started at.
    pub front_end_response: Option<f64>,
    /// ‖A (z − anchor)‖₂ / ‖A anchor‖₂ (f64).
    pub front_end_response_relative: Option<f64>,
}

impl SearchOutcome {
    pub fn of(p: &Projection, fe: &FrontEnd, anchor: &[f64]) -> SearchOutcome {
        let delta: Vec<f64> = p.z.iter().zip(anchor).map(|(z, a)| z - a).collect();
        let response = fe.response(&delta);
        let own = fe.response(anchor);
        let exact = p.exact.as_ref();
        SearchOutcome {
            pixel_min: p.z.iter().copied().fold(f64::INFINITY, f64::min),
            pixel_max: p.z.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            solver: match exact {
                Some(e) => e.solver.to_string(),
                None => "Dykstra's alternating projections, exact finish (matrix-free null space)".to_string(),
            },
            blocks: exact.map_or(0, |e| e.blocks),
            blocks_without_room: exact.map_or(0, |e| e.blocks_without_room),
            kkt_residual: exact.map(|e| e.kkt_residual),
            objective: exact.map(|e| e.objective),
            far_corner_bound: exact.and_then(|e| e.far_corner.map(|f| f.bound)),
            far_corner_reached: exact.and_then(|e| e.far_corner.map(|f| f.reached)),
            bound_rounding: exact.map(|e| e.bound_rounding),
            dykstra_iterations: p.iterations,
            pullback: p.pullback,
            pixels_held_at_edge: p.pinned,
            front_end_response: response,
            front_end_response_relative: response.zip(own).and_then(|(r, o)| (o > 0.0).then(|| r / o)),
        }
    }
}

/// Everything `collide` computed, before anything is written.
pub struct Collisions {
    pub report: CollideReport,
    pub original: Pixels,
    pub target: Option<Pixels>,
    pub found: Vec<Pixels>,
    pub tensors: Vec<Vec<f32>>,
    pub original_tensor: Vec<f32>,
    /// Where the exact search proved that no collision other than the image exists inside the
    /// pixel range: why, in one line (`collide` refuses to write the image as a "collision").
    pub no_room: Option<String>,
}

/// How collisions are searched, once the images are in hand.
#[derive(Clone, Copy, Debug)]
pub struct SearchSettings {
    pub mode: Mode,
    /// What `target` mode minimises.
    pub distance: Distance,
    pub count: usize,
    /// L2 (pixel units) of random directions; `None`: 0.1 per pixel RMS, i.e. 0.1 · √n.
    pub strength: Option<f64>,
    pub seed: u64,
    pub rule: RankRule,
}

#[derive(Serialize)]
pub struct SearchSpace {
    pub nullity: usize,
    pub method: String,
}

/// Checks the request, finds the null space to search, then runs [`collide_pixels`]; a search
/// that finds no room is an error ([`crate::error::NoRoom`]).
pub fn collide(model: &Model, fe: &FrontEnd, req: &CollideRequest, progress: &dyn Fn()) -> Result<Collisions> {
    if req.search.mode == Mode::Target && req.target.is_none() {
        bail!("`mode` target needs `target` IMAGE");
    }
    if req.search.distance != Distance::L2 && req.search.mode != Mode::Target {
        bail!("`distance` applies to `mode` target only");
    }
    let ns = null_space_for_collisions(fe, req.search.rule)?;
    let found = collide_pixels(
        model,
        fe,
        &ns,
        req.image.clone(),
        req.target.clone(),
        &req.search,
        progress,
    )?;
    if let Some(why) = &found.no_room {
        return Err(crate::error::NoRoom(why.clone()).into());
    }
    Ok(found)
}

/// Searches, verifies and reports collisions for pixels already decoded onto the model's grid.
pub fn collide_pixels(
    model: &Model,
    fe: &FrontEnd,
    ns: &NullSpace,
    (original, image_notes): GridImage,
    target: Option<GridImage>,
    req: &SearchSettings,
    progress: &dyn Fn(),
) -> Result<Collisions> {
    let x = &original.data;
    let n = x.len();
    let strength = req.strength.unwrap_or(0.1 * (n as f64).sqrt());
    let mut rng = ChaCha8Rng::seed_from_u64(req.seed);
    let opts = SearchOptions {
        distance: req.distance,
        l1_weights: Some(tensor_units(&fe.preprocess_map)),
        ..SearchOptions::new(req.count, strength)
    };
    let searched = searchable_null_space(fe, ns, req.rule)?;
    let searched = searched.as_ref().unwrap_or(ns);
    if req.distance == Distance::L1 && searched.decomposition().is_none() {
        bail!(
            "`distance` l1 needs a block-diagonal null space (a dense layer, a patch or token embedding, a convolution's tiles); this front end's is known only by projection ({})",
            searched.method
        );
    }
    let original_tensor = to_tensor(&fe.preprocess_map, x);
    // The model's run on the image does not depend on the search: it runs beside it.
    let (found, verifier) = std::thread::scope(|scope| {
        let verifier = scope.spawn(|| Verifier::new(model, fe.output_value.as_deref(), &original_tensor));
        let found = search(
            searched,
            x,
            req.mode,
            target.as_ref().map(|t| t.0.data.as_slice()),
            &opts,
            &mut rng,
            progress,
        );
        (found, verifier.join())
    });
    let verifier = verifier.map_err(|_| anyhow::anyhow!("the model's run on the image panicked"))??;
    let no_room = found.first().and_then(|p| p.no_room());
    let mut collisions = vec![];
    let mut tensors = vec![];
    let mut pixels = vec![];
    for (index, p) in found.into_iter().enumerate() {
        let tensor = to_tensor(&fe.preprocess_map, &p.z);
        // The control has the collision's L2, known before either runs: both go through the
        // model at once.
        let control_pixels = control_perturbation(x, pixel_distances(x, &p.z).0, &mut rng);
        let control_tensor = to_tensor(&fe.preprocess_map, &control_pixels);
        let (comparison, control) = rayon::join(
            || verifier.compare(x, &p.z, &tensor),
            || verifier.compare(x, &control_pixels, &control_tensor),
        );
        let (comparison, control) = (comparison?, control?);
        let comparison_l2 = comparison.l2;
        let psnr_to_target = target.as_ref().map(|t| psnr(&p.z, &t.0.data));
        let mean_abs_to_target = target.as_ref().map(|t| mean_abs_difference(&p.z, &t.0.data));
        collisions.push(CollisionRecord {
            index,
            png: format!("collide-{index:03}.png"),
            npy: format!("collide-{index:03}.npy"),
            comparison,
            psnr_to_target,
            mean_abs_to_target,
            search: SearchOutcome::of(&p, fe, x),
            front_end_response_bound: req.rule.relative.map(|_| p.response_bound * comparison_l2),
            control,
        });
        tensors.push(tensor);
        pixels.push(original.with_data(p.z));
    }
    let mut files: Vec<String> = collisions.iter().flat_map(|c| [c.png.clone(), c.npy.clone()]).collect();
    files.extend(["original.npy", "overview.png", "report.json"].map(String::from));
    let report = CollideReport {
        model: model.path.display().to_string(),
        input: InputInfo::of(model),
        image: image_notes,
        target: target.as_ref().map(|t| t.1.clone()),
        mode: req.mode,
        distance: req.distance,
        seed: req.seed,
        count: req.count,
        strength,
        front_end: FrontEndSummary::new(fe, ns, req.rule),
        search_space: SearchSpace {
            nullity: searched.nullity,
            method: searched.method.clone(),
        },
        collisions,
        files,
    };
    Ok(Collisions {
        report,
        original,
        target: target.map(|t| t.0),
        found: pixels,
        tensors,
        original_tensor,
        no_room,
    })
}

impl Collisions {
    /// Writes every file into `dir`, each one whole or not at all.
    pub fn write(&self, dir: &Path, input_shape: &[usize]) -> Result<()> {
        self.artifacts(input_shape)?.write(dir)
    }

    /// The collisions (PNG and `.npy` as fed), the original tensor, overview and report.json.
    pub fn artifacts(&self, input_shape: &[usize]) -> Result<Artifacts> {
        let mut files = Artifacts::default();
        for ((rec, z), t) in self.report.collisions.iter().zip(&self.found).zip(&self.tensors) {
            files.png(&rec.png, &z.to_rgb8())?;
            files.npy(&rec.npy, input_shape, t);
        }
        files.npy("original.npy", input_shape, &self.original_tensor);
        let overview = overview(&self.report, &self.original, &self.found, self.target.as_ref())?;
        files.png("overview.png", &overview)?;
        files.json("report.json", &self.report)?;
        Ok(files)
    }
}

fn mean_abs_difference(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f64>() / a.len() as f64
}

/// The size of one pixel unit in the tensor fed to the model, pixel by pixel (the preprocessing's
/// scale, e.g. 1/std): `--distance l1` measures in those units, as recipes that search the
/// normalised input do.
fn tensor_units(map: &crate::linop::AffineGather) -> Vec<f64> {
    let mut units = vec![1.0; map.input_dim];
    for (source, scale) in map.source.iter().zip(&map.scale) {
        if let Some(k) = source {
            if *scale != 0.0 {
                units[*k] = scale.abs();
            }
        }
    }
    units
}

/// original | collisions (up to 4) | target | difference of the first collision, amplified;
/// each panel named, with the figures a reader needs under it: the collision's L2 and PSNR, its
/// deviation at the first layer and at the outputs, and its control's (a random perturbation of
/// the same L2).
pub fn overview(
    report: &CollideReport,
    original: &Pixels,
    found: &[Pixels],
    target: Option<&Pixels>,
) -> anyhow::Result<RgbImage> {
    let mut panels: Vec<(Pixels, Vec<String>)> = vec![(original.clone(), vec!["original".into()])];
    let worst_output = |c: &crate::verify::Comparison| c.outputs.iter().map(|o| o.rel_diff).fold(0.0, f64::max);
    let first_layer =
        |c: &crate::verify::Comparison| c.front_end_rel_diff.map_or("-".to_string(), |v| format!("{v:.1e}"));
    for (record, z) in report.collisions.iter().zip(found).take(4) {
        let c = &record.comparison;
        let mut lines = vec![
            format!("collision {}", record.index),
            format!("L2 {:.2}, PSNR {:.1} dB", c.l2, c.psnr_to_original),
            format!("first layer {}, outputs {:.1e}", first_layer(c), worst_output(c)),
            format!(
                "control: {}, outputs {:.1e}",
                first_layer(&record.control),
                worst_output(&record.control)
            ),
        ];
        if let Some(p) = record.psnr_to_target {
            lines.push(format!("PSNR to target {p:.1} dB"));
        }
        panels.push((z.clone(), lines));
    }
    if let Some(t) = target {
        panels.push((t.clone(), vec!["target".into()]));
    }
    if let Some(z) = found.first() {
        let (diff, gain) = amplified_difference(original, z);
        let gain = if gain < 10.0 {
            format!("{gain:.1}")
        } else {
            format!("{gain:.0}")
        };
        panels.push((
            diff,
            vec![format!("difference ×{gain}"), "collision 0 − original".into()],
        ));
    }
    labelled_row(&panels)
}
