//! The whole `collide` run (model loading, null space, exact search, verification through the
//! whole model) on the real ViT-S/14 and a real photo, one collision per mode: what a user waits
//! for. `cargo bench --bench collide` after scripts/fetch-models.sh (skipped without the files).

use blindspot::model::preprocess::load_image;
use blindspot::pipeline::collide::{collide, CollideRequest, SearchSettings};
use blindspot::search::{Distance, Mode};
use blindspot::{open, Preprocess, RankRule};
use criterion::{criterion_group, criterion_main, Criterion};
use std::path::PathBuf;
use std::time::Duration;

fn cached(name: &str) -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(".cache/blindspot")
        .join(name);
    p.is_file().then_some(p)
}

fn vit_s14_collide(c: &mut Criterion) {
    let (Some(model), Some(photo), Some(target)) = (
        cached("vit_s_focus.onnx"),
        cached("coffee.png"),
        cached("astronaut.png"),
    ) else {
        eprintln!("skipping: run scripts/fetch-models.sh first");
        return;
    };
    let imagenet = Preprocess {
        mean: Some(vec![0.485, 0.456, 0.406]),
        std: Some(vec![0.229, 0.224, 0.225]),
        ..Default::default()
    };
    // Decoding the photos is not part of what is timed: the request holds pixels on the grid.
    let grid = open(&model, None, &imagenet).unwrap().1.grid;
    let mut g = c.benchmark_group("collide_vit_s14_coffee");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(30))
        .warm_up_time(Duration::from_secs(1));
    for (mode, distance) in [
        (Mode::Target, Distance::L2),
        (Mode::Target, Distance::L1),
        (Mode::Random, Distance::L2),
        (Mode::Far, Distance::L2),
    ] {
        let req = CollideRequest {
            image: load_image(&photo, &grid).unwrap(),
            target: Some(load_image(&target, &grid).unwrap()),
            search: SearchSettings {
                distance,
                mode,
                count: 1,
                strength: None,
                seed: 1,
                rule: RankRule::default(),
            },
        };
        let name = match distance {
            Distance::L2 => format!("{mode:?}"),
            Distance::L1 => format!("{mode:?}-{distance:?}"),
        };
        g.bench_function(name.to_lowercase(), |b| {
            b.iter(|| {
                let (m, fe) = open(&model, None, &imagenet).unwrap();
                collide(&m, &fe, &req, &|| {}).unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, vit_s14_collide);
criterion_main!(benches);
