"""The GPU station path. What runs where:

- here (no GPU): the numba.cuda DCT-fusion kernels under Numba's CUDA simulator against the CPU
  kernel, and the pipeline's overlapped (submit/collect) path driven by ONNX Runtime;
- only on an NVIDIA GPU (marker gpu, skipped elsewhere with the reason): edge.cuda round trips with
  each installed implementation, the kernels on the device, and the TensorRT runner against ONNX
  Runtime on a TensorRT-RTX engine.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from edge.gpu import probe_gpu

HAS_GPU = probe_gpu() is not None
gpu = pytest.mark.skipif(not HAS_GPU, reason="needs an NVIDIA GPU and driver (none found)")

KERNEL_CHECK = textwrap.dedent("""
    import sys
    import numpy as np
    from numba import cuda
    from edge.recipe import DctFusion
    from edge.detect import DctFusionDetector
    from edge.detect.gpu_dct import GpuDctFusion
    from edge.demo import texture
    size, n, s, l = (int(v) for v in sys.argv[1:5])
    src = texture(3, size)
    rec = src.copy()
    rec[size // 3:size // 3 + 8, size // 2:size // 2 + 12] -= 0.3   # a dark mark the model removed
    rec += np.random.default_rng(1).normal(0, 0.004, rec.shape).astype(np.float32)
    p = DctFusion(patch=n, stride=s, block=l, epsilon=0.01, gamma=3.0)
    mask, diff, mu, sigma, any_defect = DctFusionDetector(p).analyse(src, rec)
    gd, gmu, gsigma, gmask, hits = GpuDctFusion(p)(cuda.to_device(src), cuda.to_device(rec))
    gmask = gmask.copy_to_host()
    print(float(np.abs(gd - diff).max()), abs(gmu - mu), abs(gsigma - sigma), int(mask.sum()), hits,
          int((gmask != mask).sum()), int((diff > p.epsilon).sum()))
""")


def _kernel_check(size, n, s, l, simulate):
    env = dict(os.environ)
    if simulate:
        env["NUMBA_ENABLE_CUDASIM"] = "1"  # must be set before numba is imported: a fresh interpreter
    r = subprocess.run([sys.executable, "-c", KERNEL_CHECK, str(size), str(n), str(s), str(l)],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    diff_err, mu_err, sigma_err, cpu_pixels, gpu_hits, mask_diff, marked = r.stdout.split()
    assert float(diff_err) < 1e-4 and float(mu_err) < 1e-6 and float(sigma_err) < 1e-6
    assert int(marked) > 0 and int(cpu_pixels) > 0  # the case exercises the fusion, not just the features
    assert int(mask_diff) == 0 and int(gpu_hits) >= int(cpu_pixels)


@pytest.mark.slow
@pytest.mark.parametrize("n,s,l", [(16, 16, 4), (16, 8, 4)])
def test_gpu_dct_fusion_matches_the_cpu_kernel_in_the_simulator(n, s, l):
    _kernel_check(48, n, s, l, simulate=True)


@gpu
@pytest.mark.gpu
@pytest.mark.parametrize("size,n,s,l", [(1024, 32, 32, 8), (512, 32, 16, 8)])
def test_gpu_dct_fusion_matches_the_cpu_kernel_on_the_device(size, n, s, l):
    _kernel_check(size, n, s, l, simulate=False)


class SubmitCollectOnnxRuntime:
    """The GPU runner's submit/collect interface over ONNX Runtime, to drive Pipeline's overlapped
    path here where no GPU exists (the real TensorRT runner is tested below on a GPU). Work happens
    at submit, two slots alternate like the runner's, and collect returns that slot's output."""

    def __init__(self, inner):
        self.inner, self.input_shape, self.metadata, self.name = inner, inner.input_shape, inner.metadata, "ort-async"
        self.slots, self.next, self.last_timings, self.submitted = [None, None], 0, {}, 0

    def __enter__(self):
        self.inner.__enter__()
        return self

    def __exit__(self, *exc):
        self.inner.__exit__(*exc)

    def infer(self, batch):
        return self.inner.infer(batch)

    def submit(self, batch):
        i = self.next
        self.next ^= 1
        self.slots[i] = self.inner.infer(batch).copy()
        self.submitted += 1
        return i

    def collect(self, i):
        self.last_timings = {"upload": 1e-4, "compute": 2e-4, "download": 1e-4}
        return self.slots[i]


def test_overlapped_pipeline_keeps_order_and_verdicts(tmp_path):
    from edge import config as cfgmod
    from edge.backends.onnxruntime import OnnxRuntimeRunner
    from edge.pipeline import Inspector, Pipeline
    from edge.recipe import effective_recipe, recipe_from_metadata
    from edge.sources import open_source
    from edge.telemetry import Telemetry
    from edge.outputs.jsonl import JsonLinesOutput
    import io
    import json

    import cv2
    import onnx
    from edge.demo import paint_defect, texture
    from edge.demo.build_model import DEMO_RECIPE, build_lowpass_autoencoder
    onnx.save(build_lowpass_autoencoder(size=192, recipe=DEMO_RECIPE), tmp_path / "ae.onnx")  # 1 tile/frame
    (tmp_path / "parts").mkdir()
    for i in range(10):
        img = texture(100 + i, 192)
        if i in (2, 5):
            paint_defect(img, i, 100 + i)
        cv2.imwrite(str(tmp_path / "parts" / f"p{i}.png"), (img * 255 + 0.5).astype(np.uint8))
    cfg_path = tmp_path / "station.yaml"
    cfg_path.write_text("station: t\ncameras:\n  cam0:\n    source: file://parts\nmodel:\n  path: ae.onnx\n")
    cfg = cfgmod.load_file(cfg_path)
    results = {}
    for mode in ("sync", "overlapped"):
        runner = OnnxRuntimeRunner(tmp_path / "ae.onnx")
        if mode == "overlapped":
            runner = SubmitCollectOnnxRuntime(runner)
        recipe = effective_recipe(recipe_from_metadata(runner.metadata, "ae"), cfg.overrides, "ae", cfg.path)
        stream = io.StringIO()
        t = Telemetry(64, "cam0", "t")
        with runner, open_source(cfg.file.cameras["cam0"].source, base_dir=cfg.base_dir) as src:
            ins = Inspector(runner, recipe, "cam0", "t")
            ins.warm_up((192, 192))
            assert ins.can_submit() == (mode == "overlapped")
            Pipeline(src, ins, [JsonLinesOutput(stream=stream)], t).run()
        results[mode] = [json.loads(line) for line in stream.getvalue().splitlines()]
        if mode == "overlapped":
            assert runner.submitted >= 10
            assert "compute" in t.percentiles()  # CUDA-event stages reach the telemetry
    sync, over = results["sync"], results["overlapped"]
    assert [r["frame_id"] for r in over] == [r["frame_id"] for r in sync] == list(range(10))
    assert [r["verdict"] for r in over] == [r["verdict"] for r in sync]
    assert [r["verdict"] for r in sync].count("NG") == 2


# -- on a GPU only ---------------------------------------------------------------------------

@gpu
@pytest.mark.gpu
@pytest.mark.parametrize("kind", ["cuda-python", "pycuda"])
def test_cuda_layer_round_trip(kind):
    from edge.cuda import open_memory
    from edge.errors import InputError
    try:
        mem = open_memory(kind)
    except InputError as e:
        pytest.skip(str(e))
    try:
        a = mem.pinned((256, 256), np.float32)
        b = mem.pinned((256, 256), np.float32)
        a[:] = np.random.default_rng(0).random((256, 256), dtype=np.float32)
        d = mem.device(a.nbytes)
        st = mem.stream()
        e0, e1 = mem.event(), mem.event()
        e0.record(st)
        mem.htod(d, a, st)
        mem.dtoh(b, d, st)
        e1.record(st)
        e1.synchronize()
        assert np.array_equal(a, b) and mem.elapsed_ms(e0, e1) >= 0
    finally:
        mem.close()


@gpu
@pytest.mark.gpu
def test_tensorrt_runner_matches_onnxruntime(tmp_path, lowpass_model):
    pytest.importorskip("tensorrt_rtx_bindings")
    from edge.backends import open_runner
    from edge.backends.onnxruntime import OnnxRuntimeRunner
    out = tmp_path / "lp.plan"
    r = subprocess.run([sys.executable, "-m", "build_engines.cli", str(lowpass_model), "-o", str(out),
                        "--hw-compat", "same-cc"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    x = np.random.default_rng(0).random((1, 1, 256, 256), dtype=np.float32)
    ref = OnnxRuntimeRunner(lowpass_model).infer(x).copy()
    with open_runner(out) as trt_runner:
        a, b = trt_runner.submit(x), trt_runner.submit(x[:, :, ::-1].copy())  # two frames in flight
        ya, yb = trt_runner.collect(a).copy(), trt_runner.collect(b).copy()
        assert set(trt_runner.last_timings) == {"upload", "compute", "download"}
    assert np.abs(ya - ref).max() < 1e-3
    assert np.abs(yb - OnnxRuntimeRunner(lowpass_model).infer(x[:, :, ::-1].copy())).max() < 1e-3
