"""What the write-ahead spool costs the emitting thread per verdict, by fsync policy.

    python -m bench.bench_spool [--records 5000]

Spool.append of a typical verdict record (edge.outputs.spool), committed one by one as emit()
does, with fsync_s = 1 (default: a sync thread fsyncs once a second) and fsync_s = 0 (every commit
fsynced). Medians of per-record times; the spool lives in a temporary folder on the disk the
state directory would be on (here: the root file system).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import machine, save
from edge.outputs.spool import Spool

RECORD = {"station": "line1", "camera": "cam0", "frame_id": 123456, "timestamp": 1700000000.123,
          "source": "cam0", "time": "2026-11-23T13:00:00.000+00:00", "verdict": "NG", "score": 0.934512,
          "regions": [{"x": 120, "y": 88, "w": 14, "h": 9, "area": 96, "peak": 0.81}],
          "latency_ms": {"acquire": 0.4, "preprocess": 0.6, "queue": 0.1, "infer": 6.2, "detect": 0.5,
                         "decide": 0.02, "total": 8.1}}


def per_record_us(fsync_s: float, n: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(dir=Path.home()) as tmp:
        spool = Spool(Path(tmp) / "s.sqlite", 1_000_000, fsync_s)
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            spool.append(time.time(), RECORD)
            times.append(time.perf_counter() - t0)
        spool.close()
    times.sort()
    return statistics.median(times) * 1e6, times[int(0.99 * len(times))] * 1e6


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=5000)
    args = ap.parse_args(argv)
    print(f"machine: {machine()}")
    rows = []
    for fsync_s in (1.0, 0.0, 1.0, 0.0):  # alternated, the second pair reported
        med, p99 = per_record_us(fsync_s, args.records)
        rows.append({"fsync_s": fsync_s, "median_us": med, "p99_us": p99})
    for r in rows[2:]:
        print(f"fsync_s {r['fsync_s']:g}: median {r['median_us']:.0f} us, p99 {r['p99_us']:.0f} us per verdict")
    save("spool", {"rows": rows[2:], "records": args.records})


if __name__ == "__main__":
    main()
