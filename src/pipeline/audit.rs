//! `audit`: the null space of the front end and the rank profile of every linear layer.

use crate::frontend::{FrontEnd, FrontEndKind};
use crate::model::onnx_graph::{node_label, EPS_F32};
use crate::model::Model;
use crate::nullspace::{rank_of, MatrixRank, NullSpace, RankRule};
use anyhow::Result;
use serde::Serialize;

#[derive(Serialize)]
pub struct AuditReport {
    pub model: String,
    pub input: InputInfo,
    pub front_end: FrontEndInfo,
    pub first_layer: Option<FirstLayerInfo>,
    pub layers: Vec<LayerInfo>,
}

#[derive(Serialize)]
pub struct InputInfo {
    pub name: String,
    pub shape: Vec<usize>,
    /// The model's other inputs, fed unchanged to every run (`--hold`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<String>,
}

impl InputInfo {
    pub fn of(model: &Model) -> InputInfo {
        InputInfo {
            name: model.input_name.clone(),
            shape: model.input_shape.clone(),
            held: model.held_inputs.clone(),
        }
    }
}

#[derive(Serialize)]
pub struct FrontEndInfo {
    pub ops: Vec<String>,
    pub kind: FrontEndKind,
    pub input_dim: usize,
    pub output_dim: usize,
    pub nullity: Option<usize>,
    pub null_fraction: Option<f64>,
    /// input_dim − output_dim where positive: ignored directions that must exist.
    pub nullity_lower_bound: usize,
    pub method: Option<String>,
    /// Of the whole front end (pixel units): how close it comes to ignoring a direction.
    pub smallest_singular_value: Option<f64>,
    /// Where `smallest_singular_value` is an estimate (matrix-free convolutions): the measured
    /// ‖A δ‖/‖δ‖ of a concrete direction, a rigorous upper bound.
    pub smallest_singular_value_upper_bound: Option<f64>,
    /// With `--tol` where the directions are a proven subset rather than the exact count (tiles
    /// of a convolution): how many there are.
    pub directions_within_budget: Option<usize>,
    /// With `--tol`: ‖A δ‖ ≤ response_bound · ‖δ‖ for every direction counted.
    pub response_bound: Option<f64>,
    pub limitation: Option<String>,
    pub rank_rule: String,
    /// Distinct block matrices in pixel coordinates (preprocessing folded in).
    pub blocks: Vec<BlockInfo>,
    pub uncovered_pixels: Option<usize>,
}

#[derive(Serialize)]
pub struct BlockInfo {
    pub count: usize,
    #[serde(flatten)]
    pub rank: MatrixRank,
}

#[derive(Serialize)]
pub struct FirstLayerInfo {
    pub node: String,
    pub op: String,
    pub weight_shape: Vec<usize>,
    pub kernel: Vec<usize>,
    pub strides: Vec<usize>,
    pub pads: Vec<usize>,
    pub group: usize,
    pub matrix: MatrixRank,
    pub singular_values: Vec<f64>,
}

#[derive(Serialize)]
pub struct LayerInfo {
    pub node: String,
    pub op: String,
    pub weight_shape: Vec<usize>,
    pub rows: usize,
    pub cols: usize,
    pub rank: usize,
    pub nullity: usize,
}

pub fn audit(
    model: &Model,
    fe: &FrontEnd,
    ns: Option<&NullSpace>,
    rule: RankRule,
    progress: &dyn Fn(&str),
) -> Result<AuditReport> {
    // Without a folded front end there is no first layer to count directions of: any nullity,
    // even a lower bound, would be a claim without a basis.
    if fe.kind == FrontEndKind::Unsupported {
        anyhow::bail!(
            "the front end cannot be folded, so no nullity can be stated: {}",
            fe.limitation.as_deref().unwrap_or("no linear layer was reached")
        );
    }
    let first_layer = match &fe.first_layer {
        Some(l) => {
            progress(&l.node);
            let matrix = rank_of(&l.matrix, (l.matrix.nrows(), l.matrix.ncols()), l.eps, rule)?;
            let singular_values = matrix.singular_values.clone();
            Some(FirstLayerInfo {
                node: l.node.clone(),
                op: l.op.clone(),
                weight_shape: l.weight_shape.clone(),
                kernel: l.kernel.clone(),
                strides: l.strides.clone(),
                pads: l.pads.clone(),
                group: l.group,
                matrix,
                singular_values,
            })
        }
        None => None,
    };
    let (input_dim, output_dim) = (fe.input_dim(), fe.output_dim());
    let nullity = ns.filter(|n| n.nullity_exact).map(|n| n.nullity);
    let method = ns.map(|n| n.method.clone());
    let front_end = FrontEndInfo {
        ops: fe.ops.clone(),
        kind: fe.kind,
        input_dim,
        output_dim,
        nullity,
        null_fraction: nullity.map(|d| d as f64 / input_dim as f64),
        nullity_lower_bound: input_dim
            .saturating_sub(output_dim)
            .max(ns.filter(|_| rule.relative.is_none()).map_or(0, |n| n.nullity)),
        method,
        smallest_singular_value: ns.map(|n| n.smallest_singular_value()),
        smallest_singular_value_upper_bound: ns.and_then(|n| n.smallest_singular_value_upper_bound()),
        directions_within_budget: ns
            .filter(|n| !n.nullity_exact && rule.relative.is_some())
            .map(|n| n.nullity),
        response_bound: ns.filter(|_| rule.relative.is_some()).map(|n| n.response_bound),
        limitation: fe.limitation.clone(),
        rank_rule: rule.describe(),
        blocks: ns.map_or(vec![], |n| {
            n.block_ranks
                .iter()
                .map(|(count, rank)| BlockInfo {
                    count: *count,
                    rank: rank.clone(),
                })
                .collect()
        }),
        uncovered_pixels: ns.map(|n| n.uncovered.len()),
    };
    let layers = layer_profile(model, rule, progress)?;
    Ok(AuditReport {
        model: model.path.display().to_string(),
        input: InputInfo::of(model),
        front_end,
        first_layer,
        layers,
    })
}

/// Every Conv/Gemm/MatMul with a constant weight, as (rows = outputs, cols = fan-in).
pub fn layer_profile(model: &Model, rule: RankRule, progress: &dyn Fn(&str)) -> Result<Vec<LayerInfo>> {
    let g = &model.graph;
    let mut layers = vec![];
    for node in &g.graph.node {
        let op = node.op_type.as_str();
        if !matches!(op, "Conv" | "Gemm" | "MatMul") || node.input.len() < 2 {
            continue;
        }
        let (w_name, weight_first) = if g.is_constant(&node.input[1]) {
            (&node.input[1], false)
        } else if op == "MatMul" && g.is_constant(&node.input[0]) {
            (&node.input[0], true)
        } else {
            continue;
        };
        let Some(w) = g.constant(w_name)? else { continue };
        let Some(matrix) = crate::frontend::weight_matrix(node, &w, weight_first) else {
            continue;
        };
        if w.values.iter().any(|v| !v.is_finite()) {
            anyhow::bail!("{op} node {} has non-finite weights", node_label(node));
        }
        progress(&node_label(node));
        let eps = if w.eps > 0.0 { w.eps } else { EPS_F32 };
        let r = rank_of(&matrix, (matrix.nrows(), matrix.ncols()), eps, rule)?;
        layers.push(LayerInfo {
            node: node_label(node),
            op: op.to_string(),
            weight_shape: w.shape.clone(),
            rows: r.rows,
            cols: r.cols,
            rank: r.rank,
            nullity: r.nullity,
        });
    }
    Ok(layers)
}
