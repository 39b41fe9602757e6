//! Typed errors for the outcomes a caller acts on: the CLI maps them to exit codes, the Python
//! bindings to exception classes. Each carries the one-line message a user reads.

use std::fmt;

/// The model has no exact collision of the kind asked for: nullity 0, or no null direction known
/// (exit code 1 — an answer, not a failure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoExactCollision(pub String);

/// The null space exists but the pixel box leaves it no room on this image: every block's
/// collision set is the image alone, proved per block (exit code 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoRoom(pub String);

/// An op, or a form of one, that blindspot does not handle, with the node that holds it;
/// `message` is the line a user reads, naming both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    pub node: String,
    pub op: String,
    pub message: String,
}

impl fmt::Display for NoExactCollision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for NoRoom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for NoExactCollision {}
impl std::error::Error for NoRoom {}
impl std::error::Error for Unsupported {}

/// Whether `e`, or anything in its chain of causes, says that no collision exists here (no exact
/// collision, or no room in the pixel box): an answer about the model and the image.
pub fn is_no_collision(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.is::<NoExactCollision>() || c.is::<NoRoom>())
}
