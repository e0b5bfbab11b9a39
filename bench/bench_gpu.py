"""GPU station path: frame-to-verdict latency and throughput with the TensorRT runner.

    python3 -m bench.bench_gpu [--frames 2000] [--models default renet_d cae001] [--sizes 512 1024]
        [--precisions fp32 fp16 int8] [--build-only]

Each model at each of its frame sizes (default and ReNet-D: 512x512 and 1024x1024; the seed 001
autoencoder: 512x512) and precision: an engine built by build-engine, then timed.

- default: edge-train's default method as it exports (perlin_seg: 256-px tiles overlapping, the
  mirrored pass, probability detection), trained for a few steps on synthetic textures; the engine
  is built for the frame (--frame: all of a frame's tiles in one call) and timed through the
  station's own code (bench.bench_model): per frame through the Inspector (tiling into the pinned
  input, one enqueue, stitching, detection on the host; p50/p90/p99), then frames/s of the whole
  station (edge.station, two frames in flight).
- renet_d, cae001: whole frames (--shape), timed frame -> pinned copy -> upload -> engine -> DCT
  fusion on the device (edge.detect.gpu_dct) -> verdict on the host, two frames in flight: p50/p99
  frame-to-verdict, frames/s and the upload / compute / download / detect split from CUDA events.

Needs a GPU, torch (to make the models) and the build extra; weights are random or barely trained
(speed does not depend on them), INT8 is calibrated on synthetic textures. --build-only builds the
engines and stops, and runs without a GPU (TensorRT-RTX builds on the CPU): the builds, checked.
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

CASES = {"default": (512, 1024), "renet_d": (512, 1024), "cae001": (512,)}  # frame sides


def default_model(good: Path, folder: Path) -> Path:
    """edge-train's default method and export (the method's own settings: nothing set here but the
    data and a few steps), trained on the good images in `good`."""
    import yaml

    from train.cli import edge_train_main
    cfg = {"data": str(good), "out": str(folder / "default_run"), "time_budget_min": 0.1,
           "epochs": 1, "steps_per_epoch": 2, "batch": 4, "holdout": 0.25, "seed": 0}
    (folder / "default.yaml").write_text(yaml.safe_dump(cfg))
    if edge_train_main(["--config", str(folder / "default.yaml")]) != 0:
        raise RuntimeError("edge-train failed on the synthetic textures")
    return folder / "default_run" / "model.onnx"


def export(name: str, size: int, folder: Path) -> Path:
    """A seed method's network with random weights, its recipe for whole frames of size x size."""
    import torch

    from train.export import export_onnx
    from train.methods import build
    torch.manual_seed(0)
    model = build(name)
    export_size = 32 if name == "renet_d" else size  # ReNet-D exports at block size; --shape widens it
    recipe = {"model_family": name, "preprocess": {"size": [size, size]},
              "detect": {"method": "dct_fusion", "dct_fusion": {"patch": 32, "stride": 32, "block": 8}}}
    return export_onnx(model, export_size, folder / f"{name}{size}.onnx", recipe)


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


def build(onnx_path: Path, engine: Path, shape: list[str], good: Path, precision: str) -> dict:
    """build-engine in a subprocess, as a user runs it: the build's seconds and what it built (the
    engine's sidecar: input shape and precision)."""
    from edge.backends.sidecar import read_sidecar
    cmd = [sys.executable, "-m", "build_engines.cli", str(onnx_path), "-o", str(engine), *shape,
           "--calib-dir", str(good), "--force", *{"fp32": [], "fp16": ["--fp16"], "int8": ["--int8"]}[precision]]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("build-engine: " + (r.stderr.strip().splitlines() or ["(no message)"])[-1])
    side = read_sidecar(engine)
    return {"build_s": round(time.perf_counter() - t0, 2), "precision": side.precision,
            "input": list(side.io.inputs[0].shape)}


def station_case(engine: Path, size: int, frames: int) -> dict:
    """The default's engine through the station's code: per-frame Inspector latency, then the
    whole station's frames/s, by bench.bench_model's own functions."""
    from .bench_model import inspector_rows, pipeline_rows
    sizes = [f"{size}x{size}"]
    row = inspector_rows([str(engine)], [], sizes, repeat=min(frames, 500), rounds=1)[0]
    station = pipeline_rows([str(engine)], [], sizes, frames, rounds=1)[0]
    return {"calls": row["calls"], "p50_ms": row["median_ms"], "p90_ms": row["p90_ms"], "p99_ms": row["p99_ms"],
            "fps": station["pipeline_fps"], "station_cpu_ms_per_frame": station["pipeline_cpu_ms_per_frame"]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--models", nargs="+", choices=list(CASES), default=list(CASES))
    ap.add_argument("--sizes", nargs="+", type=int, default=None, help="frame sides (default: each model's)")
    ap.add_argument("--precisions", nargs="+", choices=("fp32", "fp16", "int8"), default=["fp32", "fp16", "int8"])
    ap.add_argument("--build-only", action="store_true", help="build the engines, time nothing (no GPU needed)")
    args = ap.parse_args(argv)
    from edge.gpu import probe_gpu
    gpu = probe_gpu()
    if gpu is None and not args.build_only:
        print("bench_gpu: no NVIDIA GPU here (--build-only builds the engines without one)", file=sys.stderr)
        return 2
    results = {"machine": machine(), "gpu": f"{gpu.name} (cc {gpu.compute_capability}, driver {gpu.driver})"
               if gpu else None, "cases": {}}
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in args.models:
            default = default_model(textures(tmp, 512), tmp) if name == "default" else None
            for size in [s for s in CASES[name] if args.sizes is None or s in args.sizes]:
                onnx_path, good = default or export(name, size, tmp), textures(tmp, size)
                for prec in args.precisions:
                    key = f"{name} {size}x{size} {prec}"
                    engine = tmp / f"{name}{size}.{prec}.plan"
                    try:
                        res = build(onnx_path, engine, ["--frame" if default else "--shape", f"{size}x{size}"], good, prec)
                        if not args.build_only:
                            res.update(station_case(engine, size, args.frames) if default
                                       else run_case(engine, size, args.frames))
                    except Exception as e:  # recorded per case (e.g. TensorRT-RTX refused for a Hopper GPU)
                        failed, res = True, {"error": f"{type(e).__name__}: {e}"}
                    results["cases"][key] = res
                    print(key, json.dumps(res), flush=True, file=sys.stderr if "error" in res else sys.stdout)
    save("gpu", results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
