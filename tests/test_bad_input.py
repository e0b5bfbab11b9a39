"""What a plant hits first: frames of other bit depths, runs that inspect nothing, a busy metrics
port, the wrong backend for a file, an evaluation tree without masks, a camera that skips ids,
a producer that raises on device fields it lacks. One-line errors, the right exit codes, nothing
grabbed lost."""

import io
import json
import socket

import cv2
import numpy as np
import pytest
from conftest import make_station, run_cli


def _lines(text):
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_a_16_bit_png_of_a_part_gets_the_8_bit_verdict_and_score(tmp_path):
    cfg = make_station(tmp_path, count=4, defects=(2,))
    ref = _lines(run_cli(["--config", str(cfg)]).stdout)
    for p in sorted((tmp_path / "parts").glob("*.png")):  # the same parts, saved at 16 bits
        img8 = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        cv2.imwrite(str(p), img8.astype(np.uint16) * 257)
        assert cv2.imread(str(p), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    res = run_cli(["--config", str(cfg)])
    wide = _lines(res.stdout)
    assert res.returncode == 0 and [l["verdict"] for l in wide] == [l["verdict"] for l in ref] == \
        ["OK", "OK", "NG", "OK"]
    assert all(abs(a["score"] - b["score"]) < 1e-4 for a, b in zip(wide, ref))


def test_a_run_in_which_every_frame_is_dropped_is_not_a_success(tmp_path):
    cfg = make_station(tmp_path, count=3, defects=())
    for p in (tmp_path / "parts").glob("*.png"):
        p.write_bytes(b"\x89PNG truncated")
    res = run_cli(["--config", str(cfg)])
    lines = _lines(res.stdout)
    assert len(lines) == 3 and {l["verdict"] for l in lines} == {"DROPPED"}  # every frame still has its record
    assert res.returncode == 1 and "no frame was inspected: 3 grabbed, all dropped (bad_frame 3)" in res.stderr


def test_a_busy_metrics_port_is_refused_before_any_frame_is_grabbed(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        cfg = make_station(tmp_path, count=2, defects=(),
                           extra_yaml=f"telemetry:\n  prometheus:\n    enabled: true\n    port: {port}\n")
        res = run_cli(["--config", str(cfg)])
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert f"{cfg}: telemetry.prometheus: cannot listen on 127.0.0.1:{port}" in res.stderr
    assert res.stdout == ""  # nothing was grabbed, so no verdict is missing


def test_tensorrt_backend_with_an_onnx_model_says_what_to_do(tmp_path):
    cfg = make_station(tmp_path, count=1, defects=(), extra_yaml="")
    cfg.write_text(cfg.read_text().replace("  path: ae.onnx\n", "  path: ae.onnx\n  backend: tensorrt\n"))
    res = run_cli(["--config", str(cfg)])
    assert res.returncode == 2 and "model.backend: tensorrt runs engines, and ae.onnx is an ONNX model" in res.stderr
    assert "build-engine ae.onnx -o ae.plan" in res.stderr


def test_edge_eval_without_masks_reports_image_metrics_and_no_nan(tmp_path):
    pytest.importorskip("torch")
    from edge.demo import MODEL, paint_defect, texture
    from train.cli import edge_eval_main
    root = tmp_path / "tree"
    for kind in ("good", "pit"):
        (root / "test" / kind).mkdir(parents=True)
        for i in range(3):
            img = texture(40 + i + (10 if kind == "pit" else 0), 256)
            if kind == "pit":
                paint_defect(img, 0, 40 + i)
            cv2.imwrite(str(root / "test" / kind / f"{i}.png"), (img * 255).astype(np.uint8))
    err = io.StringIO()
    import contextlib
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        assert edge_eval_main(["--model", str(MODEL), "--data", str(root), "--out", str(tmp_path / "e")]) == 0
    text = (tmp_path / "e" / "metrics.json").read_text()
    assert "NaN" not in text
    m = json.loads(text)["overall"]
    assert 0 <= m["image_auroc"] <= 1 and m["pixel_auroc"] is None and m["aupro"] is None and m["pixel_f1"] is None
    assert "pixel metrics absent" in err.getvalue() and "RuntimeWarning" not in err.getvalue()


def test_camera_skipped_frames_are_not_station_drops(lowpass_model, tmp_path):
    from conftest import make_station

    from edge.config import load_file
    from edge.sources import EndOfStream, Frame
    from edge.station import Station
    from edge.telemetry import PrometheusEndpoint

    class GappySource:  # ids 0, 1, 4, 5: the camera never sent 2 and 3
        live = False

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

        def __init__(self):
            self.ids = [0, 1, 4, 5]

        def grab(self, timeout_s=1.0):
            if not self.ids:
                raise EndOfStream
            i = self.ids.pop(0)
            gap = {"camera_gap": 2} if i == 4 else {}
            return Frame(i, (np.full((128, 128), 120, np.uint8)), name=f"f{i}", meta=gap)

    cfg = load_file(make_station(tmp_path, count=1, extra_yaml="outputs:\n  jsonl:\n    stdout: false\n"))
    with Station(cfg, "cam0", source=GappySource()) as st:
        t = st.run()
    assert t.decided == 4 and t.camera_skipped == 2 and not t.dropped
    assert "skipped by the camera 2 (frame-id gaps)" in t.summary()
    metrics = {m.name: m for m in PrometheusEndpoint.collect(type("E", (), {"t": t})())}
    assert metrics["edge_camera_skipped_frames"].samples[0].value == 2


def test_device_fields_a_producer_lacks_read_as_absent():
    from edge.sources.genicam import _info

    class Info:  # genicam raises NotAvailableException for fields the producer does not fill
        serial_number = "SN1"

        @property
        def user_defined_name(self):
            raise RuntimeError("GenTL exception: user defined name not supported")
    assert _info(Info(), "serial_number") == "SN1" and _info(Info(), "user_defined_name") is None


def test_a_failed_edge_train_leaves_no_empty_output_folder(tmp_path):
    pytest.importorskip("torch")
    from edge.errors import InputError
    from train.config import load_config
    from train.trainer import Trainer
    (tmp_path / "empty").mkdir()
    (tmp_path / "t.yaml").write_text(f"data: {tmp_path / 'empty'}\nout: {tmp_path / 'run'}\n")
    cfg, base = load_config(tmp_path / "t.yaml")
    with pytest.raises(InputError, match="found none"):
        Trainer(cfg, base)
    assert not (tmp_path / "run").exists()
