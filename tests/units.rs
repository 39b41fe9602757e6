//! Small pieces against hand-computed values.

use blindspot::linop::{Block, BlockOperator};
use blindspot::model::npy::{encode_f32, read_f32};
use blindspot::model::preprocess::psnr;
use blindspot::model::preprocess::{ChannelOrder, Layout, Preprocess};
use blindspot::nullspace::{NullSpace, RankRule};
use blindspot::search::project_feasible;
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

/// Pinning pixels restricts the null space to directions that leave them fixed: against the null
/// space of [A; E_S] from a dense SVD.
#[test]
fn pinned_null_space_matches_dense_svd_of_the_stacked_constraints() {
    let a = Mat::from_fn(3, 7, |i, j| {
        ((i * 7 + j) as f64 * 0.37).sin() + if i == j { 1.0 } else { 0.0 }
    });
    let op = BlockOperator {
        input_dim: 9,
        output_dim: 3,
        // Pixels 7 and 8 are read by nothing: free unless pinned.
        blocks: vec![Block {
            rows: vec![0, 1, 2],
            cols: (0..7).collect(),
            matrix: Arc::new(a.clone()),
        }],
    };
    let ns = NullSpace::of(&op, (3, 7), f32::EPSILON as f64, RankRule::default()).unwrap();
    assert_eq!(ns.nullity, 4 + 2);
    let mut pinned = vec![false; 9];
    for k in [1, 4, 8] {
        pinned[k] = true;
    }
    let restricted = ns.pinned(&pinned).unwrap();
    // Oracle: rows of A (on pixels 0..7) stacked on unit rows of the pinned pixels.
    let stacked = Mat::from_fn(6, 9, |i, j| match i {
        0..=2 => {
            if j < 7 {
                a[(i, j)]
            } else {
                0.0
            }
        }
        _ => {
            if j == [1, 4, 8][i - 3] {
                1.0
            } else {
                0.0
            }
        }
    });
    let sv = stacked.singular_values().unwrap();
    let rank = sv.iter().filter(|&&s| s > 1e-10).count();
    assert_eq!(restricted.nullity, 9 - rank);
    let basis = restricted.dense_basis();
    assert_eq!(basis.ncols(), restricted.nullity);
    assert!((&stacked * &basis).norm_max() < 1e-12);
    // The projection is the orthogonal projector onto that space.
    let v: Vec<f64> = (0..9).map(|i| (i as f64 * 1.3).cos()).collect();
    let p = restricted.project(&v);
    let expected = &basis * (basis.transpose() * Mat::from_fn(9, 1, |i, _| v[i]));
    for i in 0..9 {
        assert!((p[i] - expected[(i, 0)]).abs() < 1e-12);
    }
    for k in [1, 4, 8] {
        assert_eq!(p[k], 0.0);
    }
}

/// On a black image, a layer that sums pixels with positive weights leaves no room to move; one
/// with a sign change in its weights does, and the collision keeps the black pixels exactly.
#[test]
fn collisions_of_black_pixels_move_only_where_the_layer_allows() {
    let make = |w: [f64; 2]| BlockOperator {
        input_dim: 2,
        output_dim: 1,
        blocks: vec![Block {
            rows: vec![0],
            cols: vec![0, 1],
            matrix: Arc::new(Mat::from_fn(1, 2, |_, j| w[j])),
        }],
    };
    let x = [0.0, 0.0];
    let positive = NullSpace::of(&make([1.0, 2.0]), (1, 2), f32::EPSILON as f64, RankRule::default()).unwrap();
    let stuck = project_feasible(&positive, &x, &[1.0, 1.0], 300);
    assert_eq!(stuck.z, vec![0.0, 0.0]);
    let mixed = NullSpace::of(&make([1.0, -2.0]), (1, 2), f32::EPSILON as f64, RankRule::default()).unwrap();
    let moved = project_feasible(&mixed, &x, &[1.0, 1.0], 300);
    // Null direction (2, 1)/√5; the closest feasible point to (1, 1) is (1.2, 0.6) cut to the box: (1, 0.5).
    assert!(
        (moved.z[0] - 1.0).abs() < 1e-6 && (moved.z[1] - 0.5).abs() < 1e-6,
        "{:?}",
        moved.z
    );
    assert!(moved.z.iter().all(|v| (0.0..=1.0).contains(v)));
    assert!((moved.z[0] - 2.0 * moved.z[1]).abs() < 1e-15);
}
