pub mod cli;
pub mod engine;
pub mod onnx_builder;
pub mod oracles;
pub mod real_data;
