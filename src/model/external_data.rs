//! Tensors an exporter stored beside the model (`data_location = EXTERNAL`, as torch and onnx do
//! for models over 2 GB or on request): read into the model once, when it is loaded, so that the
//! graph walk, the gradient engine and tract all see ordinary initializers.

use anyhow::{bail, Context, Result};
use std::path::{Component, Path};
use tract_onnx::pb::{tensor_proto::DataLocation, ModelProto, TensorProto};

/// Reads every external tensor of `model` (initializers and Constant nodes' values) from its file,
/// named relative to `model_dir`, into the tensor's raw data. A missing or short file, or a
/// location outside the model's folder, is an error naming it.
pub fn inline_external_data(model: &mut ModelProto, model_dir: &Path) -> Result<()> {
    let Some(graph) = model.graph.as_mut() else {
        return Ok(());
    };
    let constants = graph
        .node
        .iter_mut()
        .flat_map(|n| n.attribute.iter_mut())
        .filter_map(|a| a.t.as_mut());
    for tensor in graph.initializer.iter_mut().chain(constants) {
        if tensor.data_location == Some(DataLocation::External as i32) {
            inline(tensor, model_dir).with_context(|| format!("external data of tensor {}", tensor.name))?;
        }
    }
    Ok(())
}

fn inline(tensor: &mut TensorProto, model_dir: &Path) -> Result<()> {
    let entry = |key: &str| {
        tensor
            .external_data
            .iter()
            .find(|e| e.key == key)
            .map(|e| e.value.as_str())
    };
    let location = entry("location").context("no location is given")?;
    let number = |key: &str| -> Result<Option<u64>> {
        entry(key)
            .map(|v| v.parse::<u64>().with_context(|| format!("{key} {v:?} is not a number")))
            .transpose()
    };
    let (offset, length) = (number("offset")?.unwrap_or(0), number("length")?);
    let relative = Path::new(location);
    if relative.is_absolute() || relative.components().any(|c| matches!(c, Component::ParentDir)) {
        bail!("the location {location:?} lies outside the model's folder");
    }
    let path = model_dir.join(relative);
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let size = bytes.len() as u64;
    let end = match length {
        Some(length) => offset.checked_add(length).context("offset + length overflows")?,
        None => size,
    };
    if offset > size || end > size {
        bail!(
            "{} holds {size} bytes, but the tensor lies at {offset}..{end}: the file is short",
            path.display()
        );
    }
    tensor.raw_data = bytes[offset as usize..end as usize].to_vec();
    tensor.external_data.clear();
    tensor.data_location = Some(DataLocation::Default as i32);
    Ok(())
}
