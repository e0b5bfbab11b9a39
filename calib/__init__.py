"""Calibration images through the station's own preprocessing, INT8 Q/DQ quantization.

Not built yet: see the build-engine issue.
"""
