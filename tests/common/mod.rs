pub mod onnx_builder;
pub mod real_data;
