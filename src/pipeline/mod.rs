//! Whole runs, one per command: inputs in memory in, a serde report and the files it names out.

pub mod artifacts;
pub mod attack;
pub mod audit;
pub mod collide;
pub mod demo;
mod demo_panels;
pub mod explain;
pub mod tables;
