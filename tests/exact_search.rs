//! The exact per-block solver against oracles that share nothing with it: brute-force
//! enumeration of active sets (QP) and of vertices (LP) on small polytopes, and the KKT
//! conditions on every block.

use blindspot::linop::{Block, BlockOperator, LinearOperator};
use blindspot::nullspace::{NullSpace, RankRule};
use blindspot::search::active_set::BlockPolytope;
use blindspot::search::blockwise::{CollisionSet, PixelRange};
use faer::prelude::Solve;
use faer::Mat;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;

/// A random r × n layer as one block, its null space and an image with some pixels on the
/// bounds of [0, 1].
fn random_case(rows: usize, cols: usize, seed: u64) -> (BlockOperator, NullSpace, Vec<f64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let m = Mat::from_fn(rows, cols, |_, _| rng.gen_range(-1.0..1.0));
    let op = BlockOperator {
        input_dim: cols,
        output_dim: rows,
        blocks: vec![Block {
            rows: (0..rows).collect(),
            cols: (0..cols).collect(),
            matrix: Arc::new(m),
        }],
    };
    let ns = NullSpace::of(&op, (rows, cols), f32::EPSILON as f64, RankRule::default()).unwrap();
    let x = (0..cols)
        .map(|_| match rng.gen_range(0..4) {
            0 => 0.0,
            1 => 1.0,
            _ => rng.gen_range(0.0..1.0),
        })
        .collect();
    (op, ns, x)
}

/// A collision: inside [0, 1] exactly, and the layer's output unchanged to rounding.
fn assert_collision(op: &BlockOperator, x: &[f64], z: &[f64], seed: u64) {
    assert!(
        z.iter().all(|v| (0.0..=1.0).contains(v)),
        "seed {seed}: outside the box"
    );
    let (ax, az) = (op.apply_vec(x), op.apply_vec(z));
    let rel = ax.iter().zip(&az).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max)
        / ax.iter().map(|a| a.abs()).fold(0.0, f64::max);
    assert!(rel < 1e-12, "seed {seed}: A z − A x relative {rel}");
}

/// Solves the equality-constrained projection min ½‖a − c‖² s.t. n_jᵀ a = b_j (j in `set`) by
/// the normal equations; `None` where the normals are dependent.
fn equality_projection(normals: &[Vec<f64>], offsets: &[f64], c: &[f64]) -> Option<Vec<f64>> {
    let q = normals.len();
    let k = c.len();
    if q == 0 {
        return Some(c.to_vec());
    }
    let g = Mat::from_fn(q, q, |i, j| (0..k).map(|l| normals[i][l] * normals[j][l]).sum::<f64>());
    let rhs = Mat::from_fn(q, 1, |i, _| {
        offsets[i] - (0..k).map(|l| normals[i][l] * c[l]).sum::<f64>()
    });
    let sv = g.singular_values().ok()?;
    if sv.iter().copied().fold(f64::INFINITY, f64::min) < 1e-10 {
        return None;
    }
    let lambda = g.full_piv_lu().solve(&rhs);
    Some(
        (0..k)
            .map(|l| c[l] + (0..q).map(|i| lambda[(i, 0)] * normals[i][l]).sum::<f64>())
            .collect(),
    )
}

/// Every subset of at most `k` bounds, each solved with its bounds as equalities; the feasible
/// solution closest to c is the projection.
fn brute_force_projection(basis: &Mat<f64>, lo: &[f64], hi: &[f64], c: &[f64]) -> Vec<f64> {
    let (rows, k) = (basis.nrows(), basis.ncols());
    let bounds: Vec<(Vec<f64>, f64)> = (0..rows)
        .flat_map(|i| {
            let n: Vec<f64> = (0..k).map(|j| basis[(i, j)]).collect();
            [(n.clone(), lo[i]), (n, hi[i])]
        })
        .collect();
    let feasible = |a: &[f64]| {
        (0..rows).all(|i| {
            let v: f64 = (0..k).map(|j| basis[(i, j)] * a[j]).sum();
            v >= lo[i] - 1e-9 && v <= hi[i] + 1e-9
        })
    };
    let mut best: Option<(f64, Vec<f64>)> = None;
    let m = bounds.len();
    let mut subset: Vec<usize> = vec![];
    fn visit(start: usize, m: usize, k: usize, subset: &mut Vec<usize>, f: &mut dyn FnMut(&[usize])) {
        f(subset);
        if subset.len() == k {
            return;
        }
        for s in start..m {
            subset.push(s);
            visit(s + 1, m, k, subset, f);
            subset.pop();
        }
    }
    visit(0, m, k, &mut subset, &mut |set| {
        let normals: Vec<Vec<f64>> = set.iter().map(|&s| bounds[s].0.clone()).collect();
        let offsets: Vec<f64> = set.iter().map(|&s| bounds[s].1).collect();
        if let Some(a) = equality_projection(&normals, &offsets, c) {
            if feasible(&a) {
                let d: f64 = a.iter().zip(c).map(|(a, c)| (a - c).powi(2)).sum();
                if best.as_ref().is_none_or(|(b, _)| d < *b) {
                    best = Some((d, a));
                }
            }
        }
    });
    best.expect("a = 0 is feasible").1
}

#[test]
fn block_projection_matches_brute_force_enumeration_of_active_sets() {
    for seed in 0..40 {
        // 7 pixels, 3 outputs: 4 null directions, 14 bounds.
        let (_, ns, x) = random_case(3, 7, seed);
        let d = ns.decomposition().unwrap();
        assert_eq!(d.blocks.len(), 1);
        let basis_rows = &d.blocks[0].basis;
        let k = basis_rows.dim();
        assert_eq!(k, 4);
        let basis = Mat::from_fn(7, k, |i, j| basis_rows.row(i)[j]);
        let lo: Vec<f64> = x.iter().map(|v| -v).collect();
        let hi: Vec<f64> = x.iter().map(|v| 1.0 - v).collect();
        let polytope = BlockPolytope::new(basis_rows, lo.clone(), hi.clone());
        let mut rng = ChaCha8Rng::seed_from_u64(1000 + seed);
        let c: Vec<f64> = (0..k).map(|_| rng.gen_range(-2.0..2.0)).collect();
        let solution = polytope.project(&c);
        let oracle = brute_force_projection(&basis, &lo, &hi, &c);
        let err = solution
            .coordinates
            .iter()
            .zip(&oracle)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(
            err < 1e-9,
            "seed {seed}: active set {:?} vs brute force {:?}",
            solution.coordinates,
            oracle
        );
        assert!(
            solution.kkt_residual < 1e-12,
            "seed {seed}: KKT residual {}",
            solution.kkt_residual
        );
        assert!(solution.active.iter().all(|(_, mu)| *mu >= 0.0));
    }
}

/// The best value of `value` (a function of the pixel change s = N a) over the points where k
/// of the hyperplanes sᵢ = level (one of `levels[i]`, for k distinct pixels i) meet and that
/// satisfy lo ≤ s ≤ hi: the optimum of any objective that is linear between those hyperplanes
/// (an LP with the bounds as levels; L1 to a target with its breakpoints added).
fn best_vertex(basis: &Mat<f64>, lo: &[f64], hi: &[f64], levels: &[Vec<f64>], value: &dyn Fn(&[f64]) -> f64) -> f64 {
    let (rows, k) = (basis.nrows(), basis.ncols());
    let normal = |i: usize| (0..k).map(|l| basis[(i, l)]).collect::<Vec<_>>();
    let change = |a: &[f64]| -> Vec<f64> { (0..rows).map(|i| (0..k).map(|j| basis[(i, j)] * a[j]).sum()).collect() };
    let mut best = f64::NEG_INFINITY;
    let mut pixels: Vec<usize> = (0..k).collect();
    loop {
        let counts: Vec<usize> = pixels.iter().map(|&i| levels[i].len()).collect();
        let combinations: usize = counts.iter().product();
        for mut choice in 0..combinations {
            let mut offsets = vec![0.0; k];
            for l in 0..k {
                offsets[l] = levels[pixels[l]][choice % counts[l]];
                choice /= counts[l];
            }
            let normals: Vec<Vec<f64>> = pixels.iter().map(|&i| normal(i)).collect();
            let Some(a) = equality_projection(&normals, &offsets, &vec![0.0; k]) else {
                continue;
            };
            let s = change(&a);
            if (0..rows).all(|r| s[r] >= lo[r] - 1e-9 && s[r] <= hi[r] + 1e-9) {
                best = best.max(value(&s));
            }
        }
        // The next k-subset of pixels in lexicographic order.
        let Some(l) = (0..k).rev().find(|&l| pixels[l] < rows - k + l) else {
            return best;
        };
        pixels[l] += 1;
        for m in l + 1..k {
            pixels[m] = pixels[m - 1] + 1;
        }
    }
}

/// max gᵀ(N a) over the polytope: the best of its vertices.
fn brute_force_lp(basis: &Mat<f64>, lo: &[f64], hi: &[f64], g: &[f64]) -> f64 {
    let levels: Vec<Vec<f64>> = lo.iter().zip(hi).map(|(&l, &h)| vec![l, h]).collect();
    best_vertex(basis, lo, hi, &levels, &|s| s.iter().zip(g).map(|(v, gi)| v * gi).sum())
}

/// min Σ wᵢ |(N a)ᵢ − dᵢ| over the polytope: the best point where bounds and breakpoints meet.
fn brute_force_l1(basis: &Mat<f64>, lo: &[f64], hi: &[f64], d: &[f64], w: &[f64]) -> f64 {
    let levels: Vec<Vec<f64>> = (0..lo.len()).map(|i| vec![lo[i], hi[i], d[i]]).collect();
    let l1 = |s: &[f64]| (0..s.len()).map(|i| w[i] * (s[i] - d[i]).abs()).sum::<f64>();
    -best_vertex(basis, lo, hi, &levels, &|s| -l1(s))
}

#[test]
fn far_corner_lp_matches_the_best_vertex() {
    for seed in 0..30 {
        // 5 pixels, 3 outputs: a polygon in the plane of 2 null directions.
        let (op, ns, mut x) = random_case(3, 5, 200 + seed);
        // Keep every pixel strictly inside so that the polygon has room and its vertices are
        // those of the bounds.
        for v in &mut x {
            *v = 0.1 + 0.8 * *v;
        }
        let d = ns.decomposition().unwrap();
        let rb = &d.blocks[0].basis;
        let basis = Mat::from_fn(5, 2, |i, j| rb.row(i)[j]);
        let lo01 = vec![0.0; 5];
        let hi01 = vec![1.0; 5];
        let set = CollisionSet::new(&d, &x, PixelRange { lo: &lo01, hi: &hi01 });
        let corner: Vec<f64> = x.iter().map(|&v| if v < 0.5 { 1.0 } else { -1.0 }).collect();
        let found = set.far(&corner, 0, None);
        let far = found.report.far_corner.unwrap();
        let lo: Vec<f64> = x.iter().map(|v| -v).collect();
        let hi: Vec<f64> = x.iter().map(|v| 1.0 - v).collect();
        let oracle = brute_force_lp(&basis, &lo, &hi, &corner);
        assert!(
            (far.reached - oracle).abs() < 1e-9,
            "seed {seed}: LP {} vs vertices {oracle}",
            far.reached
        );
        assert!(
            far.bound >= oracle - 1e-9 && far.bound - far.reached < 1e-6,
            "seed {seed}: bound {}",
            far.bound
        );
        // A collision: inside the box exactly, the layer's output unchanged.
        assert_collision(&op, &x, &found.z, seed);
    }
}

#[test]
fn a_block_pinned_by_saturated_pixels_has_no_room_and_says_so() {
    // Two pixels read as their sum: with both at 1 (or both at 0) the sum cannot stay the same
    // inside [0, 1] unless nothing moves; with 0.5 and 0.5 it can.
    let sum = Mat::from_fn(1, 2, |_, _| 1.0);
    let blocks = (0..3)
        .map(|b| Block {
            rows: vec![b],
            cols: vec![2 * b, 2 * b + 1],
            matrix: Arc::new(sum.clone()),
        })
        .collect();
    let op = BlockOperator {
        input_dim: 6,
        output_dim: 3,
        blocks,
    };
    let ns = NullSpace::of(&op, (1, 2), f32::EPSILON as f64, RankRule::default()).unwrap();
    let d = ns.decomposition().unwrap();
    let (lo, hi) = (vec![0.0; 6], vec![1.0; 6]);
    let x = [1.0, 1.0, 0.0, 0.0, 0.5, 0.5];
    let set = CollisionSet::new(&d, &x, PixelRange { lo: &lo, hi: &hi });
    let found = set.project(&[0.0, 1.0, 1.0, 0.0, 0.0, 1.0]);
    assert_eq!(found.report.blocks, 3);
    assert_eq!(found.report.blocks_without_room, 2);
    assert_eq!(&found.z[..4], &x[..4], "the saturated blocks stay");
    assert!((found.z[4] - 0.0).abs() < 1e-15 && (found.z[5] - 1.0).abs() < 1e-15);
    // Far mode on the saturated pair alone: nothing to gain, bound 0.
    let x2 = [1.0, 1.0, 0.0, 0.0, 1.0, 1.0];
    let set2 = CollisionSet::new(&d, &x2, PixelRange { lo: &lo, hi: &hi });
    let far = set2.far(&[-1.0; 6], 5, None);
    assert_eq!(far.report.blocks_without_room, 3);
    assert!(far.report.far_corner.unwrap().bound.abs() < 1e-9);
    assert_eq!(far.z, x2.to_vec());
}

#[test]
fn projection_equals_long_dykstra_on_a_larger_block() {
    // An independent algorithm: Dykstra's alternating projections run to convergence.
    let (_, ns, x) = random_case(12, 30, 7);
    let d = ns.decomposition().unwrap();
    let (lo, hi) = (vec![0.0; 30], vec![1.0; 30]);
    let set = CollisionSet::new(&d, &x, PixelRange { lo: &lo, hi: &hi });
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let w: Vec<f64> = (0..30).map(|_| rng.gen_range(-0.5..1.5)).collect();
    let exact = set.project(&w);
    let dykstra = dykstra_oracle(&ns, &x, &w, 200_000);
    let err = exact
        .z
        .iter()
        .zip(&dykstra)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(err < 1e-6, "exact vs Dykstra: {err}");
    assert!(exact.report.kkt_residual < 1e-12);
}

/// Plain Dykstra between the affine set x + null space and the box, written out here.
fn dykstra_oracle(ns: &NullSpace, x: &[f64], w: &[f64], iterations: usize) -> Vec<f64> {
    dykstra_ball_oracle(ns, x, w, None, iterations)
}

/// Dykstra between the affine set, the box and (when given) the ball ‖z − centre‖ ≤ radius.
fn dykstra_ball_oracle(
    ns: &NullSpace,
    x: &[f64],
    w: &[f64],
    ball: Option<(&[f64], f64)>,
    iterations: usize,
) -> Vec<f64> {
    let n = x.len();
    let (mut y, mut p, mut q, mut r) = (w.to_vec(), vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    let mut u = x.to_vec();
    for _ in 0..iterations {
        let t: Vec<f64> = (0..n).map(|i| y[i] + p[i] - x[i]).collect();
        let s = ns.project(&t);
        for i in 0..n {
            u[i] = x[i] + s[i];
            p[i] = y[i] + p[i] - u[i];
            let t2 = u[i] + q[i];
            y[i] = t2.clamp(0.0, 1.0);
            q[i] = t2 - y[i];
        }
        if let Some((c, radius)) = ball {
            let v: Vec<f64> = (0..n).map(|i| y[i] + r[i]).collect();
            let len = (0..n).map(|i| (v[i] - c[i]).powi(2)).sum::<f64>().sqrt();
            let f = if len > radius { radius / len } else { 1.0 };
            for i in 0..n {
                y[i] = c[i] + f * (v[i] - c[i]);
                r[i] = v[i] - y[i];
            }
        }
    }
    u
}

#[test]
fn projection_inside_an_l2_ball_equals_three_set_dykstra_across_two_blocks() {
    // The ball couples two blocks of 10 × 24; an independent algorithm (Dykstra between the
    // affine set, the box and the ball) run to convergence is the oracle.
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let blocks = (0..2)
        .map(|b| Block {
            rows: (10 * b..10 * b + 10).collect(),
            cols: (24 * b..24 * b + 24).collect(),
            matrix: Arc::new(Mat::from_fn(10, 24, |_, _| rng.gen_range(-1.0..1.0))),
        })
        .collect();
    let op = BlockOperator {
        input_dim: 48,
        output_dim: 20,
        blocks,
    };
    let ns = NullSpace::of(&op, (20, 48), f32::EPSILON as f64, RankRule::default()).unwrap();
    let d = ns.decomposition().unwrap();
    assert_eq!(d.blocks.len(), 2);
    let clean: Vec<f64> = (0..48)
        .map(|i| if i % 5 == 0 { 0.0 } else { rng.gen_range(0.1..0.9) })
        .collect();
    // The adversarial image: the clean one moved a little, inside the box and the ball.
    let x: Vec<f64> = clean
        .iter()
        .map(|v| (v + rng.gen_range(-0.05..0.05)).clamp(0.0, 1.0))
        .collect();
    let radius = 0.6;
    assert!(blindspot::model::preprocess::distance(&x, &clean) < radius);
    let (lo, hi) = (vec![0.0; 48], vec![1.0; 48]);
    let set = CollisionSet::new(&d, &x, PixelRange { lo: &lo, hi: &hi });
    // A box corner far outside the ball, and a point inside it (the ball then does nothing).
    let corner: Vec<f64> = x.iter().map(|&v| if v < 0.5 { 1.0 } else { 0.0 }).collect();
    let near: Vec<f64> = x.iter().map(|v| v + rng.gen_range(-0.01..0.01)).collect();
    for (what, w) in [("corner", &corner), ("near", &near)] {
        let exact = set.project_in_ball(w, &clean, radius);
        let dykstra = dykstra_ball_oracle(&ns, &x, w, Some((&clean, radius)), 100_000);
        let err = exact
            .z
            .iter()
            .zip(&dykstra)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(err < 1e-6, "{what}: exact vs Dykstra {err}");
        assert_collision(&op, &x, &exact.z, 21);
        let reach = blindspot::model::preprocess::distance(&exact.z, &clean);
        assert!(reach <= radius, "{what}: outside the ball ({reach})");
        if what == "corner" {
            assert!(reach > radius * (1.0 - 1e-8), "{what}: the ball is not tight ({reach})");
        } else {
            assert_eq!(exact.z, set.project(w).z, "inside the ball, the plain projection");
        }
        assert!(
            exact.report.kkt_residual < 1e-8,
            "{what}: {}",
            exact.report.kkt_residual
        );
    }
}

#[test]
fn far_corner_lp_from_a_degenerate_vertex_matches_the_best_vertex_and_certifies_it() {
    // Seven of twelve pixels on a bound of the box: the image is a point where 7 bounds meet in
    // a space of 3 null directions, the situation of a black or blown-out patch.
    let mut with_room = 0;
    for seed in 0..40 {
        let (op, ns, x) = random_case(9, 12, 500 + seed);
        let x: Vec<f64> = (0..12)
            .map(|i| match i {
                0..7 => (x[i] >= 0.5) as u8 as f64,
                _ => 0.2 + 0.6 * x[i],
            })
            .collect();
        let d = ns.decomposition().unwrap();
        let rb = &d.blocks[0].basis;
        let basis = Mat::from_fn(12, 3, |i, j| rb.row(i)[j]);
        let (lo01, hi01) = (vec![0.0; 12], vec![1.0; 12]);
        let set = CollisionSet::new(&d, &x, PixelRange { lo: &lo01, hi: &hi01 });
        let corner: Vec<f64> = x.iter().map(|&v| if v < 0.5 { 1.0 } else { -1.0 }).collect();
        let found = set.far(&corner, 0, None);
        let far = found.report.far_corner.unwrap();
        let lo: Vec<f64> = x.iter().map(|v| -v).collect();
        let hi: Vec<f64> = x.iter().map(|v| 1.0 - v).collect();
        let oracle = brute_force_lp(&basis, &lo, &hi, &corner);
        assert!(
            (far.reached - oracle).abs() < 1e-9,
            "seed {seed}: LP {} vs vertices {oracle}",
            far.reached
        );
        assert!(
            far.bound >= oracle - 1e-9 && far.bound - oracle < 1e-9,
            "seed {seed}: certified bound {} vs optimum {oracle}",
            far.bound
        );
        with_room += (oracle > 1e-9) as usize;
        // The same LP settled by the vertex's cone at the first degenerate pivot: the escape
        // that saturated patches need, against the same vertices.
        let g_hat: Vec<f64> = (0..3)
            .map(|j| (0..12).map(|i| corner[i] * basis[(i, j)]).sum())
            .collect();
        for pivots in [0, 1, 3] {
            let lp = BlockPolytope::new(rb, lo.clone(), hi.clone())
                .with_stall_pivots(pivots)
                .maximise(&g_hat, vec![0.0; 3], &[]);
            assert!(
                (lp.value - oracle).abs() < 1e-9 && lp.bound >= oracle - 1e-9 && lp.bound - oracle < 1e-9,
                "seed {seed}, escape after {pivots}: LP {} bound {} vs vertices {oracle}",
                lp.value,
                lp.bound
            );
        }
        assert_collision(&op, &x, &found.z, seed);
    }
    // Both outcomes occur: vertices with room to move and vertices that are the whole polytope.
    assert!(with_room > 0 && with_room < 40, "{with_room} of 40 with room");
}

#[test]
fn l1_closest_collision_matches_the_best_point_of_the_arrangement() {
    for seed in 0..40 {
        // 6 pixels, 3 outputs: 3 null directions; saturated pixels and a target with pixels on
        // the bounds (breakpoints on the range) as well as inside.
        let (op, ns, x) = random_case(3, 6, 900 + seed);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let t: Vec<f64> = (0..6)
            .map(|_| match rng.gen_range(0..5) {
                0 => 0.0,
                1 => 1.0,
                _ => rng.gen_range(0.0..1.0),
            })
            .collect();
        let d = ns.decomposition().unwrap();
        let rb = &d.blocks[0].basis;
        let basis = Mat::from_fn(6, rb.dim(), |i, j| rb.row(i)[j]);
        let (lo01, hi01) = (vec![0.0; 6], vec![1.0; 6]);
        let set = CollisionSet::new(&d, &x, PixelRange { lo: &lo01, hi: &hi01 });
        // Pixel units, and unequal weights (a per-channel std).
        let w: Vec<f64> = (0..6)
            .map(|i| {
                if seed % 2 == 0 {
                    1.0
                } else {
                    1.0 / (0.2 + 0.1 * (i % 3) as f64)
                }
            })
            .collect();
        let found = set.closest_l1(&t, &w);
        let lo: Vec<f64> = x.iter().map(|v| -v).collect();
        let hi: Vec<f64> = x.iter().map(|v| 1.0 - v).collect();
        let change: Vec<f64> = t.iter().zip(&x).map(|(t, x)| t - x).collect();
        let oracle = brute_force_l1(&basis, &lo, &hi, &change, &w);
        let reached: f64 = (0..6).map(|i| w[i] * (found.z[i] - t[i]).abs()).sum();
        assert!(
            (reached - oracle).abs() < 1e-9,
            "seed {seed}: L1 {reached} vs the arrangement's best {oracle}"
        );
        assert!((found.report.objective - reached).abs() < 1e-12 * reached.max(1.0));
        assert!(
            found.report.kkt_residual < 1e-9,
            "seed {seed}: gap {}",
            found.report.kkt_residual
        );
        assert_collision(&op, &x, &found.z, seed);
    }
}

#[test]
fn l1_optimum_is_certified_and_no_farther_in_l1_than_the_l2_projection() {
    // Larger blocks (40 null directions, 60 pixels): the duality gap closes, and no other
    // collision (the L2 projection, the image itself) is closer in L1.
    for seed in 0..10 {
        let (_, ns, x) = random_case(20, 60, 1300 + seed);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let t: Vec<f64> = (0..60).map(|_| rng.gen_range(0.0..1.0)).collect();
        let d = ns.decomposition().unwrap();
        let (lo01, hi01) = (vec![0.0; 60], vec![1.0; 60]);
        let set = CollisionSet::new(&d, &x, PixelRange { lo: &lo01, hi: &hi01 });
        let l1 = set.closest_l1(&t, &[1.0; 60]);
        let l2 = set.project(&t);
        let l1_of = |z: &[f64]| z.iter().zip(&t).map(|(z, t)| (z - t).abs()).sum::<f64>();
        assert!(
            l1.report.kkt_residual < 1e-9,
            "seed {seed}: gap {}",
            l1.report.kkt_residual
        );
        assert!(
            l1_of(&l1.z) <= l1_of(&l2.z) + 1e-9,
            "seed {seed}: L1 optimum {} above the L2 projection's {}",
            l1_of(&l1.z),
            l1_of(&l2.z)
        );
        assert!(
            l1_of(&l1.z) <= l1_of(&x) + 1e-9,
            "seed {seed}: worse than the image itself"
        );
    }
}
