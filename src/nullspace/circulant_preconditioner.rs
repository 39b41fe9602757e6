//! An approximate inverse of A Aᵀ for a convolution A, for the conjugate-gradient null-space
//! projection (`matrix_free_projection`): away from the image border A Aᵀ is the convolution
//! with symbol W(ω)W(ω)ᴴ (`conv_spectrum::PolyphaseSymbol`), so its inverse is applied frequency
//! by frequency on a periodic grid around the output grid.

use crate::linop::{Conv2d, LinearOperator};
use crate::nullspace::matrix_free_projection::Preconditioner;
use crate::nullspace::polyphase::PolyphaseSymbol;
use faer::{c64, Mat, Side};
use rayon::prelude::*;
use rustfft::{Fft, FftPlanner};
use std::f64::consts::PI;
use std::sync::{Arc, Mutex};

type C32 = rustfft::num_complex::Complex<f32>;

/// The smallest n' ≥ n whose prime factors are 2, 3 and 5.
fn smooth_length(n: usize) -> usize {
    (n.max(1)..)
        .find(|&m| {
            let mut m = m;
            for p in [2, 3, 5] {
                while m % p == 0 {
                    m /= p;
                }
            }
            m == 1
        })
        .unwrap()
}

/// An approximate inverse of A Aᵀ for a convolution A: on the output grid (oh × ow per channel)
/// A Aᵀ is, away from the image border, the convolution with symbol W(ω)W(ω)ᴴ, so
/// M = F⁻¹ (W Wᴴ + ε I)⁻¹ F with F the 2-D DFT of each output channel. Padding, images whose
/// size is no multiple of the stride, and column masks only perturb A Aᵀ near the border or at
/// the masked pixels; the PCG iteration corrects for that and stops on the true residual.
pub struct CirculantPreconditioner {
    /// the output grid
    out: [usize; 2],
    /// the periodic grid the output grid is embedded in (zero-extended)
    grid: [usize; 2],
    groups: usize,
    rows: usize,
    /// L with L Lᴴ = (W Wᴴ + ε I)⁻¹ per canonical frequency (see `canonical`) and group: the
    /// lower triangle packed column by column, real and imaginary parts apart (so that the
    /// products vectorise), in f32. Applied as L (Lᴴ r), the preconditioner stays Hermitian
    /// positive definite whatever the rounding of L (up to the f32 arithmetic of the
    /// application), and reads a quarter of the memory of the f64 inverse (memory traffic is
    /// what the application costs).
    factor_re: Vec<f32>,
    factor_im: Vec<f32>,
    /// Frequencies are indexed t = kw·oh + kh (the layout after the column pass). Real data have
    /// Hermitian spectra and M(−ω) = conj M(ω), so only one of each pair {ω, −ω} is solved:
    /// `canonical` lists those (t ≤ t(−ω)), `canonical_of[t]` says which one serves t and whether
    /// conjugated.
    canonical: Vec<usize>,
    canonical_of: Vec<(usize, bool)>,
    forward: [Arc<dyn Fft<f32>>; 2],
    backward: [Arc<dyn Fft<f32>>; 2],
    /// Buffers reused across applications.
    spectra: Mutex<Spectra>,
    /// M = S C⁻¹ S with S = diag(√(filter energy / row energy)): rows that lose taps to padding
    /// or to pinned pixels are weaker than the circulant assumes, and get scaled up. `None`: S = I.
    row_scale: Option<Vec<f64>>,
}

impl CirculantPreconditioner {
    /// `regularisation`: eigenvalues of W Wᴴ below `regularisation` × (the largest diagonal entry
    /// over all frequencies) are inverted as that largest entry instead, which keeps M bounded
    /// where W Wᴴ is singular (more output channels than phases, symbols with zeros). 1e-6 is a
    /// good default.
    ///
    /// The periodic grid is the output grid extended by twice the kernel's reach (in outputs),
    /// and rows are scaled for the taps padding takes away ([`Self::with_row_scaling`]); on the
    /// 224×224 stems each of these cuts the iterations by about a quarter to a third.
    pub fn new(conv: &Conv2d, regularisation: f64) -> Self {
        let symbol = PolyphaseSymbol::of(conv);
        let reach = |a: usize| (2 * (symbol.shift_range[a].1 - symbol.shift_range[a].0 + 1)).max(2) as usize;
        // FFT lengths with large prime factors are several times slower: round the periodic grid
        // up to the next 5-smooth length.
        let out = conv.geometry.out;
        let extension = |a: usize| smooth_length(out[a] + reach(a)) - out[a];
        Self::with_extension(conv, regularisation, [extension(0), extension(1)]).with_row_scaling(conv, None)
    }

    /// The plain circulant on a periodic grid `extension` larger than the output grid (the output
    /// grid is zero-extended into it, so that the circulant does not wrap the top rows onto the
    /// bottom ones), without row scaling.
    pub fn with_extension(conv: &Conv2d, regularisation: f64, extension: [usize; 2]) -> Self {
        let symbol = PolyphaseSymbol::of(conv);
        let out = conv.geometry.out;
        let [oh, ow] = [out[0] + extension[0], out[1] + extension[1]];
        let (groups, rows) = (symbol.groups, symbol.rows);
        let frequencies = oh * ow;
        let mirror = |t: usize| {
            let (kw, kh) = (t / oh, t % oh);
            ((ow - kw) % ow) * oh + (oh - kh) % oh
        };
        let canonical: Vec<usize> = (0..frequencies).filter(|&t| t <= mirror(t)).collect();
        let mut canonical_of = vec![(0, false); frequencies];
        for (i, &t) in canonical.iter().enumerate() {
            canonical_of[t] = (i, false);
            if mirror(t) != t {
                canonical_of[mirror(t)] = (i, true);
            }
        }
        let grams: Vec<Vec<Mat<c64>>> = canonical
            .par_iter()
            .map(|&t| {
                let (kw, kh) = (t / oh, t % oh);
                let omega = [2.0 * PI * kh as f64 / oh as f64, 2.0 * PI * kw as f64 / ow as f64];
                (0..groups)
                    .map(|g| {
                        let wm = symbol.at(g, omega);
                        let gram = &wm * wm.adjoint();
                        if mirror(t) == t {
                            // ω = −ω (mod 2π): the symbol is real, up to rounding in e^{iωq}
                            Mat::from_fn(rows, rows, |i, j| c64::new(gram[(i, j)].re, 0.0))
                        } else {
                            gram
                        }
                    })
                    .collect()
            })
            .collect();
        let scale = grams
            .iter()
            .flatten()
            .flat_map(|gm| (0..rows).map(move |i| gm[(i, i)].re))
            .fold(0.0, f64::max);
        let floor = (regularisation * scale).max(f64::MIN_POSITIVE);
        // A lower-triangular F with F Fᴴ ≈ (W Wᴴ)⁻¹ per frequency and group, packed column by
        // column.
        let factors: Vec<c64> = grams
            .par_iter()
            .flat_map_iter(|per_group| {
                per_group
                    .iter()
                    .flat_map(|gm| {
                        let f = inverse_factor(gm, floor, scale);
                        let mut packed = Vec::with_capacity(rows * (rows + 1) / 2);
                        for j in 0..rows {
                            packed.extend((j..rows).map(|i| f[(i, j)]));
                        }
                        packed
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        let mut planner = FftPlanner::<f32>::new();
        let canonical_len = canonical.len();
        CirculantPreconditioner {
            row_scale: None,
            canonical,
            canonical_of,
            out,
            grid: [oh, ow],
            groups,
            rows,
            factor_re: interleave(&factors, canonical_len, groups, rows, |z| z.re as f32),
            factor_im: interleave(&factors, canonical_len, groups, rows, |z| z.im as f32),
            forward: [planner.plan_fft_forward(oh), planner.plan_fft_forward(ow)],
            backward: [planner.plan_fft_inverse(oh), planner.plan_fft_inverse(ow)],
            spectra: Mutex::new(Spectra::default()),
        }
    }

    /// Scales each row by √(its filter's energy / the energy of the taps that land on free, real
    /// pixels), `free` marking the input entries that are not pinned (all of them: `None`); pass
    /// the mask when the CG operator is the convolution with pinned pixels.
    pub fn with_row_scaling(mut self, conv: &Conv2d, free: Option<&[bool]>) -> Self {
        let squared = Conv2d {
            weight: conv.weight.iter().map(|w| w * w).collect(),
            ..conv.clone()
        };
        let indicator: Vec<f64> = match free {
            Some(f) => f.iter().map(|&k| if k { 1.0 } else { 0.0 }).collect(),
            None => vec![1.0; conv.input_dim()],
        };
        let row_energy = squared.apply_vec(&indicator);
        let per_filter = conv.weight.len() / conv.out_channels.max(1);
        let plane = conv.geometry.out[0] * conv.geometry.out[1];
        let scale = row_energy
            .iter()
            .enumerate()
            .map(|(r, &e)| {
                let o = r / plane.max(1);
                let filter: f64 = conv.weight[o * per_filter..(o + 1) * per_filter]
                    .iter()
                    .map(|w| w * w)
                    .sum();
                if e > 0.0 {
                    (filter / e).sqrt()
                } else {
                    1.0
                }
            })
            .collect();
        self.row_scale = Some(scale);
        self
    }

    /// The forward transform of one pair of channels (`values`: the real and imaginary parts,
    /// each out[0] × out[1] row-major, already scaled), zero-extended to the periodic grid and
    /// laid out transposed (kw, kh) in `spectrum`. Rows of the grid below the output grid are zero
    /// and skip the row pass.
    fn forward_pair(
        &self,
        re: &[f64],
        im: Option<&[f64]>,
        scale: Option<(&[f64], &[f64])>,
        work: &mut PlaneWork,
        spectrum: &mut [C32],
    ) {
        let [oh, ow] = self.grid;
        let [h, w] = self.out;
        let rows = &mut work.plane[..h * ow];
        for y in 0..h {
            let row = &mut rows[y * ow..(y + 1) * ow];
            for (x, slot) in row[..w].iter_mut().enumerate() {
                let i = y * w + x;
                let (sr, si) = scale.map_or((1.0, 1.0), |(a, b)| (a[i], b[i]));
                let v = im.map_or(0.0, |im| im[i] * si);
                *slot = C32::new((re[i] * sr) as f32, v as f32);
            }
            row[w..].fill(C32::new(0.0, 0.0));
        }
        self.forward[1].process_with_scratch(rows, &mut work.scratch);
        spectrum.fill(C32::new(0.0, 0.0));
        for y in 0..h {
            for x in 0..ow {
                spectrum[x * oh + y] = rows[y * ow + x];
            }
        }
        self.forward[0].process_with_scratch(spectrum, &mut work.scratch);
    }

    /// The inverse of `forward_pair` (normalised) on the output grid: `transposed` (kw, kh) back to
    /// row-major (y, x), the real part into `re`, the imaginary part into `im`.
    fn backward_pair(&self, transposed: &mut [C32], work: &mut PlaneWork, re: &mut [f64], im: Option<&mut [f64]>) {
        let [oh, ow] = self.grid;
        let [h, w] = self.out;
        self.backward[0].process_with_scratch(transposed, &mut work.scratch);
        let rows = &mut work.plane[..h * ow];
        for y in 0..h {
            for x in 0..ow {
                rows[y * ow + x] = transposed[x * oh + y];
            }
        }
        self.backward[1].process_with_scratch(rows, &mut work.scratch);
        let norm = 1.0 / (oh * ow) as f64;
        for y in 0..h {
            for x in 0..w {
                re[y * w + x] = rows[y * ow + x].re as f64 * norm;
            }
        }
        if let Some(im) = im {
            for y in 0..h {
                for x in 0..w {
                    im[y * w + x] = rows[y * ow + x].im as f64 * norm;
                }
            }
        }
    }

    fn plane_work(&self) -> PlaneWork {
        let scratch = self
            .forward
            .iter()
            .chain(&self.backward)
            .map(|f| f.get_inplace_scratch_len())
            .max()
            .unwrap_or(0);
        PlaneWork {
            plane: vec![C32::new(0.0, 0.0); self.grid[0] * self.grid[1]],
            scratch: vec![C32::new(0.0, 0.0); scratch],
        }
    }
}

/// Buffers of one task: a plane of the periodic grid and the FFT's scratch.
struct PlaneWork {
    plane: Vec<C32>,
    scratch: Vec<C32>,
}

/// The spectra of one application, kept between calls (the buffers are megabytes: allocating
/// them anew each iteration costs page faults and zeroing, not arithmetic).
#[derive(Default)]
struct Spectra {
    /// [pair of channels][frequency], frequencies transposed (kw, kh)
    pairs: Vec<C32>,
    /// [canonical frequency][channel], padded to whole lane blocks
    solved: Vec<C32>,
}

impl Preconditioner for CirculantPreconditioner {
    fn apply_into(&self, r: &[f64], result: &mut [f64]) {
        let [oh, ow] = self.grid;
        let plane = oh * ow;
        let out_plane = self.out[0] * self.out[1];
        let channels = self.groups * self.rows;
        if out_plane == 0 {
            result.copy_from_slice(r);
            return;
        }
        let mut spectra = self
            .spectra
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default();
        // The pipeline runs in f32 (the factors are f32 too): M only steers CG, whose residual
        // is recomputed in f64, and the flexible β of `CgProjector` absorbs the rounding.
        let pairs = channels.div_ceil(2);
        let blocks = self.canonical.len().div_ceil(LANES);
        spectra.pairs.resize(pairs * plane, C32::new(0.0, 0.0));
        spectra.solved.resize(channels * blocks * LANES, C32::new(0.0, 0.0));
        let Spectra {
            pairs: spectrum,
            solved,
        } = &mut spectra;
        // Channels 2j and 2j + 1 (zero-extended, row-scaled) share one complex plane, as its real
        // and imaginary parts.
        let scale = self.row_scale.as_deref();
        spectrum.par_chunks_mut(plane).enumerate().for_each_init(
            || self.plane_work(),
            |work, (j, spectrum)| {
                let part = |ch: usize| (ch < channels).then(|| &r[ch * out_plane..(ch + 1) * out_plane]);
                let scales = scale.map(|s| {
                    let of = |ch: usize| &s[ch.min(channels - 1) * out_plane..][..out_plane];
                    (of(2 * j), of(2 * j + 1))
                });
                self.forward_pair(part(2 * j).unwrap(), part(2 * j + 1), scales, work, spectrum);
            },
        );
        // per canonical frequency: unpack the channels' spectra (Z = A + iB with A, B Hermitian:
        // A(t) = (Z(t) + conj Z(−t)) / 2, B(t) = (Z(t) − conj Z(−t)) / 2i), then (W Wᴴ + ε)⁻¹
        // across the channels of each group; laid out [canonical frequency][channel]
        let rows = self.rows;
        let packed = rows * (rows + 1) / 2;
        let spectrum = &spectrum[..];
        solved.par_chunks_mut(channels * LANES).enumerate().for_each_init(
            || {
                let v = |n: usize| vec![[0.0f32; LANES]; n];
                (v(channels), v(channels), v(rows), v(rows), v(rows), v(rows))
            },
            |(xr, xi, tr, ti, yr, yi), (block, out)| {
                for l in 0..LANES {
                    let Some(&t) = self.canonical.get(block * LANES + l) else {
                        for ch in 0..channels {
                            (xr[ch][l], xi[ch][l]) = (0.0, 0.0);
                        }
                        continue;
                    };
                    let (kw, kh) = (t / oh, t % oh);
                    let tm = ((ow - kw) % ow) * oh + (oh - kh) % oh;
                    for j in 0..pairs {
                        let (z, zm) = (spectrum[j * plane + t], spectrum[j * plane + tm].conj());
                        let a = (z + zm) * 0.5;
                        (xr[2 * j][l], xi[2 * j][l]) = (a.re, a.im);
                        if 2 * j + 1 < channels {
                            let b = (z - zm) * C32::new(0.0, -0.5);
                            (xr[2 * j + 1][l], xi[2 * j + 1][l]) = (b.re, b.im);
                        }
                    }
                }
                for g in 0..self.groups {
                    let at = (block * self.groups + g) * packed * LANES;
                    let (lr, li) = (
                        &self.factor_re[at..][..packed * LANES],
                        &self.factor_im[at..][..packed * LANES],
                    );
                    let (xr, xi) = (&xr[g * rows..(g + 1) * rows], &xi[g * rows..(g + 1) * rows]);
                    factor_product(lr, li, xr, xi, tr, ti, yr, yi);
                    for l in 0..LANES {
                        for r in 0..rows {
                            out[l * channels + g * rows + r] = C32::new(yr[r][l], yi[r][l]);
                        }
                    }
                }
            },
        );
        let solved = &solved[..];
        result.par_chunks_mut(2 * out_plane).enumerate().for_each_init(
            || (self.plane_work(), vec![C32::new(0.0, 0.0); plane]),
            |(work, transposed), (j, values)| {
                let imaginary = 2 * j + 1 < channels;
                for (slot, &(i, conjugate)) in transposed.iter_mut().zip(&self.canonical_of) {
                    let a = solved[i * channels + 2 * j];
                    let b = if imaginary {
                        solved[i * channels + 2 * j + 1]
                    } else {
                        C32::new(0.0, 0.0)
                    };
                    let (a, b) = if conjugate { (a.conj(), b.conj()) } else { (a, b) };
                    *slot = a + C32::new(-b.im, b.re);
                }
                let (first, second) = values.split_at_mut(out_plane);
                self.backward_pair(transposed, work, first, imaginary.then_some(second));
            },
        );
        if let Some(s) = &self.row_scale {
            result.iter_mut().zip(s).for_each(|(a, b)| *a *= b);
        }
        if let Ok(mut slot) = self.spectra.lock() {
            *slot = spectra;
        }
    }
}

/// A lower-triangular F with F Fᴴ = G⁻¹ for one Hermitian Gram block G = W Wᴴ.
///
/// Where G is comfortably positive definite (every pivot of its Cholesky factorisation above
/// 100 × `floor`), F comes from that factorisation: with J the reversal permutation and
/// J G J = L Lᴴ, F = J L⁻ᴴ J, which is lower triangular. Otherwise (more output channels than
/// phases, symbols with zeros) from the eigenpairs: G⁻¹ ≈ Σ q qᴴ / λ with λ at or below `floor`
/// treated as `scale`, the typical diagonal. There A Aᵀ is nearly singular too and the residual
/// has (almost) nothing; amplifying by 1/λ would only inject rounding noise into the multiplier.
fn inverse_factor(gram: &Mat<c64>, floor: f64, scale: f64) -> Mat<c64> {
    let n = gram.nrows();
    let reversed = Mat::<c64>::from_fn(n, n, |i, j| gram[(n - 1 - i, n - 1 - j)]);
    if let Ok(llt) = reversed.llt(Side::Lower) {
        let l = llt.L();
        if (0..n).all(|i| l[(i, i)].re * l[(i, i)].re > 1e2 * floor) {
            // X = L⁻¹ by forward substitution, column by column
            let mut x = Mat::<c64>::zeros(n, n);
            for j in 0..n {
                x[(j, j)] = c64::new(1.0, 0.0) / l[(j, j)];
                for i in j + 1..n {
                    let sum: c64 = (j..i).map(|k| l[(i, k)] * x[(k, j)]).sum();
                    x[(i, j)] = -sum / l[(i, i)];
                }
            }
            return Mat::<c64>::from_fn(n, n, |i, j| x[(n - 1 - j, n - 1 - i)].conj());
        }
    }
    let inverse = match gram.self_adjoint_eigen(Side::Lower) {
        Ok(eig) => {
            let (q, lambda) = (eig.U(), eig.S().column_vector());
            let weight: Vec<f64> = (0..n)
                .map(|i| {
                    let l = lambda[i].re;
                    1.0 / if l > floor { l } else { scale.max(f64::MIN_POSITIVE) }
                })
                .collect();
            Mat::<c64>::from_fn(n, n, |i, j| {
                (0..n).map(|k| q[(i, k)] * q[(j, k)].conj() * weight[k]).sum()
            })
        }
        Err(_) => Mat::<c64>::from_fn(n, n, |i, j| {
            c64::new(
                if i == j {
                    1.0 / scale.max(f64::MIN_POSITIVE)
                } else {
                    0.0
                },
                0.0,
            )
        }),
    };
    match inverse.llt(Side::Lower) {
        Ok(llt) => llt.L().to_owned(),
        Err(_) => Mat::<c64>::from_fn(n, n, |i, j| {
            c64::new(
                if i == j {
                    inverse[(i, i)].re.max(0.0).sqrt()
                } else {
                    0.0
                },
                0.0,
            )
        }),
    }
}

/// Frequencies solved side by side (one SIMD lane each).
const LANES: usize = 8;

/// The packed factors, [canonical frequency][group][packed entry], regrouped as
/// [block of `LANES` frequencies][group][packed entry][lane] (the last block padded with zeros).
fn interleave(factors: &[c64], canonical: usize, groups: usize, rows: usize, part: impl Fn(&c64) -> f32) -> Vec<f32> {
    let packed = rows * (rows + 1) / 2;
    let blocks = canonical.div_ceil(LANES);
    let mut out = vec![0.0f32; blocks * groups * packed * LANES];
    for i in 0..canonical {
        let (block, l) = (i / LANES, i % LANES);
        for g in 0..groups {
            for k in 0..packed {
                out[((block * groups + g) * packed + k) * LANES + l] = part(&factors[(i * groups + g) * packed + k]);
            }
        }
    }
    out
}

/// y = L (Lᴴ x) for `LANES` frequencies at once, L = lr + i·li their packed lower-triangular
/// factors (column by column, lanes innermost), with t = Lᴴ x as scratch. Compiled twice: for
/// AVX2 + FMA where the processor has them (chosen at run time, the crate being built for
/// baseline x86-64), and plain.
#[allow(clippy::too_many_arguments)]
fn factor_product(
    lr: &[f32],
    li: &[f32],
    xr: &[[f32; LANES]],
    xi: &[[f32; LANES]],
    tr: &mut [[f32; LANES]],
    ti: &mut [[f32; LANES]],
    yr: &mut [[f32; LANES]],
    yi: &mut [[f32; LANES]],
) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the features were just detected.
            unsafe { factor_product_avx2(lr, li, xr, xi, tr, ti, yr, yi) };
            return;
        }
    }
    factor_product_generic(lr, li, xr, xi, tr, ti, yr, yi)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn factor_product_avx2(
    lr: &[f32],
    li: &[f32],
    xr: &[[f32; LANES]],
    xi: &[[f32; LANES]],
    tr: &mut [[f32; LANES]],
    ti: &mut [[f32; LANES]],
    yr: &mut [[f32; LANES]],
    yi: &mut [[f32; LANES]],
) {
    factor_product_generic(lr, li, xr, xi, tr, ti, yr, yi)
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn factor_product_generic(
    lr: &[f32],
    li: &[f32],
    xr: &[[f32; LANES]],
    xi: &[[f32; LANES]],
    tr: &mut [[f32; LANES]],
    ti: &mut [[f32; LANES]],
    yr: &mut [[f32; LANES]],
    yi: &mut [[f32; LANES]],
) {
    let rows = xr.len();
    let entry = |k: usize| -> ([f32; LANES], [f32; LANES]) {
        let (cr, ci) = (&lr[k * LANES..][..LANES], &li[k * LANES..][..LANES]);
        (std::array::from_fn(|l| cr[l]), std::array::from_fn(|l| ci[l]))
    };
    // t = Lᴴ x: t_j = Σ_{i ≥ j} conj(L_ij) x_i, column j of L contiguous
    let mut k = 0;
    for j in 0..rows {
        let (mut re, mut im) = ([0.0; LANES], [0.0; LANES]);
        for i in j..rows {
            let (m, q) = entry(k);
            for l in 0..LANES {
                re[l] += m[l] * xr[i][l] + q[l] * xi[i][l];
                im[l] += m[l] * xi[i][l] - q[l] * xr[i][l];
            }
            k += 1;
        }
        (tr[j], ti[j]) = (re, im);
    }
    // y = L t, column by column
    yr.fill([0.0; LANES]);
    yi.fill([0.0; LANES]);
    let mut k = 0;
    for j in 0..rows {
        let (a, b) = (tr[j], ti[j]);
        for i in j..rows {
            let (m, q) = entry(k);
            for l in 0..LANES {
                yr[i][l] += m[l] * a[l] - q[l] * b[l];
                yi[i][l] += m[l] * b[l] + q[l] * a[l];
            }
            k += 1;
        }
    }
}
