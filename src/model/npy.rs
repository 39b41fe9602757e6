//! `.npy` tensors (float32, C order) and files written whole or not at all.

use anyhow::{bail, Context, Result};
use std::path::Path;

/// Writes `bytes` to a temporary file beside `path`, then renames it into place.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot move {} into place", path.display()))
}

pub fn encode_f32(shape: &[usize], data: &[f32]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let tuple = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {tuple}, }}");
    // Magic (6) + version (2) + length (2) + header + newline, padded to a multiple of 64.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.div_ceil(64) * 64 - unpadded));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + 4 * data.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Reads a `.npy` to be fed to the model as it is: it must have the model input's shape and
/// hold finite values. `input` names the input in the message where the model has several.
pub fn read_model_input(path: &Path, shape: &[usize], input: Option<&str>) -> Result<Vec<f32>> {
    let (s, data) = read_finite(path)?;
    if s != shape {
        let which = input.map(|n| format!(" {n}")).unwrap_or_default();
        bail!(
            "{} has shape {s:?} but the model input{which} has shape {shape:?}",
            path.display()
        );
    }
    Ok(data)
}

/// [`read_f32`], refusing a tensor that holds NaN or infinite values.
pub fn read_finite(path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
    let (shape, data) = read_f32(path)?;
    if data.iter().any(|v| !v.is_finite()) {
        bail!("{} holds NaN or infinite values", path.display());
    }
    Ok((shape, data))
}

/// Reads a little-endian float32 or float64 `.npy` in C order, as f32.
pub fn read_f32(path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let what = || format!("{} is not a readable .npy tensor", path.display());
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        bail!("{}: no .npy magic", what());
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize, 12),
        v => bail!("{}: .npy version {v}", what()),
    };
    let header = std::str::from_utf8(bytes.get(start..start + header_len).with_context(what)?).with_context(what)?;
    let field = |key: &str| -> Option<&str> {
        let i = header.find(&format!("'{key}'"))?;
        Some(header[i + key.len() + 2..].trim_start_matches([':', ' ']))
    };
    let descr = field("descr").and_then(|s| s.split('\'').nth(1)).with_context(what)?;
    if field("fortran_order").is_some_and(|s| s.starts_with("True")) {
        bail!("{}: Fortran order is not supported", what());
    }
    let shape_text = field("shape").and_then(|s| s.split(')').next()).with_context(what)?;
    let shape: Vec<usize> = shape_text
        .trim_start_matches('(')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().with_context(what))
        .collect::<Result<_>>()?;
    let body = &bytes[start + header_len..];
    let count: usize = shape.iter().product();
    let data: Vec<f32> = match descr {
        "<f4" => body
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        "<f8" => body
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32)
            .collect(),
        other => bail!("{}: dtype {other}; blindspot reads float32 or float64", what()),
    };
    if data.len() != count {
        bail!(
            "{}: shape {shape:?} needs {count} values, the file holds {}",
            what(),
            data.len()
        );
    }
    Ok((shape, data))
}
