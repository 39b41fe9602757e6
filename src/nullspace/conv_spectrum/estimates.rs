//! The spectrum read off the symbol on a frequency grid: σ estimates, the proof of a floor under
//! the symbol's smallest singular value, and witness directions whose measured ‖Aδ‖/‖δ‖ bound the
//! operator's smallest singular value from above.

use super::*;

/// The frequency grid used for estimates: even sizes, so that ω = 0 and ω = π are on it.
pub(crate) fn estimate_grid(conv: &Conv2d, max_grid: usize) -> [usize; 2] {
    // Keep the number of small SVDs bounded for many groups (depthwise).
    let cap = ((150_000 / conv.geometry.group.max(1)) as f64)
        .sqrt()
        .clamp(8.0, max_grid.max(8) as f64) as usize;
    let pick = |out: usize| {
        let g = out.clamp(16, 96).min(cap).max(8);
        g + g % 2
    };
    [pick(conv.geometry.out[0]), pick(conv.geometry.out[1])]
}

pub(crate) fn grid_points(grid: [usize; 2]) -> Vec<[f64; 2]> {
    let mut points = Vec::with_capacity(grid[0] * grid[1]);
    for i in 0..grid[0] {
        for j in 0..grid[1] {
            points.push([
                2.0 * PI * i as f64 / grid[0] as f64,
                2.0 * PI * j as f64 / grid[1] as f64,
            ]);
        }
    }
    points
}

/// The outcome of a branch-and-bound proof that inf over the torus of an L-Lipschitz function
/// exceeds a target.
#[derive(Clone, Debug)]
pub(crate) struct FloorProof {
    pub(crate) certified: bool,
    /// When certified: a rigorous lower bound of the infimum (≥ target).
    pub(crate) lower_bound: f64,
    pub(crate) evaluations: usize,
}

/// Proves inf_ω f(ω) > target on [0, 2π)² for f with |f(ω) − f(ω')| ≤ L·|ω − ω'| (axis-wise),
/// by evaluating f at cell centres and splitting the cells whose Lipschitz bound is not enough.
/// Fails as soon as a centre value is ≤ target (the infimum really is that low) or the budget of
/// evaluations is spent.
pub(crate) fn prove_floor(
    f: &(dyn Fn([f64; 2]) -> f64 + Sync),
    lipschitz: [f64; 2],
    target: f64,
    grid: [usize; 2],
    budget: usize,
) -> FloorProof {
    let mut cells: Vec<([f64; 2], [f64; 2])> = grid_points(grid)
        .into_iter()
        .map(|c| (c, [PI / grid[0] as f64, PI / grid[1] as f64]))
        .collect();
    let (mut evaluations, mut lower_bound) = (0, f64::INFINITY);
    while !cells.is_empty() {
        if evaluations + cells.len() > budget {
            return FloorProof {
                certified: false,
                lower_bound: 0.0,
                evaluations,
            };
        }
        evaluations += cells.len();
        let values: Vec<f64> = cells.par_iter().map(|(c, _)| f(*c)).collect();
        let mut next = vec![];
        for ((centre, half), value) in cells.iter().zip(values) {
            if value.is_nan() || value <= target {
                return FloorProof {
                    certified: false,
                    lower_bound: 0.0,
                    evaluations,
                };
            }
            let bound = value - half[0] * lipschitz[0] - half[1] * lipschitz[1];
            if bound > target {
                lower_bound = lower_bound.min(bound);
                continue;
            }
            let h = [half[0] / 2.0, half[1] / 2.0];
            for dy in [-1.0, 1.0] {
                for dx in [-1.0, 1.0] {
                    next.push(([centre[0] + dy * h[0], centre[1] + dx * h[1]], h));
                }
            }
        }
        cells = next;
    }
    FloorProof {
        certified: true,
        lower_bound,
        evaluations,
    }
}

/// Plane waves e^{iω·Y} v (input side, v the smallest right singular vector of W_g(ω)) and
/// e^{iω·p} u (output side), real and imaginary parts, with and without a sine taper; the best of
/// each side. Exact zero columns / rows are perfect witnesses and win outright.
pub(crate) fn witnesses(
    conv: &Conv2d,
    symbol: &PolyphaseSymbol,
    zeros: &ZeroStructure,
    group: usize,
    omega: [f64; 2],
) -> (Witness, Witness) {
    let g = &conv.geometry;
    let [c, h, w] = g.in_shape;
    let [oh, ow] = g.out;
    let [sh, sw] = g.strides;
    let in_per_group = c / g.group;
    let out_per_group = conv.out_channels / g.group;
    let unit = |len: usize, k: usize| {
        let mut e = vec![0.0; len];
        e[k] = 1.0;
        e
    };
    let measure = |x: Vec<f64>, input_side: bool, origin: String| -> Witness {
        let image = if input_side {
            conv.apply_vec(&x)
        } else {
            conv.adjoint_vec(&x)
        };
        let ratio = crate::linop::norm(&image) / crate::linop::norm(&x).max(f64::MIN_POSITIVE);
        Witness {
            direction: x,
            ratio,
            origin,
        }
    };
    let best = |candidates: Vec<Witness>| {
        candidates
            .into_iter()
            .filter(|w| w.direction.iter().any(|&v| v != 0.0))
            .min_by(|a, b| a.ratio.total_cmp(&b.ratio))
    };
    let svd = crate::nullspace::dense_svd::decompose(
        symbol.at(group, omega).as_ref(),
        crate::nullspace::dense_svd::Vectors::Full,
    )
    .ok();
    let taper = |i: usize, len: usize, tapered: bool| {
        if tapered {
            (PI * (i as f64 + 0.5) / len as f64).sin()
        } else {
            1.0
        }
    };
    let describe = |side: &str, tapered: bool, part: &str| {
        format!(
            "{part} part of a {}plane wave on the {side} side, group {group}, ω = ({:.4}, {:.4})",
            if tapered { "sine-tapered " } else { "" },
            omega[0],
            omega[1]
        )
    };

    let input = if let Some(j) = zeros.col_live.iter().position(|&l| !l) {
        measure(
            unit(conv.input_dim(), j),
            true,
            format!("pixel {j}, read by no non-zero tap"),
        )
    } else {
        let mut candidates = vec![];
        if let Some(v) = svd.as_ref().and_then(|svd| svd.v.as_ref()) {
            let last = v.ncols() - 1;
            for tapered in [false, true] {
                for (rotation, part) in [(c64::new(1.0, 0.0), "real"), (c64::new(0.0, -1.0), "imaginary")] {
                    let mut x = vec![0.0; conv.input_dim()];
                    for ci in 0..in_per_group {
                        let ch = group * in_per_group + ci;
                        for y in 0..h {
                            for xx in 0..w {
                                let col = (ci * sh + y % sh) * sw + xx % sw;
                                let phase = omega[0] * (y / sh) as f64 + omega[1] * (xx / sw) as f64;
                                let value = v[(col, last)] * c64::from_polar(1.0, phase) * rotation;
                                x[(ch * h + y) * w + xx] = value.re * taper(y, h, tapered) * taper(xx, w, tapered);
                            }
                        }
                    }
                    candidates.push(measure(x, true, describe("input", tapered, part)));
                }
            }
        }
        best(candidates).unwrap_or_else(|| measure(unit(conv.input_dim(), 0), true, "pixel 0".into()))
    };

    let output = if let Some(r) = zeros.row_live.iter().position(|&l| !l) {
        measure(unit(conv.output_dim(), r), false, format!("output {r}, exactly zero"))
    } else {
        let mut candidates = vec![];
        if let Some(u) = svd.as_ref().and_then(|svd| svd.u.as_ref()) {
            // the smallest left singular vector (a null vector of Wᴴ when W is tall)
            let last = u.ncols() - 1;
            for tapered in [false, true] {
                for (rotation, part) in [(c64::new(1.0, 0.0), "real"), (c64::new(0.0, -1.0), "imaginary")] {
                    let mut y = vec![0.0; conv.output_dim()];
                    for oi in 0..out_per_group {
                        let o = group * out_per_group + oi;
                        for py in 0..oh {
                            for px in 0..ow {
                                let phase = omega[0] * py as f64 + omega[1] * px as f64;
                                let value = u[(oi, last)] * c64::from_polar(1.0, phase) * rotation;
                                y[(o * oh + py) * ow + px] = value.re * taper(py, oh, tapered) * taper(px, ow, tapered);
                            }
                        }
                    }
                    candidates.push(measure(y, false, describe("output", tapered, part)));
                }
            }
        }
        best(candidates).unwrap_or_else(|| measure(unit(conv.output_dim(), 0), false, "output 0".into()))
    };
    (input, output)
}
