//! Fixture ONNX models for the integration tests, written with `blindspot::model::onnx_write`.
//!
//! Float32 weights are drawn from `ChaCha8Rng::seed_from_u64(seed)` uniform in [-1, 1] scaled by
//! 1/sqrt(fan_in); int64 shape constants are initializers.
#![allow(dead_code)]

pub use blindspot::model::onnx_write::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;

/// Random weight initializers for fixture graphs.
pub trait RandomWeights {
    /// Uniform in [-1,1] / sqrt(fan_in).
    fn weight(&mut self, rng: &mut ChaCha8Rng, name: &str, dims: &[i64], fan_in: usize) -> &mut Self;
}

impl RandomWeights for ModelSpec {
    fn weight(&mut self, rng: &mut ChaCha8Rng, name: &str, dims: &[i64], fan_in: usize) -> &mut Self {
        let data = random_weights(rng, dims.iter().product::<i64>() as usize, fan_in);
        self.init_f32(name, dims, data)
    }
}

pub fn random_weights(rng: &mut ChaCha8Rng, len: usize, fan_in: usize) -> Vec<f32> {
    let scale = 1.0 / (fan_in as f32).sqrt();
    (0..len).map(|_| rng.gen_range(-1.0f32..=1.0f32) * scale).collect()
}

pub fn write_model(path: &Path, model: &ModelSpec) {
    write_bytes(path, &model_bytes(model));
}

pub fn write_bytes(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// The first half of an encoded model: a file that must fail to parse.
pub fn truncated(bytes: &[u8]) -> Vec<u8> {
    bytes[..bytes.len() / 2].to_vec()
}

// ---------------------------------------------------------------------------
// Fixture models. `*_spec` returns the description (weights inspectable via
// `ModelSpec::initializer`), the plain function returns encoded bytes.
// ---------------------------------------------------------------------------

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// input [1,1,8,8] -> Flatten -> fc1 Gemm(64->20) -> Relu -> fc2 Gemm(20->5) -> logits [1,5].
/// fc1.weight is [20,64] with transB=1, or [64,20] with transB=0.
pub fn mlp_gemm_spec(trans_b: bool, seed: u64) -> ModelSpec {
    let mut r = rng(seed);
    let mut m = ModelSpec::new("mlp_gemm", &[1, 1, 8, 8], &[1, 5]);
    let w1_dims: &[i64] = if trans_b { &[20, 64] } else { &[64, 20] };
    m.weight(&mut r, "fc1.weight", w1_dims, 64)
        .weight(&mut r, "fc1.bias", &[20], 64)
        .weight(&mut r, "fc2.weight", &[5, 20], 20)
        .weight(&mut r, "fc2.bias", &[5], 20);
    m.node(Node::new("flatten", "Flatten", &[INPUT], &["flat"]).int("axis", 1))
        .node(
            Node::new("fc1", "Gemm", &["flat", "fc1.weight", "fc1.bias"], &["fc1_out"])
                .float("alpha", 1.0)
                .float("beta", 1.0)
                .int("transB", trans_b as i64),
        )
        .node(Node::new("relu1", "Relu", &["fc1_out"], &["relu1_out"]))
        .node(
            Node::new("fc2", "Gemm", &["relu1_out", "fc2.weight", "fc2.bias"], &[OUTPUT])
                .float("alpha", 1.0)
                .float("beta", 1.0)
                .int("transB", 1),
        );
    m
}

pub fn mlp_gemm(trans_b: bool, seed: u64) -> Vec<u8> {
    model_bytes(&mlp_gemm_spec(trans_b, seed))
}

/// input [1,1,8,8] -> Reshape [1,64] -> MatMul W[64,20] -> Add b[20] -> Relu
/// -> MatMul [20,5] -> Add [5] -> logits [1,5].
pub fn mlp_matmul_add_spec(seed: u64) -> ModelSpec {
    let mut r = rng(seed);
    let mut m = ModelSpec::new("mlp_matmul_add", &[1, 1, 8, 8], &[1, 5]);
    m.init_i64("flat_shape", &[2], vec![1, 64])
        .weight(&mut r, "fc1.weight", &[64, 20], 64)
        .weight(&mut r, "fc1.bias", &[20], 64)
        .weight(&mut r, "fc2.weight", &[20, 5], 20)
        .weight(&mut r, "fc2.bias", &[5], 20);
    m.node(Node::new("reshape_flat", "Reshape", &[INPUT, "flat_shape"], &["flat"]))
        .node(Node::new("fc1_matmul", "MatMul", &["flat", "fc1.weight"], &["fc1_mm"]))
        .node(Node::new("fc1_bias_add", "Add", &["fc1_mm", "fc1.bias"], &["fc1_out"]))
        .node(Node::new("relu1", "Relu", &["fc1_out"], &["relu1_out"]))
        .node(Node::new(
            "fc2_matmul",
            "MatMul",
            &["relu1_out", "fc2.weight"],
            &["fc2_mm"],
        ))
        .node(Node::new("fc2_bias_add", "Add", &["fc2_mm", "fc2.bias"], &[OUTPUT]));
    m
}

pub fn mlp_matmul_add(seed: u64) -> Vec<u8> {
    model_bytes(&mlp_matmul_add_spec(seed))
}

/// Appends `Relu -> Flatten -> Gemm(features -> classes)` after tensor `from`.
fn conv_head(m: &mut ModelSpec, r: &mut ChaCha8Rng, from: &str, features: i64, classes: i64) {
    m.weight(r, "head.weight", &[classes, features], features as usize)
        .weight(r, "head.bias", &[classes], features as usize);
    m.node(Node::new("stem_relu", "Relu", &[from], &["stem_act"]))
        .node(Node::new("flatten", "Flatten", &["stem_act"], &["flat"]).int("axis", 1))
        .node(
            Node::new("head", "Gemm", &["flat", "head.weight", "head.bias"], &[OUTPUT])
                .float("alpha", 1.0)
                .float("beta", 1.0)
                .int("transB", 1),
        );
}

pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// input [1,3,12,12] -> Sub(mean [1,3,1,1]) -> Div(std [1,3,1,1])
/// -> stem_conv(W [6,3,4,4], b [6], stride 4, no pads) -> [1,6,3,3]
/// -> Relu -> Flatten -> Gemm(54 -> 4) -> logits [1,4].
/// Per patch: 48 inputs -> 6 outputs (nullity 42), 9 patches.
pub fn patch_conv_nchw_normalised_spec(seed: u64) -> ModelSpec {
    let mut r = rng(seed);
    let mut m = ModelSpec::new("patch_conv_nchw_normalised", &[1, 3, 12, 12], &[1, 4]);
    m.init_f32("pixel_mean", &[1, 3, 1, 1], IMAGENET_MEAN.to_vec())
        .init_f32("pixel_std", &[1, 3, 1, 1], IMAGENET_STD.to_vec())
        .weight(&mut r, "stem_conv.weight", &[6, 3, 4, 4], 48)
        .weight(&mut r, "stem_conv.bias", &[6], 48);
    m.node(Node::new(
        "normalise_sub_mean",
        "Sub",
        &[INPUT, "pixel_mean"],
        &["centred"],
    ))
    .node(Node::new(
        "normalise_div_std",
        "Div",
        &["centred", "pixel_std"],
        &["normalised"],
    ))
    .node(
        Node::new(
            "stem_conv",
            "Conv",
            &["normalised", "stem_conv.weight", "stem_conv.bias"],
            &["stem_out"],
        )
        .ints("kernel_shape", &[4, 4])
        .ints("strides", &[4, 4]),
    );
    conv_head(&mut m, &mut r, "stem_out", 6 * 3 * 3, 4);
    m
}

pub fn patch_conv_nchw_normalised(seed: u64) -> Vec<u8> {
    model_bytes(&patch_conv_nchw_normalised_spec(seed))
}

/// input [1,12,12,3] (NHWC) -> Transpose(perm [0,3,1,2]) -> stem_conv(W [5,3,3,3], stride 3)
/// -> [1,5,4,4] -> Relu -> Flatten -> Gemm(80 -> 4) -> logits [1,4].
pub fn patch_conv_nhwc_transpose_spec(seed: u64) -> ModelSpec {
    let mut r = rng(seed);
    let mut m = ModelSpec::new("patch_conv_nhwc_transpose", &[1, 12, 12, 3], &[1, 4]);
    m.weight(&mut r, "stem_conv.weight", &[5, 3, 3, 3], 27)
        .weight(&mut r, "stem_conv.bias", &[5], 27);
    m.node(Node::new("nhwc_to_nchw", "Transpose", &[INPUT], &["nchw"]).ints("perm", &[0, 3, 1, 2]))
        .node(
            Node::new(
                "stem_conv",
                "Conv",
                &["nchw", "stem_conv.weight", "stem_conv.bias"],
                &["stem_out"],
            )
            .ints("kernel_shape", &[3, 3])
            .ints("strides", &[3, 3]),
        );
    conv_head(&mut m, &mut r, "stem_out", 5 * 4 * 4, 4);
    m
}

pub fn patch_conv_nhwc_transpose(seed: u64) -> Vec<u8> {
    model_bytes(&patch_conv_nhwc_transpose_spec(seed))
}

/// input [1,c,h,w] -> stem_conv(W [out,c,k,k], stride, pads) -> head, weights drawn in that order.
fn conv_stem_model(
    name: &str,
    seed: u64,
    [c, h, w]: [i64; 3],
    out: i64,
    kernel: i64,
    stride: i64,
    pads: Option<[i64; 4]>,
) -> ModelSpec {
    let mut r = rng(seed);
    let mut m = ModelSpec::new(name, &[1, c, h, w], &[1, 3]);
    let fan_in = (c * kernel * kernel) as usize;
    m.weight(&mut r, "stem_conv.weight", &[out, c, kernel, kernel], fan_in)
        .weight(&mut r, "stem_conv.bias", &[out], fan_in);
    let mut conv = Node::new(
        "stem_conv",
        "Conv",
        &[INPUT, "stem_conv.weight", "stem_conv.bias"],
        &["stem_out"],
    )
    .ints("kernel_shape", &[kernel, kernel])
    .ints("strides", &[stride, stride]);
    let p = pads.unwrap_or([0; 4]);
    if let Some(p) = pads {
        conv = conv.ints("pads", &p);
    }
    m.node(conv);
    let (oh, ow) = (
        (h + p[0] + p[2] - kernel) / stride + 1,
        (w + p[1] + p[3] - kernel) / stride + 1,
    );
    conv_head(&mut m, &mut r, "stem_out", out * oh * ow, 3);
    m
}

/// input [1,1,10,10] -> stem_conv(W [4,1,3,3], stride 3) -> [1,4,3,3]
/// (last row/column of pixels is covered by no patch) -> Relu -> Flatten -> Gemm(36 -> 3).
pub fn patch_conv_uneven_spec(seed: u64) -> ModelSpec {
    conv_stem_model("patch_conv_uneven", seed, [1, 10, 10], 4, 3, 3, None)
}

pub fn patch_conv_uneven(seed: u64) -> Vec<u8> {
    model_bytes(&patch_conv_uneven_spec(seed))
}

/// input [1,2,10,10] -> stem_conv(W [6,2,4,4], stride 4, pads [1,1,1,1]) -> [1,6,3,3]
/// -> Relu -> Flatten -> Gemm(54 -> 3).
pub fn patch_conv_padded_spec(seed: u64) -> ModelSpec {
    conv_stem_model("patch_conv_padded", seed, [2, 10, 10], 6, 4, 4, Some([1, 1, 1, 1]))
}

pub fn patch_conv_padded(seed: u64) -> Vec<u8> {
    model_bytes(&patch_conv_padded_spec(seed))
}

/// input [1,1,8,8] -> stem_conv(W [4,1,3,3], stride 1, pads 1) -> [1,4,8,8]
/// -> Relu -> Flatten -> Gemm(256 -> 3).
pub fn overlapping_conv_spec(seed: u64) -> ModelSpec {
    overlapping_conv_sized_spec(seed, 1, 8)
}

/// input [1,c,side,side] -> Conv(c->4, 3×3, stride 1, pads 1) -> head. Overlapping patches.
pub fn overlapping_conv_sized_spec(seed: u64, channels: i64, side: i64) -> ModelSpec {
    conv_stem_model(
        "overlapping_conv",
        seed,
        [channels, side, side],
        4,
        3,
        1,
        Some([1, 1, 1, 1]),
    )
}

/// input [1,1,8,8] -> Conv(1->2, 3×3, stride 2, no pads) -> [1,2,3,3] -> head. Patches overlap by
/// one pixel; the last row and column are read by no patch.
pub fn strided_overlapping_conv_spec(seed: u64) -> ModelSpec {
    conv_stem_model("strided_overlapping_conv", seed, [1, 8, 8], 2, 3, 2, None)
}

pub fn strided_overlapping_conv(seed: u64) -> Vec<u8> {
    model_bytes(&strided_overlapping_conv_spec(seed))
}

pub fn overlapping_conv_sized(seed: u64, channels: i64, side: i64) -> Vec<u8> {
    model_bytes(&overlapping_conv_sized_spec(seed, channels, side))
}

pub fn overlapping_conv(seed: u64) -> Vec<u8> {
    model_bytes(&overlapping_conv_spec(seed))
}

/// input [1,1,8,8] -> Sin -> Flatten -> Gemm(64 -> 10) -> logits [1,10].
/// The first op is non-linear: blindspot must refuse it.
pub fn unsupported_first_op_spec(seed: u64) -> ModelSpec {
    let mut r = rng(seed);
    let mut m = ModelSpec::new("unsupported_first_op", &[1, 1, 8, 8], &[1, 10]);
    m.weight(&mut r, "fc.weight", &[10, 64], 64)
        .weight(&mut r, "fc.bias", &[10], 64);
    m.node(Node::new("sine", "Sin", &[INPUT], &["sin_out"]))
        .node(Node::new("flatten", "Flatten", &["sin_out"], &["flat"]).int("axis", 1))
        .node(
            Node::new("fc", "Gemm", &["flat", "fc.weight", "fc.bias"], &[OUTPUT])
                .float("alpha", 1.0)
                .float("beta", 1.0)
                .int("transB", 1),
        );
    m
}

pub fn unsupported_first_op(seed: u64) -> Vec<u8> {
    model_bytes(&unsupported_first_op_spec(seed))
}

/// `mlp_gemm(true, 0)` with `fc1.weight[3]` set to NaN.
pub fn nan_weights_spec() -> ModelSpec {
    let mut m = mlp_gemm_spec(true, 0);
    m.graph_name = "nan_weights".to_string();
    match &mut m.initializer_mut("fc1.weight").unwrap().data {
        TensorData::F32(v) => v[3] = f32::NAN,
        _ => unreachable!(),
    }
    m
}

pub fn nan_weights() -> Vec<u8> {
    model_bytes(&nan_weights_spec())
}

/// ViT-style patch embedding without a conv:
/// input [1,1,8,8] -> Reshape [1,1,2,4,2,4] -> Transpose perm [0,2,4,1,3,5]
/// -> Reshape [1,4,16] -> MatMul W[16,6] -> Add b[6] -> Relu -> Reshape [1,24]
/// -> Gemm(24 -> 3) -> logits [1,3]. Tokens: 4 patches of 4x4, each 16 -> 6.
pub fn vit_like_tokens_spec(seed: u64) -> ModelSpec {
    let mut r = rng(seed);
    let mut m = ModelSpec::new("vit_like_tokens", &[1, 1, 8, 8], &[1, 3]);
    m.init_i64("patchify_shape", &[6], vec![1, 1, 2, 4, 2, 4])
        .init_i64("tokens_shape", &[3], vec![1, 4, 16])
        .init_i64("flat_shape", &[2], vec![1, 24])
        .weight(&mut r, "patch_embed.weight", &[16, 6], 16)
        .weight(&mut r, "patch_embed.bias", &[6], 16)
        .weight(&mut r, "head.weight", &[3, 24], 24)
        .weight(&mut r, "head.bias", &[3], 24);
    m.node(Node::new(
        "patchify_reshape",
        "Reshape",
        &[INPUT, "patchify_shape"],
        &["patch_grid"],
    ))
    .node(
        Node::new("patchify_transpose", "Transpose", &["patch_grid"], &["patch_grid_t"])
            .ints("perm", &[0, 2, 4, 1, 3, 5]),
    )
    .node(Node::new(
        "tokens_reshape",
        "Reshape",
        &["patch_grid_t", "tokens_shape"],
        &["tokens"],
    ))
    .node(Node::new(
        "patch_embed_matmul",
        "MatMul",
        &["tokens", "patch_embed.weight"],
        &["embed_mm"],
    ))
    .node(Node::new(
        "patch_embed_bias_add",
        "Add",
        &["embed_mm", "patch_embed.bias"],
        &["embed"],
    ))
    .node(Node::new("embed_relu", "Relu", &["embed"], &["embed_act"]))
    .node(Node::new(
        "flatten_tokens",
        "Reshape",
        &["embed_act", "flat_shape"],
        &["flat"],
    ))
    .node(
        Node::new("head", "Gemm", &["flat", "head.weight", "head.bias"], &[OUTPUT])
            .float("alpha", 1.0)
            .float("beta", 1.0)
            .int("transB", 1),
    );
    m
}

pub fn vit_like_tokens(seed: u64) -> Vec<u8> {
    model_bytes(&vit_like_tokens_spec(seed))
}

/// input [1,1,6,6] -> Mul(2) -> Pad(1 on each side, constant 0) -> [1,1,8,8]
/// -> stem_conv(W [5,1,4,4], stride 4) -> [1,5,2,2] -> Relu -> Flatten -> Gemm(20 -> 3).
/// Every patch reads 3×3 image pixels and 7 zeros: 9 -> 5 per patch, nullity 4, 4 patches.
pub fn pad_then_patch_conv_spec(seed: u64) -> ModelSpec {
    let mut r = rng(seed);
    let mut m = ModelSpec::new("pad_then_patch_conv", &[1, 1, 6, 6], &[1, 3]);
    m.init_f32("two", &[], vec![2.0])
        .init_i64("pads", &[8], vec![0, 0, 1, 1, 0, 0, 1, 1])
        .weight(&mut r, "stem_conv.weight", &[5, 1, 4, 4], 16)
        .weight(&mut r, "stem_conv.bias", &[5], 16);
    m.node(Node::new("double", "Mul", &[INPUT, "two"], &["doubled"]))
        .node(Node::new("pad", "Pad", &["doubled", "pads"], &["padded"]))
        .node(
            Node::new(
                "stem_conv",
                "Conv",
                &["padded", "stem_conv.weight", "stem_conv.bias"],
                &["stem_out"],
            )
            .ints("kernel_shape", &[4, 4])
            .ints("strides", &[4, 4]),
        );
    conv_head(&mut m, &mut r, "stem_out", 5 * 2 * 2, 3);
    m
}

pub fn pad_then_patch_conv(seed: u64) -> Vec<u8> {
    model_bytes(&pad_then_patch_conv_spec(seed))
}

/// input [1,1,4,4] -> Flatten -> Gemm(16 -> 20, transB) -> logits [1,20]: more outputs than
/// inputs, full column rank: no null space at all.
pub fn wide_dense_spec(seed: u64) -> ModelSpec {
    let mut r = rng(seed);
    let mut m = ModelSpec::new("wide_dense", &[1, 1, 4, 4], &[1, 20]);
    m.weight(&mut r, "fc.weight", &[20, 16], 16)
        .weight(&mut r, "fc.bias", &[20], 16);
    m.node(Node::new("flatten", "Flatten", &[INPUT], &["flat"]).int("axis", 1))
        .node(
            Node::new("fc", "Gemm", &["flat", "fc.weight", "fc.bias"], &[OUTPUT])
                .float("alpha", 1.0)
                .float("beta", 1.0)
                .int("transB", 1),
        );
    m
}

pub fn wide_dense(seed: u64) -> Vec<u8> {
    model_bytes(&wide_dense_spec(seed))
}

// ---------------------------------------------------------------------------
// Fixtures for the folds around the first layer (tests/front_end_folds.rs).
// ---------------------------------------------------------------------------

fn string_attr(node: Node, name: &str, value: &str) -> Node {
    node.attr(name, AttrValue::Str(value.to_string()))
}

/// Appends `stem_conv(W [4, channels, 3, 3], b [4], pads 1)` on `from`, an NCHW tensor of
/// `channels`×`h`×`w`, and the head after it. The stem's output is `stem_out`.
fn conv3x3_stem_and_head(m: &mut ModelSpec, r: &mut ChaCha8Rng, from: &str, [channels, h, w]: [i64; 3]) {
    let fan_in = (channels * 9) as usize;
    m.weight(r, "stem_conv.weight", &[4, channels, 3, 3], fan_in)
        .weight(r, "stem_conv.bias", &[4], fan_in);
    m.node(
        Node::new(
            "stem_conv",
            "Conv",
            &[from, "stem_conv.weight", "stem_conv.bias"],
            &["stem_out"],
        )
        .ints("kernel_shape", &[3, 3])
        .ints("pads", &[1, 1, 1, 1]),
    );
    conv_head(m, r, "stem_out", 4 * h * w, 3);
}

/// input [1,3,8,8] -> stem_conv(3 -> 4, 3×3, stride 2, pads 1) -> `stem_out` [1,4,4,4].
fn strided_stem(m: &mut ModelSpec, r: &mut ChaCha8Rng) {
    m.weight(r, "stem_conv.weight", &[4, 3, 3, 3], 27)
        .weight(r, "stem_conv.bias", &[4], 27);
    m.node(
        Node::new(
            "stem_conv",
            "Conv",
            &[INPUT, "stem_conv.weight", "stem_conv.bias"],
            &["stem_out"],
        )
        .ints("kernel_shape", &[3, 3])
        .ints("strides", &[2, 2])
        .ints("pads", &[1, 1, 1, 1]),
    );
}

/// Inference-mode BatchNormalization parameters for 4 channels; channel 1's scale is exactly 0
/// (a dead channel).
fn batch_norm_params(m: &mut ModelSpec) {
    m.init_f32("bn.scale", &[4], vec![1.5, 0.0, -0.75, 2.25])
        .init_f32("bn.bias", &[4], vec![0.1, -0.2, 0.3, 0.05])
        .init_f32("bn.mean", &[4], vec![0.2, -0.1, 0.05, -0.3])
        .init_f32("bn.var", &[4], vec![0.5, 1.2, 0.09, 2.0]);
}

fn batch_norm_node(from: &str, to: &str) -> Node {
    Node::new(
        "bn",
        "BatchNormalization",
        &[from, "bn.scale", "bn.bias", "bn.mean", "bn.var"],
        &[to],
    )
}

/// input [1,3,8,8] -> stem_conv(stride 2, pads 1) -> `stem_out` [1,4,4,4]
/// -> BatchNormalization(epsilon 1e-3; channel 1's scale 0) -> `bn_out` -> Relu -> Flatten -> Gemm.
pub fn conv_batchnorm_relu_spec(seed: u64) -> ModelSpec {
    let mut r = rng(seed);
    let mut m = ModelSpec::new("conv_batchnorm_relu", &[1, 3, 8, 8], &[1, 3]);
    strided_stem(&mut m, &mut r);
    batch_norm_params(&mut m);
    m.node(batch_norm_node("stem_out", "bn_out").float("epsilon", 1e-3));
    conv_head(&mut m, &mut r, "bn_out", 64, 3);
    m
}

/// As `conv_batchnorm_relu_spec` with the default epsilon, then per-channel arithmetic:
/// `bn_out` -> Mul [1,4,1,1] -> Div [4,1,1] -> Sub (scalar − y) -> Add [1] -> `affine_out` -> Relu.
pub fn conv_batchnorm_arithmetic_spec(seed: u64) -> ModelSpec {
    let mut r = rng(seed);
    let mut m = ModelSpec::new("conv_batchnorm_arithmetic", &[1, 3, 8, 8], &[1, 3]);
    strided_stem(&mut m, &mut r);
    batch_norm_params(&mut m);
    m.init_f32("gain", &[1, 4, 1, 1], vec![2.0, -1.0, 0.5, 3.0])
        .init_f32("divisor", &[4, 1, 1], vec![4.0, 0.25, -2.0, 1.5])
        .init_f32("minuend", &[], vec![0.7])
        .init_f32("offset", &[1], vec![-0.4]);
    m.node(batch_norm_node("stem_out", "bn_out"))
        .node(Node::new("gain_mul", "Mul", &["bn_out", "gain"], &["gained"]))
        .node(Node::new("divisor_div", "Div", &["gained", "divisor"], &["divided"]))
        .node(Node::new("minuend_sub", "Sub", &["minuend", "divided"], &["flipped"]))
        .node(Node::new("offset_add", "Add", &["flipped", "offset"], &["affine_out"]));
    conv_head(&mut m, &mut r, "affine_out", 64, 3);
    m
}

/// stem_conv -> BatchNormalization -> `bn_out`, read by both Relu and Sigmoid (summed) -> Mul 2
/// -> Flatten -> Gemm. The fold must stop at `bn_out`.
pub fn conv_batchnorm_two_readers_spec(seed: u64) -> ModelSpec {
    let mut r = rng(seed);
    let mut m = ModelSpec::new("conv_batchnorm_two_readers", &[1, 3, 8, 8], &[1, 3]);
    strided_stem(&mut m, &mut r);
    batch_norm_params(&mut m);
    m.weight(&mut r, "head.weight", &[3, 64], 64)
        .weight(&mut r, "head.bias", &[3], 64);
    m.node(batch_norm_node("stem_out", "bn_out"))
        .node(Node::new("relu", "Relu", &["bn_out"], &["relu_out"]))
        .node(Node::new("sigmoid", "Sigmoid", &["bn_out"], &["sigmoid_out"]))
        .node(Node::new("join", "Add", &["relu_out", "sigmoid_out"], &["joined"]))
        .node(Node::new("flatten", "Flatten", &["joined"], &["flat"]).int("axis", 1))
        .node(
            Node::new("head", "Gemm", &["flat", "head.weight", "head.bias"], &[OUTPUT])
                .float("alpha", 1.0)
                .float("beta", 1.0)
                .int("transB", 1),
        );
    m
}

/// YOLOv5's Focus on `from` ([1,3,8,8]): four Slices with steps 2 on H and W (rows/columns
/// starting at 0 or 1) -> Concat(axis 1) -> `focused` [1,12,4,4]. With `chained`, each branch is
/// torch's export of `x[..., r::2, c::2]`: a Slice on H, then a Slice on W.
fn focus(m: &mut ModelSpec, from: &str, chained: bool) {
    m.init_i64("focus.ends", &[2], vec![i64::MAX, i64::MAX])
        .init_i64("focus.axes", &[2], vec![2, 3])
        .init_i64("focus.steps", &[2], vec![2, 2])
        .init_i64("focus.end", &[1], vec![i64::MAX])
        .init_i64("focus.step", &[1], vec![2])
        .init_i64("focus.axis_h", &[1], vec![2])
        .init_i64("focus.axis_w", &[1], vec![3])
        .init_i64("focus.zero", &[1], vec![0])
        .init_i64("focus.one", &[1], vec![1]);
    let mut parts = vec![];
    for (row, col) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
        let part = format!("focus_{row}{col}");
        if chained {
            let rows = format!("focus_rows_{row}{col}");
            let [r0, c0] = [row, col].map(|s| if s == 0 { "focus.zero" } else { "focus.one" });
            let h_inputs = [from, r0, "focus.end", "focus.axis_h", "focus.step"];
            let w_inputs = [rows.as_str(), c0, "focus.end", "focus.axis_w", "focus.step"];
            m.node(Node::new(&format!("slice_h_{row}{col}"), "Slice", &h_inputs, &[&rows]))
                .node(Node::new(&format!("slice_w_{row}{col}"), "Slice", &w_inputs, &[&part]));
        } else {
            let starts = format!("focus.starts_{row}{col}");
            m.init_i64(&starts, &[2], vec![row, col]);
            let inputs = [from, starts.as_str(), "focus.ends", "focus.axes", "focus.steps"];
            m.node(Node::new(&format!("slice_{row}{col}"), "Slice", &inputs, &[&part]));
        }
        parts.push(part);
    }
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    m.node(Node::new("focus_concat", "Concat", &parts, &["focused"]).int("axis", 1));
}

/// input [1,3,8,8] -> Focus (4 Slices, or 4 chains of 2 with `chained`) -> Concat -> `focused`
/// [1,12,4,4] -> stem_conv(12 -> 4, 3×3, pads 1) -> head.
pub fn focus_spec(seed: u64, chained: bool) -> ModelSpec {
    let mut r = rng(seed);
    let mut m = ModelSpec::new("focus", &[1, 3, 8, 8], &[1, 3]);
    focus(&mut m, INPUT, chained);
    conv3x3_stem_and_head(&mut m, &mut r, "focused", [12, 4, 4]);
    m
}

/// input [1,8,8,3] (NHWC) -> Sub(mean [3]) -> Div(std [3]) -> Transpose(perm [0,3,1,2]) -> Focus
/// -> `focused` [1,12,4,4] -> stem_conv -> head.
pub fn nhwc_normalised_focus_spec(seed: u64) -> ModelSpec {
    let mut r = rng(seed);
    let mut m = ModelSpec::new("nhwc_normalised_focus", &[1, 8, 8, 3], &[1, 3]);
    m.init_f32("pixel_mean", &[3], IMAGENET_MEAN.to_vec())
        .init_f32("pixel_std", &[3], IMAGENET_STD.to_vec());
    m.node(Node::new("sub_mean", "Sub", &[INPUT, "pixel_mean"], &["centred"]))
        .node(Node::new("div_std", "Div", &["centred", "pixel_std"], &["normalised"]))
        .node(Node::new("nhwc_to_nchw", "Transpose", &["normalised"], &["nchw"]).ints("perm", &[0, 3, 1, 2]));
    focus(&mut m, "nchw", false);
    conv3x3_stem_and_head(&mut m, &mut r, "focused", [12, 4, 4]);
    m
}

/// Output length of one Slice axis, straight from the ONNX spec's pseudo-code.
pub fn slice_len(start: i64, end: i64, step: i64, dim: i64) -> i64 {
    let fix = |v: i64| if v < 0 { v.saturating_add(dim) } else { v };
    let (s, e) = (fix(start), fix(end));
    let (s, e) = if step > 0 {
        (s.clamp(0, dim), e.clamp(0, dim))
    } else {
        (s.clamp(0, dim - 1), e.clamp(-1, dim - 1))
    };
    let n = if step > 0 {
        (e - s + step - 1) / step
    } else {
        (s - e + (-step) - 1) / (-step)
    };
    n.max(0)
}

/// One Slice of an input [1,3,7,6]; `axes` and `steps` are left out of the node when `None`.
pub struct SliceCase {
    pub starts: Vec<i64>,
    pub ends: Vec<i64>,
    pub axes: Option<Vec<i64>>,
    pub steps: Option<Vec<i64>>,
}

/// input [1,3,7,6] -> Slice(case) -> `sliced` -> stem_conv(3×3, pads 1) -> head.
pub fn slice_spec(seed: u64, case: &SliceCase) -> ModelSpec {
    let mut r = rng(seed);
    let input = [1i64, 3, 7, 6];
    let mut m = ModelSpec::new("slice", &input, &[1, 3]);
    let n = case.starts.len() as i64;
    m.init_i64("slice.starts", &[n], case.starts.clone())
        .init_i64("slice.ends", &[n], case.ends.clone());
    let mut inputs = vec![INPUT, "slice.starts", "slice.ends"];
    let axes = case.axes.clone().unwrap_or_else(|| (0..n).collect());
    if let Some(a) = &case.axes {
        m.init_i64("slice.axes", &[n], a.clone());
        inputs.push("slice.axes");
    }
    if let Some(s) = &case.steps {
        if case.axes.is_none() {
            inputs.push("");
        }
        m.init_i64("slice.steps", &[n], s.clone());
        inputs.push("slice.steps");
    }
    let steps = case.steps.clone().unwrap_or_else(|| vec![1; n as usize]);
    let mut out = input;
    for (i, &a) in axes.iter().enumerate() {
        let a = if a < 0 { a + 4 } else { a } as usize;
        out[a] = slice_len(case.starts[i], case.ends[i], steps[i], input[a]);
    }
    m.node(Node::new("slice", "Slice", &inputs, &["sliced"]));
    conv3x3_stem_and_head(&mut m, &mut r, "sliced", [out[1], out[2], out[3]]);
    m
}

/// What a Resize is told: scales (`floor(len · scale)` per axis) or sizes.
#[derive(Clone, Copy, Debug)]
pub enum ResizeTarget {
    Scales([f32; 4]),
    Sizes([i64; 4]),
}

/// input [1,2,5,4] -> Resize(`attrs`, target; empty roi) -> `resized` -> stem_conv(3×3, pads 1)
/// -> head.
pub fn resize_spec(seed: u64, attrs: &[(&str, &str)], target: ResizeTarget) -> ModelSpec {
    let mut r = rng(seed);
    let input = [1i64, 2, 5, 4];
    let mut m = ModelSpec::new("resize", &input, &[1, 3]);
    let (inputs, out): (Vec<&str>, [i64; 4]) = match target {
        ResizeTarget::Scales(s) => {
            m.init_f32("resize.scales", &[4], s.to_vec());
            let out = std::array::from_fn(|a| (input[a] as f32 * s[a]).floor() as i64);
            (vec![INPUT, "", "resize.scales"], out)
        }
        ResizeTarget::Sizes(s) => {
            m.init_i64("resize.sizes", &[4], s.to_vec());
            (vec![INPUT, "", "", "resize.sizes"], s)
        }
    };
    let mut node = Node::new("resize", "Resize", &inputs, &["resized"]);
    for (name, value) in attrs {
        node = string_attr(node, name, value);
    }
    m.node(node);
    conv3x3_stem_and_head(&mut m, &mut r, "resized", [out[1], out[2], out[3]]);
    m
}

/// input [1,3,8,8] -> Relu and Sigmoid (a fan-out that meets in an Add, not a Concat) -> Conv.
pub fn fan_out_into_add_spec(seed: u64) -> ModelSpec {
    let mut r = rng(seed);
    let mut m = ModelSpec::new("fan_out_into_add", &[1, 3, 8, 8], &[1, 3]);
    m.node(Node::new("relu_in", "Relu", &[INPUT], &["relu_in_out"]))
        .node(Node::new("sigmoid_in", "Sigmoid", &[INPUT], &["sigmoid_in_out"]))
        .node(Node::new(
            "join_in",
            "Add",
            &["relu_in_out", "sigmoid_in_out"],
            &["joined_in"],
        ));
    conv3x3_stem_and_head(&mut m, &mut r, "joined_in", [3, 8, 8]);
    m
}

/// input [1,3,side,side] -> Sub/Div ImageNet mean/std -> stem_conv(W [4,3,3,3], stride 2, pads 1)
/// -> BatchNormalization (channel 1's scale 0: a dead channel) -> Relu -> Flatten -> Gemm -> 3.
/// For side ≥ 40 the image is too large for one dense matrix: the front end is matrix-free.
/// Nullity 3·side² − 3·(side/2)² (three live channels), for even sides.
pub fn large_strided_stem_bn_spec(seed: u64, side: i64) -> ModelSpec {
    let mut r = rng(seed);
    let mut m = ModelSpec::new("large_strided_stem_bn", &[1, 3, side, side], &[1, 3]);
    m.init_f32("mean", &[1, 3, 1, 1], IMAGENET_MEAN.to_vec())
        .init_f32("std", &[1, 3, 1, 1], IMAGENET_STD.to_vec());
    m.node(Node::new("sub", "Sub", &[INPUT, "mean"], &["centred"]))
        .node(Node::new("div", "Div", &["centred", "std"], &["normalised"]));
    m.weight(&mut r, "stem_conv.weight", &[4, 3, 3, 3], 27)
        .weight(&mut r, "stem_conv.bias", &[4], 27);
    m.node(
        Node::new(
            "stem_conv",
            "Conv",
            &["normalised", "stem_conv.weight", "stem_conv.bias"],
            &["stem_out"],
        )
        .ints("kernel_shape", &[3, 3])
        .ints("strides", &[2, 2])
        .ints("pads", &[1, 1, 1, 1]),
    );
    batch_norm_params(&mut m);
    m.node(batch_norm_node("stem_out", "bn_out"));
    let out = (side + 1) / 2;
    conv_head(&mut m, &mut r, "bn_out", 4 * out * out, 3);
    m
}

/// input [1,3,side,side] -> Resize(linear, half the size) -> stem_conv(3 -> 4, 3×3, pads 1)
/// -> Relu -> Flatten -> Gemm -> 3: a front end behind a resampling, matrix-free for side > 36.
pub fn resized_stem_spec(seed: u64, side: i64) -> ModelSpec {
    let mut r = rng(seed);
    let mut m = ModelSpec::new("resized_stem", &[1, 3, side, side], &[1, 3]);
    m.init_f32("resize.scales", &[4], vec![1.0, 1.0, 0.5, 0.5]);
    m.node(string_attr(
        Node::new("resize", "Resize", &[INPUT, "", "resize.scales"], &["resized"]),
        "mode",
        "linear",
    ));
    let half = side / 2;
    conv3x3_stem_and_head(&mut m, &mut r, "resized", [3, half, half]);
    m
}
