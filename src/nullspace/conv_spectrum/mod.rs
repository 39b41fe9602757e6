//! The Fourier / polyphase view of a convolution.
//!
//! A stride-s convolution is a stride-1 convolution from `C_in · s_h · s_w` *phase channels*: the
//! pixel y = s·Y + a belongs to phase a at polyphase position Y, and tap k (offset k·d − pad =
//! s·q + a) reads phase a shifted by q. On an infinite image the operator is therefore diagonal
//! in frequency, group by group, with the complex *symbol*
//!
//! ```text
//! W_g(ω)[o, (c, a_h, a_w)] = Σ_taps w[o, c, k_h, k_w] · e^{i(ω_h q_h + ω_w q_w)}
//! ```
//!
//! of size (C_out/g) × (C_in/g · s_h · s_w). A finite image is a *section* of that operator, and
//! this module uses the symbol for three things:
//!
//! * [`structural_nullity`]: the nullity of the whole-image operator under the numpy rank rule,
//!   cheaply and only where it can be proved (see the function);
//! * the spectrum: σ_max and σ_min of the operator estimated from the symbol, with a concrete
//!   witness direction whose measured ‖Aδ‖/‖δ‖ bounds the smallest singular value from above;
//! * [`CirculantPreconditioner`](super::circulant_preconditioner::CirculantPreconditioner): (W Wᴴ + ε)⁻¹ frequency by frequency on the output grid, an
//!   approximate inverse of A Aᵀ for the conjugate-gradient null-space projection.

use crate::linop::{Conv2d, LinearOperator};
use crate::nullspace::conv_certificate::{certify_full_rank_within, NoCertificate, RankCertificate};
use crate::nullspace::RankRule;
use faer::{c64, Mat};
use rayon::prelude::*;
use std::collections::HashMap;
use std::f64::consts::PI;

use super::polyphase::axis_phase;
pub use super::polyphase::PolyphaseSymbol;

mod estimates;

use estimates::{estimate_grid, grid_points, prove_floor, witnesses};

fn index_of(keep: &[bool]) -> Vec<Option<usize>> {
    let mut next = 0;
    keep.iter()
        .map(|&k| {
            k.then(|| {
                next += 1;
                next - 1
            })
        })
        .collect()
}

/// Singular values, largest first (empty for an empty matrix).
fn singular_values(m: &Mat<c64>) -> Vec<f64> {
    if m.nrows() == 0 || m.ncols() == 0 {
        return vec![];
    }
    crate::nullspace::dense_svd::singular_values(m.as_ref())
        .unwrap_or_else(|_| vec![f64::NAN; m.nrows().min(m.ncols())])
}

/// Which finite sections the symbol bounds from below.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Section {
    /// No output reads padding: A Aᵀ is a compression of the infinite L Lᵀ, so for a short-fat
    /// symbol σ_min(A on its output side) ≥ inf_ω σ_min(W(ω)).
    Valid,
    /// Every output that reads a real pixel is computed: ‖A x‖ = ‖L x‖, so for a tall symbol
    /// σ_min(A on its input side) ≥ inf_ω σ_min(W(ω)).
    Full,
    Neither,
}

fn section_kind(conv: &Conv2d) -> Section {
    let g = &conv.geometry;
    let axis = |a: usize| -> (bool, bool) {
        let (size, k, s, d) = (
            g.in_shape[1 + a] as isize,
            g.kernel[a] as isize,
            g.strides[a] as isize,
            g.dilations[a] as isize,
        );
        let (pad, out) = (g.pads[a] as isize, g.out[a] as isize);
        let span = (k - 1) * d;
        let valid = pad == 0 && (out - 1) * s + span - pad < size;
        // first output whose last tap lands at y ≥ 0; last output whose first tap lands at y ≤ size − 1
        let first = (pad - span).div_euclid(s) + if (pad - span).rem_euclid(s) == 0 { 0 } else { 1 };
        let last = (size - 1 + pad).div_euclid(s);
        let full = first >= 0 && last < out;
        (valid, full)
    };
    let (h, w) = (axis(0), axis(1));
    if h.0 && w.0 {
        Section::Valid
    } else if h.1 && w.1 {
        Section::Full
    } else {
        Section::Neither
    }
}

/// A concrete direction and how much of it the operator keeps.
#[derive(Clone, Debug)]
pub struct Witness {
    /// Input-side (length input_dim, ratio ‖A δ‖/‖δ‖) or output-side (length output_dim,
    /// ratio ‖Aᵀ δ‖/‖δ‖).
    pub direction: Vec<f64>,
    pub ratio: f64,
    /// Where it came from, for people.
    pub origin: String,
}

/// What the structure of a convolution says about its null space on one whole image.
#[derive(Clone, Debug)]
pub struct StructuralNullity {
    /// The nullity of `conv.to_dense()` with rank tolerance `rule.tolerance(σ_max, weight_dims,
    /// eps)`, where proved (see [`structural_nullity`]); `None` where the method cannot decide.
    pub nullity: Option<usize>,
    /// What the nullity is if the live part (dead channels and unread pixels removed) has full
    /// rank on its short side: exact zeros plus max(0, live inputs − live outputs), group by
    /// group. Equal to `nullity` when that is `Some` (which it replaces); otherwise an
    /// expectation, not a proof.
    pub expected_nullity: usize,
    /// max(0, input_dim − output_dim): no operator has less.
    pub lower_bound: usize,
    pub input_dim: usize,
    pub output_dim: usize,
    /// Which method produced `nullity` (or why there is none), and on what grid.
    pub method: String,
    /// Largest singular value: exact for patch-wise convolutions, otherwise the largest over the
    /// frequency grid of σ_max(W(ω)), the infinite-image norm (an upper bound of the finite one
    /// up to the grid's resolution, and close to it for images much larger than the kernel).
    pub sigma_max: f64,
    /// Estimate of the smallest singular value of the whole operator on its short side, i.e. the
    /// min(input_dim, output_dim)-th singular value: 0 when the exact zeros (dead output
    /// channels, unread pixels) already leave it rank-deficient there; exact for patch-wise
    /// convolutions; otherwise the smallest, over groups and the frequency grid, of the smallest
    /// singular value of the live symbol (what an infinite image would give; padding can make
    /// the finite operator's smaller, never the other way round in the `Valid`/`Full` sections).
    pub sigma_min: f64,
    /// A rigorous lower bound of that singular value where one is proved (patch-wise exact, or
    /// the symbol bound of a valid / full section over the continuous torus).
    pub sigma_min_lower_bound: Option<f64>,
    /// `rule.tolerance(sigma_max, …)`.
    pub tolerance: f64,
    /// Output channels whose filter is all zero.
    pub dead_output_channels: usize,
    /// Rows of the operator that are exactly zero (dead channels, outputs that read only padding).
    pub zero_outputs: usize,
    /// Pixels no non-zero tap reads: exact null directions on their own.
    pub unread_pixels: usize,
    /// A plane wave at the worst frequency of the grid (tapered or not, whichever is worse)
    /// built from the smallest right singular vector: ‖Aδ‖/‖δ‖ ≥ σ_n(A), the smallest singular
    /// value when A is tall (when A is short-fat, σ_n = 0 and this says how close to a null
    /// direction a plane wave gets).
    pub input_witness: Witness,
    /// The same on the output side from the smallest left singular vector: ‖Aᵀy‖/‖y‖ ≥ σ_m(A),
    /// the smallest singular value when A is short-fat.
    pub output_witness: Witness,
}

impl StructuralNullity {
    /// min(witness ratios on the short side): a rigorous upper bound of `sigma_min`'s target.
    pub fn sigma_min_upper_bound(&self) -> f64 {
        if self.output_dim <= self.input_dim {
            self.output_witness.ratio
        } else {
            self.input_witness.ratio
        }
    }
}

/// Which rows (outputs) and columns (pixels) of A hold a non-zero entry.
struct ZeroStructure {
    row_live: Vec<bool>,
    col_live: Vec<bool>,
}

fn zero_structure(conv: &Conv2d) -> ZeroStructure {
    // Each (output, pixel) entry is a single weight (distinct taps read distinct pixels), so
    // |A| is A with |w| and its row / column sums vanish exactly where A's rows / columns do.
    let abs = Conv2d {
        weight: conv.weight.iter().map(|w| w.abs()).collect(),
        ..conv.clone()
    };
    let rows = abs.apply_vec(&vec![1.0; abs.input_dim()]);
    let cols = abs.adjoint_vec(&vec![1.0; abs.output_dim()]);
    ZeroStructure {
        row_live: rows.iter().map(|&v| v > 0.0).collect(),
        col_live: cols.iter().map(|&v| v > 0.0).collect(),
    }
}

/// The convolution is patch-wise in polyphase terms: every phase is read with one shift only, so
/// every pixel feeds one output position and A is block-diagonal (one block per position).
fn is_patchwise(conv: &Conv2d) -> bool {
    let g = &conv.geometry;
    (0..2).all(|a| {
        let mut shift_of_phase: HashMap<usize, isize> = HashMap::new();
        (0..g.kernel[a]).all(|k| {
            let (phase, q) = axis_phase(k, g.dilations[a], g.pads[a], g.strides[a]);
            *shift_of_phase.entry(phase).or_insert(q) == q
        })
    })
}

/// Exact singular values of a patch-wise convolution: one small SVD per distinct block (blocks
/// differ only by which taps fall into padding), with multiplicities.
fn patchwise_singular_values(conv: &Conv2d) -> (Vec<(f64, usize)>, usize) {
    let g = &conv.geometry;
    let [c, h, w] = g.in_shape;
    let [kh, kw] = g.kernel;
    let in_per_group = c / g.group;
    let out_per_group = conv.out_channels / g.group;
    let masks = |a: usize, size: usize| -> HashMap<Vec<bool>, usize> {
        let mut count = HashMap::new();
        for p in 0..g.out[a] {
            let mask: Vec<bool> = (0..g.kernel[a])
                .map(|k| {
                    let y = (p * g.strides[a] + k * g.dilations[a]) as isize - g.pads[a] as isize;
                    y >= 0 && (y as usize) < size
                })
                .collect();
            *count.entry(mask).or_insert(0) += 1;
        }
        count
    };
    let (mh, mw) = (masks(0, h), masks(1, w));
    let distinct_blocks = mh.len() * mw.len();
    let mut values = vec![];
    for (mask_h, nh) in &mh {
        for (mask_w, nw) in &mw {
            let taps: Vec<(usize, usize)> = (0..kh)
                .filter(|&y| mask_h[y])
                .flat_map(|y| (0..kw).filter(|&x| mask_w[x]).map(move |x| (y, x)))
                .collect();
            // Rows: output channels; columns: (input channel, tap); groups stay block-diagonal.
            let block = Mat::<f64>::from_fn(conv.out_channels, c * taps.len(), |o, j| {
                let (ch, (ky, kx)) = (j / taps.len(), taps[j % taps.len()]);
                if ch / in_per_group != o / out_per_group {
                    return 0.0;
                }
                conv.weight[((o * in_per_group + ch % in_per_group) * kh + ky) * kw + kx]
            });
            if block.ncols() == 0 {
                continue;
            }
            let sv = crate::nullspace::dense_svd::singular_values(block.as_ref()).unwrap_or_default();
            values.extend(sv.into_iter().map(|s| (s, nh * nw)));
        }
    }
    values.sort_by(|a, b| b.0.total_cmp(&a.0));
    (values, distinct_blocks)
}

/// The k-th largest (1-based) of values with multiplicities; 0 when there are fewer.
fn kth_largest(values: &[(f64, usize)], k: usize) -> f64 {
    let mut seen = 0;
    for &(s, n) in values {
        seen += n;
        if seen >= k {
            return s;
        }
    }
    0.0
}

/// How much work [`structural_nullity_with`] spends on estimates and proofs.
#[derive(Clone, Copy, Debug)]
pub struct Effort {
    /// Largest frequency grid side for the σ estimates and witnesses.
    pub max_grid: usize,
    /// Symbol evaluations for one branch-and-bound proof of the symbol bound.
    pub proof_budget: usize,
    /// n · bandwidth² up to which the banded Cholesky certificate is run.
    pub certificate_budget: f64,
}

impl Effort {
    /// What `audit` spends on one model: the certificate where it costs up to 1e12 operations
    /// (a 3×3 stride-2 stem at 224²: tens of seconds on 2 cores).
    pub const AUDIT: Effort = Effort {
        max_grid: 96,
        proof_budget: 200_000,
        certificate_budget: 1e12,
    };
    /// What a search (`collide`, `attack`) spends before it starts: the audit's estimates, and
    /// the certificate only where it takes seconds.
    pub const SEARCH: Effort = Effort {
        certificate_budget: crate::nullspace::conv_certificate::MAX_FLOPS,
        ..Effort::AUDIT
    };
    /// What the survey spends on each of its dozens of architectures: coarser σ estimates; the
    /// counts themselves are the same.
    pub const SURVEY: Effort = Effort {
        max_grid: 24,
        proof_budget: 20_000,
        certificate_budget: crate::nullspace::conv_certificate::MAX_FLOPS,
    };
}

/// The nullity of a convolution on one whole image, from its structure, without forming the
/// operator at real sizes.
///
/// Method, in order (the first that applies decides; every `Some` is a proof, up to the rounding
/// of the dense SVD it is compared with):
/// 1. Exact zeros: rows of A that are zero (dead output channels, outputs that read only padding)
///    and columns that are zero (pixels no non-zero tap reads) are counted exactly and removed;
///    they change neither σ_max nor any other singular value. What is left, group by group, is
///    A'_g (m'_g × n'_g), and nullity = zero columns + Σ_g (n'_g − rank A'_g).
/// 2. Patch-wise convolutions (every phase read with one shift: stride ≥ span, ViT/ConvNeXt
///    stems): A is block-diagonal, one block per output position, and the blocks differ only by
///    their padding; the distinct blocks' SVDs give every singular value exactly.
/// 3. The symbol bound: if no output reads padding (`Valid`), A'A'ᵀ is a compression of the
///    infinite operator L Lᵀ, whose spectrum is that of W(ω)W(ω)ᴴ, so the smallest singular
///    value of A' on its output side is ≥ inf_ω σ_min(W_live(ω)) when W_live is short-fat;
///    symmetrically if every output that reads a pixel is computed (`Full`) and W_live is tall.
///    The infimum over the *continuous* torus is bounded by branch and bound with the
///    Lipschitz constant of W. If it exceeds the tolerance (computed from a proved upper bound
///    of σ_max), rank A'_g = min(m'_g, n'_g).
/// 4. Small images: a Cholesky factorisation of A'_g's short-side Gram matrix minus tolerance²
///    (and a rounding allowance) succeeds, so rank A'_g = min(m'_g, n'_g).
///
/// Otherwise `None`: with zero padding the finite operator is not a compression of the infinite
/// one (a square section of a symbol with winding number ≠ 0 is exponentially ill-conditioned
/// although |W(ω)| never vanishes), so a frequency count proves nothing; `expected_nullity` and
/// the σ estimates say what to expect.
pub fn structural_nullity(conv: &Conv2d, eps: f64, rule: RankRule) -> StructuralNullity {
    structural_nullity_with(conv, eps, rule, Effort::SEARCH, &|_, _| {})
}

/// The symbol's spectrum on the frequency grid, per group.
struct GroupSpectrum {
    sigma_max: f64,
    sigma_max_upper: f64,
    /// smallest singular value of the live symbol on the grid, and where
    sigma_short: f64,
    worst: [f64; 2],
    live_row_index: Vec<Option<usize>>,
    live_col_index: Vec<Option<usize>>,
}

/// Per group: σ_max over the grid (and an upper bound from the symbol's Lipschitz constants over
/// each cell), and the smallest singular value of the live symbol with the frequency where it is.
fn group_spectra(symbol: &PolyphaseSymbol, groups: usize, points: &[[f64; 2]], cell: [f64; 2]) -> Vec<GroupSpectrum> {
    let all_rows: Vec<Option<usize>> = (0..symbol.rows).map(Some).collect();
    let all_cols: Vec<Option<usize>> = (0..symbol.columns).map(Some).collect();
    (0..groups)
        .map(|g| {
            let live_row_index = index_of(&symbol.live_rows(g));
            let live_col_index = index_of(&symbol.live_columns(g));
            let values: Vec<(f64, f64)> = points
                .par_iter()
                .map(|&omega| {
                    let full = singular_values(&symbol.at(g, omega));
                    let live = singular_values(&symbol.at_restricted(g, omega, &live_row_index, &live_col_index));
                    (
                        full.first().copied().unwrap_or(0.0),
                        live.last().copied().unwrap_or(0.0),
                    )
                })
                .collect();
            let sigma_max = values.iter().map(|v| v.0).fold(0.0, f64::max);
            let lipschitz = symbol.lipschitz(g, &all_rows, &all_cols);
            let (k, sigma_short) = values
                .iter()
                .enumerate()
                .map(|(k, v)| (k, v.1))
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .unwrap_or((0, 0.0));
            GroupSpectrum {
                sigma_max,
                sigma_max_upper: sigma_max + cell[0] * lipschitz[0] + cell[1] * lipschitz[1],
                sigma_short,
                worst: points[k],
                live_row_index,
                live_col_index,
            }
        })
        .collect()
}

/// [`structural_nullity`] with a chosen effort; `progress` hears the certificate's (blocks
/// factored, blocks) where one runs.
pub fn structural_nullity_with(
    conv: &Conv2d,
    eps: f64,
    rule: RankRule,
    effort: Effort,
    progress: &dyn Fn(usize, usize),
) -> StructuralNullity {
    let geometry = &conv.geometry;
    let [c, h, w] = geometry.in_shape;
    let [oh, ow] = geometry.out;
    let [kh, kw] = geometry.kernel;
    let groups = geometry.group;
    let (in_per_group, out_per_group) = (c / groups, conv.out_channels / groups);
    let weight_dims = (conv.out_channels, in_per_group * kh * kw);
    let (n, m) = (conv.input_dim(), conv.output_dim());
    let symbol = PolyphaseSymbol::of(conv);

    // 1. exact zeros, by group
    let zeros = zero_structure(conv);
    let rows_of_group = |g: usize| g * out_per_group * oh * ow..(g + 1) * out_per_group * oh * ow;
    let cols_of_group = |g: usize| g * in_per_group * h * w..(g + 1) * in_per_group * h * w;
    let live_rows: Vec<Vec<usize>> = (0..groups)
        .map(|g| rows_of_group(g).filter(|&r| zeros.row_live[r]).collect())
        .collect();
    let live_cols: Vec<Vec<usize>> = (0..groups)
        .map(|g| cols_of_group(g).filter(|&j| zeros.col_live[j]).collect())
        .collect();
    let zero_outputs = m - live_rows.iter().map(Vec::len).sum::<usize>();
    let unread_pixels = n - live_cols.iter().map(Vec::len).sum::<usize>();
    let dead_output_channels = (0..groups)
        .map(|g| symbol.live_rows(g).iter().filter(|&&l| !l).count())
        .sum();
    let expected_nullity = unread_pixels
        + (0..groups)
            .map(|g| live_cols[g].len().saturating_sub(live_rows[g].len()))
            .sum::<usize>();
    let short_rank_possible: usize = (0..groups).map(|g| live_rows[g].len().min(live_cols[g].len())).sum();
    let structurally_deficient = short_rank_possible < m.min(n);

    // σ over the frequency grid, per group: full symbol (σ_max) and live symbol (σ_short)
    let patchwise = is_patchwise(conv);
    // Patch-wise convolutions are decided exactly, and their symbol's singular values do not
    // depend on ω (every phase is read with one shift: W(ω) = W(0)·diag(e^{iω·q})): one
    // frequency places their witnesses.
    let grid = if patchwise {
        [1, 1]
    } else {
        estimate_grid(conv, effort.max_grid)
    };
    let points = grid_points(grid);
    let cell = [PI / grid[0] as f64, PI / grid[1] as f64];
    let all_rows: Vec<Option<usize>> = (0..symbol.rows).map(Some).collect();
    let all_cols: Vec<Option<usize>> = (0..symbol.columns).map(Some).collect();
    let spectra = group_spectra(&symbol, groups, &points, cell);
    let mut sigma_max = spectra.iter().map(|s| s.sigma_max).fold(0.0, f64::max);
    let sigma_max_upper = spectra.iter().map(|s| s.sigma_max_upper).fold(0.0, f64::max);
    let mut sigma_min = if structurally_deficient {
        0.0
    } else {
        spectra.iter().map(|s| s.sigma_short).fold(f64::INFINITY, f64::min)
    };
    let mut sigma_min_lower_bound = structurally_deficient.then_some(0.0);

    let mut nullity = None;
    let mut method;
    if m == 0 || n == 0 || short_rank_possible == 0 {
        nullity = Some(n);
        method = "exact zeros: the operator is zero".to_string();
        sigma_min_lower_bound = Some(0.0);
    } else if patchwise {
        // 2. patch-wise: exact
        let (values, distinct_blocks) = patchwise_singular_values(conv);
        sigma_max = values.first().map_or(0.0, |v| v.0);
        let tolerance = rule.tolerance(sigma_max, weight_dims, eps);
        let rank: usize = values.iter().filter(|v| v.0 > tolerance).map(|v| v.1).sum();
        nullity = Some(n - rank);
        sigma_min = kth_largest(&values, m.min(n));
        sigma_min_lower_bound = Some(sigma_min);
        method = format!(
            "patch-wise convolution: exact SVDs of the {} distinct blocks (one per output position, {}×{} positions)",
            distinct_blocks, oh, ow
        );
    } else {
        let tolerance_upper = rule.tolerance(sigma_max_upper, weight_dims, eps);
        // strictly above the tolerance, with room for the rounding of the SVD we are compared with
        let target = tolerance_upper * (1.0 + 1e-9) + 1e-13 * sigma_max_upper;
        let section = section_kind(conv);
        let mut undecided = vec![];
        let mut how = vec![];
        let mut symbol_floor = f64::INFINITY;
        let mut banded: Option<Result<RankCertificate, NoCertificate>> = None;
        for g in 0..groups {
            let (mg, ng) = (live_rows[g].len(), live_cols[g].len());
            if mg == 0 || ng == 0 {
                how.push(format!("group {g}: no live rows or columns"));
                continue;
            }
            let spectrum = &spectra[g];
            let (r, cc) = (
                spectrum.live_row_index.iter().flatten().count(),
                spectrum.live_col_index.iter().flatten().count(),
            );
            // 3. the symbol bound, where the section is a compression
            let bound_side = match section {
                Section::Valid if r <= cc && mg <= ng => Some((&spectrum.live_row_index, &all_cols, "valid")),
                Section::Full if r >= cc && mg >= ng => Some((&all_rows, &spectrum.live_col_index, "full")),
                _ => None,
            };
            if let Some((row_index, col_index, name)) = bound_side {
                let lipschitz = symbol.lipschitz(g, row_index, col_index);
                let f = |omega: [f64; 2]| -> f64 {
                    singular_values(&symbol.at_restricted(g, omega, row_index, col_index))
                        .last()
                        .copied()
                        .unwrap_or(0.0)
                };
                // Aim for half the grid minimum (a useful bound); fall back to the tolerance.
                let mut proof = prove_floor(
                    &f,
                    lipschitz,
                    target.max(0.5 * spectrum.sigma_short),
                    grid,
                    effort.proof_budget,
                );
                if !proof.certified {
                    proof = prove_floor(&f, lipschitz, target, grid, effort.proof_budget);
                }
                if proof.certified {
                    symbol_floor = symbol_floor.min(proof.lower_bound);
                    how.push(format!(
                        "group {g}: {name} section, inf over the torus of σ_min(W) ≥ {:.3e} > tolerance ({} symbol evaluations)",
                        proof.lower_bound, proof.evaluations
                    ));
                    continue;
                }
            }
            // 4. a banded Cholesky factorisation of the whole operator's short-side Gram matrix
            //    (see `conv_certificate`), where affordable
            if let Ok(proof) = banded.get_or_insert_with(|| {
                certify_full_rank_within(conv, tolerance_upper, effort.certificate_budget, progress)
            }) {
                how.push(format!(
                    "group {g}: banded Cholesky certificate of the whole operator's Gram matrix over its {n} {side} (bandwidth {b}) minus tolerance² and a rounding margin",
                    n = proof.gram_size,
                    side = proof.side,
                    b = proof.bandwidth
                ));
                continue;
            }
            undecided.push(g);
        }
        if undecided.is_empty() {
            nullity = Some(expected_nullity);
            if symbol_floor.is_finite() && how.iter().all(|s| s.contains("section")) {
                sigma_min_lower_bound = Some(if structurally_deficient { 0.0 } else { symbol_floor });
            }
            method = format!(
                "exact zeros ({zero_outputs} rows, {unread_pixels} columns) removed, full rank of the rest proved: {}",
                how.join("; ")
            );
        } else {
            method = format!(
                "not decided for group(s) {undecided:?}: {}, and {}; \
                 expected {expected_nullity} if the live part has full rank (grid {}×{}: σ_min/σ_max ≈ {:.2e}, tolerance/σ_max = {:.2e})",
                match section {
                    Section::Valid => "the symbol of a valid section is not bounded away from the tolerance".to_string(),
                    Section::Full => "the symbol of a full section is not bounded away from the tolerance".to_string(),
                    Section::Neither =>
                        "padding makes the image a non-compressive section of the infinite operator, where the symbol bounds nothing".to_string(),
                },
                match &banded {
                    Some(Err(why)) => why.to_string(),
                    _ => "no banded Cholesky certificate was tried".to_string(),
                },
                grid[0],
                grid[1],
                sigma_min / sigma_max.max(f64::MIN_POSITIVE),
                rule.tolerance(sigma_max, weight_dims, eps) / sigma_max.max(f64::MIN_POSITIVE),
            );
        }
        method = format!("{method} [frequency grid {}×{}]", grid[0], grid[1]);
    }
    let tolerance = rule.tolerance(sigma_max, weight_dims, eps);
    // Block structure can make the exact count differ from the structural expectation (patch-wise
    // border blocks with fewer pixels than outputs); a proved count wins.
    let expected_nullity = nullity.unwrap_or(expected_nullity);

    // witnesses: plane waves at the worst frequency of the worst group
    let worst_group = (0..groups)
        .min_by(|&a, &b| spectra[a].sigma_short.total_cmp(&spectra[b].sigma_short))
        .unwrap_or(0);
    let (input_witness, output_witness) = witnesses(conv, &symbol, &zeros, worst_group, spectra[worst_group].worst);

    StructuralNullity {
        nullity,
        expected_nullity,
        lower_bound: n.saturating_sub(m),
        input_dim: n,
        output_dim: m,
        method,
        sigma_max,
        sigma_min,
        sigma_min_lower_bound,
        tolerance,
        dead_output_channels,
        zero_outputs,
        unread_pixels,
        input_witness,
        output_witness,
    }
}
