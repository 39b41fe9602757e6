//! Matrix-free operators: the dot test, and the convolution against tract running the same Conv
//! node (its Jacobian by unit inputs) for strides, asymmetric pads, dilations and groups.
mod common;

use blindspot::linop::{dot_test, Conv2d, ConvGeometry, LinearOperator};
use blindspot::model::onnx_write::{model_bytes, ModelSpec, Node, INPUT, OUTPUT};
use blindspot::Model;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;

struct Config {
    c: usize,
    hw: [usize; 2],
    m: usize,
    kernel: [usize; 2],
    strides: [usize; 2],
    dilations: [usize; 2],
    pads: [usize; 4],
    group: usize,
}

fn configs() -> Vec<Config> {
    let base = Config {
        c: 3,
        hw: [7, 9],
        m: 4,
        kernel: [3, 3],
        strides: [1, 1],
        dilations: [1, 1],
        pads: [0; 4],
        group: 1,
    };
    vec![
        Config { ..base },
        Config {
            strides: [2, 2],
            pads: [1, 1, 1, 1],
            ..base
        },
        Config {
            strides: [2, 3],
            pads: [0, 1, 2, 0],
            ..base
        },
        Config {
            kernel: [2, 4],
            strides: [3, 1],
            ..base
        },
        Config {
            dilations: [2, 1],
            pads: [2, 1, 2, 1],
            ..base
        },
        Config {
            c: 4,
            m: 6,
            group: 2,
            strides: [2, 2],
            pads: [1, 0, 0, 1],
            ..base
        },
        // depthwise
        Config {
            c: 3,
            m: 3,
            group: 3,
            strides: [2, 2],
            pads: [1, 1, 1, 1],
            ..base
        },
        Config {
            c: 2,
            m: 4,
            group: 2,
            kernel: [1, 1],
            ..base
        },
        Config {
            c: 1,
            m: 2,
            kernel: [5, 5],
            strides: [4, 4],
            pads: [2, 2, 1, 1],
            hw: [11, 10],
            ..base
        },
        Config {
            kernel: [4, 4],
            strides: [4, 4],
            hw: [8, 8],
            ..base
        },
    ]
}

fn operator(cfg: &Config, rng: &mut ChaCha8Rng) -> Conv2d {
    let out = ConvGeometry::output_size(cfg.hw, cfg.kernel, cfg.strides, cfg.dilations, cfg.pads).unwrap();
    let n = cfg.m * cfg.c / cfg.group * cfg.kernel[0] * cfg.kernel[1];
    Conv2d {
        geometry: ConvGeometry {
            in_shape: [cfg.c, cfg.hw[0], cfg.hw[1]],
            kernel: cfg.kernel,
            strides: cfg.strides,
            dilations: cfg.dilations,
            pads: cfg.pads,
            group: cfg.group,
            out,
        },
        out_channels: cfg.m,
        // Weights representable in f32, so that tract computes with the same numbers.
        weight: (0..n).map(|_| rng.gen_range(-1.0f32..1.0) as f64).collect(),
    }
}

/// The same convolution as a one-node ONNX model.
fn onnx_conv(conv: &Conv2d) -> Vec<u8> {
    let g = &conv.geometry;
    let i = |v: &[usize]| v.iter().map(|&x| x as i64).collect::<Vec<i64>>();
    let mut m = ModelSpec::new(
        "conv",
        &i(&[1, g.in_shape[0], g.in_shape[1], g.in_shape[2]]),
        &i(&[1, conv.out_channels, g.out[0], g.out[1]]),
    );
    let wdims = i(&[conv.out_channels, g.in_shape[0] / g.group, g.kernel[0], g.kernel[1]]);
    m.init_f32("w", &wdims, conv.weight.iter().map(|&v| v as f32).collect());
    m.node(
        Node::new("conv", "Conv", &[INPUT, "w"], &[OUTPUT])
            .ints("kernel_shape", &i(&g.kernel))
            .ints("strides", &i(&g.strides))
            .ints("dilations", &i(&g.dilations))
            .ints("pads", &i(&g.pads))
            .int("group", g.group as i64),
    );
    model_bytes(&m)
}

#[test]
fn convolution_passes_the_dot_test_and_equals_tract() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    for (k, cfg) in configs().iter().enumerate() {
        let conv = operator(cfg, &mut rng);
        let x: Vec<f64> = (0..conv.input_dim()).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let y: Vec<f64> = (0..conv.output_dim()).map(|_| rng.gen_range(-1.0..1.0)).collect();
        assert!(dot_test(&conv, &x, &y) < 1e-12, "config {k}: dot test");

        let model = Model::from_bytes(&onnx_conv(&conv), Path::new("conv.onnx"), None).unwrap();
        let oracle = common::oracles::jacobian_through_tract(&model, OUTPUT);
        let ours = conv.to_dense();
        assert_eq!(
            (ours.nrows(), ours.ncols()),
            (oracle.nrows(), oracle.ncols()),
            "config {k}"
        );
        let err = (&ours - &oracle).norm_max();
        assert!(err < 1e-6, "config {k}: differs from tract by {err}");
        // The matrix-free apply and the dense matrix agree.
        let dense_y = &ours * faer::Mat::from_fn(x.len(), 1, |i, _| x[i]);
        let apply_y = conv.apply_vec(&x);
        for (i, v) in apply_y.iter().enumerate() {
            assert!((v - dense_y[(i, 0)]).abs() < 1e-12, "config {k}: apply vs dense");
        }
    }
}

/// Orthogonal projector onto the null space from a dense SVD (σ ≤ 1e-10 σ_max counts as null).
fn dense_null_projection(a: &faer::Mat<f64>, v: &[f64]) -> Vec<f64> {
    let svd = a.svd().unwrap();
    let s = svd.S().column_vector();
    let max = (0..s.nrows()).map(|i| s[i]).fold(0.0, f64::max);
    let rank = (0..s.nrows()).filter(|&i| s[i] > 1e-10 * max).count();
    let null = svd.V().subcols(rank, a.ncols() - rank);
    let vv = faer::Mat::from_fn(v.len(), 1, |i, _| v[i]);
    let p = null * (null.transpose() * &vv);
    (0..v.len()).map(|i| p[(i, 0)]).collect()
}

#[test]
fn conjugate_gradient_projection_matches_the_dense_svd() {
    use blindspot::nullspace::matrix_free_projection::CgProjector;
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for (k, cfg) in configs().iter().enumerate() {
        let conv = operator(cfg, &mut rng);
        let v: Vec<f64> = (0..conv.input_dim()).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let expected = dense_null_projection(&conv.to_dense(), &v);
        let projector = CgProjector::new(&conv);
        let (z, u, report) = projector.project(&v, None);
        assert!(report.converged, "config {k}: {report:?}");
        assert!(report.relative_residual <= 1e-9, "config {k}: {report:?}");
        let err = z.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(err < 1e-7, "config {k}: CG differs from the dense projector by {err}");
        // A warm start from the answer needs (almost) no work.
        let (_, _, again) = projector.project(&v, Some(&u));
        assert!(
            again.iterations <= 1,
            "config {k}: warm start took {} iterations",
            again.iterations
        );
    }
}

/// Large images go through the patch matrix band of output rows by band (neighbouring bands
/// share input rows in the adjoint): the result equals the plain sum over kernel taps
/// (`ConvGeometry::for_each_tap`, the path `to_dense` uses and the tract test above checks), and
/// the adjoint passes the dot test.
#[test]
fn banded_patch_path_equals_the_tap_sum_on_wide_images() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let cases = [
        Config {
            c: 3,
            hw: [13, 520],
            m: 5,
            kernel: [3, 3],
            strides: [2, 2],
            dilations: [1, 2],
            pads: [1, 0, 2, 1],
            group: 1,
        },
        Config {
            c: 3,
            hw: [40, 200],
            m: 8,
            kernel: [7, 7],
            strides: [4, 4],
            dilations: [1, 1],
            pads: [3, 3, 3, 3],
            group: 1,
        },
    ];
    for (k, cfg) in cases.iter().enumerate() {
        let conv = operator(cfg, &mut rng);
        let x: Vec<f64> = (0..conv.input_dim()).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let y: Vec<f64> = (0..conv.output_dim()).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let mut expected = vec![0.0; conv.output_dim()];
        conv.geometry
            .for_each_tap(conv.out_channels, |r, c, w| expected[r] += conv.weight[w] * x[c]);
        let got = conv.apply_vec(&x);
        let err = got
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(err < 1e-12, "case {k}: banded apply differs from the tap sum by {err}");
        let mut expected_adjoint = vec![0.0; conv.input_dim()];
        conv.geometry.for_each_tap(conv.out_channels, |r, c, w| {
            expected_adjoint[c] += conv.weight[w] * y[r]
        });
        let got = conv.adjoint_vec(&y);
        let err = got
            .iter()
            .zip(&expected_adjoint)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(
            err < 1e-12,
            "case {k}: banded adjoint differs from the tap sum by {err}"
        );
        assert!(dot_test(&conv, &x, &y) < 1e-12, "case {k}: dot test");
    }
}
