"""Station operations: systemd unit and notify protocol, SIGHUP reload, NG archive, camera faults."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from conftest import ROOT, make_station, run_cli, wait_line

DEFECTS = (2, 5)


def _start(cfg, *extra, env=None):
    e = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    return subprocess.Popen([sys.executable, "-m", "edge.cli", "--config", str(cfg), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e)


# -- systemd ---------------------------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_unit_template_verifies_clean(tmp_path):
    unit = (ROOT / "systemd" / "edge-run@.service").read_text()
    exe = shutil.which("edge-run") or sys.executable
    good = tmp_path / "edge-run@cam0.service"
    good.write_text(unit.replace("/opt/edge-inspect/venv/bin/edge-run", exe))
    res = subprocess.run(["systemd-analyze", "verify", str(good)], capture_output=True, text=True)
    problems = [l for l in res.stderr.splitlines() if str(good) in l or "edge-run@" in l]
    assert res.returncode == 0 and not problems, res.stderr
    for key in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "StartLimitBurst=", "User=edge",
                "ProtectSystem=strict", "NoNewPrivileges=yes", "PrivateTmp=yes", "ProtectHome=yes",
                "NUMBA_CACHE_DIR=", "EnvironmentFile=", "ExecReload=/bin/kill -HUP", "UMask=0027",
                "DeviceAllow=/dev/nvidiactl rw", "DeviceAllow=char-nvidia-uvm rw", "DeviceAllow=/dev/nvmap rw",
                "DeviceAllow=char-nvhost rw"):
        assert key in unit
    # the check can fail: a damaged unit is reported
    bad = tmp_path / "bad@cam0.service"
    bad.write_text(good.read_text().replace("Type=notify", "Type=notifyy"))
    res = subprocess.run(["systemd-analyze", "verify", str(bad)], capture_output=True, text=True)
    assert "Failed to parse service type" in res.stderr


def test_sd_notify_ready_watchdog_stopping(tmp_path):
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(0.2)
    messages = []
    done = threading.Event()

    def read():
        while not done.is_set():
            try:
                messages.append(sock.recv(4096).decode())
            except socket.timeout:
                pass

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    cfg = make_station(tmp_path, source_opts="?loop=1&fps=30")
    proc = _start(cfg, "--quiet", env={"NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "600000"})
    try:
        wait_line(proc.stderr, "ready")
        time.sleep(2.0)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    finally:
        time.sleep(0.3)
        done.set()
        reader.join()
        sock.close()
    assert proc.returncode == 0
    kinds = [m.split("\n")[0] for m in messages]
    assert kinds[0] == "READY=1", messages[:3]
    assert kinds[-1] == "STOPPING=1"
    pings = kinds.count("WATCHDOG=1")
    assert pings >= 5, f"{pings} watchdog pings in ~2 s at a 0.6 s watchdog"  # every interval/3
    assert any("STATUS=[cam0]" in m for m in messages)


def test_no_watchdog_ping_when_frames_stop_flowing(tmp_path, lowpass_model, monkeypatch):
    """A stuck camera must let systemd's watchdog fire: edge-run's watchdog thread (cli.watchdog)
    pings while frames flow and stops pinging once the camera's grab hangs."""
    from conftest import station_config

    from edge.cli import watchdog
    from edge.station import Station
    from testkit.sources import SyntheticCamera  # 50 frames/s until told to hang inside grab()

    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(0.05)
    monkeypatch.setenv("NOTIFY_SOCKET", str(sock_path))
    hang, release = threading.Event(), threading.Event()


    def pings_within(seconds):
        n, end = 0, time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                n += sock.recv(4096).decode().startswith("WATCHDOG=1")
            except socket.timeout:
                pass
        return n

    cfg = station_config(tmp_path, lowpass_model)
    done = threading.Event()
    with Station(cfg, "cam", source=SyntheticCamera(0.02, hang, release)) as st:
        runner = threading.Thread(target=st.run)
        runner.start()
        dog = threading.Thread(target=watchdog, args=(st.pipeline, 0.3, done), daemon=True)
        dog.start()
        try:
            flowing = pings_within(1.0)
            hang.set()
            pings_within(0.4)  # the last pings of the healthy period
            stalled = pings_within(1.0)
        finally:
            done.set()
            st.stop_event.set()
            release.set()
            runner.join(10)
            sock.close()
    assert flowing >= 5  # every interval/3 = 0.1 s
    assert stalled == 0


# -- SIGHUP ----------------------------------------------------------------------------------------

def test_sighup_reloads_thresholds_without_dropping_a_frame(tmp_path):
    cfg = make_station(tmp_path, source_opts="?loop=1&fps=40")
    proc = _start(cfg)
    wait_line(proc.stderr, "ready")
    time.sleep(1.0)
    cfg.write_text(cfg.read_text() + "decision:\n  min_area: 1000000\n")  # no region can be NG now
    proc.send_signal(signal.SIGHUP)
    wait_line(proc.stderr, "reloaded .*min_area 1000000")
    time.sleep(1.0)
    cfg.write_text(cfg.read_text().replace("path: ae.onnx", "path: ae2.onnx"))
    (cfg.parent / "ae2.onnx").write_bytes((cfg.parent / "ae.onnx").read_bytes())
    proc.send_signal(signal.SIGHUP)
    wait_line(proc.stderr, "model.path changed; restart edge-run to load another model")
    time.sleep(0.5)
    cfg.write_text(cfg.read_text() + "detect:\n  method: telepathy\n")  # a bad config is refused...
    proc.send_signal(signal.SIGHUP)
    wait_line(proc.stderr, "reload refused, keeping the running config: .*detect.method")
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    lines = [json.loads(l) for l in out.splitlines()]
    assert [l["frame_id"] for l in lines] == list(range(len(lines))), "a frame was skipped"
    assert all(l["verdict"] in ("OK", "NG") for l in lines)
    ng_ids = [l["frame_id"] for l in lines if l["verdict"] == "NG"]
    assert ng_ids and max(ng_ids) < len(lines) - 40, "NG verdicts must stop after the reload"
    assert "config reloads 2" in err  # ...and the refused one is not counted


# -- NG archive ------------------------------------------------------------------------------------

def _archive_yaml(folder, max_mb=100):
    return f"archive:\n  enabled: true\n  dir: {folder}\n  max_mb: {max_mb}\n"


def test_archive_keeps_ng_frames_with_overlay_and_record(tmp_path):
    cfg = make_station(tmp_path, extra_yaml=_archive_yaml(tmp_path / "archive"))
    res = run_cli(["--config", str(cfg), "--quiet"])
    assert res.returncode == 0, res.stderr
    files = sorted((tmp_path / "archive" / "cam0").iterdir())
    assert len(files) == 3 * len(DEFECTS)
    records = [json.loads(p.read_text()) for p in files if p.suffix == ".json"]
    assert sorted(r["frame_id"] for r in records) == list(DEFECTS) and all(r["verdict"] == "NG" for r in records)
    import cv2
    over = cv2.imread(str(next(p for p in files if p.name.endswith("_overlay.png"))))
    gray = cv2.imread(str(next(p for p in files if p.suffix == ".png" and "overlay" not in p.name)), cv2.IMREAD_UNCHANGED)
    assert over.shape == (384, 384, 3) and gray.shape == (384, 384)
    assert "archive" in res.stderr and "written 2, failed 0" in res.stderr


def test_archive_size_cap_removes_oldest_first(tmp_path):
    cfg = make_station(tmp_path, count=12, defects=tuple(range(12)),
                       extra_yaml=_archive_yaml(tmp_path / "archive", max_mb=1.0))
    res = run_cli(["--config", str(cfg), "--quiet"])
    assert res.returncode == 0, res.stderr
    folder = tmp_path / "archive" / "cam0"
    total = sum(p.stat().st_size for p in folder.iterdir())
    assert total <= 1024 * 1024
    kept = sorted(json.loads(p.read_text())["frame_id"] for p in folder.glob("*.json"))
    assert kept and kept == list(range(12 - len(kept), 12)), kept  # the newest survive
    assert "removed for space" in res.stderr


def test_archive_disk_full_degrades_to_counting(tmp_path, small_disk):
    """Fault injection with a real full file system: a 200 KiB tmpfs."""
    mnt = small_disk("200k")
    cfg = make_station(tmp_path, count=16, defects=tuple(range(16)), size=512, extra_yaml=_archive_yaml(mnt, max_mb=100))
    res = run_cli(["--config", str(cfg)])
    lines = [json.loads(l) for l in res.stdout.splitlines()]
    assert res.returncode == 0, res.stderr
    assert len(lines) == 16 and all(l["verdict"] == "NG" for l in lines), "inspection must carry on"
    m = re.search(r"archive .*: written (\d+), failed (\d+), skipped (\d+)", res.stderr)
    written, failed, skipped = map(int, m.groups())
    assert failed > 0 and written + failed + skipped == 16
    assert "No space left on device" in res.stderr


# -- camera faults (real TLSimu producer) -------------------------------------------------------------

def _tlsimu():
    pytest.importorskip("harvesters")
    from edge.sources.genicam import simulator_cti
    if simulator_cti() is None:
        pytest.skip("TLSimu.cti not found in the genicam wheel")


def _camera_station(tmp_path, model, uri, attempts, frames=40):
    """A station on a TLSimu camera, built as edge-run builds it; enter it to open."""
    from conftest import station_config

    from edge.station import Station
    cfg = station_config(tmp_path, model, uri, cam={"reconnect_attempts": attempts, "reconnect_backoff_s": 0.05},
                         outputs={"jsonl": {"stdout": False, "path": str(tmp_path / "v.jsonl")}})
    return Station(cfg, "cam", frames=frames)


def _unplug(source):
    """A lost camera: the acquirer's device handles go away under the running source, so every
    further call fails, as with an unplugged camera. (Closing the GenTL data stream under a
    running acquirer instead crashes TLSimu itself, so that is not used.)"""
    source._ia.destroy()


@pytest.mark.camera
def test_lost_camera_is_reopened_and_frames_continue(tmp_path, lowpass_model, caplog):
    _tlsimu()
    grabbed = []
    with _camera_station(tmp_path, lowpass_model, "genicam://SN_InterfaceA_0?trigger=software&timeout_ms=500",
                         attempts=3) as st:
        source, real_grab = st.source, st.source.grab

        def grab(timeout_s=None):
            f = real_grab(timeout_s)
            grabbed.append(f)
            if len(grabbed) == 10:
                _unplug(source)
            return f

        source.grab = grab
        t = st.run()  # raises what ended the run abnormally
    lines = [json.loads(l) for l in (tmp_path / "v.jsonl").read_text().splitlines()]
    assert len(lines) == 40 and t.reconnects == 1
    assert [l["verdict"] for l in lines].count("DROPPED") == 0
    assert "source reopened after 1 attempt" in caplog.text


@pytest.mark.camera
def test_camera_gone_for_good_exits_nonzero_after_the_attempts(tmp_path, lowpass_model):
    from edge.errors import SourceError
    _tlsimu()
    count = [0]
    with _camera_station(tmp_path, lowpass_model, "genicam://SN_InterfaceA_0?trigger=software&timeout_ms=500",
                         attempts=3) as st:
        source, real_grab = st.source, st.source.grab  # the first frame was grabbed at start-up

        def grab(timeout_s=None):
            count[0] += 1
            if count[0] == 5:
                _unplug(source)
                source.device = "SN_UNPLUGGED"  # and it does not come back under its serial
            return real_grab(timeout_s)

        source.grab = grab
        with pytest.raises(SourceError, match="gave up after 3 reopen attempts"):
            st.run()
    assert st.telemetry.reconnects == 3
    lines = (tmp_path / "v.jsonl").read_text().splitlines()
    assert len(lines) == 1 + 4  # every frame grabbed before the loss has its verdict


@pytest.mark.camera
def test_camera_line_output_refused_on_a_camera_without_line_nodes(tmp_path):
    _tlsimu()
    cfg = tmp_path / "s.yaml"
    cfg.write_text("cameras:\n  cam0:\n    source: genicam://SN_InterfaceA_0?trigger=software\n"
                   "outputs:\n  camera_line:\n    enabled: true\n")
    res = run_cli(["--config", str(cfg), "--frames", "1"])
    assert res.returncode == 2
    assert "outputs.camera_line: the camera has no LineSelector, LineMode, LineSource, UserOutputSelector, " \
           "UserOutputValue node(s)" in res.stderr


def test_verdict_file_on_a_full_disk_does_not_stop_inspection(tmp_path, small_disk):
    mnt = small_disk("8k")
    cfg = make_station(tmp_path, count=8, source_opts="?loop=1", extra_yaml=f"outputs:\n  jsonl:\n    path: {mnt}/verdicts.jsonl\n")
    res = run_cli(["--config", str(cfg), "--frames", "120"])
    assert res.returncode == 0, res.stderr
    assert len(res.stdout.splitlines()) == 120  # stdout still gets every verdict
    assert "No space left on device" in res.stderr and "frames grabbed 120, verdicts 120" in res.stderr


def test_overlay_takes_a_map_at_the_frames_size_over_a_smaller_model_space_frame():
    """edge-eval keeps maps and masks at the frame's size; a model that resized the frame gives a
    smaller picture to draw them on (before, they were drawn only where the picture shrank)."""
    import numpy as np

    from edge.overlay import overlay
    src = np.linspace(0, 1, 200 * 200, dtype=np.float32).reshape(200, 200)
    heat = np.zeros((400, 400), np.float32)
    heat[100:200, 100:200] = 1.0
    truth = (heat > 0).astype(np.uint8)
    grey, picture = overlay(src, heat, (), None, probability=True, width=256, truth=truth)
    assert grey.shape == (200, 200) and picture.shape == (200, 200, 3)
    assert picture[75, 75, 2] > picture[75, 75, 0] and picture[150, 150, 0] == picture[150, 150, 1]  # heat; none
    assert (picture[50, 50:100] == (0, 255, 0)).all(axis=1).any()  # the truth's outline, at the picture's scale
