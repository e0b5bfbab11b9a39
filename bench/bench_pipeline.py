"""Full replay pipeline (PNG decode, preprocess, tile, infer, detect, decide, emit JSON) vs the bare
ONNX Runtime session on the same frames (already decoded, normalised and tiled in memory).

    python -m bench.bench_pipeline [--quick]

Both run the same model with the same threads; rounds alternate and the medians are compared.
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
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
from testkit.lowpass_model import DEMO_RECIPE, build_lowpass_autoencoder
from edge.config import parse
from edge.pipeline import Inspector
from edge.recipe import RECIPE_KEY, Recipe, recipe_json
from edge.schema import load
from edge.station import Station


def make_frames(folder: Path, count: int, size: int):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        img = texture(500 + i, size)
        if i % 8 == 3:
            paint_defect(img, i, 500 + i)
        cv2.imwrite(str(folder / f"f{i:03d}.png"), (img * 255 + 0.5).astype(np.uint8))


def pipeline_fps(model: Path, frames: Path, n: int, preload: bool = True, overlap: bool = True,
                 view: bool = False) -> float:
    """The station as edge-run builds it (edge.station), JSON lines to /dev/null; timed from the
    first frame to the last verdict (start-up and warm-up excluded, as in the bare loop).
    view: the live view on, with one browser's worth of traffic (see Browser)."""
    raw = {"station": "bench", "cameras": {"bench": {"source": f"file://{frames}?loop=1&preload={int(preload)}",
                                                     "queue": 4}},
           "model": {"path": str(model)}, "outputs": {"jsonl": {"stdout": False, "path": "/dev/null"}},
           "telemetry": {"window": 4096, "summary": False, "progress_s": 0},
           "view": {"enabled": view, "port": 0}}
    with Station(parse(raw, "bench", frames), "bench", frames=n, overlap=overlap, stdout=False,
                 log=io.StringIO()) as st:
        browser = Browser(st.view.server.port) if view else None
        t0 = time.perf_counter()
        t = st.run()
        elapsed = time.perf_counter() - t0
        if browser is not None:
            browser.close()
            assert browser.frames > 0, "the browser saw no frame"
    assert t.decided == n, (t.decided, t.dropped)
    return n / elapsed


class Browser:
    """What one open live-view page asks of the station: the event stream, and the frame JPEG
    after each frame event. In its own process, as a browser is: it must not share edge-run's GIL."""

    CLIENT = """
import sys, urllib.request
base = sys.argv[1]
frames = 0
with urllib.request.urlopen(base + "/events", timeout=30) as stream:
    for line in stream:
        if line.startswith(b"event: frame"):
            urllib.request.urlopen(base + "/frame.jpg", timeout=10).read()
            frames += 1
            print(frames, flush=True)
"""

    def __init__(self, port: int):
        self.proc = subprocess.Popen([sys.executable, "-c", self.CLIENT, f"http://127.0.0.1:{port}"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.frames = 0

    def close(self):
        self.proc.terminate()
        out = self.proc.communicate(timeout=10)[0].split()
        self.frames = int(out[-1]) if out else 0


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


def make_models(folder: Path) -> dict[str, Path]:
    """The two benchmark models as ONNX files in `folder`, by the names the tables use."""
    cae = folder / "cae.onnx"
    m = conv_autoencoder(256)
    onnx.helper.set_model_props(m, {RECIPE_KEY: recipe_json(load(Recipe, DEMO_RECIPE, "bench"))})
    onnx.save(m, cae)
    lowpass = folder / "lowpass.onnx"
    onnx.save(build_lowpass_autoencoder(), lowpass)
    return {"demo lowpass AE": lowpass, "conv AE 16-32-64": cae}


def view_cost(models: dict, tmp: Path, n: int, rounds: int) -> list[dict]:
    """Throughput with the live view on (one browser connected) against off, rounds alternating."""
    rows = []
    for size in (512, 1024):
        frames = tmp / f"frames{size}"
        for name, model in models.items():
            off, on = [], []
            for _ in range(rounds):
                off.append(pipeline_fps(model, frames, n))
                on.append(pipeline_fps(model, frames, n, view=True))
            r = {"model": name, "frame": f"{size}x{size}", "view off fps": statistics.median(off),
                 "view on fps": statistics.median(on), "ratio": statistics.median(b / a for a, b in zip(off, on))}
            rows.append(r)
            print(f"{name:<18} {r['frame']:>9}  view off {r['view off fps']:7.1f} fps  view on {r['view on fps']:7.1f} fps"
                  f"  on/off {r['ratio']:.3f}x", flush=True)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--view", action="store_true", help="measure the live view's cost instead (on vs off)")
    ap.add_argument("--frames", type=int, default=300, help="frames per run")
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds (medians reported)")
    args = ap.parse_args(argv)
    n, rounds = (48, 1) if args.quick else (args.frames, args.rounds)
    rows = []
    print(f"machine: {machine()}")
    print("ratios are against the bare session of the same round; medians over rounds")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        models = make_models(tmp)
        lowpass, cae = models["demo lowpass AE"], models["conv AE 16-32-64"]
        for size in (512, 1024):
            make_frames(tmp / f"frames{size}", 32, size)
        if args.view:
            save("pipeline_view", {"rows": view_cost({"demo lowpass AE": lowpass, "conv AE 16-32-64": cae}, tmp, n, rounds),
                                   "frames_per_round": n, "rounds": rounds})
            return
        for size in (512, 1024):
            frames = tmp / f"frames{size}"
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
