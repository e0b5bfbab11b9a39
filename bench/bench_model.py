"""Trained models' size and ONNX Runtime latency on this machine, per frame through the station's
own code (edge.inspector.Inspector: preprocessing, tiling or whole-frame padding, model,
stitching, detection, decision), at 512x512 and at the model's data's typical size. Several
models are measured side by side: rounds alternate between them, medians over all rounds.

    python3 -m bench.bench_model runs/default/model.onnx [other.onnx ...] [--sizes 512x512 330x270]
        [--repeat 50] [--rounds 3] [--park-workers]

--park-workers adds each model a second time with ONNX Runtime's workers never spinning (each
operator then wakes them), side by side with the runner's own setting.
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from bench.common import machine, save
from edge.backends import open_runner
from edge.backends.onnxruntime import OnnxRuntimeRunner
from edge.demo import texture
from edge.inspector import Inspector
from edge.recipe import load_recipe


def calls(ins: Inspector, h: int, w: int) -> str:
    lay = ins.pre.layout(h, w)
    n = len(lay.ys) * len(lay.xs)
    if ins.pre.whole_frame:
        return f"1 call on the whole frame padded to {lay.tile[0]}x{lay.tile[1]}"
    fixed = ins.runner.input_shape[0]
    per_call = n if not fixed else min(fixed, n)
    return f"{n} tile(s) of {lay.tile[0]}x{lay.tile[1]} in {-(-n // per_call)} call(s)"


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+")
    ap.add_argument("--sizes", nargs="+", default=["512x512"])
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--park-workers", action="store_true")
    args = ap.parse_args(argv)
    print(machine())
    rows = []
    with ExitStack() as stack:
        inspectors, files = {}, {}  # by row label: the model's Inspector and its file
        for m in args.models:
            runners = {m: open_runner(Path(m))}
            if args.park_workers:
                runners[f"{m} (workers parked)"] = OnnxRuntimeRunner(Path(m), park_workers=True)
            for label, runner in runners.items():
                runner = stack.enter_context(runner)
                inspectors[label], files[label] = Inspector(runner, load_recipe(runner.metadata, m), "bench", "bench"), Path(m)
        for size in args.sizes:
            h, w = (int(v) for v in size.split("x"))
            frame = (texture(7, max(h, w))[:h, :w] * 255).astype(np.uint8)
            times: dict[str, list[float]] = {m: [] for m in inspectors}
            for ins in inspectors.values():
                ins.warm_up(frame.shape)
            for _ in range(args.rounds):
                for m, ins in inspectors.items():
                    x = ins.pre.to_model_space(frame)
                    for _ in range(args.repeat):
                        t0 = time.perf_counter()
                        ins.inspect(x, (h, w))
                        times[m].append(time.perf_counter() - t0)
            for m, ins in inspectors.items():
                row = {"model": m, "frame": size, "calls": calls(ins, h, w),
                       "median_ms": round(statistics.median(times[m]) * 1e3, 2),
                       "p90_ms": round(float(np.percentile(times[m], 90)) * 1e3, 2),
                       "onnx_mb": round(files[m].stat().st_size / 1e6, 2)}
                rows.append(row)
                print(f"{m} {size}: {row['calls']}, median {row['median_ms']} ms, p90 {row['p90_ms']} ms per frame "
                      f"(inference + detection + decision)", flush=True)
    save("model", {"machine": machine(), "rows": rows})


if __name__ == "__main__":
    main()
