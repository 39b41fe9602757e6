//! blindspot finds what a neural network cannot see: directions of its input that the first
//! linear layer maps to zero, so that every later layer computes exactly the same numbers.
//!
//! The flow is `Model` → `FrontEnd` (pixels to first-layer output, a `LinearOperator`) →
//! `NullSpace` → `search` (collisions inside [0, 1]) → `verify` (through the whole model).
//!
//! The null-space machinery on its own: a layer that sums two pixels ignores their difference.
//! ```
//! use blindspot::linop::{Block, BlockOperator, LinearOperator};
//! use blindspot::nullspace::{NullSpace, RankRule};
//! use blindspot::search::project_feasible;
//! use std::sync::Arc;
//!
//! let sum = faer::Mat::from_fn(1, 2, |_, _| 1.0);
//! let layer = BlockOperator {
//!     input_dim: 2,
//!     output_dim: 1,
//!     blocks: vec![Block { rows: vec![0], cols: vec![0, 1], matrix: Arc::new(sum) }],
//! };
//! let null_space = NullSpace::of(&layer, (1, 2), f32::EPSILON as f64, RankRule::default()).unwrap();
//! assert_eq!(null_space.nullity, 1);
//!
//! // The pixels (0.2, 0.6) and the colliding input closest to (1, 0) inside [0, 1]².
//! let x = [0.2, 0.6];
//! let z = project_feasible(&null_space, &x, &[1.0, 0.0], 2000).z;
//! assert!((z[0] - 0.8).abs() < 1e-6 && z[1].abs() < 1e-6);
//! assert!((layer.apply_vec(&z)[0] - layer.apply_vec(&x)[0]).abs() < 1e-15);
//! ```

pub mod adversarial;
pub mod architectures;
pub mod attack;
pub mod audit;
pub mod circulant_preconditioner;
pub mod collide;
pub mod compare;
pub mod constant_folding;
pub mod conv_certificate;
pub mod conv_spectrum;
pub mod demo;
pub mod dense_svd;
pub mod differentiable;
pub mod digits;
pub mod embedded;
pub mod explain;
pub mod external_data;
pub mod feature_similarity;
pub mod front_end_folds;
pub mod frontend;
pub mod linop;
pub mod matrix_free_projection;
pub mod model;
pub mod npy;
pub mod nullspace;
pub mod onnx_graph;
pub mod onnx_write;
pub mod preprocess;
pub mod report;
pub mod search;
pub mod similarity;
pub mod survey;
pub mod survey_figure;
pub mod verify;

pub use frontend::FrontEnd;
pub use model::{HeldInput, InputChoice, LoadRequest, Model};
pub use nullspace::{NullSpace, RankRule};
pub use preprocess::Preprocess;

use anyhow::Result;
use std::path::Path;

/// Loads a model and folds its front end under the given preprocessing.
pub fn open(path: &Path, input_shape: Option<&[usize]>, pre: &Preprocess) -> Result<(Model, FrontEnd)> {
    open_with(
        path,
        &LoadRequest {
            input_shape,
            ..Default::default()
        },
        pre,
    )
}

/// [`open`] for a command that runs on `image`: an open height and width take the image's.
pub fn open_for_image(
    path: &Path,
    input_shape: Option<&[usize]>,
    pre: &Preprocess,
    image: &Path,
) -> Result<(Model, FrontEnd)> {
    open_with(
        path,
        &LoadRequest {
            input_shape,
            image: Some(image),
            ..Default::default()
        },
        pre,
    )
}

/// Loads a model as `request` says (image input, shape, held inputs, preprocessed by `pre` where
/// they are images) and folds the chosen input's front end.
pub fn open_with(path: &Path, request: &LoadRequest, pre: &Preprocess) -> Result<(Model, FrontEnd)> {
    let model = Model::load_with(
        path,
        &LoadRequest {
            preprocess: Some(pre),
            ..*request
        },
    )?;
    let fe = front_end(&model, pre)?;
    Ok((model, fe))
}

/// Folds the front end of a loaded model under the given preprocessing.
pub fn front_end(model: &Model, pre: &Preprocess) -> Result<FrontEnd> {
    frontend::build(&model.graph, &model.input_name, &model.input_shape, pre)
}
