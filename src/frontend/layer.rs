//! The first linear layer and what folds into it: its weight as a matrix, the per-channel affine
//! ops after it (BatchNorm), and the operator it becomes on pixels — disjoint blocks for dense
//! layers and patchify convolutions, a convolution known by its action otherwise.

use super::*;

/// Builds the layer operator and the pixel-space block operator.
pub(crate) fn finish_with_layer(
    mut fe: FrontEnd,
    graph: &OnnxGraph,
    node: &tract_onnx::pb::NodeProto,
    map: AffineGather,
    resample: Option<PixelResample>,
) -> Result<FrontEnd> {
    let weight = graph.constant(&node.input[1])?.context("weight is not a constant")?;
    if let Some(bad) = weight.values.iter().find(|v| !v.is_finite()) {
        bail!(
            "the weight of {} node {} holds {bad}: a model with non-finite weights cannot be audited",
            node.op_type,
            node_label(node)
        );
    }
    let bias_of = |i: usize, n: usize, factor: f64| -> Result<Vec<f64>> {
        match node.input.get(i).filter(|s| !s.is_empty()) {
            None => Ok(vec![0.0; n]),
            Some(name) => {
                let c = graph
                    .constant(name)?
                    .with_context(|| format!("bias {name} is not a constant"))?;
                let idx = broadcast_index(&[n], &c.shape).or_else(|_| broadcast_index(&[1, n], &c.shape))?;
                Ok(idx.into_iter().map(|i| factor * c.values[i]).collect())
            }
        }
    };
    let mut output_value = node.output[0].clone();
    let source = LayerSource {
        graph,
        node,
        weight: &weight,
        map: &map,
        bias_of: &bias_of,
    };
    let (layer, bias, kind, output_shape, first) = match node.op_type.as_str() {
        "Gemm" | "MatMul" => dense_layer(&mut fe, source, &mut output_value)?,
        _ => conv_layer(&mut fe, source, &mut output_value)?,
    };
    fe.kind = kind;
    fe.first_layer = Some(first);
    fe.output_shape = output_shape;
    fe.bias = bias;
    fe.output_value = Some(output_value);
    if let Some(layer) = layer {
        if resample.is_none() {
            match pixel_blocks(&layer, &map) {
                Ok(op) => fe.form = Form::Blocks(op),
                Err(reason) => {
                    fe.limitation = Some(format!("{reason:#}"));
                }
            }
        }
        fe.layer = Some(Arc::new(layer));
    }
    // A resampling mixes neighbouring pixels: no layer stays block-diagonal behind it.
    if let (Some(r), Some(layer)) = (resample, fe.layer.clone()) {
        let pixels_to_input = Compose {
            outer: map.clone(),
            inner: Compose {
                outer: r.resample.clone(),
                inner: r.before.clone(),
            },
        };
        fe.form = Form::Resampled {
            resample: r,
            operator: ConvFrontEnd {
                layer: None,
                operator: Arc::new(Compose {
                    outer: layer,
                    inner: pixels_to_input,
                }),
                pixel_conv: None,
            },
        };
    }
    fe.layer_input_map = Some(map);
    Ok(fe)
}

/// What a first layer is built from: the graph, its node and constant weight, the affine map in
/// front of it, and its bias read from the graph.
#[derive(Clone, Copy)]
struct LayerSource<'a> {
    graph: &'a OnnxGraph,
    node: &'a tract_onnx::pb::NodeProto,
    weight: &'a Constant,
    map: &'a AffineGather,
    bias_of: &'a dyn Fn(usize, usize, f64) -> Result<Vec<f64>>,
}

/// What a first layer contributes to the front end: its block operator (where it has one), the
/// bias over its outputs, its kind, its output shape and its description.
type LayerParts = (Option<BlockOperator>, Vec<f64>, FrontEndKind, Vec<usize>, FirstLayer);

/// A Gemm or MatMul (with a following Add of a constant bias): one block per row of tokens.
fn dense_layer(fe: &mut FrontEnd, source: LayerSource, output_value: &mut String) -> Result<LayerParts> {
    let LayerSource {
        graph,
        node,
        weight,
        map,
        bias_of,
    } = source;
    let shape = map.shape.clone();
    let label = node_label(node);
    let op = node.op_type.clone();
    let (k, n, matrix, bias) = if op == "Gemm" {
        if attr_int(node, "transA", 0) != 0 {
            bail!("Gemm node {label} with transA is not supported");
        }
        let beta = attr_float(node, "beta", 1.0);
        let m = weight_matrix(node, weight, false).context("a Gemm weight must be 2-D")?;
        let (n, k) = (m.nrows(), m.ncols());
        (k, n, m, bias_of(2, n, beta)?)
    } else {
        if weight.shape.len() != 2 {
            bail!(
                "MatMul node {label} has a weight of rank {}; blindspot folds 2-D weights",
                weight.shape.len()
            );
        }
        let m = weight_matrix(node, weight, false).context("a MatMul weight must be 2-D")?;
        let (n, k) = (m.nrows(), m.ncols());
        // A following Add of a constant bias belongs to the front end.
        let consumers = graph.consumers(&node.output[0]);
        let mut bias = vec![0.0; n];
        if let [add] = consumers.as_slice() {
            let other = add.input.iter().find(|i| **i != node.output[0]);
            if add.op_type == "Add" && other.is_some_and(|o| graph.is_constant(o)) {
                let c = graph.constant(other.unwrap())?.unwrap();
                if c.values.len() == n {
                    bias = c.values.clone();
                    *output_value = add.output[0].clone();
                    fe.ops.push("Add".into());
                }
            }
        }
        (k, n, m, bias)
    };
    if shape.last() != Some(&k) {
        bail!("{op} node {label} expects {k} inputs per row but receives shape {shape:?}");
    }
    let rows_of_tokens = map.len() / k;
    let matrix = Arc::new(matrix);
    let blocks = (0..rows_of_tokens)
        .map(|t| Block {
            rows: (t * n..(t + 1) * n).collect(),
            cols: (t * k..(t + 1) * k).collect(),
            matrix: matrix.clone(),
        })
        .collect();
    let mut out_shape = shape.clone();
    *out_shape.last_mut().unwrap() = n;
    let first = FirstLayer {
        node: label.clone(),
        op: op.clone(),
        weight_shape: weight.shape.clone(),
        kernel: vec![],
        strides: vec![],
        pads: vec![],
        group: 1,
        matrix: (*matrix).clone(),
        eps: weight.eps,
        geometry: None,
    };
    let layer = BlockOperator {
        input_dim: map.len(),
        output_dim: rows_of_tokens * n,
        blocks,
    };
    let full_bias = (0..rows_of_tokens).flat_map(|_| bias.iter().copied()).collect();
    Ok((Some(layer), full_bias, FrontEndKind::Dense, out_shape, first))
}

/// A Conv, with the per-channel affine ops after it folded in: blocks for a patchify conv or a
/// small image, else a convolution known by its action.
fn conv_layer(fe: &mut FrontEnd, source: LayerSource, output_value: &mut String) -> Result<LayerParts> {
    let LayerSource {
        graph,
        node,
        weight,
        map,
        bias_of,
    } = source;
    let shape = map.shape.clone();
    let label = node_label(node);
    let op = node.op_type.clone();
    let conv = ConvGeometry::from_node(node, &weight.shape, &shape)?;
    let mut matrix = weight_matrix(node, weight, false).context("a Conv weight has rank 3 or more")?;
    let (m, fan_in) = (matrix.nrows(), matrix.ncols());
    let mut per_out = bias_of(2, m, 1.0)?;
    // BatchNormalization and per-channel scale/shift after the layer are part of it: a zero
    // scale makes a dead channel, whose directions the rest of the model never sees.
    if let Some(after) = crate::frontend::folds::channel_affine_after(graph, &node.output[0], m)? {
        for o in 0..m {
            for j in 0..fan_in {
                matrix[(o, j)] *= after.scale[o];
            }
            per_out[o] = after.scale[o] * per_out[o] + after.shift[o];
        }
        *output_value = after.output_value;
        fe.ops.extend(after.ops);
    }
    let first = FirstLayer {
        node: label.clone(),
        op: op.clone(),
        weight_shape: weight.shape.clone(),
        kernel: conv.kernel.to_vec(),
        strides: conv.strides.to_vec(),
        pads: conv.pads.to_vec(),
        group: conv.group,
        matrix: matrix.clone(),
        eps: weight.eps,
        geometry: Some(conv.clone()),
    };
    let out_shape = vec![1, m, conv.out[0], conv.out[1]];
    let bias: Vec<f64> = per_out
        .iter()
        .flat_map(|&b| std::iter::repeat_n(b, conv.out[0] * conv.out[1]))
        .collect();
    if conv.is_patchify() {
        let layer = conv.patch_blocks(Arc::new(matrix), map.len());
        Ok((Some(layer), bias, FrontEndKind::PatchifyConv, out_shape, first))
    } else if let Some(layer) = conv.dense_whole_image(&matrix, map.len()) {
        Ok((Some(layer), bias, FrontEndKind::Conv, out_shape, first))
    } else {
        let layer = Arc::new(Conv2d {
            geometry: conv.clone(),
            out_channels: m,
            weight: (0..m)
                .flat_map(|i| (0..fan_in).map(move |j| (i, j)))
                .map(|(i, j)| matrix[(i, j)])
                .collect(),
        });
        let pixel_conv = pixel_convolution(&layer, map);
        fe.form = Form::Conv(ConvFrontEnd {
            layer: Some(layer.clone()),
            operator: Arc::new(Compose {
                outer: layer.clone(),
                inner: map.clone(),
            }),
            pixel_conv,
        });
        fe.layer = Some(layer);
        Ok((None, bias, FrontEndKind::Conv, out_shape, first))
    }
}

impl ConvGeometry {
    fn from_node(node: &tract_onnx::pb::NodeProto, wshape: &[usize], in_shape: &[usize]) -> Result<Self> {
        let label = node_label(node);
        if wshape.len() != 4 || in_shape.len() != 4 || in_shape[0] != 1 {
            bail!("Conv node {label}: blindspot folds 2-D convolutions on one image (weight {wshape:?}, input {in_shape:?})");
        }
        let group = attr_int(node, "group", 1) as usize;
        let (c, h, w) = (in_shape[1], in_shape[2], in_shape[3]);
        if wshape[1] * group != c {
            bail!("Conv node {label}: weight {wshape:?} with group {group} does not fit {c} input channels");
        }
        let kernel = [wshape[2], wshape[3]];
        let two = |name: &str| -> [usize; 2] {
            attr_ints(node, name)
                .filter(|v| v.len() == 2)
                .map_or([1, 1], |v| [v[0] as usize, v[1] as usize])
        };
        let strides = two("strides");
        let dilations = two("dilations");
        let span = |a: usize| dilations[a] * (kernel[a] - 1) + 1;
        let auto_pad = attr_string(node, "auto_pad").unwrap_or_else(|| "NOTSET".into());
        let pads = match auto_pad.as_str() {
            "SAME_UPPER" | "SAME_LOWER" => {
                let mut p = [0; 4];
                for (a, size) in [h, w].into_iter().enumerate() {
                    let out = size.div_ceil(strides[a]);
                    let total = ((out - 1) * strides[a] + span(a)).saturating_sub(size);
                    let (small, big) = (total / 2, total - total / 2);
                    (p[a], p[a + 2]) = if auto_pad == "SAME_UPPER" {
                        (small, big)
                    } else {
                        (big, small)
                    };
                }
                p
            }
            _ => attr_ints(node, "pads")
                .filter(|v| v.len() == 4)
                .map_or([0; 4], |v| [v[0] as usize, v[1] as usize, v[2] as usize, v[3] as usize]),
        };
        let out = ConvGeometry::output_size([h, w], kernel, strides, dilations, pads)
            .context("kernel larger than the padded input")?;
        Ok(ConvGeometry {
            in_shape: [c, h, w],
            kernel,
            strides,
            dilations,
            pads,
            group,
            out,
        })
    }

    /// One block per output position; border patches keep only their in-image columns.
    fn patch_blocks(&self, matrix: Arc<Mat<f64>>, input_dim: usize) -> BlockOperator {
        let [c, h, w] = self.in_shape;
        let [kh, kw] = self.kernel;
        let m = matrix.nrows();
        let (oh, ow) = (self.out[0], self.out[1]);
        let mut sub_matrices: HashMap<Vec<usize>, Arc<Mat<f64>>> = HashMap::new();
        let mut blocks = Vec::with_capacity(oh * ow);
        for py in 0..oh {
            for px in 0..ow {
                let (mut cols, mut wcols) = (vec![], vec![]);
                for ch in 0..c {
                    for ky in 0..kh {
                        let y = (py * self.strides[0] + ky) as i64 - self.pads[0] as i64;
                        for kx in 0..kw {
                            let x = (px * self.strides[1] + kx) as i64 - self.pads[1] as i64;
                            if y >= 0 && (y as usize) < h && x >= 0 && (x as usize) < w {
                                cols.push(ch * h * w + y as usize * w + x as usize);
                                wcols.push((ch * kh + ky) * kw + kx);
                            }
                        }
                    }
                }
                let sub = sub_matrices
                    .entry(wcols.clone())
                    .or_insert_with(|| Arc::new(Mat::from_fn(m, wcols.len(), |i, j| matrix[(i, wcols[j])])))
                    .clone();
                let rows = (0..m).map(|o| o * oh * ow + py * ow + px).collect();
                blocks.push(Block {
                    rows,
                    cols,
                    matrix: sub,
                });
            }
        }
        BlockOperator {
            input_dim,
            output_dim: m * oh * ow,
            blocks,
        }
    }
}

/// The convolution of the pixels themselves when `map` (pixels → layer input) reads every pixel
/// once, times a scale that depends on the channel alone: the weights absorb the scale.
pub(crate) fn pixel_convolution(layer: &Conv2d, map: &AffineGather) -> Option<Conv2d> {
    let [c, h, w] = layer.geometry.in_shape;
    if map.len() != c * h * w || map.input_dim != map.len() {
        return None;
    }
    let mut seen = vec![false; map.input_dim];
    let mut channel_scale = vec![None; c];
    for t in 0..map.len() {
        let k = map.source[t]?;
        if std::mem::replace(&mut seen[k], true) {
            return None;
        }
        let s = map.scale[t];
        match channel_scale[t / (h * w)] {
            None => channel_scale[t / (h * w)] = Some(s),
            Some(prev) if prev != s => return None,
            _ => {}
        }
    }
    let per_group = c / layer.geometry.group;
    let out_per_group = layer.out_channels / layer.geometry.group;
    let taps = layer.geometry.kernel[0] * layer.geometry.kernel[1];
    let mut weight = layer.weight.clone();
    for (i, v) in weight.iter_mut().enumerate() {
        let o = i / (per_group * taps);
        let ci = (i / taps) % per_group;
        *v *= channel_scale[(o / out_per_group) * per_group + ci].unwrap_or(1.0);
    }
    Some(Conv2d {
        geometry: layer.geometry.clone(),
        out_channels: layer.out_channels,
        weight,
    })
}

/// Re-expresses `layer ∘ map` as blocks on pixels. Every pixel must feed one block at most, so
/// that the blocks stay independent (their null spaces add up).
pub(crate) fn pixel_blocks(layer: &BlockOperator, map: &AffineGather) -> Result<BlockOperator> {
    let mut owner: Vec<Option<usize>> = vec![None; map.input_dim];
    // Keyed by the block's own matrix and how its columns land on pixels with which scale.
    let mut cache: HashMap<BlockKey, Arc<Mat<f64>>> = HashMap::new();
    let mut blocks = Vec::with_capacity(layer.blocks.len());
    for (b, block) in layer.blocks.iter().enumerate() {
        let mut pixels: Vec<usize> = vec![];
        let mut local: HashMap<usize, u32> = HashMap::new();
        let mut key = Vec::with_capacity(block.cols.len());
        for (jj, &t) in block.cols.iter().enumerate() {
            let Some(k) = map.source[t] else { continue };
            let l = *local.entry(k).or_insert_with(|| {
                pixels.push(k);
                (pixels.len() - 1) as u32
            });
            key.push((jj as u32, l, map.scale[t].to_bits()));
        }
        for &k in &pixels {
            match owner[k] {
                Some(other) if other != b => bail!("a pixel feeds more than one block of the first layer, so its null space is not block-diagonal; not computed for this layout yet"),
                _ => owner[k] = Some(b),
            }
        }
        let n_local = pixels.len();
        let matrix = cache
            .entry((Arc::as_ptr(&block.matrix) as usize, key.clone()))
            .or_insert_with(|| {
                let mut m = Mat::<f64>::zeros(block.rows.len(), n_local);
                for &(jj, l, s) in &key {
                    let s = f64::from_bits(s);
                    for i in 0..block.rows.len() {
                        m[(i, l as usize)] += s * block.matrix[(i, jj as usize)];
                    }
                }
                Arc::new(m)
            })
            .clone();
        blocks.push(Block {
            rows: block.rows.clone(),
            cols: pixels,
            matrix,
        });
    }
    Ok(BlockOperator {
        input_dim: map.input_dim,
        output_dim: layer.output_dim,
        blocks,
    })
}

/// The matrix a Conv, Gemm or MatMul applies to its input, outputs × fan-in, from its constant
/// weight: a Conv's kernels as rows, Gemm's B (or Bᵀ with `transB`) times `alpha`, MatMul's
/// weight transposed — or, where the weight is MatMul's first operand (`weight_first`, W · x),
/// as it is. `None` for a weight of another rank. One copy for the front end and the layer audit.
pub fn weight_matrix(node: &tract_onnx::pb::NodeProto, weight: &Constant, weight_first: bool) -> Option<Mat<f64>> {
    let s = &weight.shape;
    let w = &weight.values;
    match (node.op_type.as_str(), s.len()) {
        ("Conv", r) if r >= 3 => {
            let fan: usize = s[1..].iter().product();
            Some(Mat::from_fn(s[0], fan, |i, j| w[i * fan + j]))
        }
        ("Gemm", 2) => {
            let alpha = attr_float(node, "alpha", 1.0);
            Some(if attr_int(node, "transB", 0) != 0 {
                Mat::from_fn(s[0], s[1], |i, j| alpha * w[i * s[1] + j])
            } else {
                Mat::from_fn(s[1], s[0], |i, j| alpha * w[j * s[1] + i])
            })
        }
        ("MatMul", 2) if weight_first => Some(Mat::from_fn(s[0], s[1], |i, j| w[i * s[1] + j])),
        ("MatMul", 2) => Some(Mat::from_fn(s[1], s[0], |i, j| w[j * s[1] + i])),
        _ => None,
    }
}

impl ConvGeometry {
    /// The whole convolution on this image as one dense block (output position × input value),
    /// for images as small as a 28×28 digit, where the exact SVD is cheap. `None` when too large.
    fn dense_whole_image(&self, weight: &Mat<f64>, input_dim: usize) -> Option<BlockOperator> {
        let conv = Conv2d {
            geometry: self.clone(),
            out_channels: weight.nrows(),
            weight: (0..weight.nrows())
                .flat_map(|i| (0..weight.ncols()).map(move |j| weight[(i, j)]))
                .collect(),
        };
        let (rows, cols) = (conv.output_dim(), conv.input_dim());
        if cols != input_dim || cols > DENSE_CONV_MAX_COLS || rows.saturating_mul(cols) > DENSE_CONV_MAX_ENTRIES {
            return None;
        }
        let dense = conv.to_dense();
        Some(BlockOperator {
            input_dim,
            output_dim: rows,
            blocks: vec![Block {
                rows: (0..rows).collect(),
                cols: (0..cols).collect(),
                matrix: Arc::new(dense),
            }],
        })
    }
}
