"""TensorRT 10's legacy INT8 path: an IInt8EntropyCalibrator2 fed with the same calibration tiles
(calib.images.model_tiles), with a calibration cache file so a rebuild skips the calibration.

For graphs without Q/DQ on TensorRT 10 only (TensorRT 11 and TensorRT-RTX have no calibrators);
build-engine uses it with `--int8 --int8-calibrator tensorrt`. Needs a GPU: untested on this
project's machines (no TensorRT 10, no GPU), written to TensorRT 10's documented Python API.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def make_entropy_calibrator(trt, tiles: np.ndarray, cache_file: Path, input_name: str, batch: int = 1):
    from edge.cuda import open_memory

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.mem = open_memory()
            self.host = self.mem.pinned((batch, *tiles.shape[1:]), np.float32)
            self.dev = self.mem.device(self.host.nbytes)
            self.stream = self.mem.stream()
            self.i = 0

        def get_batch_size(self):
            return batch

        def get_batch(self, names):
            if self.i + batch > len(tiles):
                return None
            np.copyto(self.host, tiles[self.i:self.i + batch])
            self.i += batch
            self.mem.htod(self.dev, self.host, self.stream)
            self.stream.synchronize()
            return [self.dev for _ in names]

        def read_calibration_cache(self):
            return cache_file.read_bytes() if cache_file.is_file() else None

        def write_calibration_cache(self, cache):
            cache_file.write_bytes(bytes(cache))

    return EntropyCalibrator()
