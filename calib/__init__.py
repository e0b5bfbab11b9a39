"""Calibration images through the station's own preprocessing and tiling, and INT8 Q/DQ
quantization with NVIDIA ModelOpt (used by build-engine)."""
