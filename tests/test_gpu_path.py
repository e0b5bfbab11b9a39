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


def _numba_cuda() -> bool:
    if not HAS_GPU or os.environ.get("NUMBA_ENABLE_CUDASIM"):
        return False
    from numba import cuda
    try:
        return cuda.is_available()
    except Exception:
        return False


# the device kernels need numba's CUDA target with NVVM, not just a GPU
numba_gpu = pytest.mark.skipif(not _numba_cuda(), reason="numba cannot reach CUDA here (no GPU, or no NVVM: "
                                                         "pip install -e '.[gpu]' brings numba-cuda)")

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


@numba_gpu
@pytest.mark.gpu
@pytest.mark.parametrize("size,n,s,l", [(1024, 32, 32, 8), (512, 32, 16, 8)])
def test_gpu_dct_fusion_matches_the_cpu_kernel_on_the_device(size, n, s, l):
    _kernel_check(size, n, s, l, simulate=False)


VIEW_CHECK = textwrap.dedent("""
    import numpy as np
    from numba import cuda
    from edge.recipe import DctFusion
    from edge.detect import DctFusionDetector
    from edge.detect.gpu_dct import GpuDctFusion
    from edge.demo import texture
    p = DctFusion(patch=16, stride=16, block=4, epsilon=0.01, gamma=3.0)
    src = texture(5, 64)
    rec = src.copy()
    rec[20:28, 10:18] -= 0.3
    h, w = 40, 52  # a frame smaller than the engine's 64x64 input: the views cut the padding off
    gd, gmu, gsigma, gmask, hits = GpuDctFusion(p)(cuda.to_device(src)[:h, :w], cuda.to_device(rec)[:h, :w])
    mask, diff, mu, sigma, _ = DctFusionDetector(p).analyse(src[:h, :w].copy(), rec[:h, :w].copy())
    print(abs(gmu - mu) < 1e-6, abs(gsigma - sigma) < 1e-6, float(np.abs(gd - diff).max()) < 1e-4,
          int((gmask.copy_to_host() != mask).sum()) == 0, hits > 0)
    tiny = GpuDctFusion(p)(cuda.to_device(src[:10, :12].copy()), cuda.to_device(rec[:10, :12].copy()))
    print(tiny[0].size == 0, tiny[4] == 0, abs(tiny[1] - float(np.abs(src[:10, :12] - rec[:10, :12]).mean())) < 1e-6)
""")


@pytest.mark.slow
def test_gpu_dct_fusion_on_a_frame_view_and_a_frame_smaller_than_a_patch_in_the_simulator():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    r = subprocess.run([sys.executable, "-c", VIEW_CHECK], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    view, tiny = r.stdout.strip().splitlines()[-2:]
    assert view.split() == ["True"] * 5 and tiny.split() == ["True"] * 3


def _station(tmp_path, size=192, count=10, defects=(2, 5)):
    """A size x size low-pass autoencoder (one tile per frame, DCT fusion; 16-pixel patches below
    128) and `count` frames, `defects` with a dark pit."""
    import copy

    import cv2
    import onnx

    from edge.demo import texture
    from testkit.lowpass_model import DEMO_RECIPE, build_lowpass_autoencoder
    recipe = copy.deepcopy(DEMO_RECIPE)
    if size < 128:
        recipe["detect"]["dct_fusion"].update(patch=16, stride=16, block=4)
        recipe["decision"]["min_area"] = 4
    onnx.save(build_lowpass_autoencoder(size=size, recipe=recipe), tmp_path / "ae.onnx")
    (tmp_path / "parts").mkdir()
    for i in range(count):
        img = texture(100 + i, size)
        if i in defects:
            c = size // 3 + 7 * i % (size // 3)
            cv2.circle(img, (c, size - c), max(3, size // 24), float(img.mean() - 0.35), -1)
        cv2.imwrite(str(tmp_path / "parts" / f"p{i}.png"), (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8))
    return tmp_path


def run_station(folder, mode):
    """JSON records of a replay of folder/parts through the pipeline: sync (plain ONNX Runtime),
    overlapped (submit/collect) or gpu_detect (overlapped, detection on device arrays)."""
    import json
    from pathlib import Path

    from conftest import station_config
    from gpu_doubles import DeviceSubmitCollectOnnxRuntime, SubmitCollectOnnxRuntime

    from edge.backends.onnxruntime import OnnxRuntimeRunner
    from edge.station import Station
    folder = Path(folder)
    runner = OnnxRuntimeRunner(folder / "ae.onnx")
    if mode != "sync":
        runner = (DeviceSubmitCollectOnnxRuntime if mode == "gpu_detect" else SubmitCollectOnnxRuntime)(runner)
    out = folder / f"{mode}.jsonl"
    cfg = station_config(folder, folder / "ae.onnx", f"file://{folder / 'parts'}", camera="cam0",
                         outputs={"jsonl": {"stdout": False, "path": str(out)}})
    with Station(cfg, "cam0", runner=runner) as st:
        assert st.runner.overlaps == (mode != "sync")
        assert (st.inspector.gpu_detector is not None) == (mode == "gpu_detect")
        t = st.run()
    records = [json.loads(line) for line in out.read_text().splitlines()]
    out.unlink()
    return records, t


def test_overlapped_pipeline_keeps_order_and_verdicts(tmp_path):
    folder = _station(tmp_path)
    sync, _ = run_station(folder, "sync")
    over, t = run_station(folder, "overlapped")
    assert "compute" in t.percentiles()  # CUDA-event stages reach the telemetry
    assert [r["frame_id"] for r in over] == [r["frame_id"] for r in sync] == list(range(10))
    assert [r["verdict"] for r in over] == [r["verdict"] for r in sync]
    assert [r["verdict"] for r in sync].count("NG") == 2


GPU_DETECT_CHECK = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, sys.argv[2])
    from test_gpu_path import run_station
    for mode in ("sync", "gpu_detect"):
        records, _ = run_station(sys.argv[1], mode)
        print(json.dumps([[r["verdict"], r["regions"]] for r in records]))
""")


@pytest.mark.slow
def test_gpu_detection_in_the_pipeline_matches_the_cpu_path(tmp_path):
    """The pipeline with detection on device arrays (Numba's CUDA simulator here) gives the same
    verdicts and regions as the CPU kernel."""
    folder = _station(tmp_path, size=64, count=3, defects=(1,))  # the simulator runs each CUDA thread in Python
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    tests_dir = os.path.dirname(__file__)
    r = subprocess.run([sys.executable, "-c", GPU_DETECT_CHECK, str(folder), tests_dir], capture_output=True,
                       text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    import json
    cpu, gpu_records = (json.loads(line) for line in r.stdout.strip().splitlines()[-2:])
    assert [v for v, _ in cpu] == ["OK", "NG", "OK"]
    assert gpu_records == cpu


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
    from edge.backends import open_runner
    from edge.backends.onnxruntime import OnnxRuntimeRunner
    from edge.backends.trt_flavours import load
    from edge.errors import InputError
    if load("tensorrt") is None and load("tensorrt-rtx") is None:
        pytest.skip("no TensorRT or TensorRT-RTX bindings installed")
    out = tmp_path / "lp.plan"
    # the default compatibility level: TensorRT-RTX's portable set (it lists no Hopper SM 9.0) or,
    # with TensorRT, this GPU; the model's dynamic batch is pinned by the builder's profile
    r = subprocess.run([sys.executable, "-m", "build_engines.cli", str(lowpass_model), "-o", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    x = np.random.default_rng(0).random((1, 1, 256, 256), dtype=np.float32)
    ref = OnnxRuntimeRunner(lowpass_model).infer(x).copy()
    try:
        trt_runner = open_runner(out)
    except InputError as e:  # e.g. TensorRT-RTX on a Hopper GPU: the sidecar check names it
        pytest.skip(f"this GPU cannot run the engine: {e}")
    with trt_runner:
        a, b = trt_runner.submit(x), trt_runner.submit(x[:, :, ::-1].copy())  # two frames in flight
        ya, yb = trt_runner.collect(a).copy(), trt_runner.collect(b).copy()
        assert set(trt_runner.last_timings) == {"upload", "compute", "download"}
    assert np.abs(ya - ref).max() < 1e-3
    assert np.abs(yb - OnnxRuntimeRunner(lowpass_model).infer(x[:, :, ::-1].copy())).max() < 1e-3


STRIDED_CHECK = textwrap.dedent("""
    from numba import cuda
    from edge.recipe import DctFusion
    from edge.detect import DctFusionDetector
    from edge.detect.gpu_dct import GpuDctFusionDetector
    from edge.demo import texture
    full_src = texture(3, 128)
    full_rec = full_src.copy()
    full_rec[40:48, 30:42] -= 0.3
    p = DctFusion(patch=16, stride=16, block=4, epsilon=0.01, gamma=3.0)
    d_src, d_rec = cuda.to_device(full_src), cuda.to_device(full_rec)
    h, w = 100, 90  # a frame smaller than the engine input: views keeping the input's row pitch
    det = GpuDctFusionDetector(p)(d_src[:h, :w], d_rec[:h, :w])
    ref = DctFusionDetector(p)(full_src[:h, :w].copy(), full_rec[:h, :w].copy())
    print(abs(det.score - ref.score) < 1e-6, det.regions == ref.regions, len(ref.regions) > 0)
""")


@pytest.mark.slow
def test_gpu_detection_of_an_ng_frame_narrower_than_the_engine_input_in_the_simulator():
    """The NG path copies the views back: with the input's row pitch they are strided, and a
    contiguous host array is refused ("incompatible strides"; the simulator checks as numba does)."""
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    r = subprocess.run([sys.executable, "-c", STRIDED_CHECK], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split()[-3:] == ["True"] * 3


def test_each_stage_adds_its_own_time_where_it_runs(tmp_path):
    """No stage is derived by subtracting others: a device that takes 80 ms to finish a frame and a
    GPU detector that takes 200 ms put their time in infer and detect, each where it ran."""
    import time

    from gpu_doubles import SubmitCollectOnnxRuntime

    from edge.backends.onnxruntime import OnnxRuntimeRunner
    from edge.inspector import Inspector
    from edge.recipe import load_recipe
    from edge.telemetry import Stage, Timings

    folder = _station(tmp_path, count=1, defects=())

    class SlowDevice(SubmitCollectOnnxRuntime):
        def collect(self, i):
            time.sleep(0.08)
            return super().collect(i)

        def device_views(self, i, h, w):  # host arrays: the timing, not the device, is under test
            return self.inputs[i][0, 0, :h, :w], self.outputs[i][0, 0, :h, :w]

    with OnnxRuntimeRunner(folder / "ae.onnx") as inner:
        runner = SlowDevice(inner)
        ins = Inspector(runner, load_recipe(inner.metadata, "ae.onnx"), "cam", "t")
        def slow_detector(src, rec):
            time.sleep(0.2)
            return ins.detector(src, rec)
        ins.gpu_detector = slow_detector
        x = ins.pre.to_model_space(np.full((192, 192), 128, np.uint8))
        timings = Timings({Stage.ACQUIRE: 0.001})
        lease, det = ins.collect(ins.submit(x), timings)
        a = ins.analyse(x, lease.array, (192, 192), det, timings)
        lease.release()
    lat = a.latency
    assert lat is timings and lat[Stage.ACQUIRE] == 0.001
    assert 0.08 <= lat[Stage.INFER] < 0.2  # the device's time, not the detector's
    assert lat[Stage.DETECT] >= 0.2  # the detector's, though it ran in the inference thread
    assert lat[Stage.COMPUTE] == 2e-4 and Stage.DECIDE in lat
