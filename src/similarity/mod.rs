//! Image similarity in pixel space: PSNR and SSIM, for pixels in [0, 1] (data range 1).
//!
//! SSIM is Wang et al. (2004) computed exactly as scikit-image's
//! `structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
//! data_range=1, channel_axis=-1)`: local statistics under a Gaussian window (σ = 1.5, truncated
//! at 3.5 σ, so 11×11) applied as scipy's separable `gaussian_filter` with `mode='reflect'`,
//! K1 = 0.01, K2 = 0.03, population (not sample) covariances, the SSIM map averaged after
//! cropping 5 pixels from every border, per channel, then the channels averaged.

pub mod compare;
pub mod features;

use crate::model::preprocess::Pixels;
use anyhow::{bail, Result};

/// Gaussian window of scikit-image's SSIM: σ and truncation (in σ).
pub const SSIM_SIGMA: f64 = 1.5;
pub const SSIM_TRUNCATE: f64 = 3.5;
pub const SSIM_K1: f64 = 0.01;
pub const SSIM_K2: f64 = 0.03;

/// Window radius as scipy computes it: `int(truncate · σ + 0.5)` = 5, an 11-wide window.
pub fn ssim_radius() -> usize {
    (SSIM_TRUNCATE * SSIM_SIGMA + 0.5) as usize
}

fn same_size(a: &Pixels, b: &Pixels) -> Result<()> {
    if (a.height, a.width, a.channels) != (b.height, b.width, b.channels) || a.data.len() != b.data.len() {
        bail!(
            "the images differ in size: {}x{}x{} and {}x{}x{} (height x width x channels)",
            a.height,
            a.width,
            a.channels,
            b.height,
            b.width,
            b.channels
        );
    }
    if a.data.iter().chain(&b.data).any(|v| !v.is_finite()) {
        bail!("the images hold NaN or infinite values");
    }
    Ok(())
}

/// Peak signal-to-noise ratio in dB for data range 1: −10 log10(MSE); infinite for identical
/// images.
pub fn psnr(a: &Pixels, b: &Pixels) -> Result<f64> {
    same_size(a, b)?;
    Ok(crate::model::preprocess::psnr(&a.data, &b.data))
}

/// Mean SSIM over channels (see the module note for the exact definition).
pub fn ssim(a: &Pixels, b: &Pixels) -> Result<f64> {
    same_size(a, b)?;
    let win = 2 * ssim_radius() + 1;
    if a.height < win || a.width < win {
        bail!(
            "SSIM needs images at least {win}x{win} (its Gaussian window); these are {}x{}",
            a.width,
            a.height
        );
    }
    let c = a.channels;
    let total: f64 = (0..c)
        .map(|ch| {
            let plane = |p: &Pixels| -> Vec<f64> { p.data.iter().skip(ch).step_by(c).copied().collect() };
            ssim_plane(&plane(a), &plane(b), a.height, a.width)
        })
        .sum();
    Ok(total / c as f64)
}

/// The normalised Gaussian weights, scipy's `_gaussian_kernel1d` at order 0.
fn gaussian_weights() -> Vec<f64> {
    let r = ssim_radius() as i64;
    let w: Vec<f64> = (-r..=r)
        .map(|x| (-0.5 / (SSIM_SIGMA * SSIM_SIGMA) * (x * x) as f64).exp())
        .collect();
    let s: f64 = w.iter().sum();
    w.into_iter().map(|v| v / s).collect()
}

/// scipy's 'reflect' boundary (d c b a | a b c d | d c b a): the edge sample is repeated.
fn reflect(i: i64, n: i64) -> usize {
    let period = 2 * n;
    let m = i.rem_euclid(period);
    (if m < n { m } else { period - 1 - m }) as usize
}

/// `scipy.ndimage.gaussian_filter(plane, 1.5, truncate=3.5, mode='reflect')`: rows axis first,
/// then columns, as scipy orders its axes.
fn gaussian_filter(plane: &[f64], h: usize, w: usize) -> Vec<f64> {
    let k = gaussian_weights();
    let r = ssim_radius() as i64;
    let mut tmp = vec![0.0; h * w];
    for y in 0..h {
        for x in 0..w {
            tmp[y * w + x] = k
                .iter()
                .enumerate()
                .map(|(j, kv)| kv * plane[reflect(y as i64 + j as i64 - r, h as i64) * w + x])
                .sum();
        }
    }
    let mut out = vec![0.0; h * w];
    for y in 0..h {
        for x in 0..w {
            out[y * w + x] = k
                .iter()
                .enumerate()
                .map(|(j, kv)| kv * tmp[y * w + reflect(x as i64 + j as i64 - r, w as i64)])
                .sum();
        }
    }
    out
}

/// Mean SSIM of one channel, the map cropped by the window radius.
fn ssim_plane(a: &[f64], b: &[f64], h: usize, w: usize) -> f64 {
    let product = |p: &[f64], q: &[f64]| -> Vec<f64> { p.iter().zip(q).map(|(x, y)| x * y).collect() };
    let ux = gaussian_filter(a, h, w);
    let uy = gaussian_filter(b, h, w);
    let uxx = gaussian_filter(&product(a, a), h, w);
    let uyy = gaussian_filter(&product(b, b), h, w);
    let uxy = gaussian_filter(&product(a, b), h, w);
    let (c1, c2) = (SSIM_K1 * SSIM_K1, SSIM_K2 * SSIM_K2);
    let pad = ssim_radius();
    let (mut sum, mut count) = (0.0, 0usize);
    for y in pad..h - pad {
        for x in pad..w - pad {
            let i = y * w + x;
            let vx = uxx[i] - ux[i] * ux[i];
            let vy = uyy[i] - uy[i] * uy[i];
            let vxy = uxy[i] - ux[i] * uy[i];
            let a1 = 2.0 * ux[i] * uy[i] + c1;
            let a2 = 2.0 * vxy + c2;
            let b1 = ux[i] * ux[i] + uy[i] * uy[i] + c1;
            let b2 = vx + vy + c2;
            sum += (a1 * a2) / (b1 * b2);
            count += 1;
        }
    }
    sum / count as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_repeats_the_edge_sample() {
        let idx: Vec<usize> = (-3..7).map(|i| reflect(i, 4)).collect();
        assert_eq!(idx, vec![2, 1, 0, 0, 1, 2, 3, 3, 2, 1]);
    }

    #[test]
    fn window_is_eleven_wide_and_normalised() {
        let k = gaussian_weights();
        assert_eq!(k.len(), 11);
        assert!((k.iter().sum::<f64>() - 1.0).abs() < 1e-15);
    }
}
