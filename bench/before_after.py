"""bench_pipeline's measurements on two checkouts, side by side in one run: rounds alternate
between them on the same model files and frames, so both see the same machine state.

    python -m bench.before_after /path/to/before-checkout [--rounds 3] [--frames 300]

Each round runs, in a fresh interpreter per checkout (its own `edge` on PYTHONPATH), the bare
ONNX Runtime session and the full pipeline (bench_pipeline.bare_fps / pipeline_fps, whose
signatures both checkouts share). Reported: medians over rounds of fps and pipeline/bare ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.bench_pipeline import VARIANTS, make_frames, make_models
from bench.common import machine, save

ROUND = """
import json, sys
from pathlib import Path
from bench.bench_pipeline import bare_fps, pipeline_fps
model, frames, n, variants = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])
out = {"bare": bare_fps(model, frames, n)}
for name, (preload, overlap) in variants.items():
    out[name] = pipeline_fps(model, frames, n, preload, overlap)
print(json.dumps(out))
"""


def one_round(tree: Path, model: Path, frames: Path, n: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree))
    res = subprocess.run([sys.executable, "-c", ROUND, str(model), str(frames), str(n), json.dumps(VARIANTS)],
                         cwd=tree, env=env, capture_output=True, text=True, timeout=1800)
    if res.returncode != 0:
        raise SystemExit(f"{tree}: {res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("before", type=Path)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    args = ap.parse_args(argv)
    trees = {"before": args.before.resolve(), "after": Path(__file__).resolve().parents[1]}
    print(f"machine: {machine()}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        models = make_models(tmp)
        for size in args.sizes:
            frames = tmp / f"frames{size}"
            make_frames(frames, 32, size)
            for name, model in models.items():
                runs = {t: [] for t in trees}
                for _ in range(args.rounds):
                    for t, tree in trees.items():
                        runs[t].append(one_round(tree, model, frames, args.frames))
                for t in trees:
                    row = {"tree": t, "model": name, "frame": f"{size}x{size}"}
                    for v in ["bare", *VARIANTS]:
                        row[f"{v} fps"] = statistics.median(r[v] for r in runs[t])
                        if v != "bare":
                            row[f"{v} ratio"] = statistics.median(r[v] / r["bare"] for r in runs[t])
                    rows.append(row)
                    print(f"{t:<6} {name:<18} {size}x{size}  bare {row['bare fps']:7.1f}  " +
                          "  ".join(f"{v}: {row[v + ' fps']:6.1f} ({row[v + ' ratio']:.2f}x)" for v in VARIANTS),
                          flush=True)
    save("before_after", {"rows": rows, "rounds": args.rounds, "frames_per_run": args.frames,
                          "before": str(trees["before"])})


if __name__ == "__main__":
    main()
