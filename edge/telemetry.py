"""Per-stage latency with rolling percentiles, frame accounting, and a Prometheus endpoint."""

from __future__ import annotations

import threading
import time
from collections import Counter

import numpy as np

STAGES = ("acquire", "preprocess", "queue", "infer", "detect", "decide", "emit", "total")


class Telemetry:
    """Thread-safe. Latencies in seconds in a ring buffer of `window` frames per stage."""

    def __init__(self, window: int = 2048, camera: str = "", station: str = ""):
        self.window, self.camera, self.station = window, camera, station
        self._lat = np.zeros((len(STAGES), window), np.float64)
        self._n = 0  # frames recorded (ring position = _n % window)
        self._max = np.zeros(len(STAGES))
        self.verdicts = Counter()   # OK / NG
        self.dropped = Counter()    # reason -> frames
        self.grabbed = 0            # frames that reached the host
        self.timeouts = 0           # grabs that saw no frame in time (e.g. waiting for a trigger)
        self.started = time.perf_counter()
        self._lock = threading.Lock()

    def record(self, verdict: str, latencies: dict[str, float]):
        row = np.array([latencies.get(s, 0.0) for s in STAGES])
        with self._lock:
            self._lat[:, self._n % self.window] = row
            np.maximum(self._max, row, out=self._max)
            self._n += 1
            self.verdicts[verdict] += 1

    def drop(self, reason: str, count: int = 1):
        with self._lock:
            self.dropped[reason] += count

    def grabbed_one(self):
        with self._lock:
            self.grabbed += 1

    def timeout(self):
        with self._lock:
            self.timeouts += 1

    @property
    def decided(self) -> int:
        return sum(self.verdicts.values())

    def percentiles(self) -> dict[str, dict[str, float]]:
        """{stage: {p50, p95, p99, max (whole run), mean}} in milliseconds over the rolling window."""
        with self._lock:
            n = min(self._n, self.window)
            data = self._lat[:, :n].copy()
            mx = self._max.copy()
        if n == 0:
            return {}
        q = np.percentile(data, [50, 95, 99], axis=1) * 1e3
        mean = data.mean(axis=1) * 1e3
        return {s: {"p50": q[0, i], "p95": q[1, i], "p99": q[2, i], "max": mx[i] * 1e3, "mean": mean[i]}
                for i, s in enumerate(STAGES)}

    def fps(self) -> float:
        elapsed = time.perf_counter() - self.started
        return self.decided / elapsed if elapsed > 0 else 0.0

    def progress_line(self) -> str:
        p = self.percentiles().get("total", {})
        dropped = sum(self.dropped.values())
        return (f"[{self.camera}] {self.decided} frames  {self.fps():.1f} fps  OK {self.verdicts['OK']}  "
                f"NG {self.verdicts['NG']}  dropped {dropped}  total p50 {p.get('p50', 0):.2f} ms  "
                f"p99 {p.get('p99', 0):.2f} ms")

    def summary(self) -> str:
        lines = [f"edge-run summary: station {self.station}, camera {self.camera}",
                 f"  frames grabbed {self.grabbed}, verdicts {self.decided} (OK {self.verdicts['OK']}, "
                 f"NG {self.verdicts['NG']}), dropped {sum(self.dropped.values())}"
                 + (" (" + ", ".join(f"{k} {v}" for k, v in sorted(self.dropped.items())) + ")" if self.dropped else "")
                 + (f", grab timeouts {self.timeouts}" if self.timeouts else ""),
                 f"  throughput {self.fps():.1f} frames/s over {time.perf_counter() - self.started:.1f} s"]
        pct = self.percentiles()
        if pct:
            lines.append(f"  {'stage (ms)':<12}{'p50':>9}{'p95':>9}{'p99':>9}{'max':>9}{'mean':>9}")
            for s in STAGES:
                v = pct[s]
                lines.append(f"  {s:<12}" + "".join(f"{v[k]:>9.3f}" for k in ("p50", "p95", "p99", "max", "mean")))
        return "\n".join(lines)


class PrometheusEndpoint:
    """Serves the telemetry on http://host:port/metrics, computed when scraped."""

    def __init__(self, telemetry: Telemetry, host: str, port: int):
        from prometheus_client import CollectorRegistry, start_http_server

        self.t = telemetry
        self.registry = CollectorRegistry()
        self.registry.register(self)
        try:
            self.server, self.thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as e:
            from .errors import InputError
            raise InputError("config", "telemetry.prometheus", f"cannot listen on {host}:{port} ({e.strerror})") from None
        self.port = self.server.server_port

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        labels = ["station", "camera"]
        ids = [self.t.station, self.t.camera]
        verdicts = CounterMetricFamily("edge_verdicts", "Frames decided, by verdict", labels=labels + ["verdict"])
        for v in ("OK", "NG"):
            verdicts.add_metric(ids + [v], self.t.verdicts[v])
        yield verdicts
        dropped = CounterMetricFamily("edge_dropped_frames", "Frames without a verdict, by reason", labels=labels + ["reason"])
        for reason, n in self.t.dropped.items():
            dropped.add_metric(ids + [reason], n)
        yield dropped
        grabbed = CounterMetricFamily("edge_grabbed_frames", "Frames that reached the host", labels=labels)
        grabbed.add_metric(ids, self.t.grabbed)
        yield grabbed
        lat = GaugeMetricFamily("edge_stage_latency_ms", "Rolling per-stage latency percentiles",
                                labels=labels + ["stage", "quantile"])
        for stage, vals in self.t.percentiles().items():
            for q in ("p50", "p95", "p99", "max"):
                lat.add_metric(ids + [stage, q], vals[q])
        yield lat
        fps = GaugeMetricFamily("edge_throughput_fps", "Verdicts per second since start", labels=labels)
        fps.add_metric(ids, self.t.fps())
        yield fps

    def close(self):
        self.server.shutdown()
        self.server.server_close()
