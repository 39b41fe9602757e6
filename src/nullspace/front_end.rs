//! The null space of a folded front end, chosen by its form: an exact SVD per block where the
//! operator is block-diagonal (or small enough to be one dense block), tiles or conjugate
//! gradients where it is a convolution known by its action; and the refusal rules for searches
//! (no null space, nothing within the budget, nullity not established).

use super::circulant_preconditioner::CirculantPreconditioner;
use super::conv_spectrum::{structural_nullity_with, Effort};
use super::matrix_free_projection::Preconditioner;
use super::{MatrixFreeSource, NullSpace, RankRule};
use crate::error::NoExactCollision;
use crate::frontend::{ConvFrontEnd, FirstLayer, FrontEnd, DENSE_CONV_MAX_COLS, DENSE_CONV_MAX_ENTRIES};
use crate::linop::{Block, BlockOperator, LinearOperator};
use anyhow::{bail, Result};
use std::sync::Arc;

/// Tile side (input values) for approximate null spaces of convolutions: large enough that most
/// of the image moves (the gaps hold 2·(kernel span − 1)/tile of it or so), small enough for a
/// quick SVD per distinct tile.
pub const CONV_TILE: usize = 16;

/// The null space of the front end, where its structure lets blindspot compute it: exactly, or
/// with `--tol` the directions whose response is at most that fraction of σ_max.
pub fn front_end_null_space(fe: &FrontEnd, rule: RankRule) -> Result<Option<NullSpace>> {
    front_end_null_space_with(fe, rule, Effort::SEARCH, &|_, _| {})
}

/// [`front_end_null_space`] with the effort spent on proofs (`Effort::AUDIT` runs costlier
/// certificates); `progress` hears a certificate's (blocks factored, blocks).
pub fn front_end_null_space_with(
    fe: &FrontEnd,
    rule: RankRule,
    effort: Effort,
    progress: &dyn Fn(usize, usize),
) -> Result<Option<NullSpace>> {
    let Some(layer) = fe.first_layer.as_ref() else {
        return Ok(None);
    };
    let dims = (layer.matrix.nrows(), layer.matrix.ncols());
    if let Some(op) = fe.blocks() {
        return NullSpace::of(op, dims, layer.eps, rule).map(Some);
    }
    let Some(conv) = fe.matrix_free() else {
        return Ok(None);
    };
    // Behind a resampling the structure is not read; small images get the exact dense SVD.
    let (n, m) = (fe.input_dim(), fe.output_dim());
    if conv.pixel_conv.is_none() && n <= DENSE_CONV_MAX_COLS && n.saturating_mul(m) <= DENSE_CONV_MAX_ENTRIES {
        let op = BlockOperator {
            input_dim: n,
            output_dim: m,
            blocks: vec![Block {
                rows: (0..m).collect(),
                cols: (0..n).collect(),
                matrix: Arc::new(conv.operator.to_dense()),
            }],
        };
        return NullSpace::of(&op, dims, layer.eps, rule).map(Some);
    }
    if rule.relative.is_some() {
        return tiled_null_space(fe, rule);
    }
    Ok(Some(conv_null_space(fe, conv, layer, rule, effort, progress)))
}

/// For a convolution front end: the directions supported inside disjoint input tiles (gaps held
/// fixed, so that no output reads two tiles) — a subspace of the null space (or, with `--tol`,
/// of the near-null directions) with exact per-tile blocks: cheap projections where the whole
/// null space needs conjugate gradients. `None` for other front ends.
pub fn tiled_null_space(fe: &FrontEnd, rule: RankRule) -> Result<Option<NullSpace>> {
    let Some(layer) = fe.first_layer.as_ref() else {
        return Ok(None);
    };
    let Some((op, held, tiles)) = fe.conv_tiles_in_pixels(CONV_TILE)? else {
        return Ok(None);
    };
    let dims = (layer.matrix.nrows(), layer.matrix.ncols());
    let mut ns = NullSpace::of_pinned(&op, dims, layer.eps, rule, held)?;
    ns.nullity_exact = false;
    let directions = match rule.relative {
        Some(relative) => format!("directions with a response up to {relative} × each tile's sigma_max"),
        None => "null directions".to_string(),
    };
    ns.method = format!(
        "dense SVD (faer, f64) of {t}×{t} input tiles {gy}/{gx} values apart, the gaps held fixed so that no output reads two tiles; {directions} (a subset of the operator's)",
        t = tiles.tile,
        gy = tiles.gap[0],
        gx = tiles.gap[1],
    );
    Ok(Some(ns))
}

/// The exact null space of a convolution known by its action: projection by preconditioned
/// conjugate gradients, the nullity from the convolution's structure where it can be read off.
fn conv_null_space(
    fe: &FrontEnd,
    conv: &ConvFrontEnd,
    layer: &FirstLayer,
    rule: RankRule,
    effort: Effort,
    progress: &dyn Fn(usize, usize),
) -> NullSpace {
    let lower = fe.input_dim().saturating_sub(fe.output_dim());
    let projection = "projection by conjugate gradients on A Aᵀ (stop at ‖A z‖ ≤ 1e-10 of the image's ‖A x‖)";
    let Some(pixel_conv) = conv.pixel_conv.as_ref() else {
        return NullSpace::matrix_free(MatrixFreeSource {
            operator: conv.operator.clone(),
            preconditioner: None,
            nullity: lower,
            nullity_exact: false,
            method: format!(
                "at least input_dim − output_dim: the map in front of the convolution is not a per-channel scaling, so its structure is not read; {projection}"
            ),
            smallest_singular_value: f64::NAN,
            smallest_singular_value_upper_bound: None,
        });
    };
    let structure = structural_nullity_with(pixel_conv, layer.eps, rule, effort, progress);
    let (nullity, method) = (structure.nullity, structure.method.clone());
    let preconditioner: Arc<dyn Preconditioner> = Arc::new(CirculantPreconditioner::new(pixel_conv, 1e-6));
    let mut upper_bound = structure.sigma_min_upper_bound();
    if pixel_conv.output_dim() > pixel_conv.input_dim() {
        upper_bound = upper_bound.min(smallest_tile_singular_value(pixel_conv));
    }
    NullSpace::matrix_free(MatrixFreeSource {
        operator: conv.operator.clone(),
        preconditioner: Some(preconditioner),
        nullity: nullity.unwrap_or(structure.expected_nullity.max(lower)),
        nullity_exact: nullity.is_some(),
        method: format!("{method}; {projection}, preconditioned by the circulant (FFT) inverse of W(ω)W(ω)ᴴ"),
        // The symbol's value is what an infinite image gives; borders can only lower it.
        smallest_singular_value: structure.sigma_min.min(upper_bound),
        smallest_singular_value_upper_bound: Some(upper_bound),
    })
}

/// For a tall convolution, σ_min(A) ≤ σ_min(A restricted to any set of pixels), and a tile's
/// restriction is a small dense matrix (all the rows that read it): the smallest over the
/// distinct tiles (border and corner tiles included, where padding weakens the layer).
fn smallest_tile_singular_value(conv: &crate::linop::Conv2d) -> f64 {
    let tiles = conv.tiles(CONV_TILE);
    let mut seen = std::collections::HashSet::new();
    let mut smallest = f64::INFINITY;
    for block in &tiles.blocks.blocks {
        if !seen.insert(Arc::as_ptr(&block.matrix)) || block.matrix.nrows() < block.matrix.ncols() {
            continue;
        }
        if let Ok(sv) = crate::nullspace::dense_svd::singular_values(block.matrix.as_ref().as_ref()) {
            smallest = sv.iter().copied().fold(smallest, f64::min);
        }
    }
    smallest
}

/// Where the front end's null space is known only by projection (a convolution), the tiled
/// subspace of it, whose blocks the exact search solves one by one; `None` where `ns` itself is
/// block-diagonal or no tile has a null direction.
pub fn searchable_null_space(fe: &FrontEnd, ns: &NullSpace, rule: RankRule) -> Result<Option<NullSpace>> {
    if !ns.is_matrix_free() {
        return Ok(None);
    }
    Ok(tiled_null_space(fe, rule)?.filter(|t| t.nullity > 0))
}

/// The null space collisions are drawn from; an error that says why when there is none to use.
pub fn null_space_for_collisions(fe: &FrontEnd, rule: RankRule) -> Result<NullSpace> {
    let Some(ns) = front_end_null_space(fe, rule)? else {
        bail!(
            "cannot build exact collisions: {}",
            fe.limitation.as_deref().unwrap_or("the front end is not supported")
        );
    };
    if ns.nullity == 0 && ns.nullity_exact {
        let hint = if rule.relative.is_some() {
            "raise `budget`"
        } else {
            "`budget` REL gives approximate collisions"
        };
        return Err(NoExactCollision(format!(
            "the front end has no null space (nullity 0; smallest singular value {:.3e}): no exact collision exists ({hint})",
            ns.smallest_singular_value()
        ))
        .into());
    }
    if ns.nullity == 0 && rule.relative.is_some() {
        bail!(
            "no direction has a first-layer response within the budget (smallest singular value {:.3e}; {}): raise `budget`",
            ns.smallest_singular_value(),
            ns.method
        );
    }
    if ns.nullity == 0 {
        return Err(NoExactCollision(format!(
            "no exact collision exists that blindspot can build: no null direction of the front end is known and its nullity could not be established ({}); `budget` REL gives approximate collisions",
            ns.method
        ))
        .into());
    }
    Ok(ns)
}

/// The null space the variants move in. Where the whole null space is only known by its action
/// (conjugate gradients), the tiled subspace is used instead: variants hold the pixels of the
/// adversarial image on the edge of the threat model and step from edge to edge, and a
/// restricted projection per step is a block product there but a fresh conjugate-gradient solve
/// with a preconditioner that ignores the held pixels here.
pub fn null_space_for_variants(fe: &FrontEnd, rule: RankRule) -> Result<NullSpace> {
    let ns = null_space_for_collisions(fe, rule)?;
    Ok(searchable_null_space(fe, &ns, rule)?.unwrap_or(ns))
}
