//! Far mode: the collision as far from the image as the pixel range allows, from corners of the
//! box projected onto the collision set.

use super::*;

/// Signs of the corner a far search heads for: start 0, the corner opposite x (+1 where a pixel
/// lies in the lower half of its range); later starts, random corners.
pub(crate) fn far_corner(x: &[f64], region: &Region, start: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
    x.iter()
        .zip(region.lo.iter().zip(&region.hi))
        .map(|(&v, (&lo, &hi))| {
            let high = if start == 0 {
                v < 0.5 * (lo + hi)
            } else {
                rng.gen_bool(0.5)
            };
            if high {
                1.0
            } else {
                -1.0
            }
        })
        .collect()
}

/// The corner of the region's box that [`far_corner`] points to.
pub(crate) fn far_corner_point(x: &[f64], region: &Region, start: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
    far_corner(x, region, start, rng)
        .iter()
        .zip(region.lo.iter().zip(&region.hi))
        .map(|(&s, (&lo, &hi))| if s > 0.0 { hi } else { lo })
        .collect()
}

/// Projected ascent on ||z − x|| from a far corner of the region's box.
pub(crate) fn far_from(
    ns: &NullSpace,
    x: &[f64],
    region: &Region,
    start: usize,
    opts: &SearchOptions,
    rng: &mut ChaCha8Rng,
) -> Projection {
    let corner = far_corner_point(x, region, start, rng);
    let mut best = project_into(ns, x, region, &corner, opts.max_iterations);
    let mut best_distance = distance(&best.z, x);
    for _ in 0..opts.dykstra_far_steps {
        let w: Vec<f64> = best.z.iter().zip(x).map(|(z, x)| x + 2.0 * (z - x)).collect();
        let next = project_into(ns, x, region, &w, opts.max_iterations);
        let d = distance(&next.z, x);
        if d <= best_distance * (1.0 + 1e-4) {
            if d > best_distance {
                best = next;
            }
            break;
        }
        best = next;
        best_distance = d;
    }
    best
}
