//! Self-test for the in-memory ONNX fixture builder in `tests/common/onnx_builder.rs`.
mod common;

use common::onnx_builder as ob;
use tract_onnx::prelude::*;

fn run(bytes: &[u8], input_shape: &[usize], input: Option<Vec<f32>>) -> TractResult<Vec<f32>> {
    let model = tract_onnx::onnx()
        .model_for_read(&mut &bytes[..])?
        .into_optimized()?
        .into_runnable()?;
    let n = input_shape.iter().product();
    let data = input.unwrap_or_else(|| vec![0.0; n]);
    let x = tract_ndarray::ArrayD::from_shape_vec(input_shape, data)?;
    let out = model.run(tvec!(Tensor::from(x).into()))?;
    assert_eq!(out.len(), 1);
    Ok(out[0].to_plain_array_view::<f32>()?.iter().copied().collect::<Vec<_>>())
}

fn check_shape(name: &str, bytes: &[u8], input_shape: &[usize], classes: usize) {
    let model = tract_onnx::onnx()
        .model_for_read(&mut &bytes[..])
        .unwrap_or_else(|e| panic!("{name}: {e:?}"))
        .into_optimized()
        .unwrap_or_else(|e| panic!("{name}: {e:?}"))
        .into_runnable()
        .unwrap();
    let x = Tensor::zero::<f32>(input_shape).unwrap();
    let out = model.run(tvec!(x.into())).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    assert_eq!(out[0].shape(), &[1, classes], "{name}");
    assert!(
        out[0]
            .to_plain_array_view::<f32>()
            .unwrap()
            .iter()
            .all(|v| v.is_finite()),
        "{name}"
    );
}

#[test]
fn all_fixtures_load_and_run() {
    let cases: Vec<(&str, Vec<u8>, Vec<usize>, usize)> = vec![
        ("mlp_gemm_transb", ob::mlp_gemm(true, 1), vec![1, 1, 8, 8], 5),
        ("mlp_gemm_no_transb", ob::mlp_gemm(false, 1), vec![1, 1, 8, 8], 5),
        ("mlp_matmul_add", ob::mlp_matmul_add(2), vec![1, 1, 8, 8], 5),
        (
            "patch_conv_nchw_normalised",
            ob::patch_conv_nchw_normalised(3),
            vec![1, 3, 12, 12],
            4,
        ),
        (
            "patch_conv_nhwc_transpose",
            ob::patch_conv_nhwc_transpose(4),
            vec![1, 12, 12, 3],
            4,
        ),
        ("patch_conv_uneven", ob::patch_conv_uneven(5), vec![1, 1, 10, 10], 3),
        ("patch_conv_padded", ob::patch_conv_padded(6), vec![1, 2, 10, 10], 3),
        ("overlapping_conv", ob::overlapping_conv(7), vec![1, 1, 8, 8], 3),
        ("vit_like_tokens", ob::vit_like_tokens(8), vec![1, 1, 8, 8], 3),
        // Sin is a valid ONNX op; it is "unsupported" only for blindspot's analysis.
        (
            "unsupported_first_op",
            ob::unsupported_first_op(9),
            vec![1, 1, 8, 8],
            10,
        ),
    ];
    for (name, bytes, shape, classes) in cases {
        check_shape(name, &bytes, &shape, classes);
    }
}

#[test]
fn nan_weights_loads_but_contains_nan() {
    let spec = ob::nan_weights_spec();
    assert!(spec.initializer("fc1.weight").unwrap().f32().unwrap()[3].is_nan());
    let bytes = ob::nan_weights();
    tract_onnx::onnx().model_for_read(&mut &bytes[..]).unwrap();
}

#[test]
fn truncated_model_fails_to_load() {
    let bytes = ob::truncated(&ob::mlp_gemm(true, 1));
    assert!(tract_onnx::onnx().model_for_read(&mut &bytes[..]).is_err());
}

#[test]
fn seeded_and_deterministic() {
    assert_eq!(ob::mlp_gemm(true, 1), ob::mlp_gemm(true, 1));
    assert_ne!(ob::mlp_gemm(true, 1), ob::mlp_gemm(true, 2));
}

#[test]
fn write_model_roundtrip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.onnx");
    ob::write_model(&path, &ob::mlp_matmul_add_spec(3));
    tract_onnx::onnx().model_for_path(&path).unwrap();
}

/// Compares tract's output with a hand-computed forward pass, so weight layout
/// (raw_data, transB) is what the spec says.
#[test]
fn mlp_gemm_matches_reference() {
    for trans_b in [true, false] {
        let spec = ob::mlp_gemm_spec(trans_b, 11);
        let w1 = spec.initializer("fc1.weight").unwrap().f32().unwrap();
        let b1 = spec.initializer("fc1.bias").unwrap().f32().unwrap();
        let w2 = spec.initializer("fc2.weight").unwrap().f32().unwrap();
        let b2 = spec.initializer("fc2.bias").unwrap().f32().unwrap();
        let x: Vec<f32> = (0..64).map(|i| ((i * 37 % 17) as f32 - 8.0) / 8.0).collect();
        let h: Vec<f32> = (0..20)
            .map(|j| {
                let s: f32 = (0..64)
                    .map(|i| x[i] * if trans_b { w1[j * 64 + i] } else { w1[i * 20 + j] })
                    .sum();
                (s + b1[j]).max(0.0)
            })
            .collect();
        let want: Vec<f32> = (0..5)
            .map(|k| (0..20).map(|j| h[j] * w2[k * 20 + j]).sum::<f32>() + b2[k])
            .collect();
        let got = run(&ob::model_bytes(&spec), &[1, 1, 8, 8], Some(x)).unwrap();
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-4, "transB={trans_b}: {got:?} vs {want:?}");
        }
    }
}
