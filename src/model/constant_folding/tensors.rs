//! The tensor operations constant folding evaluates: broadcasting, reshape, transpose, concat,
//! gather, slice and (de)quantisation on values held as f64 with their ONNX data type.

use super::*;

pub(crate) fn reshape_dims(shape: &[usize], spec: &[i64], allow_zero: bool) -> Result<Vec<usize>> {
    let total: usize = shape.iter().product();
    let mut dims: Vec<Option<usize>> = spec
        .iter()
        .enumerate()
        .map(|(i, &d)| match d {
            -1 => Ok(None),
            0 if !allow_zero => shape.get(i).copied().map(Some).context("0 beyond the rank"),
            d if d >= 0 => Ok(Some(d as usize)),
            _ => bail!("dimension {d}"),
        })
        .collect::<Result<_>>()?;
    let known: usize = dims.iter().flatten().product();
    if let Some(slot) = dims.iter_mut().find(|d| d.is_none()) {
        if known == 0 || !total.is_multiple_of(known) {
            bail!("cannot infer -1");
        }
        *slot = Some(total / known);
    }
    Ok(dims.into_iter().map(|d| d.unwrap_or(0)).collect())
}

pub(crate) fn reshaped(x: &Value, shape: Vec<usize>) -> Result<Value> {
    if shape.iter().product::<usize>() != x.len() {
        bail!("reshape to {shape:?} of {} values", x.len());
    }
    Ok(Value { shape, ..x.clone() })
}

pub(crate) fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// numpy-style broadcasting of a binary op.
pub(crate) fn broadcast(x: &Value, y: &Value, f: &dyn Fn(f64, f64) -> f64) -> Result<Value> {
    let rank = x.shape.len().max(y.shape.len());
    let pad = |s: &[usize]| -> Vec<usize> {
        std::iter::repeat_n(1, rank - s.len())
            .chain(s.iter().copied())
            .collect()
    };
    let (xs, ys) = (pad(&x.shape), pad(&y.shape));
    let mut shape = vec![0; rank];
    for i in 0..rank {
        shape[i] = match (xs[i], ys[i]) {
            (a, b) if a == b => a,
            (1, b) => b,
            (a, 1) => a,
            (a, b) => bail!("shapes {a} and {b} do not broadcast"),
        };
    }
    let (sx, sy, so) = (strides(&xs), strides(&ys), strides(&shape));
    let n: usize = shape.iter().product();
    let mut data = Vec::with_capacity(n);
    for k in 0..n {
        let (mut ix, mut iy) = (0, 0);
        for d in 0..rank {
            let c = k / so[d] % shape[d];
            if xs[d] > 1 {
                ix += c * sx[d];
            }
            if ys[d] > 1 {
                iy += c * sy[d];
            }
        }
        data.push(f(x.data[ix], y.data[iy]));
    }
    Ok(Value {
        shape,
        data,
        dtype: x.dtype,
    })
}

pub(crate) fn transpose(x: &Value, perm: &[usize]) -> Result<Value> {
    let rank = x.shape.len();
    if perm.len() != rank {
        bail!("perm of the wrong length");
    }
    let shape: Vec<usize> = perm.iter().map(|&p| x.shape[p]).collect();
    let (si, so) = (strides(&x.shape), strides(&shape));
    let data = (0..x.len())
        .map(|k| {
            let index: usize = (0..rank).map(|d| (k / so[d] % shape[d]) * si[perm[d]]).sum();
            x.data[index]
        })
        .collect();
    Ok(Value {
        shape,
        data,
        dtype: x.dtype,
    })
}

pub(crate) fn concat(values: &[&Value], axis: usize) -> Result<Value> {
    let first = values[0];
    let mut shape = first.shape.clone();
    shape[axis] = values.iter().map(|v| v.shape.get(axis).copied().unwrap_or(0)).sum();
    let outer: usize = first.shape[..axis].iter().product();
    let mut data = Vec::with_capacity(shape.iter().product());
    for o in 0..outer {
        for v in values {
            if v.shape.len() != first.shape.len() {
                bail!("Concat of different ranks");
            }
            let inner: usize = v.shape[axis..].iter().product();
            data.extend_from_slice(&v.data[o * inner..(o + 1) * inner]);
        }
    }
    Ok(Value {
        shape,
        data,
        dtype: first.dtype,
    })
}

pub(crate) fn gather(x: &Value, indices: &Value, axis: usize) -> Result<Value> {
    let dim = x.shape[axis] as i64;
    let outer: usize = x.shape[..axis].iter().product();
    let inner: usize = x.shape[axis + 1..].iter().product();
    let mut shape: Vec<usize> = x.shape[..axis].to_vec();
    shape.extend(&indices.shape);
    shape.extend(&x.shape[axis + 1..]);
    let mut data = Vec::with_capacity(shape.iter().product());
    for o in 0..outer {
        for &i in &indices.data {
            let i = i as i64;
            let i = if i < 0 { i + dim } else { i };
            if !(0..dim).contains(&i) {
                bail!("index {i} out of range");
            }
            let start = (o * dim as usize + i as usize) * inner;
            data.extend_from_slice(&x.data[start..start + inner]);
        }
    }
    Ok(Value {
        shape,
        data,
        dtype: x.dtype,
    })
}

pub(crate) fn slice(x: &Value, starts: &[i64], ends: &[i64], axes: &[i64], steps: &[i64]) -> Result<Value> {
    let rank = x.shape.len();
    let mut ranges: Vec<(i64, i64, i64)> = x.shape.iter().map(|&d| (0, d as i64, 1)).collect();
    for k in 0..starts.len() {
        let axis = axis_index(axes[k], rank)?;
        let dim = x.shape[axis] as i64;
        let step = steps[k];
        if step == 0 {
            bail!("step 0");
        }
        let norm = |v: i64| if v < 0 { v + dim } else { v };
        let (start, end) = if step > 0 {
            (norm(starts[k]).clamp(0, dim), norm(ends[k]).clamp(0, dim))
        } else {
            (norm(starts[k]).clamp(-1, dim - 1), norm(ends[k]).clamp(-1, dim - 1))
        };
        ranges[axis] = (start, end, step);
    }
    let picks: Vec<Vec<usize>> = ranges
        .iter()
        .map(|&(s, e, st)| {
            let mut v = vec![];
            let mut i = s;
            while (st > 0 && i < e) || (st < 0 && i > e) {
                v.push(i as usize);
                i += st;
            }
            v
        })
        .collect();
    let shape: Vec<usize> = picks.iter().map(Vec::len).collect();
    let (si, so) = (strides(&x.shape), strides(&shape));
    let n: usize = shape.iter().product();
    let data = (0..n)
        .map(|k| {
            let index: usize = (0..rank).map(|d| picks[d][k / so[d] % shape[d]] * si[d]).sum();
            x.data[index]
        })
        .collect();
    Ok(Value {
        shape,
        data,
        dtype: x.dtype,
    })
}

/// Index of the scale (and zero point) for element `k` of `x`: per tensor, per axis, or per block
/// along the axis (opset 21).
pub(crate) fn quantisation_index(x: &Value, scale: &Value, node: &NodeProto) -> Result<Box<dyn Fn(usize) -> usize>> {
    if scale.len() == 1 {
        return Ok(Box::new(|_| 0));
    }
    let rank = x.shape.len();
    let axis = axis_index(attr_int(node, "axis", 1), rank)?;
    let block = attr_int(node, "block_size", 0);
    let sx = strides(&x.shape);
    let shape = x.shape.clone();
    if block <= 0 {
        if scale.shape.len() != 1 || scale.len() != x.shape[axis] {
            bail!(
                "per-axis scale of {} values for a dimension of {}",
                scale.len(),
                x.shape[axis]
            );
        }
        return Ok(Box::new(move |k| k / sx[axis] % shape[axis]));
    }
    let block = block as usize;
    if scale.shape.len() != rank || scale.shape[axis] != shape[axis].div_ceil(block) {
        bail!("blockwise scale of shape {:?} for {:?}", scale.shape, shape);
    }
    let ss = strides(&scale.shape);
    Ok(Box::new(move |k| {
        (0..rank)
            .map(|d| {
                let c = k / sx[d] % shape[d];
                (if d == axis { c / block } else { c }) * ss[d]
            })
            .sum()
    }))
}

pub(crate) fn dequantize(node: &NodeProto, x: &Value, scale: &Value, zero: Option<&Value>) -> Result<Value> {
    let index = quantisation_index(x, scale, node)?;
    let data = (0..x.len())
        .map(|k| {
            let j = index(k);
            (x.data[k] - zero.map_or(0.0, |z| z.data[j])) * scale.data[j]
        })
        .collect();
    round_to(
        Value {
            shape: x.shape.clone(),
            data,
            dtype: scale.dtype,
        },
        scale.dtype,
    )
}

pub(crate) fn quantize(node: &NodeProto, x: &Value, scale: &Value, zero: Option<&Value>) -> Result<Value> {
    let index = quantisation_index(x, scale, node)?;
    let dtype = zero.map_or(D::Uint8 as i32, |z| z.dtype);
    let data = (0..x.len())
        .map(|k| {
            let j = index(k);
            // Round half to even, as ONNX specifies.
            let q = (x.data[k] / scale.data[j]).round_ties_even();
            q + zero.map_or(0.0, |z| z.data[j])
        })
        .collect();
    round_to(
        Value {
            shape: x.shape.clone(),
            data,
            dtype,
        },
        dtype,
    )
}
