//! Convolutions, transposed convolutions and pooling from matrix products and shifted, strided
//! views, so that every backward pass is one candle derives from cheap operations: a convolution
//! is a matrix product with its patch matrix (im2col), a transposed convolution a matrix product
//! scattered back onto the image (col2im), a pool a maximum or sum over kernel taps. candle's own
//! kernels take one stride and one symmetric padding for both axes, and their backward passes run
//! a direct (slow) transposed convolution or refuse overlapping pools.

use super::{kernels, Ctx};
use crate::model::onnx_graph::{attr_int, attr_ints, attr_string};
use anyhow::{bail, Context, Result};
use candle_core::{Tensor, Var};
use tract_onnx::pb::NodeProto;

/// Spatial geometry of a Conv or pool: kernel, strides, dilations and (begin, end) pads per axis.
struct Window {
    kernel: Vec<usize>,
    strides: Vec<usize>,
    dilations: Vec<usize>,
    pads: Vec<(usize, usize)>,
}

impl Window {
    fn of(node: &NodeProto, spatial: &[usize], kernel: Vec<usize>) -> Result<Window> {
        let n = spatial.len();
        let list = |name: &str| -> Result<Vec<usize>> {
            let v = attr_ints(node, name).unwrap_or_else(|| vec![1; n]);
            if v.len() != n || v.iter().any(|&s| s < 1) {
                bail!("{name} {v:?} do not fit {n} spatial axes");
            }
            Ok(v.iter().map(|&s| s as usize).collect())
        };
        let (strides, dilations) = (list("strides")?, list("dilations")?);
        let auto_pad = attr_string(node, "auto_pad").unwrap_or_else(|| "NOTSET".into());
        let pads = match auto_pad.as_str() {
            "NOTSET" => {
                let p = attr_ints(node, "pads").unwrap_or_else(|| vec![0; 2 * n]);
                if p.len() != 2 * n || p.iter().any(|&v| v < 0) {
                    bail!("pads {p:?} do not fit {n} spatial axes");
                }
                (0..n).map(|i| (p[i] as usize, p[i + n] as usize)).collect()
            }
            "VALID" => vec![(0, 0); n],
            "SAME_UPPER" | "SAME_LOWER" => (0..n)
                .map(|i| {
                    let out = spatial[i].div_ceil(strides[i]);
                    let span = (kernel[i] - 1) * dilations[i] + 1;
                    let total = ((out - 1) * strides[i] + span).saturating_sub(spatial[i]);
                    let small = total / 2;
                    if auto_pad == "SAME_UPPER" {
                        (small, total - small)
                    } else {
                        (total - small, small)
                    }
                })
                .collect(),
            other => bail!("auto_pad {other} is not one ONNX defines"),
        };
        Ok(Window {
            kernel,
            strides,
            dilations,
            pads,
        })
    }

    fn span(&self, i: usize) -> usize {
        (self.kernel[i] - 1) * self.dilations[i] + 1
    }

    /// Output length of spatial axis `i` for an input of length `len` (floor mode).
    fn out_len(&self, i: usize, len: usize) -> Result<usize> {
        let padded = len + self.pads[i].0 + self.pads[i].1;
        if padded < self.span(i) {
            bail!(
                "the window ({} values) is larger than the padded input ({padded})",
                self.span(i)
            );
        }
        Ok((padded - self.span(i)) / self.strides[i] + 1)
    }
}

/// Pads the spatial axes (from axis 2) of `x` with `value`.
fn pad_spatial(x: &Tensor, pads: &[(usize, usize)], value: f64) -> Result<Tensor> {
    let mut y = x.clone();
    for (i, &(begin, end)) in pads.iter().enumerate() {
        y = pad_axis(&y, 2 + i, begin, end, value)?;
    }
    Ok(y)
}

pub(super) fn pad_axis(x: &Tensor, axis: usize, begin: usize, end: usize, value: f64) -> Result<Tensor> {
    if begin == 0 && end == 0 {
        return Ok(x.clone());
    }
    if value == 0.0 {
        return Ok(x.pad_with_zeros(axis, begin, end)?);
    }
    let block = |n: usize| -> Result<Tensor> {
        let mut dims = x.dims().to_vec();
        dims[axis] = n;
        Ok(Tensor::ones(dims, x.dtype(), x.device())?.affine(value, 0.0)?)
    };
    let mut parts = vec![];
    if begin > 0 {
        parts.push(block(begin)?);
    }
    parts.push(x.clone());
    if end > 0 {
        parts.push(block(end)?);
    }
    Ok(Tensor::cat(&parts, axis)?)
}

/// `count` entries of axis `axis` starting at `start`, `step` apart: a narrow, a reshape that puts
/// the step on an axis of its own, and a narrow of that axis (cheap forward and backward, where a
/// gather would scatter in its backward pass).
fn strided(x: &Tensor, axis: usize, start: usize, count: usize, step: usize) -> Result<Tensor> {
    if step == 1 || count == 1 {
        return Ok(x.narrow(axis, start, count)?);
    }
    let (need, available) = (count * step, x.dims()[axis] - start);
    let y = if available >= need {
        x.narrow(axis, start, need)?
    } else {
        x.narrow(axis, start, available)?
            .pad_with_zeros(axis, 0, need - available)?
    };
    let mut dims = y.dims().to_vec();
    dims[axis] = count;
    dims.insert(axis + 1, step);
    Ok(y.reshape(dims)?.narrow(axis + 1, 0, 1)?.squeeze(axis + 1)?)
}

/// The window at kernel offset `tap` (per spatial axis) for every output position.
fn tap_view(x: &Tensor, w: &Window, tap: &[usize], out: &[usize]) -> Result<Tensor> {
    let mut y = x.clone();
    for i in 0..tap.len() {
        y = strided(&y, 2 + i, tap[i] * w.dilations[i], out[i], w.strides[i])?;
    }
    Ok(y)
}

fn kernel_taps(kernel: &[usize]) -> Vec<Vec<usize>> {
    let mut taps = vec![vec![]];
    for &k in kernel {
        taps = taps
            .into_iter()
            .flat_map(|t| {
                (0..k).map(move |j| {
                    let mut t = t.clone();
                    t.push(j);
                    t
                })
            })
            .collect();
    }
    taps
}

pub(super) fn conv(node: &NodeProto, x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    if x.rank() != 4 {
        bail!(
            "Conv on a rank-{} input: the gradient engine handles 2-D convolutions",
            x.rank()
        );
    }
    let (_, c_in, h, wd) = x.dims4()?;
    let (c_out, c_per_group, kh, kw) = weight.dims4()?;
    let group = attr_int(node, "group", 1) as usize;
    if group == 0 || c_in != c_per_group * group || c_out % group != 0 {
        bail!(
            "Conv weight {:?} does not fit {c_in} input channels in {group} groups",
            weight.dims()
        );
    }
    let w = Window::of(node, &[h, wd], vec![kh, kw])?;
    let out = [w.out_len(0, h)?, w.out_len(1, wd)?];
    let xp = pad_spatial(x, &w.pads, 0.0)?;
    let y = if group == 1 {
        dense_conv(&xp, weight, &w, &out)?
    } else if group == c_in && c_out == c_in {
        // Depthwise: one multiply-add per kernel tap, every channel at once.
        let mut acc: Option<Tensor> = None;
        for tap in kernel_taps(&w.kernel) {
            let wt = weight
                .narrow(2, tap[0], 1)?
                .narrow(3, tap[1], 1)?
                .reshape((1, c_out, 1, 1))?;
            let term = tap_view(&xp, &w, &tap, &out)?.broadcast_mul(&wt)?;
            acc = Some(match acc {
                Some(a) => (a + term)?,
                None => term,
            });
        }
        acc.context("empty kernel")?
    } else {
        // Grouped: one dense convolution per group.
        let per_out = c_out / group;
        let parts = (0..group)
            .map(|g| {
                let xg = xp.narrow(1, g * c_per_group, c_per_group)?;
                dense_conv(&xg, &weight.narrow(0, g * per_out, per_out)?, &w, &out)
            })
            .collect::<Result<Vec<_>>>()?;
        Tensor::cat(&parts, 1)?
    };
    match bias {
        Some(b) => Ok(y.broadcast_add(&b.reshape((1, c_out, 1, 1))?)?),
        None => Ok(y),
    }
}

/// A convolution of an already padded input as the weight matrix times the patch matrix (im2col).
fn dense_conv(xp: &Tensor, weight: &Tensor, w: &Window, out: &[usize; 2]) -> Result<Tensor> {
    let (n, c_out, patch) = (xp.dim(0)?, weight.dim(0)?, weight.elem_count() / weight.dim(0)?);
    let cols = patches(xp, w, out)?;
    let matrix = weight.reshape((c_out, patch))?;
    let y = kernels::matmul(&matrix.unsqueeze(0)?.broadcast_as((n, c_out, patch))?, &cols)?;
    Ok(y.reshape((n, c_out, out[0], out[1]))?)
}

/// The patch matrix `[n, c_in·kh·kw, positions]` of an already padded input: pointwise and
/// patchify (kernel = stride) layers need no copy of taps, others stack one strided view per tap.
fn patches(xp: &Tensor, w: &Window, out: &[usize; 2]) -> Result<Tensor> {
    let (n, c_in, _, _) = xp.dims4()?;
    let (kh, kw) = (w.kernel[0], w.kernel[1]);
    let cols = if kh * kw == 1 {
        tap_view(xp, w, &[0, 0], out)?
    } else if w.strides == w.kernel && w.dilations == [1, 1] {
        xp.narrow(2, 0, out[0] * kh)?
            .narrow(3, 0, out[1] * kw)?
            .reshape((n, c_in, out[0], kh, out[1], kw))?
            .permute((0, 1, 3, 5, 2, 4))?
    } else {
        let views = kernel_taps(&w.kernel)
            .iter()
            .map(|tap| tap_view(xp, w, tap, out))
            .collect::<Result<Vec<_>>>()?;
        Tensor::stack(&views, 2)?
    };
    Ok(cols.contiguous()?.reshape((n, c_in * kh * kw, out[0] * out[1]))?)
}

/// The gradient of a group-1 convolution with respect to its input, for the output gradient `g`:
/// the transposed weight matrix times `g`, sent back through the patch matrix's adjoint (which
/// candle derives from the view operations). `None` for grouped convolutions.
pub(super) fn conv_input_gradient(node: &NodeProto, x: &Tensor, weight: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
    if attr_int(node, "group", 1) != 1 || x.rank() != 4 {
        return Ok(None);
    }
    let (n, _, h, wd) = x.dims4()?;
    let (c_out, _, kh, kw) = weight.dims4()?;
    let patch = weight.elem_count() / c_out;
    let w = Window::of(node, &[h, wd], vec![kh, kw])?;
    let out = [w.out_len(0, h)?, w.out_len(1, wd)?];
    let matrix_t = weight.reshape((c_out, patch))?.t()?;
    let g_cols = kernels::matmul(
        &matrix_t.unsqueeze(0)?.broadcast_as((n, patch, c_out))?,
        &g.reshape((n, c_out, out[0] * out[1]))?,
    )?;
    let xv = Var::zeros(x.dims(), x.dtype(), x.device())?;
    let cols = patches(&pad_spatial(xv.as_tensor(), &w.pads, 0.0)?, &w, &out)?;
    let grads = (cols * g_cols)?.sum_all()?.backward()?;
    Ok(Some(match grads.get(xv.as_tensor()) {
        Some(gx) => gx.clone(),
        None => x.zeros_like()?,
    }))
}

/// Geometry of a ConvTranspose: the window, the uncropped output lengths and output padding.
struct Transposed {
    w: Window,
    full: [usize; 2],
    output_padding: [usize; 2],
    c_out: usize,
}

impl Transposed {
    fn of(node: &NodeProto, x: &Tensor, weight: &Tensor) -> Result<Transposed> {
        let (_, c_in, h, wd) = x.dims4().context("ConvTranspose on a rank other than 4")?;
        let (w_in, c_out, kh, kw) = weight.dims4()?;
        let group = attr_int(node, "group", 1) as usize;
        if group != 1 || w_in != c_in {
            bail!(
                "ConvTranspose with group {group} (weight {:?}, {c_in} input channels) is not supported",
                weight.dims()
            );
        }
        let mut w = Window::of(node, &[h, wd], vec![kh, kw])?;
        let op = attr_ints(node, "output_padding").unwrap_or_else(|| vec![0, 0]);
        let mut output_padding = [op[0] as usize, op[1] as usize];
        let lens = [h, wd];
        let full = [
            (lens[0] - 1) * w.strides[0] + w.span(0),
            (lens[1] - 1) * w.strides[1] + w.span(1),
        ];
        // SAME_UPPER and SAME_LOWER ask for an output `stride` times the input.
        let auto_pad = attr_string(node, "auto_pad").unwrap_or_default();
        let same = auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER";
        let requested = attr_ints(node, "output_shape")
            .or_else(|| same.then(|| vec![(h * w.strides[0]) as i64, (wd * w.strides[1]) as i64]));
        if let Some(shape) = requested {
            // The pads follow from the requested output shape: the odd one at the end for
            // SAME_UPPER, at the beginning otherwise (the ONNX spec). A longer output than the
            // taps reach is extended with zeros at the end, as tract does.
            let upper = auto_pad == "SAME_UPPER";
            for i in 0..2 {
                let total = (full[i] + output_padding[i]) as i64 - shape[shape.len() - 2 + i];
                if total < 0 {
                    output_padding[i] += (-total) as usize;
                    w.pads[i] = (0, 0);
                } else {
                    let total = total as usize;
                    let begin = if upper { total / 2 } else { total - total / 2 };
                    w.pads[i] = (begin, total - begin);
                }
            }
        }
        Ok(Transposed {
            w,
            full,
            output_padding,
            c_out,
        })
    }

    /// Scatters the tap columns `[n, c_out, kh, kw, h, w]` onto the output (col2im) and crops it.
    fn scatter(&self, cols: &Tensor) -> Result<Tensor> {
        let &[n, c_out, kh, kw, h, wd] = cols.dims() else {
            bail!("tap columns of shape {:?}", cols.dims());
        };
        let (w, full) = (&self.w, self.full);
        let (s, d) = (&w.strides, &w.dilations);
        let coarse = [full[0].div_ceil(s[0]), full[1].div_ceil(s[1])];
        let mut rows = Vec::with_capacity(s[0]);
        for a in 0..s[0] {
            let mut phases = Vec::with_capacity(s[1]);
            for b in 0..s[1] {
                let mut acc: Option<Tensor> = None;
                for i in (0..kh).filter(|i| i * d[0] % s[0] == a) {
                    for j in (0..kw).filter(|j| j * d[1] % s[1] == b) {
                        let (q, r) = (i * d[0] / s[0], j * d[1] / s[1]);
                        let tap = cols
                            .narrow(2, i, 1)?
                            .narrow(3, j, 1)?
                            .reshape((n, c_out, h, wd))?
                            .pad_with_zeros(2, q, coarse[0] - h - q)?
                            .pad_with_zeros(3, r, coarse[1] - wd - r)?;
                        acc = Some(match acc {
                            Some(t) => (t + tap)?,
                            None => tap,
                        });
                    }
                }
                phases.push(match acc {
                    Some(t) => t,
                    None => Tensor::zeros((n, c_out, coarse[0], coarse[1]), cols.dtype(), cols.device())?,
                });
            }
            rows.push(Tensor::stack(&phases, 4)?);
        }
        let mut y = Tensor::stack(&rows, 3)?
            .reshape((n, c_out, coarse[0] * s[0], coarse[1] * s[1]))?
            .narrow(2, 0, full[0])?
            .narrow(3, 0, full[1])?;
        for (i, (&full_len, &extra)) in full.iter().zip(&self.output_padding).enumerate() {
            let len = full_len + extra;
            y = y.pad_with_zeros(2 + i, 0, extra)?;
            let (begin, end) = w.pads[i];
            if begin + end >= len {
                bail!("ConvTranspose pads {:?} remove the whole output", w.pads);
            }
            y = y.narrow(2 + i, begin, len - begin - end)?;
        }
        Ok(y)
    }
}

/// ConvTranspose as the transposed weight matrix times the input (one column of taps per input
/// position), scattered onto the output (col2im): the taps are summed per stride phase on the coarse
/// grid, and the phases interleaved into the fine one.
pub(super) fn conv_transpose(node: &NodeProto, x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let plan = Transposed::of(node, x, weight)?;
    let (n, c_in, h, wd) = x.dims4()?;
    let (_, c_out, kh, kw) = weight.dims4()?;
    let taps_matrix = weight.reshape((c_in, c_out * kh * kw))?.t()?;
    let xs = x.reshape((n, c_in, h * wd))?;
    let cols = kernels::matmul(
        &taps_matrix.unsqueeze(0)?.broadcast_as((n, c_out * kh * kw, c_in))?,
        &xs,
    )?;
    let y = plan.scatter(&cols.reshape((n, c_out, kh, kw, h, wd))?)?;
    match bias {
        Some(b) => Ok(y.broadcast_add(&b.reshape((1, plan.c_out, 1, 1))?)?),
        None => Ok(y),
    }
}

/// The gradient of a ConvTranspose with respect to its input: the scatter's adjoint — the output
/// gradient uncropped, read tap by tap (im2col with the transposed layer's stride and dilation) —
/// then the weight matrix.
pub(super) fn conv_transpose_input_gradient(
    node: &NodeProto,
    x: &Tensor,
    weight: &Tensor,
    g: &Tensor,
) -> Result<Tensor> {
    let plan = Transposed::of(node, x, weight)?;
    let (n, c_in, h, wd) = x.dims4()?;
    let (_, c_out, kh, kw) = weight.dims4()?;
    let mut full = g.clone();
    for i in 0..2 {
        let (begin, end) = plan.w.pads[i];
        full = full.pad_with_zeros(2 + i, begin, end)?.narrow(2 + i, 0, plan.full[i])?;
    }
    let taps = Window {
        kernel: vec![kh, kw],
        strides: plan.w.strides.clone(),
        dilations: plan.w.dilations.clone(),
        pads: vec![(0, 0); 2],
    };
    let g_cols = patches(&full, &taps, &[h, wd])?;
    let matrix = weight.reshape((c_in, c_out * kh * kw))?;
    let gx = kernels::matmul(&matrix.unsqueeze(0)?.broadcast_as((n, c_in, c_out * kh * kw))?, &g_cols)?;
    Ok(gx.reshape(x.dims())?)
}

#[derive(Clone, Copy, PartialEq)]
pub(super) enum Pooling {
    Max,
    Average,
}

/// The windows of a MaxPool or AveragePool: geometry, output size, and the padding each axis
/// needs (the declared pads plus, with ceil_mode, the fill a last partial window reads).
pub(super) struct PoolWindows {
    w: Window,
    spatial: Vec<usize>,
    out: Vec<usize>,
    extra: Vec<usize>,
    all_pads: Vec<(usize, usize)>,
    taps: Vec<Vec<usize>>,
}

impl PoolWindows {
    pub(super) fn of(node: &NodeProto, x: &Tensor) -> Result<PoolWindows> {
        if x.rank() < 3 {
            bail!("{} on a rank-{} input", node.op_type, x.rank());
        }
        let spatial = x.dims()[2..].to_vec();
        let kernel: Vec<usize> = attr_ints(node, "kernel_shape")
            .context("no kernel_shape")?
            .iter()
            .map(|&k| k as usize)
            .collect();
        if kernel.len() != spatial.len() {
            bail!("kernel_shape {kernel:?} does not fit the input {:?}", x.dims());
        }
        let ceil_mode = attr_int(node, "ceil_mode", 0) != 0;
        let w = Window::of(node, &spatial, kernel)?;
        let mut out = Vec::with_capacity(spatial.len());
        // ceil_mode keeps a last, partial window wherever one starts inside the input or its begin
        // padding; it reads fill values past the end padding (`extra`).
        let mut extra = Vec::with_capacity(spatial.len());
        for (i, &len) in spatial.iter().enumerate() {
            let floor = w.out_len(i, len)?;
            let padded = len + w.pads[i].0 + w.pads[i].1;
            let mut n = floor;
            if ceil_mode && (padded - w.span(i)) % w.strides[i] != 0 {
                n += 1;
                if (n - 1) * w.strides[i] >= len + w.pads[i].0 {
                    n -= 1;
                }
            }
            out.push(n);
            extra.push(((n - 1) * w.strides[i] + w.span(i)).saturating_sub(padded));
        }
        let all_pads: Vec<(usize, usize)> = w.pads.iter().zip(&extra).map(|(&(b, e), &x)| (b, e + x)).collect();
        let taps = kernel_taps(&w.kernel);
        Ok(PoolWindows {
            w,
            spatial,
            out,
            extra,
            all_pads,
            taps,
        })
    }

    /// `x` (shaped like the pooled input) as one strided view per kernel tap, in tap order, each
    /// shaped like the output; padding reads `fill`.
    pub(super) fn views(&self, x: &Tensor, fill: f64) -> Result<Vec<Tensor>> {
        let xp = pad_spatial(x, &self.all_pads, fill)?;
        self.taps
            .iter()
            .map(|tap| tap_view(&xp, &self.w, tap, &self.out))
            .collect()
    }
}

/// MaxPool and AveragePool as a maximum or sum over kernel taps of strided views: any padding,
/// stride and overlap, with a backward pass candle derives (its own pooling kernels have none for
/// overlapping windows).
pub(super) fn pool(node: &NodeProto, x: &Tensor, kind: Pooling, ctx: &Ctx) -> Result<Tensor> {
    let windows = PoolWindows::of(node, x)?;
    let PoolWindows {
        w,
        spatial,
        out,
        extra,
        all_pads,
        taps,
    } = &windows;
    let fill = if kind == Pooling::Max { f64::NEG_INFINITY } else { 0.0 };
    let mut acc: Option<Tensor> = None;
    for view in windows.views(x, fill)? {
        acc = Some(match (acc, kind) {
            (None, _) => view,
            // A selection: at a tie the gradient goes to the first tap alone.
            (Some(a), Pooling::Max) => view.gt(&a)?.where_cond(&view, &a)?,
            (Some(a), Pooling::Average) => (a + view)?,
        });
    }
    let y = acc.context("empty kernel")?;
    if kind == Pooling::Max {
        return Ok(y);
    }
    let padded = all_pads.iter().any(|&(a, b)| a + b > 0);
    let include_pad = attr_int(node, "count_include_pad", 0) != 0;
    if !padded || include_pad && extra.iter().all(|&e| e == 0) {
        return Ok(y.affine(1.0 / taps.len() as f64, 0.0)?);
    }
    // Divide each window by the number of values it covers: real ones, and the declared padding
    // where count_include_pad says so.
    let mut ones_dims = vec![1, 1];
    ones_dims.extend_from_slice(spatial);
    let declared_fill = if include_pad { 1.0 } else { 0.0 };
    let ones = pad_spatial(&Tensor::ones(ones_dims, ctx.dtype, ctx.device)?, &w.pads, declared_fill)?;
    let extra_pads: Vec<(usize, usize)> = extra.iter().map(|&e| (0, e)).collect();
    let ones = pad_spatial(&ones, &extra_pads, 0.0)?;
    let mut count: Option<Tensor> = None;
    for tap in taps {
        let view = tap_view(&ones, w, tap, out)?;
        count = Some(match count {
            Some(c) => (c + view)?,
            None => view,
        });
    }
    Ok(y.broadcast_div(&count.context("empty kernel")?)?)
}
