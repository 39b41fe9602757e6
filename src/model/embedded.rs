//! The models that ship inside blindspot: trained by `examples/train_digits.rs` on real MNIST
//! digits and committed under `models/` (see `models/README.md`, the model card).

use crate::model::Model;
use anyhow::Result;
use std::path::Path;

pub struct EmbeddedModel {
    pub name: &'static str,
    /// Path of the committed file, relative to the repository.
    pub path: &'static str,
    pub onnx: &'static [u8],
}

macro_rules! embedded_model {
    ($name:literal) => {
        EmbeddedModel {
            name: $name,
            path: concat!("models/", $name, ".onnx"),
            onnx: include_bytes!(concat!("../../models/", $name, ".onnx")),
        }
    };
}

/// Dense, patchify-conv and transformer front ends with null spaces, and `lenet`, the control
/// whose overlapping first convolution has none.
pub const MODELS: &[EmbeddedModel] = &[
    embedded_model!("mlp"),
    embedded_model!("patch_cnn"),
    embedded_model!("vit_tiny"),
    embedded_model!("lenet"),
];

impl EmbeddedModel {
    pub fn load(&self) -> Result<Model> {
        Model::from_bytes(self.onnx, Path::new(self.path), None)
    }
}

pub fn find(name: &str) -> Option<&'static EmbeddedModel> {
    MODELS.iter().find(|m| m.name == name)
}
