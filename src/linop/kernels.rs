//! The dense vector loops under every exact per-block solve (dot products, matrix–vector products
//! by rows, linear combinations of rows, plane rotations), run as wide as the CPU allows.
//!
//! The build targets baseline x86-64 (two f64 lanes), so that one binary runs everywhere; where
//! the CPU has AVX-512 or AVX2, the same loops are compiled for it and chosen at run time. The
//! arithmetic is the same at every width — eight partial sums of a dot product, added in the same
//! order, and no fused multiply-add (Rust never contracts `a * b + c`) — so results are identical
//! bit for bit whichever version runs, and a seed gives the same files on every machine.

/// Calls `$body` compiled for the widest instruction set the CPU has.
macro_rules! dispatch {
    ($name:ident($($arg:expr),*)) => {{
        #[cfg(target_arch = "x86_64")]
        match width() {
            // SAFETY: `width` found the instruction set each module is compiled for.
            Width::Avx512 => return unsafe { wide::avx512::$name($($arg),*) },
            Width::Avx2 => return unsafe { wide::avx2::$name($($arg),*) },
            Width::Baseline => {}
        }
        $name($($arg),*)
    }};
}

#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
enum Width {
    Baseline,
    Avx2,
    Avx512,
}

/// The widest instruction set this CPU has, found once.
#[cfg(target_arch = "x86_64")]
fn width() -> Width {
    use std::sync::atomic::{AtomicU8, Ordering};
    static FOUND: AtomicU8 = AtomicU8::new(0);
    match FOUND.load(Ordering::Relaxed) {
        1 => Width::Baseline,
        2 => Width::Avx2,
        3 => Width::Avx512,
        _ => {
            let w = if std::arch::is_x86_feature_detected!("avx512f") {
                Width::Avx512
            } else if std::arch::is_x86_feature_detected!("avx2") {
                Width::Avx2
            } else {
                Width::Baseline
            };
            FOUND.store(w as u8 + 1, Ordering::Relaxed);
            w
        }
    }
}

/// Σ aᵢ bᵢ over the common length.
#[inline]
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    dispatch!(dot_body(a, b))
}

/// out[i] = rowᵢ · v for the row-major matrix `m` with `v.len()` columns (`out.len()` rows).
#[inline]
pub fn rows_times(m: &[f64], v: &[f64], out: &mut [f64]) {
    dispatch!(rows_times_body(m, v, out))
}

/// out = Σᵢ cᵢ rowᵢ for the row-major matrix `m` with `out.len()` columns (`c.len()` rows), zero
/// coefficients skipped.
#[inline]
pub fn combine_rows(m: &[f64], c: &[f64], out: &mut [f64]) {
    dispatch!(combine_rows_body(m, c, out))
}

/// (x, y) ← (c·x + s·y, −s·x + c·y), element by element.
#[inline]
pub fn rotate(x: &mut [f64], y: &mut [f64], c: f64, s: f64) {
    dispatch!(rotate_body(x, y, c, s))
}

#[inline(always)]
fn dot_body(a: &[f64], b: &[f64]) -> f64 {
    // Eight partial sums: the products vectorise (a single running sum forces one add after
    // another), and the rounding error grows more slowly too.
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let tail: f64 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f64>() + tail
}

#[inline(always)]
fn rows_times_body(m: &[f64], v: &[f64], out: &mut [f64]) {
    // Four rows at a time: one dot product's eight partial sums wait on the adder's latency,
    // four of them keep it busy, and each chunk of v is loaded once for all four. Every row's
    // sums are formed exactly as `dot_body` forms them.
    let cols = v.len();
    let row = |i: usize| &m[i * cols..(i + 1) * cols];
    let full = out.len() / 4 * 4;
    for first in (0..full).step_by(4) {
        let (r0, r1, r2, r3) = (row(first), row(first + 1), row(first + 2), row(first + 3));
        let mut acc = [[0.0; 8]; 4];
        let chunks = v
            .chunks_exact(8)
            .zip(r0.chunks_exact(8))
            .zip(r1.chunks_exact(8))
            .zip(r2.chunks_exact(8))
            .zip(r3.chunks_exact(8));
        for ((((x, a0), a1), a2), a3) in chunks {
            for l in 0..8 {
                acc[0][l] += a0[l] * x[l];
                acc[1][l] += a1[l] * x[l];
                acc[2][l] += a2[l] * x[l];
                acc[3][l] += a3[l] * x[l];
            }
        }
        let main = cols - cols % 8;
        for (q, r) in [r0, r1, r2, r3].into_iter().enumerate() {
            let tail: f64 = r[main..].iter().zip(&v[main..]).map(|(a, b)| a * b).sum();
            out[first + q] = acc[q].iter().sum::<f64>() + tail;
        }
    }
    for (i, o) in out.iter_mut().enumerate().skip(full) {
        *o = dot_body(row(i), v);
    }
}

#[inline(always)]
fn combine_rows_body(m: &[f64], c: &[f64], out: &mut [f64]) {
    // Rows with a non-zero coefficient, four at a time in one pass over `out`: each element is
    // still ((out + c₀r₀) + c₁r₁) + …, in row order, as one row at a time would form it.
    let cols = out.len();
    out.fill(0.0);
    if cols == 0 {
        return;
    }
    let row = |i: usize| &m[i * cols..(i + 1) * cols];
    let mut quad = [0usize; 4];
    let mut filled = 0;
    for i in (0..c.len()).filter(|&i| c[i] != 0.0) {
        quad[filled] = i;
        filled += 1;
        if filled == 4 {
            filled = 0;
            let (c0, c1, c2, c3) = (c[quad[0]], c[quad[1]], c[quad[2]], c[quad[3]]);
            let (r0, r1, r2, r3) = (row(quad[0]), row(quad[1]), row(quad[2]), row(quad[3]));
            for j in 0..cols {
                out[j] = out[j] + c0 * r0[j] + c1 * r1[j] + c2 * r2[j] + c3 * r3[j];
            }
        }
    }
    for &i in &quad[..filled] {
        for (o, r) in out.iter_mut().zip(row(i)) {
            *o += c[i] * r;
        }
    }
}

#[inline(always)]
fn rotate_body(x: &mut [f64], y: &mut [f64], c: f64, s: f64) {
    for (a, b) in x.iter_mut().zip(y.iter_mut()) {
        let (u, v) = (*a, *b);
        *a = c * u + s * v;
        *b = -s * u + c * v;
    }
}

/// The bodies above, compiled for wider instruction sets.
#[cfg(target_arch = "x86_64")]
mod wide {
    macro_rules! compiled_for {
        ($module:ident, $features:literal) => {
            pub mod $module {
                #[target_feature(enable = $features)]
                pub fn dot_body(a: &[f64], b: &[f64]) -> f64 {
                    super::super::dot_body(a, b)
                }
                #[target_feature(enable = $features)]
                pub fn rows_times_body(m: &[f64], v: &[f64], out: &mut [f64]) {
                    super::super::rows_times_body(m, v, out)
                }
                #[target_feature(enable = $features)]
                pub fn combine_rows_body(m: &[f64], c: &[f64], out: &mut [f64]) {
                    super::super::combine_rows_body(m, c, out)
                }
                #[target_feature(enable = $features)]
                pub fn rotate_body(x: &mut [f64], y: &mut [f64], c: f64, s: f64) {
                    super::super::rotate_body(x, y, c, s)
                }
            }
        };
    }
    compiled_for!(avx512, "avx512f");
    compiled_for!(avx2, "avx2");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u64) -> Vec<f64> {
        // A fixed, irregular sequence: exact sums differ from any reordering's.
        (0..n)
            .map(|i| ((i as f64 + 0.37) * (seed as f64 + 1.7)).sin() * 10f64.powi((i % 7) as i32 - 3))
            .collect()
    }

    #[test]
    fn every_width_gives_the_same_bits_as_the_baseline() {
        for n in [0, 1, 7, 8, 9, 204, 588, 1001] {
            let (a, b) = (values(n, 1), values(n, 2));
            let base = dot_body(&a, &b);
            assert_eq!(dot(&a, &b).to_bits(), base.to_bits(), "dot, n = {n}");
            let plain: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((base - plain).abs() <= 1e-12 * a.iter().zip(&b).map(|(x, y)| (x * y).abs()).sum::<f64>());

            let rows = 5;
            let m = values(rows * n, 3);
            let (mut wide_out, mut base_out) = (vec![0.0; rows], vec![0.0; rows]);
            rows_times(&m, &a, &mut wide_out);
            rows_times_body(&m, &a, &mut base_out);
            assert_eq!(wide_out, base_out);
            for (i, o) in base_out.iter().enumerate() {
                assert_eq!(o.to_bits(), dot_body(&m[i * n..(i + 1) * n], &a).to_bits());
            }

            let c = vec![0.5, 0.0, -2.0, 3.25, 1e-3];
            let (mut wide_sum, mut base_sum) = (vec![0.0; n], vec![0.0; n]);
            combine_rows(&m, &c, &mut wide_sum);
            combine_rows_body(&m, &c, &mut base_sum);
            assert_eq!(wide_sum, base_sum);
            for j in 0..n {
                let by_hand = (0..rows).fold(0.0, |s, i| if c[i] == 0.0 { s } else { s + c[i] * m[i * n + j] });
                assert_eq!(base_sum[j].to_bits(), by_hand.to_bits());
            }

            let (mut x, mut y) = (a.clone(), b.clone());
            let (c, s) = (0.6, 0.8);
            rotate(&mut x, &mut y, c, s);
            for j in 0..n {
                assert_eq!(x[j], c * a[j] + s * b[j]);
                assert_eq!(y[j], -s * a[j] + c * b[j]);
            }
        }
    }
}
