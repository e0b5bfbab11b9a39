"""Soak: edge-run on looping replay at full rate for a long time, sampling its memory.

    python -m bench.soak [--minutes 10] [--size 512]

Everything a station runs is on: JSON lines to a file, MQTT to a local mosquitto (when
installed), the NG archive under a 20 MB cap, Prometheus. RSS is sampled every 5 s from
/proc/<pid>/status; the slope of a least-squares line over the second half of the run (after
caches and pools have filled) is the steady growth.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import machine, save


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--size", type=int, default=512)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from conftest import free_port, make_station, wait_port

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        broker, extra = None, ""
        mosq = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if os.path.exists(mosq):
            port = free_port()
            (tmp / "m.conf").write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n"
                                        + ("user root\n" if os.geteuid() == 0 else ""))
            broker = subprocess.Popen([mosq, "-c", str(tmp / "m.conf")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_port(port)
            extra = f"  mqtt:\n    enabled: true\n    port: {port}\n"
        cfg = make_station(tmp, count=16, defects=(3, 11), size=args.size, source_opts="?loop=1&preload=1",
                           extra_yaml=f"outputs:\n  jsonl:\n    stdout: false\n    path: verdicts.jsonl\n{extra}"
                                      f"  spool:\n    dir: {tmp}/spool\n"
                                      f"archive:\n  enabled: true\n  dir: {tmp}/archive\n  max_mb: 20\n"
                                      f"telemetry:\n  progress_s: 60\n  prometheus:\n    enabled: true\n    port: 0\n")
        proc = subprocess.Popen([sys.executable, "-m", "edge.cli", "--config", str(cfg)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        t0 = time.time()
        samples = []
        try:
            while time.time() - t0 < args.minutes * 60:
                time.sleep(5)
                if proc.poll() is not None:
                    raise SystemExit(f"edge-run ended early: {proc.stderr.read()[-2000:]}")
                samples.append((time.time() - t0, rss_mb(proc.pid)))
                print(f"{samples[-1][0]:7.0f} s  RSS {samples[-1][1]:8.1f} MB", flush=True)
        finally:
            proc.send_signal(signal.SIGTERM)
            err = proc.communicate(timeout=120)[1]
            if broker is not None:
                broker.terminate()
        t = np.array([s[0] for s in samples])
        m = np.array([s[1] for s in samples])
        half = t >= t[-1] / 2
        slope = np.polyfit(t[half] / 3600, m[half], 1)[0]
        summary = [l for l in err.splitlines() if "frames grabbed" in l or "throughput" in l or "output" in l
                   or "archive" in l]
        result = {"minutes": args.minutes, "frame": f"{args.size}x{args.size}", "rss_start_mb": m[0],
                  "rss_end_mb": m[-1], "rss_max_mb": m.max(), "slope_second_half_mb_per_hour": slope,
                  "samples": samples, "summary": summary, "mqtt": broker is not None}
        print(f"machine: {machine()}")
        print("\n".join(summary))
        print(f"RSS first sample {m[0]:.1f} MB, last {m[-1]:.1f} MB, max {m.max():.1f} MB; "
              f"second-half slope {slope:+.2f} MB/hour")
        save("soak", result)


if __name__ == "__main__":
    main()
