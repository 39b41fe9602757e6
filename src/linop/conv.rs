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
    fn for_each_row(&self, o: usize, f: impl FnMut(f64, usize, usize, usize, usize)) {
        let in_per_group = self.geometry.in_shape[0] / self.geometry.group;
        self.for_each_row_within(o, 0..in_per_group, 0..self.geometry.in_shape[1], f)
    }

    /// `for_each_row` restricted to the input channels `channels` (within the group of `o`) and
    /// the input rows `rows`.
    fn for_each_row_within(
        &self,
        o: usize,
        channels: std::ops::Range<usize>,
        rows: std::ops::Range<usize>,
        mut f: impl FnMut(f64, usize, usize, usize, usize),
    ) {
        let g = &self.geometry;
        let [_, h, w] = g.in_shape;
        let [kh, kw] = g.kernel;
        let [oh, ow] = g.out;
        let in_per_group = g.in_shape[0] / g.group;
        let ch0 = o / (self.out_channels / g.group) * in_per_group;
        let s = g.strides[0];
        for ci in channels {
            for ky in 0..kh {
                let (py0, py1, y0) = self.valid_range(0, ky);
                // output rows whose input row y0 + (py − py0)·s lies in `rows`
                let y0 = y0 as usize;
                let first = py0 + rows.start.saturating_sub(y0).div_ceil(s);
                let last = py1.min(py0 + rows.end.saturating_sub(y0).div_ceil(s));
                if first >= last {
                    continue;
                }
                for kx in 0..kw {
                    let (px0, px1, x0) = self.valid_range(1, kx);
                    if px1 <= px0 {
                        continue;
                    }
                    let wv = self.weight[((o * in_per_group + ci) * kh + ky) * kw + kx];
                    for py in first..last {
                        let y = y0 + (py - py0) * s;
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

    /// Whether `apply`/`adjoint` go through a patch matrix and one matrix product (ungrouped
    /// convolutions with several outputs: the strided gathers are then done once, not once per
    /// output channel).
    fn uses_patches(&self) -> bool {
        self.geometry.group == 1 && self.out_channels >= 4
    }

    /// Output rows per band of the patch-matrix path: a band's patch matrix (fan-in × band
    /// positions) is kept near 256 KiB, so that it is written and read in the core's cache
    /// instead of going through memory as a whole-image patch matrix would.
    fn band_rows(&self) -> usize {
        let fan_in = self.weight.len() / self.out_channels.max(1);
        let [oh, ow] = self.geometry.out;
        (32_768 / (fan_in * ow).max(1)).clamp(1, oh.max(1))
    }

    /// The patch matrix (im2col) of the output rows `rows`: row (c, ky, kx), column (py, px)
    /// holds the input pixel that tap (c, ky, kx) of output position (py, px) reads, 0 in the
    /// padding; row-major into `col` (every entry is written).
    fn patches(&self, x: &[f64], rows: std::ops::Range<usize>, col: &mut [f64]) {
        let g = &self.geometry;
        let [_, h, w] = g.in_shape;
        let [kh, kw] = g.kernel;
        let ow = g.out[1];
        let positions = rows.len() * ow;
        for (k, row) in col.chunks_mut(positions.max(1)).enumerate() {
            let (c, ky, kx) = (k / (kh * kw), k / kw % kh, k % kw);
            let (py0, py1, y0) = self.valid_range(0, ky);
            let (px0, px1, x0) = self.valid_range(1, kx);
            let (first, last) = (py0.max(rows.start), py1.min(rows.end));
            if px1 <= px0 || first >= last {
                row.fill(0.0);
                continue;
            }
            row[..(first - rows.start) * ow].fill(0.0);
            row[(last - rows.start) * ow..].fill(0.0);
            let n = px1 - px0;
            for py in first..last {
                let y = (y0 + ((py - py0) * g.strides[0]) as isize) as usize;
                let src = &x[(c * h + y) * w + x0 as usize..][..(n - 1) * g.strides[1] + 1];
                let dst = &mut row[(py - rows.start) * ow..][..ow];
                dst[..px0].fill(0.0);
                dst[px1..].fill(0.0);
                for (d, &v) in dst[px0..px1].iter_mut().zip(src.iter().step_by(g.strides[1])) {
                    *d = v;
                }
            }
        }
    }

    /// The input rows that the output rows `rows` read: `start..end`, clipped to the image.
    fn input_rows_of(&self, rows: &std::ops::Range<usize>) -> std::ops::Range<usize> {
        let g = &self.geometry;
        let span = g.dilations[0] * (g.kernel[0] - 1) + 1;
        let start = (rows.start * g.strides[0]).saturating_sub(g.pads[0]);
        let end = ((rows.end.max(1) - 1) * g.strides[0] + span).saturating_sub(g.pads[0]);
        start.min(g.in_shape[1])..end.min(g.in_shape[1]).max(start.min(g.in_shape[1]))
    }

    /// The adjoint of `patches` for the output rows `rows`: the patch matrix `col` summed onto
    /// the pixels it came from (col2im), into `x`, which holds the input rows `input_rows_of(rows)`
    /// of every channel (zeroed here).
    fn unpatch(&self, col: &[f64], rows: std::ops::Range<usize>, x: &mut [f64]) {
        let g = &self.geometry;
        let [_, _, w] = g.in_shape;
        let [kh, kw] = g.kernel;
        let ow = g.out[1];
        let positions = rows.len() * ow;
        let inputs = self.input_rows_of(&rows);
        let (s, sw) = (g.strides[0], g.strides[1]);
        x.fill(0.0);
        for (k, row) in col.chunks(positions.max(1)).enumerate() {
            let (c, ky, kx) = (k / (kh * kw), k / kw % kh, k % kw);
            let (py0, py1, y0) = self.valid_range(0, ky);
            let (px0, px1, x0) = self.valid_range(1, kx);
            let (first, last) = (py0.max(rows.start), py1.min(rows.end));
            if px1 <= px0 || first >= last {
                continue;
            }
            let n = px1 - px0;
            let plane = &mut x[c * inputs.len() * w..][..inputs.len() * w];
            for py in first..last {
                let y = (y0 + ((py - py0) * s) as isize) as usize - inputs.start;
                let dst = &mut plane[y * w + x0 as usize..][..(n - 1) * sw + 1];
                let src = &row[(py - rows.start) * ow + px0..][..n];
                for (d, &v) in dst.iter_mut().step_by(sw).zip(src) {
                    *d += v;
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
        if self.uses_patches() {
            // y = W · patches(x) ([out, c·kh·kw] × [c·kh·kw, oh·ow]), band of output rows by band
            let [oh, ow] = self.geometry.out;
            let (k, band) = (self.weight.len() / self.out_channels, self.band_rows());
            let weight = faer::MatRef::from_row_major_slice(&self.weight, self.out_channels, k);
            let bands: Vec<ScratchGuard> = (0..oh.div_ceil(band))
                .into_par_iter()
                .map(|b| {
                    let rows = b * band..(b * band + band).min(oh);
                    let n = rows.len() * ow;
                    let mut col = take_scratch(k * n);
                    self.patches(x, rows, &mut col);
                    let mut out = take_scratch(self.out_channels * n);
                    faer::linalg::matmul::matmul(
                        faer::MatMut::from_row_major_slice_mut(&mut out, self.out_channels, n),
                        faer::Accum::Replace,
                        weight,
                        faer::MatRef::from_row_major_slice(&col[..], k, n),
                        1.0,
                        faer::Par::Seq,
                    );
                    out
                })
                .collect();
            let positions = oh * ow;
            for (b, out) in bands.iter().enumerate() {
                let n = out.len() / self.out_channels;
                for (o, values) in out.chunks(n.max(1)).enumerate() {
                    y[o * positions + b * band * ow..][..n].copy_from_slice(values);
                }
            }
            return;
        }
        let plane = self.geometry.out[0] * self.geometry.out[1];
        let [_, _, w] = self.geometry.in_shape;
        let sw = self.geometry.strides[1];
        // A tap row reads every sw-th pixel of an image row; on the rows split into their sw
        // phases (`RowPhases`) it reads a contiguous run.
        let phases = RowPhases::new(w, sw);
        let split;
        let xp = if sw > 1 {
            split = phases.split(x);
            &split[..]
        } else {
            x
        };
        // Output channels are independent: one task each.
        y.par_chunks_mut(plane.max(1)).enumerate().for_each(|(o, out)| {
            out.fill(0.0);
            let base = o * plane;
            self.for_each_row(o, |wv, yo, xi, n, _| {
                let out = &mut out[yo - base..yo - base + n];
                let xs = &xp[phases.offset(xi)..][..n];
                for (v, &u) in out.iter_mut().zip(xs) {
                    *v += wv * u;
                }
            });
        });
    }
    fn adjoint(&self, y: &[f64], x: &mut [f64]) {
        use rayon::prelude::*;
        let g = &self.geometry;
        let [c, h, w] = g.in_shape;
        if c * h * w == 0 {
            return;
        }
        if self.uses_patches() {
            // x = unpatch(Wᵀ · y), band of output rows by band; neighbouring bands share input
            // rows, so each sums into its own rows and the bands are added up after.
            let [oh, ow] = g.out;
            let (k, band) = (self.weight.len() / self.out_channels, self.band_rows());
            let positions = oh * ow;
            let weight = faer::MatRef::from_row_major_slice(&self.weight, self.out_channels, k).transpose();
            let bands: Vec<(std::ops::Range<usize>, ScratchGuard)> = (0..oh.div_ceil(band))
                .into_par_iter()
                .map(|b| {
                    let rows = b * band..(b * band + band).min(oh);
                    let n = rows.len() * ow;
                    let mut col = take_scratch(k * n);
                    faer::linalg::matmul::matmul(
                        faer::MatMut::from_row_major_slice_mut(&mut col[..], k, n),
                        faer::Accum::Replace,
                        weight,
                        faer::MatRef::from_row_major_slice(y, self.out_channels, positions).subcols(b * band * ow, n),
                        1.0,
                        faer::Par::Seq,
                    );
                    let inputs = self.input_rows_of(&rows);
                    let mut part = take_scratch(c * inputs.len() * w);
                    self.unpatch(&col, rows, &mut part);
                    (inputs, part)
                })
                .collect();
            x.fill(0.0);
            for (inputs, part) in bands.iter().filter(|(inputs, _)| !inputs.is_empty()) {
                for (ch, values) in part.chunks(inputs.len() * w).enumerate() {
                    let dst = &mut x[(ch * h + inputs.start) * w..][..values.len()];
                    dst.iter_mut().zip(values).for_each(|(d, v)| *d += v);
                }
            }
            return;
        }
        let in_per_group = c / g.group;
        let out_per_group = self.out_channels / g.group;
        let phases = RowPhases::new(w, g.strides[1]);
        // Input bands (one channel, a run of rows) are independent: one task each, about four
        // per thread. Each accumulates in its rows split into phases, then interleaves them.
        let bands_per_channel = (4 * rayon::current_num_threads()).div_ceil(c).clamp(1, h);
        let band = h.div_ceil(bands_per_channel);
        x.par_chunks_mut(h * w).enumerate().for_each(|(ch, plane)| {
            let (group, ci) = (ch / in_per_group, ch % in_per_group);
            plane.par_chunks_mut(band * w).enumerate().for_each(|(b, xs)| {
                let rows = b * band..(b * band + band).min(h);
                let base = phases.offset((ch * h + rows.start) * w);
                let mut acc = vec![0.0; rows.len() * phases.row_len()];
                for o in group * out_per_group..(group + 1) * out_per_group {
                    self.for_each_row_within(o, ci..ci + 1, rows.clone(), |wv, yo, xi, n, _| {
                        let ys = &y[yo..yo + n];
                        let acc = &mut acc[phases.offset(xi) - base..][..n];
                        for (v, &u) in acc.iter_mut().zip(ys) {
                            *v += wv * u;
                        }
                    });
                }
                phases.join(&acc, xs);
            });
        });
    }
    fn to_dense(&self) -> faer::Mat<f64> {
        let mut a = faer::Mat::<f64>::zeros(self.output_dim(), self.input_dim());
        self.geometry
            .for_each_tap(self.out_channels, |r, c, k| a[(r, c)] += self.weight[k]);
        a
    }
}

/// Image rows of width `w` stored phase by phase for a horizontal stride `s`: row r holds
/// x[r][a], x[r][a + s], … for a = 0..s, each phase padded to ⌈w / s⌉ entries, so that the
/// pixels x[r][x0 + i·s] are contiguous.
struct RowPhases {
    w: usize,
    s: usize,
    /// ⌈w / s⌉
    len: usize,
}

impl RowPhases {
    fn new(w: usize, s: usize) -> Self {
        RowPhases {
            w,
            s,
            len: w.div_ceil(s.max(1)),
        }
    }

    /// Entries per split row.
    fn row_len(&self) -> usize {
        self.s * self.len
    }

    /// Where pixel `i` (row-major, rows of width w) lies in the split layout.
    fn offset(&self, i: usize) -> usize {
        if self.s == 1 {
            return i;
        }
        let (r, x) = (i / self.w, i % self.w);
        r * self.row_len() + (x % self.s) * self.len + x / self.s
    }

    fn split(&self, x: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; x.len() / self.w.max(1) * self.row_len()];
        for (src, dst) in x.chunks(self.w.max(1)).zip(out.chunks_mut(self.row_len().max(1))) {
            for (a, phase) in dst.chunks_mut(self.len.max(1)).enumerate() {
                for (d, &v) in phase.iter_mut().zip(src[a.min(src.len())..].iter().step_by(self.s)) {
                    *d = v;
                }
            }
        }
        out
    }

    /// The inverse of `split`: interleaves split rows back into `x`.
    fn join(&self, split: &[f64], x: &mut [f64]) {
        if self.s == 1 {
            x.copy_from_slice(split);
            return;
        }
        for (dst, src) in x.chunks_mut(self.w).zip(split.chunks(self.row_len())) {
            for (a, phase) in src.chunks(self.len).enumerate() {
                let start = a.min(dst.len());
                for (d, &v) in dst[start..].iter_mut().step_by(self.s).zip(phase) {
                    *d = v;
                }
            }
        }
    }
}

/// Buffers of earlier `apply`/`adjoint` calls, kept for the next ones: a CG iteration would
/// otherwise allocate (and the system zero and map) megabytes of patch matrices and band sums
/// on every call. Shared by all threads, since rayon hands the bands to any of them.
static SCRATCH: std::sync::Mutex<Vec<Vec<f64>>> = std::sync::Mutex::new(Vec::new());

/// At most this many buffers wait in `SCRATCH`.
const SCRATCH_KEPT: usize = 64;

/// A buffer of length `len` with unspecified contents, returned to `SCRATCH` when dropped.
fn take_scratch(len: usize) -> ScratchGuard {
    let reused = SCRATCH.lock().ok().and_then(|mut pool| {
        let best =
            (0..pool.len()).max_by_key(|&i| (pool[i].capacity() >= len, std::cmp::Reverse(pool[i].capacity())))?;
        Some(pool.swap_remove(best))
    });
    let mut v = reused.unwrap_or_default();
    v.resize(len, 0.0);
    ScratchGuard(v)
}

struct ScratchGuard(Vec<f64>);

impl Drop for ScratchGuard {
    fn drop(&mut self) {
        let v = std::mem::take(&mut self.0);
        if let Ok(mut pool) = SCRATCH.lock() {
            if pool.len() < SCRATCH_KEPT {
                pool.push(v);
            }
        }
    }
}

impl std::ops::Deref for ScratchGuard {
    type Target = Vec<f64>;
    fn deref(&self) -> &Vec<f64> {
        &self.0
    }
}

impl std::ops::DerefMut for ScratchGuard {
    fn deref_mut(&mut self) -> &mut Vec<f64> {
        &mut self.0
    }
}
