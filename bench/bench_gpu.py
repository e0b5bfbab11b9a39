"""GPU station path: frame-to-verdict latency and throughput with the TensorRT runner.

    python3 -m bench.bench_gpu [--frames 2000] [--models renet_d cae001] [--precisions fp32 fp16 int8]

For ReNet-D at 1024x1024 (whole frames: the engine is built with --shape 1024x1024) and the seed 001
autoencoder at 512x512: build engines with build-engine (TensorRT-RTX), then for each precision
time frame -> pinned copy -> upload -> engine -> DCT fusion on the device (edge.detect.gpu_dct) ->
verdict on the host, two frames in flight. Reports p50/p99 frame-to-verdict, frames/s and the
upload / compute / download / detect split from CUDA events. Needs a GPU, torch (to export the
models) and the build extra; the weights are random (speed does not depend on them), INT8 is
calibrated on synthetic textures.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .common import machine, save

CASES = {"renet_d": 1024, "cae001": 512}


def export(name: str, size: int, folder: Path) -> Path:
    import torch

    from train.export import export_onnx
    from train.methods import build
    torch.manual_seed(0)
    model = build(name)
    export_size = 32 if name == "renet_d" else size  # ReNet-D exports at block size; --shape widens it
    recipe = {"model_family": name, "preprocess": {"size": [size, size]},
              "detect": {"method": "dct_fusion", "dct_fusion": {"patch": 32, "stride": 32, "block": 8}}}
    return export_onnx(model, export_size, folder / f"{name}.onnx", recipe)


def textures(folder: Path, size: int, count: int = 40) -> Path:
    import cv2

    from edge.demo import texture
    d = folder / f"good{size}"
    d.mkdir(exist_ok=True)
    for i in range(count):
        cv2.imwrite(str(d / f"t{i:03d}.png"), (texture(500 + i, size) * 255).astype(np.uint8))
    return d


def run_case(engine: Path, size: int, frames: int) -> dict:
    from edge.backends import open_runner
    from edge.detect.gpu_dct import GpuDctFusionDetector
    from edge.recipe import DctFusion

    rng = np.random.default_rng(0)
    batch = rng.random((1, 1, size, size), dtype=np.float32)
    lat, split = [], {"upload": [], "compute": [], "download": [], "detect": []}
    with open_runner(engine) as runner:
        det = GpuDctFusionDetector(DctFusion(patch=32, stride=32, block=8))  # the station's GPU detector
        for _ in range(3):  # warm-up outside the timed wall: kernel JIT, lazy module loading, buffers
            det(*runner.device_views(runner.collect(runner.submit(batch)), size, size))
        starts, pending = {}, None
        wall = time.perf_counter()
        for i in range(frames + 1):
            if i < frames:
                t0 = time.perf_counter()
                slot = runner.submit(batch)
                starts[id(slot)] = t0
            if pending is not None:
                runner.collect(pending)
                td = time.perf_counter()
                det(*runner.device_views(pending, size, size))  # the engine's input and output where they lie
                t_end = time.perf_counter()
                lat.append(t_end - starts[id(pending)])
                split["detect"].append(t_end - td)
                for key, v in runner.last_timings.items():
                    split[key].append(v)
            pending = slot if i < frames else None
        wall = time.perf_counter() - wall  # two frames in flight: throughput is frames over wall time
    ms = lambda a, q: float(np.percentile(np.array(a) * 1e3, q))  # noqa: E731
    return {"p50_ms": ms(lat, 50), "p99_ms": ms(lat, 99), "fps": frames / wall,
            **{f"{k}_p50_ms": ms(v, 50) for k, v in split.items()}}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--models", nargs="+", default=list(CASES))
    ap.add_argument("--precisions", nargs="+", default=["fp32", "fp16", "int8"])
    args = ap.parse_args(argv)
    from edge.gpu import probe_gpu
    gpu = probe_gpu()
    if gpu is None:
        print("bench_gpu: no NVIDIA GPU here", file=sys.stderr)
        return 2
    results = {"machine": machine(), "gpu": f"{gpu.name} (cc {gpu.compute_capability}, driver {gpu.driver})",
               "cases": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in args.models:
            size = CASES[name]
            onnx_path = export(name, size, tmp)
            good = textures(tmp, size)
            for prec in args.precisions:
                engine = tmp / f"{name}.{prec}.plan"
                cmd = [sys.executable, "-m", "build_engines.cli", str(onnx_path), "-o", str(engine),
                       "--shape", f"{size}x{size}", "--calib-dir", str(good), "--force"]
                cmd += {"fp32": [], "fp16": ["--fp16"], "int8": ["--int8"]}[prec]
                t0 = time.perf_counter()
                r = subprocess.run(cmd, capture_output=True, text=True)
                build_s = round(time.perf_counter() - t0, 2)  # the build alone, not the run below
                key = f"{name} {size}x{size} {prec}"
                if r.returncode != 0:
                    results["cases"][key] = {"error": r.stderr.strip().splitlines()[-1]}
                    print(f"{key}: build failed: {results['cases'][key]['error']}", file=sys.stderr)
                    continue
                try:
                    res = run_case(engine, size, args.frames)
                except Exception as e:  # record the exact runtime error (e.g. TensorRT-RTX on a non-RTX GPU)
                    res = {"error": f"{type(e).__name__}: {e}"}
                res["build_s"] = build_s
                results["cases"][key] = res
                print(key, json.dumps(res), flush=True)
    save("gpu", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
