//! How far two maps agree: largest difference, relative difference, Pearson correlation and the
//! overlap of their top 10 % (by magnitude).

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Agreement {
    /// max |a − b|.
    pub max_abs_diff: f64,
    /// max |a − b| / max |a| (a: the original's map); max |a − b| where a is all zero.
    pub rel_diff: f64,
    /// Pearson correlation of the values; null (NaN) where either map is constant.
    pub pearson: f64,
    /// |top(a) ∩ top(b)| / k for the k = ⌈n / 10⌉ largest |values| of each (ties: lower index
    /// first); null (NaN) where either map is all zero.
    pub top10_overlap: f64,
}

/// The agreement of map `b` with map `a` (the reference).
pub fn agreement(a: &[f64], b: &[f64]) -> Agreement {
    assert_eq!(a.len(), b.len(), "maps of different sizes");
    let max_abs_diff = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
    let scale = a.iter().map(|v| v.abs()).fold(0.0, f64::max);
    Agreement {
        max_abs_diff,
        rel_diff: if scale > 0.0 {
            max_abs_diff / scale
        } else {
            max_abs_diff
        },
        pearson: pearson(a, b),
        top10_overlap: top_overlap(a, b, 0.1),
    }
}

pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    if a.is_empty() {
        return f64::NAN;
    }
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        let (dx, dy) = (x - ma, y - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    if saa == 0.0 || sbb == 0.0 {
        return f64::NAN;
    }
    (sab / (saa.sqrt() * sbb.sqrt())).clamp(-1.0, 1.0)
}

/// Indices of the k largest |values| (ties: the lower index first).
pub fn top_indices(v: &[f64], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&i, &j| v[j].abs().total_cmp(&v[i].abs()).then(i.cmp(&j)));
    idx.truncate(k);
    idx
}

/// |top(a) ∩ top(b)| / k with k = ⌈fraction · n⌉ (at least 1); NaN where either map is all zero
/// (it has no top).
pub fn top_overlap(a: &[f64], b: &[f64], fraction: f64) -> f64 {
    let zero = |v: &[f64]| v.iter().all(|x| *x == 0.0);
    if a.is_empty() || zero(a) || zero(b) {
        return f64::NAN;
    }
    let k = ((fraction * a.len() as f64).ceil() as usize).clamp(1, a.len());
    let mut in_a = vec![false; a.len()];
    for i in top_indices(a, k) {
        in_a[i] = true;
    }
    top_indices(b, k).into_iter().filter(|&i| in_a[i]).count() as f64 / k as f64
}
