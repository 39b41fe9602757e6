//! A 2-D convolution on one image as a matrix-free operator: stride, asymmetric padding,
//! dilation and groups (depthwise included). `apply` and `adjoint` walk whole rows of taps (one
//! weight against a strided run of pixels, output channels in parallel); the dense matrix walks
//! single taps, a second path the tests hold equal to the first and to tract.

use super::LinearOperator;

/// Where a convolution's kernel lands on a concrete image.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvGeometry {
    /// channels, height, width of the input
    pub in_shape: [usize; 3],
    pub kernel: [usize; 2],
    pub strides: [usize; 2],
    pub dilations: [usize; 2],
    /// top, left, bottom, right
    pub pads: [usize; 4],
    pub group: usize,
    /// output height and width
    pub out: [usize; 2],
}

impl ConvGeometry {
    /// The output size for this input, or `None` when the kernel does not fit the padded image.
    pub fn output_size(
        [h, w]: [usize; 2],
        kernel: [usize; 2],
        strides: [usize; 2],
        dilations: [usize; 2],
        pads: [usize; 4],
    ) -> Option<[usize; 2]> {
        let len = |a: usize, size: usize| {
            let span = dilations[a] * (kernel[a] - 1) + 1;
            (size + pads[a] + pads[a + 2])
                .checked_sub(span)
                .map(|v| v / strides[a] + 1)
        };
        Some([len(0, h)?, len(1, w)?])
    }

    /// Patches do not overlap: every input value feeds at most one output position.
    pub fn is_patchify(&self) -> bool {
        self.group == 1 && self.dilations == [1, 1] && (0..2).all(|a| self.strides[a] >= self.kernel[a])
    }

    /// Calls `f(output index, input index, weight index)` for every kernel tap that lands inside
    /// the image, for `out_channels` output channels; indices are row-major (C, H, W) and weights
    /// [out_channels, in_channels / group, kh, kw].
    pub fn for_each_tap(&self, out_channels: usize, mut f: impl FnMut(usize, usize, usize)) {
        let [c, h, w] = self.in_shape;
        let [kh, kw] = self.kernel;
        let [oh, ow] = self.out;
        let (in_per_group, out_per_group) = (c / self.group, out_channels / self.group);
        for o in 0..out_channels {
            let g = o / out_per_group;
            for py in 0..oh {
                for px in 0..ow {
                    let r = (o * oh + py) * ow + px;
                    for ci in 0..in_per_group {
                        let ch = g * in_per_group + ci;
                        for ky in 0..kh {
                            let y = (py * self.strides[0] + ky * self.dilations[0]) as isize - self.pads[0] as isize;
                            if y < 0 || y as usize >= h {
                                continue;
                            }
                            for kx in 0..kw {
                                let x =
                                    (px * self.strides[1] + kx * self.dilations[1]) as isize - self.pads[1] as isize;
                                if x < 0 || x as usize >= w {
                                    continue;
                                }
                                f(
                                    r,
                                    (ch * h + y as usize) * w + x as usize,
                                    ((o * in_per_group + ci) * kh + ky) * kw + kx,
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

/// y = W ⋆ x without bias, on one image.
#[derive(Clone, Debug)]
pub struct Conv2d {
    pub geometry: ConvGeometry,
    pub out_channels: usize,
    /// [out_channels, in_channels / group, kh, kw], row-major.
    pub weight: Vec<f64>,
}

impl Conv2d {
    /// Output positions along axis `a` whose tap `k` lands inside the image: `start..end` and the
    /// input coordinate of `start`.
    fn valid_range(&self, a: usize, k: usize) -> (usize, usize, isize) {
        let g = &self.geometry;
        let size = g.in_shape[1 + a] as isize;
        let (s, off) = (
            g.strides[a] as isize,
            (k * g.dilations[a]) as isize - g.pads[a] as isize,
        );
        // smallest p with p·s + off ≥ 0, largest with p·s + off ≤ size − 1
        let start = if off >= 0 { 0 } else { (-off + s - 1) / s };
        let end = if size - 1 - off < 0 {
            0
        } else {
            (size - 1 - off) / s + 1
        };
        let end = end.min(g.out[a] as isize).max(start);
        (start as usize, end as usize, start * s + off)
    }

    /// Calls `f(weight, output offset, input offset, count, input stride)` for every tap row: the
    /// outputs `out[o][py][px0 + i]` and inputs `in[ch][y][x0 + i·stride]` it couples, i < count.
    fn for_each_row(&self, o: usize, mut f: impl FnMut(f64, usize, usize, usize, usize)) {
        let g = &self.geometry;
        let [_, h, w] = g.in_shape;
        let [kh, kw] = g.kernel;
        let [oh, ow] = g.out;
        let in_per_group = g.in_shape[0] / g.group;
        let ch0 = o / (self.out_channels / g.group) * in_per_group;
        for ci in 0..in_per_group {
            for ky in 0..kh {
                let (py0, py1, y0) = self.valid_range(0, ky);
                for kx in 0..kw {
                    let (px0, px1, x0) = self.valid_range(1, kx);
                    if px1 <= px0 {
                        continue;
                    }
                    let wv = self.weight[((o * in_per_group + ci) * kh + ky) * kw + kx];
                    for (i, py) in (py0..py1).enumerate() {
                        let y = y0 as usize + i * g.strides[0];
                        f(
                            wv,
                            (o * oh + py) * ow + px0,
                            ((ch0 + ci) * h + y) * w + x0 as usize,
                            px1 - px0,
                            g.strides[1],
                        );
                    }
                }
            }
        }
    }
}

impl LinearOperator for Conv2d {
    fn input_dim(&self) -> usize {
        self.geometry.in_shape.iter().product()
    }
    fn output_dim(&self) -> usize {
        self.out_channels * self.geometry.out[0] * self.geometry.out[1]
    }
    fn apply(&self, x: &[f64], y: &mut [f64]) {
        use rayon::prelude::*;
        let plane = self.geometry.out[0] * self.geometry.out[1];
        // Output channels are independent: one task each.
        y.par_chunks_mut(plane.max(1)).enumerate().for_each(|(o, out)| {
            out.fill(0.0);
            let base = o * plane;
            self.for_each_row(o, |wv, yo, xi, n, stride| {
                let out = &mut out[yo - base..yo - base + n];
                for (i, v) in out.iter_mut().enumerate() {
                    *v += wv * x[xi + i * stride];
                }
            });
        });
    }
    fn adjoint(&self, y: &[f64], x: &mut [f64]) {
        x.fill(0.0);
        for o in 0..self.out_channels {
            self.for_each_row(o, |wv, yo, xi, n, stride| {
                for i in 0..n {
                    x[xi + i * stride] += wv * y[yo + i];
                }
            });
        }
    }
    fn to_dense(&self) -> faer::Mat<f64> {
        let mut a = faer::Mat::<f64>::zeros(self.output_dim(), self.input_dim());
        self.geometry
            .for_each_tap(self.out_channels, |r, c, k| a[(r, c)] += self.weight[k]);
        a
    }
}
