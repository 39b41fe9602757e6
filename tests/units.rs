//! Small pieces against hand-computed values.

use blindspot::linop::{Block, BlockOperator};
use blindspot::npy::{encode_f32, read_f32};
use blindspot::nullspace::{NullSpace, RankRule};
use blindspot::preprocess::{ChannelOrder, Layout, Preprocess};
use blindspot::search::{project_feasible, psnr};
use faer::Mat;
use std::sync::Arc;

#[test]
fn npy_round_trip_keeps_shape_and_bits() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.npy");
    let data: Vec<f32> = (0..24).map(|i| i as f32 * 0.1 - 1.0).collect();
    let bytes = encode_f32(&[1, 2, 3, 4], &data);
    assert_eq!(&bytes[..6], b"\x93NUMPY");
    assert_eq!(
        (bytes.len() - 24 * 4) % 64,
        0,
        "header padded to 64 bytes as numpy does"
    );
    std::fs::write(&p, bytes).unwrap();
    let (shape, back) = read_f32(&p).unwrap();
    assert_eq!(shape, vec![1, 2, 3, 4]);
    assert_eq!(back, data);
}

#[test]
fn psnr_by_hand() {
    // MSE 0.01 → 20 dB.
    assert!((psnr(&[0.1, 0.5], &[0.2, 0.4]) - 20.0).abs() < 1e-12);
    assert!(psnr(&[0.3], &[0.3]).is_infinite());
}

#[test]
fn dykstra_finds_the_closest_feasible_collision_by_hand() {
    // A = [1 1]: the null space is (1, −1)/√2. From x = (0.2, 0.6) the closest point to w = (1, 0)
    // on the line is (0.9, −0.1), outside the box; the closest feasible one is (0.8, 0.0).
    let op = BlockOperator {
        input_dim: 2,
        output_dim: 1,
        blocks: vec![Block {
            rows: vec![0],
            cols: vec![0, 1],
            matrix: Arc::new(Mat::from_fn(1, 2, |_, _| 1.0)),
        }],
    };
    let ns = NullSpace::of(&op, (1, 2), f32::EPSILON as f64, RankRule::default()).unwrap();
    assert_eq!(ns.nullity, 1);
    let p = project_feasible(&ns, &[0.2, 0.6], &[1.0, 0.0], 2000);
    assert!((p.z[0] - 0.8).abs() < 1e-6 && p.z[1].abs() < 1e-6, "{:?}", p.z);
    assert!(p.z[1] >= 0.0 && p.z[0] <= 1.0);
    assert!((p.z[0] + p.z[1] - 0.8).abs() < 1e-15, "stays exactly on A z = A x");
}

#[test]
fn preprocessing_map_by_hand() {
    // A 1×2 image with 3 channels, pixel (0,1) = (r, g, b) at HWC indices 3, 4, 5.
    let pre = Preprocess {
        layout: None,
        channels: ChannelOrder::Bgr,
        scale: 255.0,
        mean: Some(vec![100.0, 110.0, 120.0]),
        std: Some(vec![2.0, 4.0, 5.0]),
    };
    let pixels = [0.0, 0.1, 0.2, 0.4, 0.6, 1.0];
    let nchw = pre.gather(&[1, 3, 1, 2]).unwrap();
    let t = nchw.evaluate(&pixels);
    // Tensor channel 0 is blue: ((b·255) − 100) / 2 for x = 1 → (255 − 100) / 2.
    assert!((t[1] - 77.5).abs() < 1e-12);
    // Tensor channel 2 is red: (0.4·255 − 120) / 5.
    assert!((t[5] - (0.4 * 255.0 - 120.0) / 5.0).abs() < 1e-12);
    let nhwc = Preprocess {
        layout: Some(Layout::Nhwc),
        ..pre
    };
    let t = nhwc.gather(&[1, 1, 2, 3]).unwrap().evaluate(&pixels);
    assert!((t[3] - 77.5).abs() < 1e-12);
}
