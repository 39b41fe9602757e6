//! The files a run hands back, named and encoded in memory, then written in one place: every
//! file goes to a temporary name and is renamed into place, so an interrupted run leaves no
//! half-written file. Every command's `write(dir)` is its artifacts written here.

use crate::figure::png_bytes;
use crate::model::npy::{encode_f32, write_atomic};
use anyhow::{Context, Result};
use image::RgbImage;
use serde::Serialize;
use std::path::Path;

/// Named files, in the order they are written.
#[derive(Default)]
pub struct Artifacts {
    pub files: Vec<(String, Vec<u8>)>,
}

impl Artifacts {
    pub fn bytes(&mut self, name: &str, bytes: Vec<u8>) {
        self.files.push((name.to_string(), bytes));
    }

    pub fn png(&mut self, name: &str, img: &RgbImage) -> Result<()> {
        self.bytes(name, png_bytes(img)?);
        Ok(())
    }

    /// A float32 `.npy` of `shape`: a tensor exactly as fed to the model.
    pub fn npy(&mut self, name: &str, shape: &[usize], data: &[f32]) {
        self.bytes(name, encode_f32(shape, data));
    }

    /// Pretty-printed JSON (the report).
    pub fn json(&mut self, name: &str, value: &impl Serialize) -> Result<()> {
        self.bytes(name, serde_json::to_string_pretty(value)?.into_bytes());
        Ok(())
    }

    /// Writes every file under `dir` (creating it and the folders the names hold).
    pub fn write(&self, dir: &Path) -> Result<()> {
        write_files(dir, &self.files)
    }
}

/// Writes named files under `dir`, each atomically, creating `dir` and the folders the names hold.
pub fn write_files(dir: &Path, files: &[(String, Vec<u8>)]) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (name, bytes) in files {
        let path = dir.join(name);
        if let Some(parent) = path.parent().filter(|p| *p != dir) {
            std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
        write_atomic(&path, bytes)?;
    }
    Ok(())
}
