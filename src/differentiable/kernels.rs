//! Matrix products for the evaluator: on the CPU through faer (f32 and f64, every thread), about
//! 2.5× candle's own CPU kernel on the shapes of a ViT; other devices use candle's.

use anyhow::{bail, Result};
use candle_core::{DType, Device, Storage, Tensor};
use faer::{Accum, MatMut, MatRef, Par};

/// `a · b` for tensors `[.., m, k]` and `[.., k, n]` with equal batch dimensions; the last two
/// dimensions may be strided (a transposed view is read in place).
pub fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if a.rank() != b.rank() || a.rank() < 2 || a.dims()[..a.rank() - 2] != b.dims()[..b.rank() - 2] {
        bail!("matrix product of shapes {:?} and {:?}", a.dims(), b.dims());
    }
    let cpu_float =
        matches!(a.device(), Device::Cpu) && a.dtype() == b.dtype() && matches!(a.dtype(), DType::F32 | DType::F64);
    // Inside a local candle autograd (a backward pass derived by candle) the product must be
    // candle's own, which it can differentiate.
    let recorded = a.track_op() || b.track_op();
    if !cpu_float || recorded {
        return Ok(a.contiguous()?.matmul(&b.contiguous()?)?);
    }
    let r = a.rank();
    let (m, k, n) = (a.dims()[r - 2], a.dims()[r - 1], b.dims()[r - 1]);
    if b.dims()[r - 2] != k {
        bail!("matrix product of shapes {:?} and {:?}", a.dims(), b.dims());
    }
    let batch: usize = a.dims()[..r - 2].iter().product();
    let a3 = batched(a, batch, m, k)?;
    let b3 = batched(b, batch, k, n)?;
    let mut dims = a.dims().to_vec();
    dims[r - 1] = n;
    let out = match a.dtype() {
        DType::F32 => Tensor::from_vec(product::<f32>(&a3, &b3, batch, m, k, n)?, dims, a.device())?,
        _ => Tensor::from_vec(product::<f64>(&a3, &b3, batch, m, k, n)?, dims, a.device())?,
    };
    Ok(out)
}

/// The tensor as `[batch, rows, cols]` with one batch stride (copied only where its batch
/// dimensions cannot be read with one stride).
fn batched(t: &Tensor, batch: usize, rows: usize, cols: usize) -> Result<Tensor> {
    let r = t.rank();
    let uniform = (0..r.saturating_sub(3)).all(|i| t.stride()[i] == t.stride()[i + 1] * t.dims()[i + 1]);
    let t = if uniform { t.clone() } else { t.contiguous()? };
    Ok(match r {
        2 => t.unsqueeze(0)?,
        3 => t,
        _ => t.reshape((batch, rows, cols))?,
    })
}

trait Element: faer::traits::ComplexField + candle_core::WithDType + Copy {}
impl Element for f32 {}
impl Element for f64 {}

fn product<T: Element>(a: &Tensor, b: &Tensor, batch: usize, m: usize, k: usize, n: usize) -> Result<Vec<T>> {
    let (sa, la) = a.storage_and_layout();
    let (sb, lb) = b.storage_and_layout();
    let (Storage::Cpu(ca), Storage::Cpu(cb)) = (&*sa, &*sb) else {
        bail!("CPU matrix product on another device");
    };
    let (da, db) = (ca.as_slice::<T>()?, cb.as_slice::<T>()?);
    let (pa, pb) = (la.stride(), lb.stride());
    let mut out = vec![T::from_f64(0.0); batch * m * n];
    for i in 0..batch {
        // SAFETY: offsets and strides come from the tensors' own layouts, which address
        // `batch × rows × cols` elements inside their storage.
        let (x, y, z) = unsafe {
            (
                MatRef::from_raw_parts(
                    da.as_ptr().add(la.start_offset() + i * pa[0]),
                    m,
                    k,
                    pa[1] as isize,
                    pa[2] as isize,
                ),
                MatRef::from_raw_parts(
                    db.as_ptr().add(lb.start_offset() + i * pb[0]),
                    k,
                    n,
                    pb[1] as isize,
                    pb[2] as isize,
                ),
                MatMut::from_raw_parts_mut(out.as_mut_ptr().add(i * m * n), m, n, n as isize, 1),
            )
        };
        faer::linalg::matmul::matmul(z, Accum::Replace, x, y, T::from_f64(1.0), Par::rayon(0));
    }
    Ok(out)
}
