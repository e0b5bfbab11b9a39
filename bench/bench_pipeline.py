"""Full replay pipeline (PNG decode, preprocess, tile, infer, detect, decide, emit JSON) vs the bare
ONNX Runtime session on the same frames (already decoded, normalised and tiled in memory).

    python -m bench.bench_pipeline [--quick]
    python -m bench.bench_pipeline --view [--quick]    # the live view's cost: on vs off (docs/BENCHMARKS.md)

Both run the same model with ONNX Runtime and the same threads (the figures in docs/BENCHMARKS.md
were taken so; bench.bench_model compares the CPU runners); rounds alternate and the medians are
compared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import onnx

from bench.common import cpu_runner, machine, save
from bench.models import conv_autoencoder
from edge.backends import open_runner
from edge.config import parse
from edge.demo import paint_defect, texture
from edge.inspector import Inspector
from edge.recipe import RECIPE_KEY, Recipe, recipe_json
from edge.schema import load
from edge.station import Station
from testkit.lowpass_model import DEMO_RECIPE, build_lowpass_autoencoder


def make_frames(folder: Path, count: int, size: int):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        img = texture(500 + i, size)
        if i % 8 == 3:
            paint_defect(img, i, 500 + i)
        cv2.imwrite(str(folder / f"f{i:03d}.png"), (img * 255 + 0.5).astype(np.uint8))


def bench_config(model: Path, frames: Path, preload: bool = True, view: bool = False,
                 runner: str = "onnxruntime"):
    """The benchmark station: looping replay of `frames`, JSON lines to /dev/null, no summary;
    runner: a bench.common.cpu_runner label."""
    backend, precision = cpu_runner(runner)
    raw = {"station": "bench", "cameras": {"bench": {"source": f"file://{frames}?loop=1&preload={int(preload)}",
                                                     "queue": 4}},
           "model": {"path": str(Path(model).resolve()), "backend": backend, "precision": precision},
           "outputs": {"jsonl": {"stdout": False, "path": "/dev/null"}},
           "telemetry": {"window": 4096, "summary": False, "progress_s": 0},
           "view": {"enabled": view, "port": 0}}
    return parse(raw, "bench", frames)


def pipeline_fps(model: Path, frames: Path, n: int, preload: bool = True, overlap: bool = True,
                 view: bool = False) -> float:
    return pipeline_run(model, frames, n, preload, overlap, view)[0]


def pipeline_run(model: Path, frames: Path, n: int, preload: bool = True, overlap: bool = True,
                 view: bool = False, runner: str = "onnxruntime") -> tuple[float, float, float]:
    """(frames/s, CPU ms per frame of the station's processes, frames/s the page was sent) of the
    station as edge-run builds it (edge.station), JSON lines to /dev/null; timed from the first
    frame to the last verdict (start-up and warm-up excluded, as in the bare loop).
    view: the live view on, with one browser's worth of traffic (see Browser)."""
    with Station(bench_config(model, frames, preload, view, runner), "bench", frames=n, overlap=overlap,
                 stdout=False) as st:
        browser = Browser(st.view.port) if view else None  # connected before the clock starts
        c0, t0 = time.process_time() + view_process_cpu(st), time.perf_counter()
        t = st.run()
        elapsed, cpu = time.perf_counter() - t0, time.process_time() + view_process_cpu(st) - c0
        if browser is not None:
            browser.close()
            assert browser.frames > 0, "the browser saw no frame"
    assert t.decided == n, (t.decided, t.dropped)
    return n / elapsed, cpu / n * 1e3, (browser.frames / elapsed if browser else 0.0)


def view_process_cpu(st) -> float:
    """CPU seconds the live view's own process has used (0 without a view): counted as the station's."""
    if st.view is None or st.view._proc is None:
        return 0.0
    fields = Path(f"/proc/{st.view._proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Browser:
    """What one open live-view page asks of the station: the event stream, and the frame JPEG
    after each frame event. In its own process, as a browser is (it must not share edge-run's
    GIL), and at idle priority: it stands for a page open on the operator's PC, whose own work is
    not the station's. The station's side of serving it (the view's threads) is all counted."""

    CLIENT = """
import http.client, os, sys
os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
port = int(sys.argv[1])
frames = 0
events = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
images = http.client.HTTPConnection("127.0.0.1", port, timeout=10)  # kept alive, as a browser's is
events.request("GET", "/events")
stream = events.getresponse()
print("connected", flush=True)
for line in stream:
    if line.startswith(b"event: frame"):
        images.request("GET", "/frame.jpg")
        images.getresponse().read()
        frames += 1
        print(frames, flush=True)
"""

    def __init__(self, port: int):
        self.proc = subprocess.Popen([sys.executable, "-c", self.CLIENT, str(port)],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.frames = 0
        # wait until the page is connected: a browser's start-up is not the station's cost
        assert self.proc.stdout.readline().strip() == "connected", "the browser could not connect"

    def close(self):
        self.proc.terminate()
        out = self.proc.communicate(timeout=10)[0].split()
        self.frames = int(out[-1]) if out else 0


def bare_fps(model: Path, frames: Path, n: int) -> float:
    runner = open_runner(model, "onnxruntime")
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


def view_cost(models: dict, tmp: Path, seconds: float, rounds: int, sizes=(512, 1024),
              interleaved_s: float = 60.0) -> list[dict]:
    """Throughput and CPU per frame with the live view on (one browser connected) against off.
    Each run is sized to take about `seconds`; rounds go off-on, on-off, ... so that a drift in
    the machine's speed does not favour either."""
    rows = []
    for size in sizes:
        frames = tmp / f"frames{size}"
        for name, model in models.items():
            n = max(100, int(pipeline_fps(model, frames, 64) * seconds))
            runs = {False: [], True: []}
            for i in range(rounds):
                for view in ((False, True) if i % 2 == 0 else (True, False)):
                    runs[view].append(pipeline_run(model, frames, n, view=view))
            (off_fps, off_cpu, _), (on_fps, on_cpu, shown) = (list(zip(*runs[v])) for v in (False, True))
            med = statistics.median
            r = {"model": name, "frame": f"{size}x{size}", "frames_per_run": n,
                 "view off fps": med(off_fps), "view on fps": med(on_fps),
                 "ratio": med(b / a for a, b in zip(off_fps, on_fps)),
                 "ratios": [round(b / a, 3) for a, b in zip(off_fps, on_fps)],
                 "ratio 90% interval": median_interval([b / a for a, b in zip(off_fps, on_fps)]),
                 "view off cpu ms/frame": med(off_cpu), "view on cpu ms/frame": med(on_cpu),
                 "page frames/s": med(shown)}
            if interleaved_s:
                r["interleaved"] = interleaved_view_cost(model, frames, interleaved_s)
            rows.append(r)
            print(f"{name:<18} {r['frame']:>9}  {n:5d} frames/run  view off {r['view off fps']:7.1f} fps "
                  f"{r['view off cpu ms/frame']:6.2f} CPU ms/frame  view on {r['view on fps']:7.1f} fps "
                  f"{r['view on cpu ms/frame']:6.2f} CPU ms/frame  on/off {r['ratio']:.3f}x "
                  f"(90% interval {r['ratio 90% interval'][0]:.3f}..{r['ratio 90% interval'][1]:.3f}, "
                  f"rounds {min(r['ratios']):.3f}..{max(r['ratios']):.3f}), page {r['page frames/s']:.1f} frames/s",
                  flush=True)
            if interleaved_s:
                i = r["interleaved"]
                print(f"{'':<18} {'':>9}  interleaved {interleaved_s:.0f} s, {i['pairs']} pairs: on/off {i['ratio']:.3f}x "
                      f"(90% interval {i['ratio 90% interval'][0]:.3f}..{i['ratio 90% interval'][1]:.3f})", flush=True)
    return rows


def interleaved_view_cost(model: Path, frames: Path, seconds: float, window_s: float = 1.0, null: bool = False) -> dict:
    """One long run with the live view on and a page connected, the view's per-frame work switched
    on for one window of each pair and off for the other, in random order: frames/s of the "on"
    window over the "off" one, per pair. Slow drifts of the machine's speed (which make separate
    runs scatter by several per cent here) cancel, and the random order keeps anything periodic in
    the station from lining up with the switching. "Off" keeps the view's process, the server and
    the page's statistics stream (a few small writes a second); everything a shown frame costs is
    switched. null=True switches nothing: what the method reports for no difference."""
    rng = np.random.default_rng(1)
    pairs, done = [], threading.Event()
    with Station(bench_config(model, frames, view=True), "bench", stdout=False) as st:
        browser = Browser(st.view.port)
        shown0 = st.view.seq

        def switch(on: bool):
            if on and not null:
                st.view.__dict__.pop("offer", None)  # the real offer
            else:
                st.view.offer = lambda *a, **k: None  # the pipeline's call returns at once

        def window(on: bool) -> float:
            switch(on)
            t, d = time.perf_counter(), st.telemetry.decided
            done.wait(window_s)
            return (st.telemetry.decided - d) / (time.perf_counter() - t)

        def run_pairs():
            window(False)  # warm-up
            while not done.is_set() and time.perf_counter() - t0 < seconds:
                first_on = bool(rng.integers(2))
                a, b = window(first_on), window(not first_on)
                pairs.append((a, b) if first_on else (b, a))  # (on, off)
            st.stop_event.set()
        t0 = time.perf_counter()
        switcher = threading.Thread(target=run_pairs, daemon=True)
        switcher.start()
        st.run()
        done.set()
        switcher.join()
        browser.close()
        shown = st.view.seq - shown0
    ratios = [on / off for on, off in pairs]
    return {"pairs": len(pairs), "ratio": statistics.median(ratios), "ratio 90% interval": median_interval(ratios),
            "off fps": statistics.median(off for _, off in pairs), "on fps": statistics.median(on for on, _ in pairs),
            "page frames/s while on": shown / (time.perf_counter() - t0) * 2}


def median_interval(values: list[float], level: float = 0.9, resamples: int = 4000) -> tuple[float, float]:
    """Bootstrap interval of the median: on a shared 2-core machine single runs scatter by several
    per cent, so a ratio is only worth quoting with how far its median could be off."""
    rng = np.random.default_rng(0)
    v = np.asarray(values)
    medians = np.median(rng.choice(v, (resamples, len(v))), axis=1)
    lo, hi = np.quantile(medians, [(1 - level) / 2, (1 + level) / 2])
    return round(float(lo), 4), round(float(hi), 4)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--view", action="store_true", help="measure the live view's cost instead (on vs off)")
    ap.add_argument("--frames", type=int, default=300, help="frames per run")
    ap.add_argument("--rounds", type=int, default=None, help="alternating rounds (medians reported; default 5, --view 20)")
    ap.add_argument("--seconds", type=float, default=2.0, help="--view: length of each run")
    ap.add_argument("--interleaved-s", type=float, default=60.0,
                    help="--view: length of the run that switches the view off and on each second (0: none)")
    ap.add_argument("--sizes", default="512,1024", help="frame sizes (comma-separated)")
    ap.add_argument("--models", default="lowpass,cae", help="models: lowpass (demo lowpass AE), cae (conv AE)")
    args = ap.parse_args(argv)
    n, rounds = (48, 1) if args.quick else (args.frames, args.rounds or (20 if args.view else 5))
    if args.quick:
        args.seconds, args.interleaved_s = 1.0, 8.0
    rows = []
    print(f"machine: {machine()}")
    print("on/off ratios, medians over rounds" if args.view else
          "ratios are against the bare session of the same round; medians over rounds")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        models = make_models(tmp)
        lowpass, cae = models["demo lowpass AE"], models["conv AE 16-32-64"]
        for size in (512, 1024):
            make_frames(tmp / f"frames{size}", 32, size)
        if args.view:
            chosen = {k: v for k, v in models.items() if ("lowpass" if "lowpass" in k else "cae") in args.models.split(",")}
            sizes = tuple(int(x) for x in args.sizes.split(","))
            save("pipeline_view", {"rows": view_cost(chosen, tmp, args.seconds, rounds, sizes, args.interleaved_s),
                                   "seconds_per_run": args.seconds, "rounds": rounds, "interleaved_s": args.interleaved_s})
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
