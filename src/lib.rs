//! blindspot finds what a neural network cannot see: directions of its input that the first
//! linear layer maps to zero, so that every later layer computes exactly the same numbers.
//!
//! The modules are the stages of the data flow (ARCHITECTURE.md), each using only earlier ones:
//! `linop` (operators) → `model` (ONNX, tract, pixels) → `frontend` (pixels to first-layer
//! output, a `LinearOperator`) → `nullspace` → `search` (collisions inside [0, 1]) → `verify`
//! (through the whole model) → `differentiable`, `explain`, `attack`, `similarity`, `survey` (what
//! collisions change) → `pipeline` (whole runs: a report and its files). The re-exports below are
//! the types most callers need; `error` holds the outcomes a caller acts on.
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

pub mod attack;
pub mod differentiable;
pub mod error;
pub mod explain;
pub mod figure;
pub mod frontend;
pub mod linop;
pub mod model;
pub mod nullspace;
pub mod piecewise;
pub mod pipeline;
pub mod search;
pub mod similarity;
pub mod survey;
pub mod verify;

pub use error::{NoExactCollision, NoRoom, Unsupported};
pub use frontend::{front_end, open, open_for_image, open_with, Form, FrontEnd};
pub use model::preprocess::Preprocess;
pub use model::{HeldInput, InputChoice, LoadRequest, Model};
pub use nullspace::{NullSpace, RankRule};
