//! The polyphase / Fourier view of a convolution: the structural nullity against the dense SVD
//! (same rank rule), the σ estimates and witnesses against the dense singular values, and the
//! circulant preconditioner: PCG projections equal the dense-SVD projector, masked too.

use blindspot::linop::{dot_test, norm, Conv2d, ConvGeometry, LinearOperator};
use blindspot::nullspace::circulant_preconditioner::CirculantPreconditioner;
use blindspot::nullspace::conv_spectrum::structural_nullity;
use blindspot::nullspace::matrix_free_projection::{CgProjector, Preconditioner};
use blindspot::nullspace::{rank_of, RankRule};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;

#[derive(Clone, Copy, Debug)]
enum Filters {
    Random,
    /// output channel 0 all zero
    DeadChannel,
    /// every filter's taps sum to zero per input channel
    ZeroSum,
}

#[derive(Clone, Copy, Debug)]
struct Config {
    name: &'static str,
    c: usize,
    hw: [usize; 2],
    m: usize,
    kernel: [usize; 2],
    strides: [usize; 2],
    dilations: [usize; 2],
    pads: [usize; 4],
    group: usize,
    filters: Filters,
}

const BASE: Config = Config {
    name: "",
    c: 3,
    hw: [16, 16],
    m: 8,
    kernel: [3, 3],
    strides: [2, 2],
    dilations: [1, 1],
    pads: [1, 1, 1, 1],
    group: 1,
    filters: Filters::Random,
};

fn configs() -> Vec<Config> {
    vec![
        Config {
            name: "3→8 3×3 s2 p1 (short-fat, padded)",
            ..BASE
        },
        Config {
            name: "3→16 3×3 s2 p1 (tall, padded: the YOLOv8n stem shape)",
            m: 16,
            ..BASE
        },
        Config {
            name: "1→2 3×3 s1 p1 on 8×8",
            c: 1,
            m: 2,
            hw: [8, 8],
            strides: [1, 1],
            ..BASE
        },
        Config {
            name: "2→3 3×3 s2 p0 on 9×9 (valid, short-fat)",
            c: 2,
            m: 3,
            hw: [9, 9],
            pads: [0; 4],
            ..BASE
        },
        Config {
            name: "3→32 7×7 s4 p3",
            m: 32,
            kernel: [7, 7],
            strides: [4, 4],
            pads: [3; 4],
            ..BASE
        },
        Config {
            name: "3→8 3×3 s2 p1, dead output channel",
            filters: Filters::DeadChannel,
            ..BASE
        },
        Config {
            name: "3→8 3×3 s2 p1, zero-sum filters",
            filters: Filters::ZeroSum,
            ..BASE
        },
        Config {
            name: "4→3 3×3 s1 valid on 10×10 (short-fat symbol)",
            c: 4,
            m: 3,
            hw: [10, 10],
            strides: [1, 1],
            pads: [0; 4],
            ..BASE
        },
        Config {
            name: "4→3 3×3 s1 valid, dead channel",
            c: 4,
            m: 3,
            hw: [10, 10],
            strides: [1, 1],
            pads: [0; 4],
            filters: Filters::DeadChannel,
            ..BASE
        },
        Config {
            name: "1→2 3×3 s1 p2 on 8×8 (full, tall)",
            c: 1,
            m: 2,
            hw: [8, 8],
            strides: [1, 1],
            pads: [2; 4],
            ..BASE
        },
        Config {
            name: "1→6 3×3 s2 pads (1,1,2,2) on 8×8 (full, tall)",
            c: 1,
            m: 6,
            hw: [8, 8],
            pads: [1, 1, 2, 2],
            ..BASE
        },
        Config {
            name: "2→3 3×3 dilation (2,1) asymmetric pads on 9×9",
            c: 2,
            m: 3,
            hw: [9, 9],
            strides: [1, 1],
            dilations: [2, 1],
            pads: [2, 1, 2, 1],
            ..BASE
        },
        Config {
            name: "4→6 groups 2, s2, pads (1,0,0,1) on 9×9",
            c: 4,
            m: 6,
            hw: [9, 9],
            group: 2,
            pads: [1, 0, 0, 1],
            ..BASE
        },
        Config {
            name: "depthwise 3→3 s2 p1 on 9×9",
            c: 3,
            m: 3,
            hw: [9, 9],
            group: 3,
            ..BASE
        },
        Config {
            name: "depthwise 2→4 (multiplier 2) s2 valid on 11×11",
            c: 2,
            m: 4,
            hw: [11, 11],
            group: 2,
            pads: [0; 4],
            ..BASE
        },
        Config {
            name: "3→8 4×4 s4 patch-wise on 8×8",
            kernel: [4, 4],
            strides: [4, 4],
            hw: [8, 8],
            pads: [0; 4],
            ..BASE
        },
        Config {
            name: "2→5 2×2 s2 patch-wise, pads (1,1,0,0) on 7×7",
            c: 2,
            m: 5,
            kernel: [2, 2],
            hw: [7, 7],
            pads: [1, 1, 0, 0],
            ..BASE
        },
        Config {
            name: "2→3 2×2 s3 (stride > kernel: unread pixels) on 8×8",
            c: 2,
            m: 3,
            kernel: [2, 2],
            strides: [3, 3],
            hw: [8, 8],
            pads: [0; 4],
            ..BASE
        },
        Config {
            name: "1→2 5×5 s4 pads (2,2,1,1) on 11×10 (size not a multiple of the stride)",
            c: 1,
            m: 2,
            kernel: [5, 5],
            strides: [4, 4],
            pads: [2, 2, 1, 1],
            hw: [11, 10],
            ..BASE
        },
        Config {
            name: "1→2 3×3 s1 valid on 8×8, zero-sum (in ≤ out: constants are null)",
            c: 1,
            m: 2,
            hw: [8, 8],
            strides: [1, 1],
            pads: [0; 4],
            filters: Filters::ZeroSum,
            ..BASE
        },
    ]
}

fn operator(cfg: &Config, rng: &mut ChaCha8Rng) -> Conv2d {
    let out = ConvGeometry::output_size(cfg.hw, cfg.kernel, cfg.strides, cfg.dilations, cfg.pads).unwrap();
    let per_filter = cfg.c / cfg.group * cfg.kernel[0] * cfg.kernel[1];
    let mut weight: Vec<f64> = (0..cfg.m * per_filter).map(|_| rng.gen_range(-1.0..1.0)).collect();
    match cfg.filters {
        Filters::Random => {}
        Filters::DeadChannel => weight[..per_filter].fill(0.0),
        Filters::ZeroSum => {
            let taps = cfg.kernel[0] * cfg.kernel[1];
            for filter in weight.chunks_mut(taps) {
                let mean = filter.iter().sum::<f64>() / taps as f64;
                filter.iter_mut().for_each(|v| *v -= mean);
            }
        }
    }
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
        weight,
    }
}

const EPS_F32: f64 = f32::EPSILON as f64;

fn weight_dims(conv: &Conv2d) -> (usize, usize) {
    let g = &conv.geometry;
    (conv.out_channels, g.in_shape[0] / g.group * g.kernel[0] * g.kernel[1])
}

#[test]
fn structural_nullity_equals_the_dense_svd_wherever_it_answers() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let rule = RankRule::default();
    let mut answered = 0;
    let all = configs();
    for cfg in &all {
        let conv = operator(cfg, &mut rng);
        let dense = rank_of(&conv.to_dense(), weight_dims(&conv), EPS_F32, rule).unwrap();
        let ours = structural_nullity(&conv, EPS_F32, rule);
        let short_sigma = dense.sigma_min;
        eprintln!(
            "{:<75} dense nullity {:>4}  ours {:>9}  lower bound {:>4}  σ_min dense/σ_max {:.3e}  estimate {:.3e}  proved ≥ {:>9}  witness {:.3e}\n    {}",
            cfg.name,
            dense.nullity,
            format!("{:?}", ours.nullity),
            ours.lower_bound,
            short_sigma / dense.sigma_max,
            ours.sigma_min / dense.sigma_max,
            ours.sigma_min_lower_bound
                .map_or("-".to_string(), |b| format!("{:.3e}", b / dense.sigma_max)),
            ours.sigma_min_upper_bound() / dense.sigma_max,
            ours.method
        );
        assert_eq!(ours.lower_bound, conv.input_dim().saturating_sub(conv.output_dim()));
        assert!(dense.nullity >= ours.lower_bound, "{}", cfg.name);
        if let Some(nullity) = ours.nullity {
            answered += 1;
            assert_eq!(nullity, dense.nullity, "{}: {}", cfg.name, ours.method);
            assert_eq!(nullity, ours.expected_nullity, "{}", cfg.name);
        }
        // σ_max: the symbol's is the infinite image's norm (≥ the finite one, up to the grid's
        // resolution); on images this small the border costs the finite one up to ~10 %.
        assert!(
            ours.sigma_max >= dense.sigma_max * 0.98 && ours.sigma_max <= dense.sigma_max * 1.25,
            "{}: σ_max {} vs dense {}",
            cfg.name,
            ours.sigma_max,
            dense.sigma_max
        );
        // The rigorous bracket: proved lower bound ≤ dense σ on the short side ≤ witness.
        let slack = 1e-9 * dense.sigma_max;
        if let Some(lower) = ours.sigma_min_lower_bound {
            assert!(
                lower <= short_sigma + slack,
                "{}: lower bound {lower} > {short_sigma}",
                cfg.name
            );
        }
        assert!(
            ours.sigma_min_upper_bound() + slack >= short_sigma,
            "{}: witness {} < {short_sigma}",
            cfg.name,
            ours.sigma_min_upper_bound()
        );
        // Witness ratios are what they say.
        let w = &ours.input_witness;
        let measured = norm(&conv.apply_vec(&w.direction)) / norm(&w.direction);
        assert!((measured - w.ratio).abs() <= 1e-12 * (1.0 + measured), "{}", cfg.name);
    }
    assert!(
        answered * 4 >= all.len() * 3,
        "only {answered} of {} configurations answered",
        all.len()
    );
}

#[test]
fn facts_measured_with_numpy_hold() {
    // (configuration, dense nullity measured with numpy on random weights)
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let rule = RankRule::default();
    for (k, expected) in [(0, 256), (1, 0), (2, 0), (3, 114), (4, 256), (5, 320), (6, 256)] {
        let cfg = &configs()[k];
        let conv = operator(cfg, &mut rng);
        let ours = structural_nullity(&conv, EPS_F32, rule);
        assert_eq!(ours.nullity, Some(expected), "{}: {}", cfg.name, ours.method);
    }
}

#[test]
fn zero_sum_valid_convolution_is_refused_not_miscounted() {
    // Constant images are null, so the live part is not of full rank: the method must not
    // claim the lower bound.
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let cfg = configs().into_iter().last().unwrap();
    let conv = operator(&cfg, &mut rng);
    let dense = rank_of(&conv.to_dense(), weight_dims(&conv), EPS_F32, RankRule::default()).unwrap();
    let ours = structural_nullity(&conv, EPS_F32, RankRule::default());
    assert!(dense.nullity >= 1);
    assert!(
        ours.nullity.is_none() || ours.nullity == Some(dense.nullity),
        "{}",
        ours.method
    );
    assert!(
        ours.input_witness.ratio < 1e-12 * dense.sigma_max,
        "a constant image is a witness"
    );
}

#[test]
fn real_size_stems_are_cheap() {
    // The YOLOv8n stem shape (3→16 3×3 s2 p1) on 320×320 and 640×640, the 3×3 / 7×7 stems on 224.
    let mut rng = ChaCha8Rng::seed_from_u64(14);
    for (side, m, k, s, p) in [
        (224, 8, 3, 2, 1),
        (224, 32, 7, 4, 3),
        (320, 16, 3, 2, 1),
        (640, 16, 3, 2, 1),
        (224, 96, 4, 4, 0),
    ] {
        let cfg = Config {
            name: "",
            hw: [side, side],
            m,
            kernel: [k, k],
            strides: [s, s],
            pads: [p; 4],
            ..BASE
        };
        let conv = operator(&cfg, &mut rng);
        let start = std::time::Instant::now();
        let ours = structural_nullity(&conv, EPS_F32, RankRule::default());
        let seconds = start.elapsed().as_secs_f64();
        eprintln!(
            "{side}² 3→{m} {k}×{k} s{s} p{p}: {:?} (expected {}, lower bound {}) σ_min/σ_max ≈ {:.2e}, witness {:.2e}, {seconds:.2} s\n    {}",
            ours.nullity,
            ours.expected_nullity,
            ours.lower_bound,
            ours.sigma_min / ours.sigma_max,
            ours.sigma_min_upper_bound() / ours.sigma_max,
            ours.method
        );
        assert!(ours.expected_nullity >= ours.lower_bound);
        assert!(seconds < 20.0, "{seconds} s (debug build)");
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

/// A with the `pinned` inputs held at zero (a test-local copy of the column mask, so that this
/// test depends on nothing but the projector).
struct Pinned<'a> {
    conv: &'a Conv2d,
    free: Vec<bool>,
}

impl LinearOperator for Pinned<'_> {
    fn input_dim(&self) -> usize {
        self.conv.input_dim()
    }
    fn output_dim(&self) -> usize {
        self.conv.output_dim()
    }
    fn apply(&self, x: &[f64], y: &mut [f64]) {
        let masked: Vec<f64> = x
            .iter()
            .zip(&self.free)
            .map(|(v, &f)| if f { *v } else { 0.0 })
            .collect();
        self.conv.apply(&masked, y);
    }
    fn adjoint(&self, y: &[f64], x: &mut [f64]) {
        self.conv.adjoint(y, x);
        x.iter_mut().zip(&self.free).for_each(|(v, &f)| {
            if !f {
                *v = 0.0
            }
        });
    }
}

fn random(len: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
    (0..len).map(|_| rng.gen_range(-1.0..1.0)).collect()
}

#[test]
fn preconditioned_projection_matches_the_dense_svd() {
    let mut rng = ChaCha8Rng::seed_from_u64(15);
    // padded, strided, valid, dilated, grouped, depthwise, size not a multiple of the stride
    for k in [0, 1, 3, 4, 5, 11, 12, 13, 18] {
        let cfg = &configs()[k];
        let conv = operator(cfg, &mut rng);
        let v = random(conv.input_dim(), &mut rng);
        let expected = dense_null_projection(&conv.to_dense(), &v);
        let plain = CgProjector::new(&conv).project(&v, None).2;
        let projector =
            CgProjector::new(&conv).with_preconditioner(Arc::new(CirculantPreconditioner::new(&conv, 1e-6)));
        let (z, u, report) = projector.project(&v, None);
        eprintln!(
            "{:<60} CG {:>4} iterations, PCG {:>4} ({:.1e})",
            cfg.name, plain.iterations, report.iterations, report.relative_residual
        );
        assert!(
            report.converged && report.relative_residual <= 1e-10,
            "{}: {report:?}",
            cfg.name
        );
        // the report's residual is the true one
        let true_residual = norm(&conv.apply_vec(&z)) / norm(&conv.apply_vec(&v));
        assert!((true_residual - report.relative_residual).abs() <= 1e-3 * report.relative_residual + 1e-16);
        let err = z.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(
            err < 1e-7,
            "{}: PCG differs from the dense projector by {err}",
            cfg.name
        );
        let again = projector.project(&v, Some(&u)).2;
        assert!(
            again.iterations <= 1,
            "{}: warm start took {}",
            cfg.name,
            again.iterations
        );
    }
}

#[test]
fn preconditioned_projection_with_pinned_pixels_matches_the_dense_svd() {
    let mut rng = ChaCha8Rng::seed_from_u64(16);
    for (k, pinned_fraction) in [(0, 0.1), (0, 0.4), (4, 0.2), (18, 0.25)] {
        let cfg = &configs()[k];
        let conv = operator(cfg, &mut rng);
        let free: Vec<bool> = (0..conv.input_dim())
            .map(|_| rng.gen::<f64>() >= pinned_fraction)
            .collect();
        let op = Pinned {
            conv: &conv,
            free: free.clone(),
        };
        let x = random(op.input_dim(), &mut rng);
        let y = random(op.output_dim(), &mut rng);
        assert!(dot_test(&op, &x, &y) < 1e-12);
        let mut v = random(conv.input_dim(), &mut rng);
        v.iter_mut().zip(&free).for_each(|(x, &f)| {
            if !f {
                *x = 0.0
            }
        });
        let mut dense = conv.to_dense();
        for (j, &f) in free.iter().enumerate() {
            if !f {
                for i in 0..dense.nrows() {
                    dense[(i, j)] = 0.0;
                }
            }
        }
        let expected = dense_null_projection(&dense, &v);
        let plain = CgProjector::new(&op).project(&v, None).2;
        let preconditioner = CirculantPreconditioner::new(&conv, 1e-6).with_row_scaling(&conv, Some(&free));
        let projector = CgProjector::new(&op).with_preconditioner(Arc::new(preconditioner));
        let (z, _, report) = projector.project(&v, None);
        eprintln!(
            "{:<45} {:>3.0}% pinned: CG {:>4} iterations, PCG {:>4} ({:.1e})",
            cfg.name,
            100.0 * pinned_fraction,
            plain.iterations,
            report.iterations,
            report.relative_residual
        );
        assert!(
            report.converged && report.relative_residual <= 1e-10,
            "{}: {report:?}",
            cfg.name
        );
        assert!(z.iter().zip(&free).all(|(v, &f)| f || *v == 0.0), "pinned pixels moved");
        let err = z.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(
            err < 1e-7,
            "{}: masked PCG differs from the dense projector by {err}",
            cfg.name
        );
    }
}

#[test]
fn circulant_preconditioner_inverts_a_at_away_from_the_border() {
    // Outputs supported in the middle of a large grid: A Aᵀ acts there as the circulant with
    // symbol W Wᴴ, so the preconditioner undoes it (up to ε). This pins down the Fourier sign
    // convention (W(−ω) = conj W(ω): the wrong sign gives the conjugate blocks).
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    for (c, m, k, s, d) in [(3, 8, 3, 2, 1), (2, 5, 5, 3, 1), (3, 2, 3, 1, 2), (3, 30, 7, 4, 1)] {
        let cfg = Config {
            name: "",
            c,
            m,
            hw: [64, 64],
            kernel: [k, k],
            strides: [s, s],
            dilations: [d, d],
            pads: [1, 2, 0, 1],
            ..BASE
        };
        let conv = operator(&cfg, &mut rng);
        let [oh, ow] = conv.geometry.out;
        let mut y = vec![0.0; conv.output_dim()];
        for o in 0..m {
            for py in oh / 2 - 2..oh / 2 + 2 {
                for px in ow / 2 - 2..ow / 2 + 2 {
                    y[(o * oh + py) * ow + px] = rng.gen_range(-1.0..1.0);
                }
            }
        }
        let aat_y = conv.apply_vec(&conv.adjoint_vec(&y));
        let back = CirculantPreconditioner::new(&conv, 1e-12).apply(&aat_y);
        let err = norm(&back.iter().zip(&y).map(|(a, b)| a - b).collect::<Vec<_>>()) / norm(&y);
        // The preconditioner computes in f32 (about 1e-6 relative here); a wrong sign convention
        // or layout gives errors of order 1.
        assert!(err < 1e-4, "{c}→{m} {k}×{k} s{s} d{d}: relative error {err}");
    }
}

/// `cargo test --test conv_spectrum -- --ignored --nocapture`: the 224×224 stems, CG against PCG
/// (the criterion figures are in benches/nullspace.rs).
#[test]
#[ignore]
fn stem_projection_timings_224() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for (m, k, s, p) in [(8, 3, 2, 1), (32, 7, 4, 3)] {
        let cfg = Config {
            name: "",
            hw: [224, 224],
            m,
            kernel: [k, k],
            strides: [s, s],
            pads: [p; 4],
            ..BASE
        };
        let conv = operator(&cfg, &mut rng);
        let v = random(conv.input_dim(), &mut rng);
        let y = random(conv.output_dim(), &mut rng);
        let time = |f: &dyn Fn()| {
            let start = std::time::Instant::now();
            for _ in 0..10 {
                f();
            }
            start.elapsed().as_secs_f64() / 10.0 * 1e3
        };
        let pc = CirculantPreconditioner::new(&conv, 1e-6);
        eprintln!(
            "3→{m} {k}×{k}: apply {:.2} ms, adjoint {:.2} ms, preconditioner {:.2} ms",
            time(&|| drop(conv.apply_vec(&v))),
            time(&|| drop(conv.adjoint_vec(&y))),
            time(&|| drop(pc.apply(&y))),
            m = conv.out_channels,
        );
        for (ext, scaled) in [(0, false), (0, true)] {
            let start = std::time::Instant::now();
            let preconditioner = if scaled {
                CirculantPreconditioner::new(&conv, 1e-6)
            } else {
                CirculantPreconditioner::with_extension(&conv, 1e-6, [ext, ext])
            };
            let preconditioner = Arc::new(preconditioner);
            let setup = start.elapsed().as_secs_f64();
            let start = std::time::Instant::now();
            let report = CgProjector::new(&conv)
                .with_preconditioner(preconditioner)
                .project(&v, None)
                .2;
            eprintln!(
                "3→{m} {k}×{k} s{s} p{p} {}: PCG {report:?} in {:.2} s (+ {setup:.2} s setup)",
                if scaled {
                    "default (extended, scaled)"
                } else {
                    "plain circulant"
                },
                start.elapsed().as_secs_f64()
            );
        }
    }
}
