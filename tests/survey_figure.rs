//! The survey figure: a readable PNG whose height follows the number of bars, written atomically.

use blindspot::survey::figure::{draw_survey, Bar};
use std::collections::HashSet;
use std::path::Path;

const FAMILIES: [&str; 3] = ["ResNet", "VGG", "Vision Transformer"];

/// `n` bars across three families: one measured, every fourth one zero.
fn bars(n: usize) -> Vec<Bar> {
    (0..n)
        .map(|i| Bar {
            label: format!("{}-{}", ["resnet", "vgg", "vit_b_16"][i % 3], 10 + i),
            family: FAMILIES[i % 3].to_string(),
            null_fraction: if i % 4 == 3 {
                0.0
            } else {
                (i as f64 + 1.0) / (n as f64 + 1.0)
            },
            measured: i == 1,
        })
        .collect()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn draws_a_png_that_grows_with_the_bars_and_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("survey-12.png");
    let large = dir.path().join("survey-24.png");
    draw_survey(
        &bars(12),
        &FAMILIES,
        "Null fraction of the input, 12 architectures",
        &small,
    )
    .unwrap();
    draw_survey(
        &bars(24),
        &FAMILIES,
        "Null fraction of the input, 24 architectures",
        &large,
    )
    .unwrap();

    let format = image::ImageReader::open(&small)
        .unwrap()
        .with_guessed_format()
        .unwrap()
        .format();
    assert_eq!(format, Some(image::ImageFormat::Png));
    let small = image::open(&small).unwrap().to_rgb8();
    let large = image::open(&large).unwrap().to_rgb8();
    assert!(small.width() >= 1000, "width {}", small.width());
    assert!(
        large.height() > small.height() + 12 * 15,
        "heights {} and {}",
        small.height(),
        large.height()
    );

    // Not blank: antialiased text and several bar colours give many distinct colours, and
    // strongly coloured (bar) pixels cover a good part of the image.
    let colours: HashSet<[u8; 3]> = small.pixels().map(|p| p.0).collect();
    assert!(colours.len() > 100, "only {} distinct colours", colours.len());
    let saturated = small
        .pixels()
        .filter(|p| p.0.iter().max().unwrap() - p.0.iter().min().unwrap() > 100)
        .count();
    assert!(saturated > 20_000, "only {saturated} strongly coloured pixels");

    assert_eq!(files_in(dir.path()), ["survey-12.png", "survey-24.png"]);
}

#[test]
fn overwrites_an_existing_figure() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("survey.png");
    std::fs::write(&path, b"old").unwrap();
    draw_survey(&bars(5), &FAMILIES, "Survey", &path).unwrap();
    assert!(image::open(&path).is_ok());
    assert_eq!(files_in(dir.path()), ["survey.png"]);
}

#[test]
fn a_missing_folder_is_an_error_that_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-folder").join("survey.png");
    let err = draw_survey(&bars(12), &FAMILIES, "Survey", &path).unwrap_err();
    assert!(format!("{err:#}").contains("survey.png"), "{err:#}");
    assert!(files_in(dir.path()).is_empty());
}

#[test]
fn a_fraction_outside_zero_one_is_an_error_that_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("survey.png");
    let mut bars = bars(4);
    bars[2].null_fraction = f64::NAN;
    let err = draw_survey(&bars, &FAMILIES, "Survey", &path).unwrap_err();
    assert!(format!("{err:#}").contains("not in [0, 1]"), "{err:#}");
    assert!(files_in(dir.path()).is_empty());
}

#[test]
fn a_very_long_label_widens_the_image_instead_of_squeezing_the_bars() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("survey.png");
    let mut bars = bars(3);
    bars[0].label = "a_very_long_architecture_name_".repeat(6);
    draw_survey(&bars, &FAMILIES, "Survey", &path).unwrap();
    assert!(image::open(&path).unwrap().width() > 1400);
}
