"""What one model call per frame would buy: the default perlin_seg U-Net (width 8; timing does not
depend on the weights, so they are random) on a 512x512 frame through ONNX Runtime, three ways:
25 calls of one 128x128 tile (the station today), the 25 tiles as one batch, the whole frame in
one call (a dynamic height/width export). Needs torch and onnxscript (the train extra).

    python3 -m bench.bench_one_call [--repeat 10] [--size 512]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import machine


def main(argv=None):
    import onnxruntime as ort
    import torch

    from train.methods.unet.model import UNet
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--size", type=int, default=512)
    args = ap.parse_args(argv)
    print(machine())
    model = UNet(width=8).eval()
    dims = {"batch": torch.export.Dim("batch", min=1, max=1024), "h": torch.export.Dim("h", min=1, max=256),
            "w": torch.export.Dim("w", min=1, max=256)}
    with tempfile.TemporaryDirectory() as tmp:
        tiles_path, frame_path = Path(tmp) / "tiles.onnx", Path(tmp) / "frame.onnx"
        with contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
            torch.onnx.export(model, (torch.rand(2, 1, 128, 128),), str(tiles_path), input_names=["image"],
                              dynamo=True, external_data=False, dynamic_shapes={"x": {0: dims["batch"]}})
            torch.onnx.export(model, (torch.rand(1, 1, 256, 256),), str(frame_path), input_names=["image"],
                              dynamo=True, external_data=False,
                              dynamic_shapes={"x": {0: dims["batch"], 2: 16 * dims["h"], 3: 16 * dims["w"]}})
        opts = ort.SessionOptions()
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        tiles_sess, frame_sess = ort.InferenceSession(str(tiles_path), opts), ort.InferenceSession(str(frame_path), opts)
    rng = np.random.default_rng(0)
    n = ((args.size - 128) // 96 + 1 + (1 if (args.size - 128) % 96 else 0)) ** 2  # 128-px tiles, overlap >= 32
    tiles = rng.random((n, 1, 128, 128), dtype=np.float32)
    frame = rng.random((1, 1, args.size, args.size), dtype=np.float32)

    def median_ms(run):
        run()
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            run()
            times.append(time.perf_counter() - t0)
        return float(np.median(times)) * 1e3

    for _ in range(3):
        per_tile = median_ms(lambda: [tiles_sess.run(None, {"image": tiles[i:i + 1]}) for i in range(n)])
        batch = median_ms(lambda: tiles_sess.run(None, {"image": tiles}))
        whole = median_ms(lambda: frame_sess.run(None, {"image": frame}))
        print(f"{args.size}x{args.size}: {n} calls of one tile {per_tile:.1f} ms, one batch of {n} {batch:.1f} ms, "
              f"the whole frame {whole:.1f} ms")


if __name__ == "__main__":
    main()
