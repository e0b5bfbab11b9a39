"""edge-run on replayed frames with a small ONNX autoencoder built in the test."""

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import cv2
import numpy as np
import onnx
import pytest
from conftest import run_cli, wait_line

from edge.demo import MODEL, paint_defect, texture
from testkit.lowpass_model import DEMO_RECIPE, build_lowpass_autoencoder

DEFECTS = (2, 5)


@pytest.fixture
def station(tmp_path):
    """A 128x128 autoencoder (tiles: frames are 384x384), 8 frames of which 2 carry a defect."""
    model = tmp_path / "ae.onnx"
    onnx.save(build_lowpass_autoencoder(size=128, recipe=DEMO_RECIPE), model)
    frames = tmp_path / "parts"
    frames.mkdir()
    for i in range(8):
        img = texture(100 + i, 384)
        if i in DEFECTS:
            paint_defect(img, i, 100 + i)
        cv2.imwrite(str(frames / f"p{i}.png"), (img * 255 + 0.5).astype(np.uint8))
    cfg = tmp_path / "station.yaml"
    cfg.write_text("station: t\ncameras:\n  cam0:\n    source: file://parts\nmodel:\n  path: ae.onnx\n"
                   "outputs:\n  jsonl:\n    path: verdicts.jsonl\n")
    return tmp_path, cfg


def _lines(text):
    return [json.loads(l) for l in text.splitlines() if l.startswith("{")]


def test_one_verdict_per_frame_ok_on_good_ng_on_defects(station):
    tmp, cfg = station
    res = run_cli(["--config", str(cfg)])
    assert res.returncode == 0, res.stderr
    lines = _lines(res.stdout)
    assert [l["source"] for l in lines] == [f"p{i}.png" for i in range(8)]
    assert [l["verdict"] for l in lines] == ["NG" if i in DEFECTS else "OK" for i in range(8)]
    for l in lines:
        assert set(l["latency_ms"]) >= {"acquire", "preprocess", "infer", "detect", "decide", "total"}
        if l["verdict"] == "NG":
            r = l["regions"][0]
            assert r["area"] >= 16 and 0 <= r["x"] < 384 and 0 <= r["y"] < 384
    assert _lines((tmp / "verdicts.jsonl").read_text()) == lines  # the file gets the same lines
    assert "frames grabbed 8, verdicts 8 (OK 6, NG 2), dropped 0" in res.stderr


def test_overrides_in_the_station_config_win_over_the_model_recipe(station):
    tmp, cfg = station
    cfg.write_text(cfg.read_text() + "decision:\n  min_area: 100000\n")
    res = run_cli(["--config", str(cfg)])
    assert [l["verdict"] for l in _lines(res.stdout)] == ["OK"] * 8  # no region can be that large


def test_unreadable_frame_is_reported_and_counted_not_lost(station):
    tmp, cfg = station
    (tmp / "parts" / "p3.png").write_bytes(b"\x89PNG truncated")
    res = run_cli(["--config", str(cfg)])
    assert res.returncode == 0
    lines = _lines(res.stdout)
    assert len(lines) == 8
    bad = [l for l in lines if l["source"] == "p3.png"][0]
    assert bad["verdict"] == "DROPPED" and bad["reason"] == "bad_frame" and "unreadable" in bad["detail"]
    assert "verdicts 7 (OK 5, NG 2), dropped 1 (bad_frame 1)" in res.stderr


def test_fixed_batch_model_runs_tiles_in_chunks(station):
    tmp, cfg = station
    onnx.save(build_lowpass_autoencoder(size=128, recipe=DEMO_RECIPE, batch=1), tmp / "ae.onnx")
    res = run_cli(["--config", str(cfg)])
    assert [l["verdict"] for l in _lines(res.stdout)] == ["NG" if i in DEFECTS else "OK" for i in range(8)]


def test_frames_limit_with_looping_replay(station):
    tmp, cfg = station
    cfg.write_text(cfg.read_text().replace("file://parts", "file://parts?loop=1"))
    res = run_cli(["--config", str(cfg), "--frames", "20", "--quiet"])
    assert res.returncode == 0 and res.stdout == ""
    assert "frames grabbed 20, verdicts 20" in res.stderr
    assert len((tmp / "verdicts.jsonl").read_text().splitlines()) == 20


def test_a_rising_ng_share_raises_the_alarm_clears_it_and_raises_it_again(station):
    """Two NG parts in every eight (p2, p5), the share taken over the last 4: above 30 % when both
    are in it (after p5), cleared when none is (after p1), raised again after the next p5."""
    tmp, cfg = station
    cfg.write_text(cfg.read_text().replace("file://parts", "file://parts?loop=1")
                   + "telemetry:\n  ng_alarm: 0.3\n  ng_window: 4\n")
    res = run_cli(["--config", str(cfg), "--frames", "16", "--quiet"])
    assert res.returncode == 0, res.stderr
    raised = re.findall(r"NG share of the last 4 parts is 50\.0%, above the alarm's 30\.0%", res.stderr)
    cleared = re.findall(r"NG share of the last 4 parts back to 0\.0%", res.stderr)
    assert len(raised) == 2 and len(cleared) == 1, res.stderr
    assert "NG share of the last 4 verdicts 25.0%; alarm above 30.0% raised 2 times, still on" in res.stderr


def _start(cfg, *extra):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "edge.cli", "--config", str(cfg), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly_with_every_grabbed_frame_accounted_for(station, sig):
    tmp, cfg = station
    cfg.write_text(cfg.read_text().replace("file://parts", "file://parts?loop=1&fps=40")
                   + "telemetry:\n  prometheus:\n    enabled: true\n    port: 0\n")
    proc = _start(cfg)
    port = int(wait_line(proc.stderr, r"metrics on http://127\.0\.0\.1:(\d+)/metrics").group(1))
    wait_line(proc.stderr, r"ready")
    time.sleep(1.5)
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert re.search(r'edge_verdicts_total\{camera="cam0",station="t",verdict="OK"\} [1-9]', body), body
    assert 'edge_stage_latency_ms{camera="cam0",quantile="p99",stage="total",station="t"}' in body
    assert re.search(r'edge_ng_share\{camera="cam0",station="t"\} 0\.\d+', body)  # looping 2 NG in 8
    assert 'edge_ng_alarm{camera="cam0",station="t"} 0.0' in body
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    m = re.search(r"frames grabbed (\d+), verdicts (\d+) \(OK (\d+), NG (\d+)\), dropped (\d+)", err)
    grabbed, verdicts, ok, ng, dropped = map(int, m.groups())
    assert grabbed >= 20 and grabbed == verdicts + dropped
    lines = _lines(out)
    assert len(lines) == grabbed  # one line per grabbed frame, drops included
    assert [l["frame_id"] for l in lines] == sorted(l["frame_id"] for l in lines)
    assert "Traceback" not in err


def test_embedded_default_runs_the_packaged_demo():
    pytest.importorskip("skimage")
    res = run_cli([])
    assert res.returncode == 0, res.stderr
    lines = _lines(res.stdout)
    assert len(lines) == 12
    assert [l["verdict"] for l in lines] == ["NG" if "defect" in l["source"] else "OK" for l in lines]


def test_packaged_demo_model_is_small_trained_and_calibrated():
    from edge.recipe import read_recipe
    recipe = read_recipe(MODEL)
    assert MODEL.stat().st_size < 600_000
    assert recipe.model_family == "unet" and "gravel" in recipe.training["data"]
    assert recipe.decision.rule == "score" and "held-out good images" in recipe.training["calibration"]


def test_lowpass_builder_is_deterministic():
    assert build_lowpass_autoencoder().SerializeToString() == build_lowpass_autoencoder().SerializeToString()
