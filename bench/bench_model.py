"""Trained models' size and latency on this machine, per frame through the station's
own code (edge.inspector.Inspector: preprocessing, tiling or whole-frame padding, model,
stitching, detection, decision), at 512x512 and at the model's data's typical size. Several
models are measured side by side: rounds alternate between them, medians over all rounds.

    python3 -m bench.bench_model runs/default/model.onnx [other.onnx ...] [--sizes 512x512 330x270]
        [--repeat 50] [--rounds 3] [--runners onnxruntime openvino-fp32 openvino-bf16] [--park-workers]
        [--pipeline 200]

--runners: each ONNX model on each of these CPU runners (default: ONNX Runtime, and OpenVINO in fp32
and in bf16 where it is installed and the CPU computes bf16); an engine (build-engine's .plan) runs
on the TensorRT runner, which needs its GPU. --park-workers adds ONNX Runtime a second
time with its workers never spinning (each operator then wakes them). --pipeline N also runs N frames
of each size through the whole station per runner and round (edge.station as edge-run builds it:
replay with frames preloaded, acquisition, inference and detection threads, JSON lines to /dev/null)
and reports frames/s and the station's CPU ms per frame.
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from bench.common import cpu_runner, machine, save
from edge.backends import open_runner, openvino_installed
from edge.backends.onnxruntime import OnnxRuntimeRunner
from edge.demo import texture
from edge.inspector import Inspector
from edge.recipe import load_recipe


def calls(ins: Inspector, h: int, w: int) -> str:
    mh, mw = ins.pre.model_hw(h, w)
    lay = ins.pre.layout(mh, mw)
    n, (th, tw) = ins.pre.tile_count(mh, mw), lay.native.tile
    if ins.pre.whole_frame:
        return f"1 call on the whole frame padded to {th}x{tw}"
    fixed = ins.runner.input_shape[0]
    per_call = n if not fixed else min(fixed, n)
    coarse = f" ({len(lay.coarse.cells)} of the frame at x{ins.pre.p.coarse_scale:.4g})" if lay.coarse else ""
    scaled = f" of the frame resized to {mh}x{mw}" if (mh, mw) != (h, w) else ""  # a size or a working scale
    return f"{n} tile(s) of {th}x{tw}{scaled}{coarse} in {-(-n // per_call)} call(s)"


def runners_for(model: str, names: list[str]) -> list[str]:
    """The runner labels a model is timed on: an engine on TensorRT, an ONNX model on `names`."""
    return names if Path(model).suffix.lower() == ".onnx" else ["tensorrt"]


def inspector_rows(models: list[str], names: list[str], sizes: list[str], repeat: int, rounds: int,
                   park_workers: bool = False) -> list[dict]:
    """Per-frame latency through the station's Inspector for each model on each of its runners,
    rounds alternating between them (see the module's docstring)."""
    rows = []
    with ExitStack() as stack:
        inspectors, files = {}, {}  # by row label: the model's Inspector and its file
        for m in models:
            runners = {f"{m} on {name}": open_runner(Path(m), cpu_runner(name)[0], precision=cpu_runner(name)[1])
                       for name in runners_for(m, names)}
            if park_workers and Path(m).suffix.lower() == ".onnx":
                runners[f"{m} on onnxruntime, workers parked"] = OnnxRuntimeRunner(Path(m), park_workers=True)
            for label, runner in runners.items():
                runner = stack.enter_context(runner)
                inspectors[label], files[label] = Inspector(runner, load_recipe(runner.metadata, m), "bench", "bench"), Path(m)
        for size in sizes:
            h, w = (int(v) for v in size.split("x"))
            frame = (texture(7, max(h, w))[:h, :w] * 255).astype(np.uint8)
            times: dict[str, list[float]] = {m: [] for m in inspectors}
            for ins in inspectors.values():
                ins.warm_up(frame.shape)
            for _ in range(rounds):
                for m, ins in inspectors.items():
                    for _ in range(repeat):
                        t0 = time.perf_counter()  # from the camera's frame: a working scale's resize counts
                        ins.inspect(ins.pre.to_model_space(frame), (h, w))
                        times[m].append(time.perf_counter() - t0)
            for m, ins in inspectors.items():
                row = {"model": m, "frame": size, "calls": calls(ins, h, w),
                       "median_ms": round(statistics.median(times[m]) * 1e3, 2),
                       "p90_ms": round(float(np.percentile(times[m], 90)) * 1e3, 2),
                       "p99_ms": round(float(np.percentile(times[m], 99)) * 1e3, 2),
                       "model_mb": round(files[m].stat().st_size / 1e6, 2)}
                rows.append(row)
                print(f"{m} {size}: {row['calls']}, median {row['median_ms']} ms, p90 {row['p90_ms']} ms per frame "
                      f"(inference + detection + decision)", flush=True)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+", help="ONNX models, or engines (.plan: run on TensorRT)")
    ap.add_argument("--sizes", nargs="+", default=["512x512"])
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runners", nargs="+", choices=("onnxruntime", "openvino-fp32", "openvino-bf16"),
                    default=None, help="for the ONNX models")
    ap.add_argument("--park-workers", action="store_true")
    ap.add_argument("--pipeline", type=int, default=0, metavar="N")
    args = ap.parse_args(argv)
    print(machine())
    names = args.runners or ["onnxruntime"] + (["openvino-fp32", "openvino-bf16"] if openvino_installed() else [])
    if args.runners is None and openvino_installed():
        import openvino

        from edge.backends.openvino import cpu_has_bf16
        if not cpu_has_bf16(openvino.Core()):
            names.remove("openvino-bf16")
    rows = inspector_rows(args.models, names, args.sizes, args.repeat, args.rounds, args.park_workers)
    if args.pipeline:
        rows += pipeline_rows(args.models, names, args.sizes, args.pipeline, args.rounds)
    save("model", {"machine": machine(), "rows": rows})


def pipeline_rows(models: list[str], names: list[str], sizes: list[str], n: int, rounds: int) -> list[dict]:
    import tempfile

    import cv2

    from bench.bench_pipeline import pipeline_run
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            h, w = (int(v) for v in size.split("x"))
            frames = Path(tmp) / size
            frames.mkdir()
            for i in range(8):
                cv2.imwrite(str(frames / f"f{i}.png"), (texture(300 + i, max(h, w))[:h, :w] * 255).astype(np.uint8))
            runs: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
            for _ in range(rounds):
                for m in models:
                    for name in runners_for(m, names):
                        runs.setdefault((m, name), []).append(pipeline_run(Path(m), frames, n, runner=name))
            for (m, name), rs in runs.items():
                row = {"model": m, "runner": name, "frame": size, "pipeline_fps": round(statistics.median(r[0] for r in rs), 1),
                       "pipeline_cpu_ms_per_frame": round(statistics.median(r[1] for r in rs), 2)}
                rows.append(row)
                print(f"{m} on {name} {size}: station {row['pipeline_fps']} frames/s, "
                      f"{row['pipeline_cpu_ms_per_frame']} CPU ms per frame (medians of {rounds} runs of {n})",
                      flush=True)
    return rows


if __name__ == "__main__":
    main()
