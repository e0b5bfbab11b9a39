"""A trained model's size and its ONNX Runtime latency on this machine, per frame through the
station's own code (edge.pipeline.Inspector: preprocessing, tiling, model, stitching, detection,
decision), at 512x512 and at the model's data's typical size.

    python3 -m bench.bench_model runs/default/model.onnx [--sizes 512x512 330x270] [--repeat 50]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from bench.common import machine, save
from edge.backends import open_runner
from edge.demo import texture
from edge.pipeline import Inspector
from edge.recipe import load_recipe


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--sizes", nargs="+", default=["512x512"])
    ap.add_argument("--repeat", type=int, default=50)
    args = ap.parse_args(argv)
    model = Path(args.model)
    rows = []
    with open_runner(model) as runner:
        recipe = load_recipe(runner.metadata, str(model))
        ins = Inspector(runner, recipe, "bench", "bench")
        for size in args.sizes:
            h, w = (int(v) for v in size.split("x"))
            frame = (texture(7, max(h, w))[:h, :w] * 255).astype(np.uint8)
            ins.warm_up(frame.shape)
            x = ins.pre.to_model_space(frame)
            times = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                ins.inspect(x, frame.shape)
                times.append(time.perf_counter() - t0)
            tiles = ins.pre.tile_count(*x.shape[-2:])
            row = {"frame": size, "tiles": tiles, "median_ms": round(statistics.median(times) * 1e3, 2),
                   "p90_ms": round(float(np.percentile(times, 90)) * 1e3, 2)}
            rows.append(row)
            print(f"{size}: {tiles} tiles of {runner.input_shape[2]}x{runner.input_shape[3]}, "
                  f"median {row['median_ms']} ms, p90 {row['p90_ms']} ms per frame", flush=True)
    size_mb = model.stat().st_size / 1e6
    print(f"{model}: {size_mb:.2f} MB, {runner.name}")
    save("model", {"machine": machine(), "model": str(model), "onnx_mb": round(size_mb, 2), "rows": rows})


if __name__ == "__main__":
    main()
