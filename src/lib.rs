//! blindspot finds what a neural network cannot see: directions of its input that the first
//! linear layer maps to zero, so that every later layer computes exactly the same numbers.
//!
//! The flow is `Model` → `FrontEnd` (pixels to first-layer output, a `LinearOperator`) →
//! `NullSpace` → `search` (collisions inside [0, 1]) → `verify` (through the whole model).

pub mod audit;
pub mod collide;
pub mod frontend;
pub mod linop;
pub mod model;
pub mod npy;
pub mod nullspace;
pub mod onnx_graph;
pub mod preprocess;
pub mod report;
pub mod search;
pub mod verify;

pub use frontend::FrontEnd;
pub use model::Model;
pub use nullspace::{NullSpace, RankRule};
pub use preprocess::Preprocess;

use anyhow::Result;
use std::path::Path;

/// Loads a model and folds its front end under the given preprocessing.
pub fn open(path: &Path, input_shape: Option<&[usize]>, pre: &Preprocess) -> Result<(Model, FrontEnd)> {
    let model = Model::load(path, input_shape)?;
    let fe = frontend::build(&model.graph, &model.input_name, &model.input_shape, pre)?;
    Ok((model, fe))
}
