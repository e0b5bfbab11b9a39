"""Full replay pipeline (PNG decode, preprocess, tile, infer, detect, decide, emit JSON) vs the bare
ONNX Runtime session on the same frames (already decoded, normalised and tiled in memory).

    python -m bench.bench_pipeline [--quick]

Both run the same model with the same threads; rounds alternate and the medians are compared.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import onnx

from bench.common import machine, save
from bench.models import conv_autoencoder
from edge.backends import open_runner
from edge.demo import paint_defect, texture
from edge.demo.build_model import DEMO_RECIPE, build_lowpass_autoencoder
from edge.outputs import JsonLinesOutput
from edge.pipeline import Inspector, Pipeline
from edge.recipe import RECIPE_KEY, Recipe, recipe_json
from edge.schema import load
from edge.sources import open_source
from edge.telemetry import Telemetry


def make_frames(folder: Path, count: int, size: int):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        img = texture(500 + i, size)
        if i % 8 == 3:
            paint_defect(img, i, 500 + i)
        cv2.imwrite(str(folder / f"f{i:03d}.png"), (img * 255 + 0.5).astype(np.uint8))


def pipeline_fps(model: Path, frames: Path, n: int, preload: bool = True, overlap: bool = True) -> float:
    runner = open_runner(model)
    recipe = load(Recipe, DEMO_RECIPE, "bench")
    source = open_source(f"file://{frames}?loop=1&preload={int(preload)}")
    with runner, source:
        inspector = Inspector(runner, recipe, "bench", "bench")
        inspector.warm_up(cv2.imread(str(next(frames.glob("*.png"))), cv2.IMREAD_UNCHANGED).shape)
        out = JsonLinesOutput(stdout=False, path=Path("/dev/null"))
        t = Telemetry(4096, "bench", "bench")
        p = Pipeline(source, inspector, [out], t, queue_size=4, max_frames=n, overlap=overlap)
        t0 = time.perf_counter()
        p.run()
        elapsed = time.perf_counter() - t0
        out.close()
    assert t.decided == n, (t.decided, t.dropped)
    return n / elapsed


def bare_fps(model: Path, frames: Path, n: int) -> float:
    runner = open_runner(model)
    recipe = load(Recipe, DEMO_RECIPE, "bench")
    with runner:
        ins = Inspector(runner, recipe, "bench", "bench")
        batches = []
        for path in sorted(frames.glob("*.png")):
            x = ins.pre.to_model_space(cv2.imread(str(path), cv2.IMREAD_UNCHANGED))
            batches.append(ins.pre.tiles(x).copy())
        runner.infer(batches[0])
        t0 = time.perf_counter()
        for i in range(n):
            runner.infer(batches[i % len(batches)])
        return n / (time.perf_counter() - t0)


VARIANTS = {  # name: (preload, overlap)
    "pipeline": (True, True),
    "pipeline, PNG decode per frame": (False, True),
    "pipeline, no detect/infer overlap": (True, False),
}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    n, rounds = (48, 1) if args.quick else (300, 5)
    rows = []
    print(f"machine: {machine()}")
    print("ratios are against the bare session of the same round; medians over rounds")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cae = tmp / "cae.onnx"
        m = conv_autoencoder(256)
        onnx.helper.set_model_props(m, {RECIPE_KEY: recipe_json(load(Recipe, DEMO_RECIPE, "bench"))})
        onnx.save(m, cae)
        lowpass = tmp / "lowpass.onnx"
        onnx.save(build_lowpass_autoencoder(), lowpass)
        for size in (512, 1024):
            frames = tmp / f"frames{size}"
            make_frames(frames, 32, size)
            for name, model in (("demo lowpass AE", lowpass), ("conv AE 16-32-64", cae)):
                bare, fps, ratio = [], {v: [] for v in VARIANTS}, {v: [] for v in VARIANTS}
                for _ in range(rounds):
                    bare.append(bare_fps(model, frames, n))
                    for v, (preload, overlap) in VARIANTS.items():
                        fps[v].append(pipeline_fps(model, frames, n, preload, overlap))
                        ratio[v].append(fps[v][-1] / bare[-1])
                r = {"model": name, "frame": f"{size}x{size}", "tiles": (size // 256) ** 2,
                     "bare_fps": statistics.median(bare),
                     **{f"{v} fps": statistics.median(fps[v]) for v in VARIANTS},
                     **{f"{v} ratio": statistics.median(ratio[v]) for v in VARIANTS}}
                rows.append(r)
                print(f"{name:<18} {r['frame']:>9} ({r['tiles']:>2} tiles)  bare {r['bare_fps']:7.1f} fps  " +
                      "  ".join(f"{v}: {r[v + ' fps']:6.1f} fps ({r[v + ' ratio']:.2f}x)" for v in VARIANTS))
    save("pipeline", {"rows": rows, "frames_per_round": n, "rounds": rounds})


if __name__ == "__main__":
    main()
