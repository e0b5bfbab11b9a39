"""Soak: edge-run at full rate for hours with every output on, sampling what leaks show in.

    python -m bench.soak [--minutes 120] [--window 10] [--size 512] [--view]

The station: looping replay of 16 preloaded frames (2 with defects), JSON lines to a file,
MQTT to a local mosquitto, Modbus to a pymodbus server in this process (the PLC), the NG
archive under a 20 MB cap (so it keeps deleting), Prometheus on. Every 5 s: RSS, open file
descriptors and threads from /proc, the outputs' queue depth from Prometheus, the spool files'
size. Latency is each verdict's latency_ms.total read back from the JSON lines file, so the
per-window p99 is over every frame of the window. Slopes are least-squares lines over the run
after the first window (start-up, caches and pools filling). Writes bench/results/soak.json
(updated after every window, so a cut-short run still reports). --view: the live view on with a
page connected all along (bench.bench_pipeline.Browser), its process sampled too (view_*);
writes bench/results/soak_view.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

from bench.common import _git, machine, save
from testkit.station import free_port, make_station, wait_port


def proc_sample(pid: int) -> dict:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {"rss_mb": int(status["VmRSS"].split()[0]) / 1024, "threads": int(status["Threads"]),
            "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def view_process(pid: int) -> int | None:
    """The live view's process among edge-run's children."""
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        if b"edge.view.worker" in Path(f"/proc/{child}/cmdline").read_bytes():
            return int(child)
    return None


def queue_depth(port: int) -> float:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines() if line.startswith("edge_output_queue_depth"))


def start_plc(port: int):
    from pymodbus.datastore import ModbusDeviceContext, ModbusSequentialDataBlock, ModbusServerContext
    from pymodbus.server import StartTcpServer
    ctx = ModbusServerContext(devices=ModbusDeviceContext(hr=ModbusSequentialDataBlock(1, [0] * 64),
                                                          co=ModbusSequentialDataBlock(1, [0] * 64)), single=True)
    threading.Thread(target=StartTcpServer, kwargs={"context": ctx, "address": ("127.0.0.1", port)}, daemon=True).start()
    wait_port(port)


class LatencyReader:
    """Reads the verdict file as it grows; latencies of the frames since the last take()."""

    def __init__(self, path: Path):
        self.path, self.offset, self.partial = path, 0, b""

    def take(self) -> tuple[np.ndarray, int]:
        if not self.path.exists():
            return np.zeros(0), 0
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = self.partial + f.read()
            self.offset = f.tell()
        lines = data.split(b"\n")
        self.partial = lines.pop()
        lat, dropped = [], 0
        for line in lines:
            rec = json.loads(line)
            if rec["verdict"] == "DROPPED":
                dropped += 1
            else:
                lat.append(rec["latency_ms"]["total"])
        return np.array(lat), dropped


def slope_per_hour(t_s, y) -> float:
    return float(np.polyfit(np.asarray(t_s) / 3600, np.asarray(y, float), 1)[0]) if len(t_s) > 2 else float("nan")


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=120.0)
    ap.add_argument("--window", type=float, default=10.0, help="minutes per reported window")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--sample-s", type=float, default=5.0)
    ap.add_argument("--view", action="store_true", help="the live view on, one page connected")
    args = ap.parse_args(argv)
    args.git = _git()  # the code the soak runs (the results file is rewritten as the run goes)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        mosq = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not os.path.exists(mosq):
            raise SystemExit("soak: mosquitto is not installed (bash scripts/install-test-services.sh)")
        mqtt_port, plc_port, prom_port, view_port = free_port(), free_port(), free_port(), free_port()
        (tmp / "m.conf").write_text(f"listener {mqtt_port} 127.0.0.1\nallow_anonymous true\n"
                                    + ("user root\n" if os.geteuid() == 0 else ""))
        broker = subprocess.Popen([mosq, "-c", str(tmp / "m.conf")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(mqtt_port)
        start_plc(plc_port)
        cfg = make_station(tmp, count=16, defects=(3, 11), size=args.size, source_opts="?loop=1&preload=1",
                           extra_yaml=f"outputs:\n  jsonl:\n    stdout: false\n    path: verdicts.jsonl\n"
                                      f"  mqtt:\n    enabled: true\n    port: {mqtt_port}\n"
                                      f"  modbus:\n    enabled: true\n    port: {plc_port}\n    register: 10\n"
                                      f"  spool:\n    dir: {tmp}/spool\n"
                                      f"archive:\n  enabled: true\n  dir: {tmp}/archive\n  max_mb: 20\n"
                                      f"telemetry:\n  progress_s: 600\n  prometheus:\n    enabled: true\n"
                                      f"    port: {prom_port}\n"
                                      + (f"view:\n  enabled: true\n  port: {view_port}\n" if args.view else ""))
        err_path = tmp / "stderr.txt"
        with open(err_path, "w") as err_file:
            proc = subprocess.Popen([sys.executable, "-m", "edge.cli", "--config", str(cfg)],
                                    stdout=subprocess.DEVNULL, stderr=err_file)
        browser = view_pid = None
        if args.view:
            from bench.bench_pipeline import Browser
            wait_port(view_port, 60)
            browser, view_pid = Browser(view_port), view_process(proc.pid)
        reader = LatencyReader(tmp / "verdicts.jsonl")
        samples, windows = [], []
        win_lat, win_dropped, win_start = [], 0, 0.0
        t0 = time.time()
        try:
            while time.time() - t0 < args.minutes * 60:
                time.sleep(args.sample_s)
                if proc.poll() is not None:
                    raise SystemExit(f"edge-run ended early: {err_path.read_text()[-2000:]}")
                t = time.time() - t0
                s = proc_sample(proc.pid)
                s["t"] = t
                s["queue"] = queue_depth(prom_port)
                s["spool_mb"] = sum(p.stat().st_size for p in (tmp / "spool").glob("*")) / 2**20
                if view_pid is not None:
                    s.update({f"view_{k}": v for k, v in proc_sample(view_pid).items()})
                samples.append(s)
                lat, dropped = reader.take()
                win_lat.append(lat)
                win_dropped += dropped
                if t - win_start >= args.window * 60 or t >= args.minutes * 60:
                    lat = np.concatenate(win_lat)
                    ws = [x for x in samples if x["t"] > win_start]
                    windows.append({"from_min": win_start / 60, "to_min": t / 60, "frames": int(lat.size),
                                    "fps": lat.size / (t - win_start), "dropped": win_dropped,
                                    "latency_p50_ms": float(np.percentile(lat, 50)) if lat.size else None,
                                    "latency_p99_ms": float(np.percentile(lat, 99)) if lat.size else None,
                                    "latency_max_ms": float(lat.max()) if lat.size else None,
                                    "rss_mb": ws[-1]["rss_mb"], "rss_max_mb": max(x["rss_mb"] for x in ws),
                                    "fds_max": max(x["fds"] for x in ws), "threads_max": max(x["threads"] for x in ws),
                                    "queue_max": max(x["queue"] for x in ws), "spool_mb_max": max(x["spool_mb"] for x in ws)})
                    if view_pid is not None:
                        windows[-1].update(view_rss_mb=ws[-1]["view_rss_mb"], view_fds_max=max(x["view_fds"] for x in ws),
                                           view_threads_max=max(x["view_threads"] for x in ws))
                    print(json.dumps(windows[-1]), flush=True)
                    win_lat, win_dropped, win_start = [], 0, t
                    _save(args, samples, windows, "")
        finally:
            if browser is not None:
                browser.close()
                args.page_frames = browser.frames
            proc.send_signal(signal.SIGTERM)
            proc.wait(120)
            broker.terminate()
            err = err_path.read_text()
            shutil.copy(err_path, Path(__file__).parent / "results" / ("soak_view_stderr.txt" if args.view else "soak_stderr.txt"))
            summary = [line for line in err.splitlines()
                       if any(k in line for k in ("frames grabbed", "throughput", "output", "archive"))]
            if "Traceback" in err:  # the whole of it: a line saying "Traceback" tells nobody anything
                summary += ["edge-run's stderr had a traceback:"] + err.splitlines()[-60:]
        result = _save(args, samples, windows, summary)
        print(f"machine: {machine()}")
        print("\n".join(summary))
        print(json.dumps(result["slopes_per_hour"], indent=1))


def _save(args, samples, windows, summary) -> dict:
    steady = [s for s in samples if s["t"] >= args.window * 60] or samples
    t = [s["t"] for s in steady]
    keys = ("rss_mb", "fds", "threads", "queue", "spool_mb") + (("view_rss_mb", "view_fds", "view_threads") if args.view else ())
    slopes = {k: slope_per_hour(t, [s[k] for s in steady]) for k in keys}
    if len(windows) > 2:
        mid = [(w["from_min"] + w["to_min"]) * 30 for w in windows[1:]]
        slopes["latency_p99_ms"] = slope_per_hour(mid, [w["latency_p99_ms"] for w in windows[1:]])
    result = {"git": args.git, "minutes": args.minutes, "window_min": args.window, "frame": f"{args.size}x{args.size}",
              "windows": windows, "slopes_per_hour": slopes, "summary": summary, "samples": samples,
              "view": args.view, "page_frames": getattr(args, "page_frames", None)}
    save("soak_view" if args.view else "soak", result)
    return result


if __name__ == "__main__":
    main()
