//! The search inside one activation region and the pixel box: move along the part of a wanted
//! direction that J does not see, stop at the first unit or pixel the move would push over its
//! kink or bound, hold it (its row joins J's, so it keeps its value from then on), and go on —
//! the way the first layer's exact search holds pixels. Nothing is ever clipped: every step ends
//! where the first condition binds.

use super::PixelJacobian;
use crate::differentiable::{Unit, Units};
use crate::linop::{dot, norm};
use anyhow::Result;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::HashMap;

/// Where the walk wants to go.
pub enum Direction<'a> {
    /// Along a fixed direction (a random one), up to a length.
    Random(Vec<f64>),
    /// As far from the original as region and box allow: toward the far side of every pixel.
    Far,
    /// As close to a target image as the collision allows.
    Target(&'a [f64]),
}

pub struct WalkOptions {
    /// The pixel L2 length a `Random` walk stops at.
    pub strength: f64,
    /// Conditions held at most (each costs one adjoint pass).
    pub max_holds: usize,
}

/// What one step stopped at.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Hold {
    Pixel,
    Unit { node: String, op: String },
}

#[derive(Clone, Debug, Serialize)]
pub struct WalkOutcome {
    #[serde(skip)]
    pub z: Vec<f64>,
    /// Rows of J kept (independent) in pixel space.
    pub layer_rank: usize,
    pub units_held: usize,
    pub pixels_held: usize,
    /// Held conditions by node (units) or "pixels".
    pub held_by_node: Vec<(String, usize)>,
    pub steps: usize,
    /// Why the walk ended.
    pub stopped: String,
    /// The smallest margin of any unit at z, recomputed from scratch (≥ 0: one region).
    pub min_unit_margin: f64,
    /// Units whose state at z differs from x's (0: the collision stays in x's region).
    pub units_flipped: usize,
    /// Regions the walk crossed (0: it stayed in x's).
    pub regions_crossed: usize,
}

/// An orthonormal basis of the rows held, in pixel space.
struct Rows {
    basis: Vec<Vec<f64>>,
}

impl Rows {
    /// v minus its part in the span, twice (Gram–Schmidt once more restores orthogonality).
    fn reduce(&self, v: &mut [f64]) {
        for _ in 0..2 {
            let coefficients: Vec<f64> = self.basis.par_iter().map(|q| dot(q, v)).collect();
            for (q, c) in self.basis.iter().zip(coefficients) {
                for (vi, qi) in v.iter_mut().zip(q) {
                    *vi -= c * qi;
                }
            }
        }
    }

    /// Adds a row unless it is (to 1e-9 of its length) in the span already.
    fn add(&mut self, mut row: Vec<f64>) -> bool {
        let before = norm(&row);
        if before == 0.0 {
            return false;
        }
        self.reduce(&mut row);
        let after = norm(&row);
        if after <= 1e-9 * before {
            return false;
        }
        row.iter_mut().for_each(|v| *v /= after);
        self.basis.push(row);
        true
    }
}

/// The step along `d` at which `u` reaches its kink (infinite if it moves away).
fn unit_limit(u: &Unit, at: &[f64], along: &[f64], scale: f64) -> f64 {
    let rate = u.rate(along);
    if rate >= -1e-13 * scale {
        return f64::INFINITY;
    }
    (u.margin + u.rate(at)).max(0.0) / -rate
}

/// Walks from `x` (pixels) inside its activation region and the box [0, 1], along what J does
/// not see of the wanted direction.
pub fn walk(
    j: &PixelJacobian,
    x: &[f64],
    direction: &Direction,
    opts: &WalkOptions,
    progress: &dyn Fn(),
) -> Result<WalkOutcome> {
    let n = x.len();
    let units = j.frozen.units()?;
    let mut rows = Rows { basis: vec![] };
    for r in j.rows(&|| {})? {
        rows.add(r);
    }
    let layer_rank = rows.basis.len();
    let zeros = |name: &str| -> Result<Vec<f64>> { Ok(vec![0.0; j.frozen.value(name)?.len()]) };
    let mut moved: HashMap<String, Vec<f64>> = HashMap::new();
    for set in &units {
        if !moved.contains_key(&set.value) {
            moved.insert(set.value.clone(), zeros(&set.value)?);
        }
    }
    let mut delta = vec![0.0; n];
    let mut pixel_held = vec![false; n];
    let mut unit_held: Vec<Vec<bool>> = units.iter().map(|s| vec![false; s.units.len()]).collect();
    let (mut units_held, mut pixels_held, mut steps) = (0, 0, 0);
    let mut held_by_node: Vec<(String, usize)> = vec![];
    let far: Vec<f64> = x.iter().map(|&v| if v < 0.5 { 1.0 } else { -1.0 }).collect();
    let stopped = loop {
        if units_held + pixels_held >= opts.max_holds {
            break format!("held {} conditions, the limit", opts.max_holds);
        }
        let wanted: Vec<f64> = match direction {
            Direction::Random(r) => r.clone(),
            Direction::Far => far.clone(),
            Direction::Target(t) => t.iter().zip(x).zip(&delta).map(|((t, x), d)| t - x - d).collect(),
        };
        let mut d = wanted.clone();
        rows.reduce(&mut d);
        for (di, &h) in d.iter_mut().zip(&pixel_held) {
            if h {
                *di = 0.0;
            }
        }
        let dn = norm(&d);
        if dn <= 1e-10 * norm(&wanted).max(f64::MIN_POSITIVE) {
            break "no direction is left that the layer, the units held and the pixel box allow".into();
        }
        steps += 1;
        let along = j.tangents(&d)?;
        // The goal along d: the length asked for, the target's nearest point, or none.
        let goal = match direction {
            Direction::Random(_) => {
                let (b, c) = (dot(&delta, &d), dot(&delta, &delta) - opts.strength * opts.strength);
                let a = dn * dn;
                (-b + (b * b - a * c).max(0.0).sqrt()) / a
            }
            Direction::Far => f64::INFINITY,
            Direction::Target(_) => dot(&d, &wanted) / (dn * dn),
        };
        let mut step = goal;
        let mut pixel_limits = vec![f64::INFINITY; n];
        for i in 0..n {
            if pixel_held[i] || d[i] == 0.0 {
                continue;
            }
            let z = x[i] + delta[i];
            let limit = if d[i] > 0.0 { (1.0 - z) / d[i] } else { -z / d[i] };
            pixel_limits[i] = limit.max(0.0);
            step = step.min(pixel_limits[i]);
        }
        let mut unit_limits: Vec<Vec<f64>> = Vec::with_capacity(units.len());
        for (s, set) in units.iter().enumerate() {
            let (at, by) = (&moved[&set.value], &along[&set.value]);
            let scale = by.iter().map(|v| v.abs()).fold(0.0, f64::max);
            let limits: Vec<f64> = set
                .units
                .par_iter()
                .zip(&unit_held[s])
                .map(|(u, &h)| if h { f64::INFINITY } else { unit_limit(u, at, by, scale) })
                .collect();
            step = step.min(limits.iter().copied().fold(f64::INFINITY, f64::min));
            unit_limits.push(limits);
        }
        if !step.is_finite() {
            break "the move is unbounded".into();
        }
        for (di, dd) in delta.iter_mut().zip(&d) {
            *di += step * dd;
        }
        for (name, m) in moved.iter_mut() {
            for (mi, ai) in m.iter_mut().zip(&along[name]) {
                *mi += step * ai;
            }
        }
        if step >= goal {
            break "reached the length asked for".into();
        }
        // Hold every condition that binds at this step (ties bind together).
        let binds = |limit: f64| limit <= step * (1.0 + 1e-9) + 1e-300;
        for i in 0..n {
            if binds(pixel_limits[i]) {
                // The step was computed to land on the bound; rounding leaves it an ulp away.
                delta[i] = if d[i] > 0.0 { 1.0 - x[i] } else { -x[i] };
                pixel_held[i] = true;
                pixels_held += 1;
                let mut e = vec![0.0; n];
                e[i] = 1.0;
                rows.add(e);
                count(&mut held_by_node, "pixels");
            }
        }
        for (s, set) in units.iter().enumerate() {
            for (k, &limit) in unit_limits[s].iter().enumerate() {
                if binds(limit) && !unit_held[s][k] {
                    unit_held[s][k] = true;
                    units_held += 1;
                    let seed = j.frozen.unit_seed(set, &set.units[k])?;
                    rows.add(j.pixel_adjoint(&[(set.value.as_str(), seed)])?);
                    count(&mut held_by_node, &set.node);
                }
            }
        }
        progress();
    };
    let z: Vec<f64> = x.iter().zip(&delta).map(|(a, b)| a + b).collect();
    let (min_unit_margin, units_flipped) = region_check(j, &units, &delta)?;
    Ok(WalkOutcome {
        z,
        layer_rank,
        units_held,
        pixels_held,
        held_by_node,
        steps,
        stopped,
        min_unit_margin,
        units_flipped,
        regions_crossed: 0,
    })
}

fn count(by: &mut Vec<(String, usize)>, what: &str) {
    match by.iter_mut().find(|(w, _)| w == what) {
        Some((_, c)) => *c += 1,
        None => by.push((what.to_string(), 1)),
    }
}

/// Every unit's margin at x + delta from a fresh frozen pass: the smallest, and how many are
/// below zero beyond rounding (units that changed state).
pub fn region_check(j: &PixelJacobian, units: &[Units], delta: &[f64]) -> Result<(f64, usize)> {
    let t = j.tangents(delta)?;
    let mut smallest = f64::INFINITY;
    let mut flipped = 0;
    for set in units {
        let by = &t[&set.value];
        let x = j.frozen.value(&set.value)?;
        let scale = x.iter().chain(by.iter()).map(|v| v.abs()).fold(0.0, f64::max);
        for u in &set.units {
            let m = u.margin + u.rate(by);
            smallest = smallest.min(m);
            if m < -1e-9 * scale.max(1.0) {
                flipped += 1;
            }
        }
    }
    Ok((smallest, flipped))
}
