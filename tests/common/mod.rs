pub mod onnx_builder;
