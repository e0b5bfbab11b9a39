"""Faults that must not stop a station or lose a record: a reload whose outputs cannot open, an
output whose emit raises (stdout closed under it), an output path that cannot be written at start."""

import json
import os
import signal
import subprocess
import sys
import time

from conftest import make_station, run_cli, wait_line


def _start(cfg):
    return subprocess.Popen([sys.executable, "-m", "edge.cli", "--config", str(cfg)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))


def test_a_reload_whose_outputs_cannot_open_is_refused_and_the_running_ones_stay(tmp_path):
    log = tmp_path / "verdicts.jsonl"
    cfg = make_station(tmp_path, source_opts="?loop=1&fps=40", extra_yaml=f"outputs:\n  jsonl:\n    path: {log}\n")
    proc = _start(cfg)
    wait_line(proc.stderr, "ready")
    time.sleep(0.5)
    (tmp_path / "a_folder").mkdir()
    cfg.write_text(cfg.read_text().replace(str(log), str(tmp_path / "a_folder")))  # a folder: cannot be opened
    proc.send_signal(signal.SIGHUP)
    wait_line(proc.stderr, "outputs refused, keeping the running ones: .*outputs.jsonl.path: expected a place it "
                           "can write, got IsADirectoryError")
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    printed = [json.loads(line)["frame_id"] for line in out.splitlines()]
    written = [json.loads(line)["frame_id"] for line in log.read_text().splitlines()]
    assert printed == written == list(range(len(printed))) and len(printed) > 20


def test_a_closed_stdout_leaves_the_verdict_file_every_record(tmp_path):
    log = tmp_path / "verdicts.jsonl"
    cfg = make_station(tmp_path, count=12, extra_yaml=f"outputs:\n  jsonl:\n    path: {log}\n")
    proc = _start(cfg)
    proc.stdout.readline()
    proc.stdout.close()  # the reader went away (`edge-run | head -1`)
    err = proc.stderr.read()
    proc.wait(60)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["frame_id"] for r in records] == list(range(12)), err
    assert "stdout was closed; verdicts go on to the other outputs" in err and "Traceback" not in err, err
    assert proc.returncode == 0, err


def test_an_output_that_raises_is_counted_and_the_others_get_every_record(lowpass_model, tmp_path):
    """An output whose emit raises now and then (as the camera line did after a camera reconnect;
    a real unplug cannot be staged here, so a failing output class stands in for it)."""
    from conftest import station_config

    from edge.station import Station
    from testkit.sources import SyntheticCamera

    class Flaky:
        def __init__(self):
            self.calls = 0

        def emit(self, record):
            self.calls += 1
            if self.calls % 3 == 0:
                raise RuntimeError("node map of a destroyed camera handle")

        def close(self):
            pass

    path = tmp_path / "verdicts.jsonl"
    cfg = station_config(tmp_path, lowpass_model, outputs={"jsonl": {"stdout": False, "path": str(path)}})
    flaky = Flaky()
    with Station(cfg, "cam", frames=30, source=SyntheticCamera(0.0)) as st:
        st.pipeline.outputs.insert(0, flaky)  # first, like the camera line
        t = st.run()
    ids = [json.loads(line)["frame_id"] for line in path.read_text().splitlines()]
    assert len(ids) == 30 and flaky.calls == 30
    assert t.failures["output Flaky"] == 10 and "failures survived: output Flaky 10" in t.summary()


def test_an_output_path_that_cannot_be_opened_at_start_is_one_line_exit_2(tmp_path):
    (tmp_path / "a_folder").mkdir()
    cfg = make_station(tmp_path, count=1, extra_yaml=f"outputs:\n  jsonl:\n    path: {tmp_path / 'a_folder'}\n")
    res = run_cli(["--config", str(cfg)])
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert "outputs.jsonl.path: expected a place it can write, got IsADirectoryError" in res.stderr


def test_a_second_edge_run_on_the_same_spool_is_refused(tmp_path):
    from edge.outputs.spool import Spool
    spool_dir = tmp_path / "spool"
    cfg = make_station(tmp_path, count=1, extra_yaml=f"outputs:\n  modbus:\n    enabled: true\n    port: 1\n"
                                                     f"  spool:\n    dir: {spool_dir}\n")
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; "
                               "from edge.outputs.spool import Spool; "
                               f"s = Spool(Path({str(spool_dir / 't-cam0-modbus.sqlite')!r}), 100); "
                               "print('held', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        res = run_cli(["--config", str(cfg)])
        assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
        assert "outputs.spool.dir: expected a spool no other process uses" in res.stderr
    finally:
        holder.kill()
        holder.wait()
    a = Spool(spool_dir / "t-cam0-modbus.sqlite", 100)  # within one process (a reload) it is shared
    b = Spool(spool_dir / "t-cam0-modbus.sqlite", 100)
    a.close()
    b.close()


def test_the_watchdog_is_not_fed_while_the_model_hangs(lowpass_model, tmp_path):
    """A model that never returns leaves the analysis thread idle while every new frame is dropped
    (queue full): that is not health. A hung model cannot be staged with ONNX Runtime, so the
    runner's infer is made to block, as a wedged GPU call does."""
    import threading

    from conftest import station_config

    from edge.station import Station
    from testkit.sources import SyntheticCamera

    cfg = station_config(tmp_path, lowpass_model, cam={"queue": 2}, outputs={"jsonl": {"stdout": False}})
    release = threading.Event()
    with Station(cfg, "cam", frames=400, source=SyntheticCamera(0.005)) as st:
        real = st.inspector.runner.infer
        calls = []

        def infer(batch):
            calls.append(1)
            if len(calls) == 10:
                release.wait(30)  # hangs on the tenth call
            return real(batch)
        st.inspector.runner.infer = infer
        runner = threading.Thread(target=st.run)
        runner.start()
        try:
            time.sleep(1.0)
            assert len(calls) >= 10 and not st.healthy(0.5), "fed while the model hangs"
        finally:
            release.set()
            runner.join(60)
        assert st.telemetry.dropped["queue_full"] > 0


def test_the_watchdog_stays_fed_through_a_long_reconnect_backoff(lowpass_model, tmp_path):
    """Reopening a lost camera with a backoff longer than the watchdog period is honest work."""
    import threading

    from conftest import station_config

    from edge.errors import SourceError
    from edge.station import Station
    from testkit.sources import SyntheticCamera

    class Unplugged(SyntheticCamera):  # grabs fail from the 5th frame; reopening fails twice
        opens = 0

        def grab(self, timeout_s=0.5):
            if self.n >= 5 and Unplugged.opens < 3:
                raise SourceError("camera does not answer")
            return super().grab(timeout_s)

        def __enter__(self):
            Unplugged.opens += 1
            if 1 < Unplugged.opens < 3:
                raise SourceError("no device")
            return self

    cfg = station_config(tmp_path, lowpass_model, cam={"reconnect_attempts": 3, "reconnect_backoff_s": 0.6},
                         outputs={"jsonl": {"stdout": False}})
    with Station(cfg, "cam", frames=20, source=Unplugged(0.005)) as st:
        runner = threading.Thread(target=st.run)
        runner.start()
        seen = []
        while runner.is_alive():
            seen.append(st.healthy(0.5))
            time.sleep(0.05)
        runner.join()
    assert st.telemetry.reconnects == 2 and st.telemetry.decided == 20
    assert all(seen), f"unhealthy during {seen.count(False)} of {len(seen)} checks"


def test_a_camera_that_appears_late_is_waited_for_with_systemd_told(lowpass_model, tmp_path, monkeypatch, caplog):
    """A camera that fails to open twice (a PoE camera still booting; staged with a source double,
    TLSimu's devices are always there) is opened on the third attempt, and systemd is asked to
    extend its start timeout meanwhile."""
    import socket

    from conftest import station_config

    from edge.errors import SourceError
    from edge.station import Station
    from testkit.sources import SyntheticCamera

    class Booting(SyntheticCamera):
        opens = 0

        def __enter__(self):
            Booting.opens += 1
            if Booting.opens < 3:
                raise SourceError("camera does not answer yet")
            return self

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.settimeout(0.1)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    cfg = station_config(tmp_path, lowpass_model, outputs={"jsonl": {"stdout": False}})
    with Station(cfg, "cam", frames=5, source=Booting(0.001)) as st:
        t = st.run()
    messages = []
    try:
        while True:
            messages.append(sock.recv(4096).decode())
    except OSError:
        pass
    assert Booting.opens == 3 and t.decided == 5
    assert sum("EXTEND_TIMEOUT_USEC=" in m for m in messages) == 2, messages
    assert "camera cam opened after 3 attempts" in caplog.text


def test_the_verdict_file_is_reopened_after_logrotate_and_rotated_past_max_mb(tmp_path, monkeypatch):
    from edge.outputs import JsonLinesOutput
    monkeypatch.setattr(JsonLinesOutput, "CHECK_S", 0.0)
    path = tmp_path / "verdicts.jsonl"
    out = JsonLinesOutput(stdout=False, path=path, max_bytes=2000)
    out.emit({"frame_id": 0})
    path.rename(tmp_path / "verdicts.jsonl.2026-12-01")  # logrotate's default: move, then the program reopens
    for i in range(1, 60):
        out.emit({"frame_id": i, "pad": "x" * 40})
    out.close()
    ids = [json.loads(line)["frame_id"] for p in (tmp_path / "verdicts.jsonl.2026-12-01", tmp_path / "verdicts.jsonl.1",
                                                  path) for line in p.read_text().splitlines()]
    assert ids == list(range(60)), ids  # every line in one of the files, in order
    assert path.stat().st_size <= 2100 and (tmp_path / "verdicts.jsonl.1").stat().st_size > 2000
