"""ONNX -> TensorRT or TensorRT-RTX engine plus its JSON sidecar, behind an accuracy gate
(build-engine)."""
