"""ONNX -> TensorRT engine plus JSON sidecar (build-engine).

Not built yet: see the build-engine issue. No console script is declared for it.
"""
