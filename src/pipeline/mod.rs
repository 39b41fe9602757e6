//! Whole runs, one per command: inputs in memory in, a serde report and the files it names out.

pub mod attack;
pub mod audit;
pub mod collide;
pub mod demo;
pub mod explain;
pub mod tables;
