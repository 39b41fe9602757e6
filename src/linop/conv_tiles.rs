//! A convolution seen through disjoint tiles of its input: square tiles separated by gaps just wide
//! enough that no output reads two tiles. Restricted to the tiles (gap values held fixed), the
//! convolution is block-diagonal with disjoint rows, so a dense SVD per distinct tile gives null
//! and near-null directions whose response is bounded exactly: ‖A δ‖ ≤ σ ‖δ‖ for σ the largest
//! singular value used, since the tiles' outputs add in quadrature.

use super::{Block, BlockOperator, Conv2d, LinearOperator};
use faer::Mat;
use std::collections::HashMap;
use std::sync::Arc;

/// Tiles of a convolution's input (in its own coordinates) and the values between them.
pub struct ConvTiles {
    /// One block per tile: its footprint rows × its input values.
    pub blocks: BlockOperator,
    /// Input values in the gaps: they must stay where they are.
    pub gaps: Vec<bool>,
    pub tile: usize,
    /// Gap width per axis.
    pub gap: [usize; 2],
}

impl Conv2d {
    /// Output positions along axis `a` whose window reads input coordinates `lo..hi`.
    fn footprint(&self, a: usize, lo: usize, hi: usize) -> std::ops::Range<usize> {
        let g = &self.geometry;
        let (s, span, pad) = (
            g.strides[a] as isize,
            (g.dilations[a] * (g.kernel[a] - 1) + 1) as isize,
            g.pads[a] as isize,
        );
        // p·s − pad ≤ hi − 1 and p·s − pad + span − 1 ≥ lo
        let first = -(-(lo as isize - span + 1 + pad)).div_euclid(s);
        let last = (hi as isize - 1 + pad).div_euclid(s);
        let first = first.max(0) as usize;
        let end = ((last + 1).max(0) as usize).min(g.out[a]);
        first..end.max(first)
    }

    /// Tile starts along axis `a` for tiles of `tile` values and the smallest gap, a multiple of
    /// the stride apart, that keeps their footprints disjoint.
    fn tile_starts(&self, a: usize, tile: usize) -> (Vec<usize>, usize) {
        let size = self.geometry.in_shape[1 + a];
        let s = self.geometry.strides[a];
        let tile = tile.min(size);
        for gap in 0..=size {
            let period = (tile + gap).div_ceil(s) * s;
            let starts: Vec<usize> = (0..size).step_by(period).collect();
            let ranges: Vec<_> = starts
                .iter()
                .map(|&y0| self.footprint(a, y0, (y0 + tile).min(size)))
                .collect();
            if ranges.windows(2).all(|w| w[0].end <= w[1].start) {
                return (starts, period - tile);
            }
        }
        (vec![0], 0)
    }

    /// The convolution restricted to `tile`×`tile` input tiles (all channels), gaps held fixed.
    pub fn tiles(&self, tile: usize) -> ConvTiles {
        let g = &self.geometry;
        let [c, h, w] = g.in_shape;
        let [oh, ow] = g.out;
        let [kh, kw] = g.kernel;
        let (ys, gap_y) = self.tile_starts(0, tile);
        let (xs, gap_x) = self.tile_starts(1, tile);
        let in_per_group = c / g.group;
        let out_per_group = self.out_channels / g.group;
        let mut gaps = vec![true; self.input_dim()];
        let mut cache: HashMap<[isize; 6], Arc<Mat<f64>>> = HashMap::new();
        let mut blocks = vec![];
        for &y0 in &ys {
            let y1 = (y0 + tile).min(h);
            for &x0 in &xs {
                let x1 = (x0 + tile).min(w);
                let (fy, fx) = (self.footprint(0, y0, y1), self.footprint(1, x0, x1));
                let cols: Vec<usize> = (0..c)
                    .flat_map(|ch| (y0..y1).flat_map(move |y| (x0..x1).map(move |x| (ch * h + y) * w + x)))
                    .collect();
                for &k in &cols {
                    gaps[k] = false;
                }
                let mut rows = Vec::with_capacity(self.out_channels * fy.len() * fx.len());
                for o in 0..self.out_channels {
                    for py in fy.clone() {
                        rows.extend(fx.clone().map(|px| (o * oh + py) * ow + px));
                    }
                }
                let (th, tw) = (y1 - y0, x1 - x0);
                let (fh, fw) = (fy.len(), fx.len());
                // The matrix depends only on where the footprint sits relative to the tile.
                let key = [
                    th as isize,
                    tw as isize,
                    fh as isize,
                    fw as isize,
                    (fy.start * g.strides[0]) as isize - y0 as isize,
                    (fx.start * g.strides[1]) as isize - x0 as isize,
                ];
                let matrix = cache
                    .entry(key)
                    .or_insert_with(|| {
                        let mut m = Mat::<f64>::zeros(rows.len(), cols.len());
                        for o in 0..self.out_channels {
                            let ch0 = o / out_per_group * in_per_group;
                            for (i, py) in fy.clone().enumerate() {
                                for (j, px) in fx.clone().enumerate() {
                                    let r = (o * fh + i) * fw + j;
                                    for ci in 0..in_per_group {
                                        for ky in 0..kh {
                                            let y =
                                                (py * g.strides[0] + ky * g.dilations[0]) as isize - g.pads[0] as isize;
                                            if y < y0 as isize || y >= y1 as isize {
                                                continue;
                                            }
                                            for kx in 0..kw {
                                                let x = (px * g.strides[1] + kx * g.dilations[1]) as isize
                                                    - g.pads[1] as isize;
                                                if x < x0 as isize || x >= x1 as isize {
                                                    continue;
                                                }
                                                let col =
                                                    ((ch0 + ci) * th + (y as usize - y0)) * tw + (x as usize - x0);
                                                m[(r, col)] +=
                                                    self.weight[((o * in_per_group + ci) * kh + ky) * kw + kx];
                                            }
                                        }
                                    }
                                }
                            }
                        }
                        Arc::new(m)
                    })
                    .clone();
                blocks.push(Block { rows, cols, matrix });
            }
        }
        ConvTiles {
            blocks: BlockOperator {
                input_dim: self.input_dim(),
                output_dim: self.output_dim(),
                blocks,
            },
            gaps,
            tile,
            gap: [gap_y, gap_x],
        }
    }
}
