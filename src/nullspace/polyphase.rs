//! The polyphase symbol of a convolution: a stride-s convolution is a stride-1 convolution from
//! C_in · s_h · s_w phase channels, diagonal in frequency group by group on an infinite image,
//! with the complex matrix W_g(ω) of size (C_out/g) × (C_in/g · s_h · s_w) at each frequency
//! (see `conv_spectrum` for what blindspot reads from it).

use crate::linop::Conv2d;
use faer::{c64, Mat};
use std::collections::HashMap;

/// Where tap `k` of one axis lands in polyphase coordinates: offset k·d − pad = s·shift + phase.
pub(crate) fn axis_phase(k: usize, dilation: usize, pad: usize, stride: usize) -> (usize, isize) {
    let offset = (k * dilation) as isize - pad as isize;
    let s = stride as isize;
    (offset.rem_euclid(s) as usize, offset.div_euclid(s))
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct PhaseTap {
    /// output channel within the group
    row: usize,
    /// phase column (c_in within the group, a_h, a_w)
    column: usize,
    shift: [isize; 2],
    weight: f64,
}

/// The polyphase symbol W_g(ω) of a convolution, for every group g.
#[derive(Clone, Debug)]
pub struct PolyphaseSymbol {
    pub groups: usize,
    /// C_out / g
    pub rows: usize,
    /// C_in / g · s_h · s_w, ordered (c, a_h, a_w)
    pub columns: usize,
    pub strides: [usize; 2],
    /// Non-zero taps of each group.
    taps: Vec<Vec<PhaseTap>>,
    /// The smallest and largest polyphase shift q along each axis.
    pub(crate) shift_range: [(isize, isize); 2],
}

impl PolyphaseSymbol {
    pub fn of(conv: &Conv2d) -> Self {
        let g = &conv.geometry;
        let (groups, [kh, kw]) = (g.group, g.kernel);
        let in_per_group = g.in_shape[0] / groups;
        let rows = conv.out_channels / groups;
        let [sh, sw] = g.strides;
        let mut taps = vec![vec![]; groups];
        let mut shift_range = [(isize::MAX, isize::MIN); 2];
        for o in 0..conv.out_channels {
            for ci in 0..in_per_group {
                for ky in 0..kh {
                    let (ah, qh) = axis_phase(ky, g.dilations[0], g.pads[0], sh);
                    for kx in 0..kw {
                        let (aw, qw) = axis_phase(kx, g.dilations[1], g.pads[1], sw);
                        for (a, q) in [(0, qh), (1, qw)] {
                            shift_range[a] = (shift_range[a].0.min(q), shift_range[a].1.max(q));
                        }
                        let weight = conv.weight[((o * in_per_group + ci) * kh + ky) * kw + kx];
                        if weight != 0.0 {
                            taps[o / rows].push(PhaseTap {
                                row: o % rows,
                                column: (ci * sh + ah) * sw + aw,
                                shift: [qh, qw],
                                weight,
                            });
                        }
                    }
                }
            }
        }
        PolyphaseSymbol {
            groups,
            rows,
            columns: in_per_group * sh * sw,
            strides: [sh, sw],
            taps,
            shift_range,
        }
    }

    /// W_g(ω), all rows and columns.
    pub fn at(&self, group: usize, omega: [f64; 2]) -> Mat<c64> {
        let all_rows: Vec<Option<usize>> = (0..self.rows).map(Some).collect();
        let all_cols: Vec<Option<usize>> = (0..self.columns).map(Some).collect();
        self.at_restricted(group, omega, &all_rows, &all_cols)
    }

    /// W_g(ω) with rows and columns renumbered (`None`: left out).
    pub(crate) fn at_restricted(
        &self,
        group: usize,
        omega: [f64; 2],
        row_index: &[Option<usize>],
        col_index: &[Option<usize>],
    ) -> Mat<c64> {
        let nr = row_index.iter().flatten().count();
        let nc = col_index.iter().flatten().count();
        let mut m = Mat::<c64>::zeros(nr, nc);
        // e^{iωq} per axis, tabulated over the few shifts there are.
        let table = |a: usize| -> Vec<c64> {
            let (lo, hi) = self.shift_range[a];
            (lo..=hi.max(lo))
                .map(|q| c64::from_polar(1.0, omega[a] * q as f64))
                .collect()
        };
        let (th, tw) = (table(0), table(1));
        let (lo_h, lo_w) = (self.shift_range[0].0, self.shift_range[1].0);
        for t in &self.taps[group] {
            if let (Some(r), Some(c)) = (row_index[t.row], col_index[t.column]) {
                let e = th[(t.shift[0] - lo_h) as usize] * tw[(t.shift[1] - lo_w) as usize];
                m[(r, c)] += e * t.weight;
            }
        }
        m
    }

    /// Output channels (within the group) with a non-zero filter.
    pub(crate) fn live_rows(&self, group: usize) -> Vec<bool> {
        let mut live = vec![false; self.rows];
        self.taps[group].iter().for_each(|t| live[t.row] = true);
        live
    }

    /// Phase columns some non-zero tap reads.
    pub(crate) fn live_columns(&self, group: usize) -> Vec<bool> {
        let mut live = vec![false; self.columns];
        self.taps[group].iter().for_each(|t| live[t.column] = true);
        live
    }

    /// L with ‖W(ω) − W(ω')‖₂ ≤ L_h |ω_h − ω'_h| + L_w |ω_w − ω'_w| on the kept rows and columns
    /// (Frobenius norm of Σ |q| |w| per entry, since |e^{ix} − e^{iy}| ≤ |x − y|).
    pub(crate) fn lipschitz(&self, group: usize, row_index: &[Option<usize>], col_index: &[Option<usize>]) -> [f64; 2] {
        let mut per_entry: HashMap<(usize, usize), [f64; 2]> = HashMap::new();
        for t in &self.taps[group] {
            if row_index[t.row].is_some() && col_index[t.column].is_some() {
                let e = per_entry.entry((t.row, t.column)).or_insert([0.0; 2]);
                for (sum, shift) in e.iter_mut().zip(t.shift) {
                    *sum += shift.unsigned_abs() as f64 * t.weight.abs();
                }
            }
        }
        let mut l = [0.0; 2];
        for e in per_entry.values() {
            for a in 0..2 {
                l[a] += e[a] * e[a];
            }
        }
        [l[0].sqrt(), l[1].sqrt()]
    }
}
