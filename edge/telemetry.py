"""Per-stage latency with rolling percentiles, frame accounting, and a Prometheus endpoint."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum

import numpy as np


class Stage(str, Enum):
    """The one set of stage names: pipeline and runners key their timings by these, telemetry
    refuses any other key (a misspelt stage would otherwise record zeros unnoticed)."""
    ACQUIRE = "acquire"
    PREPROCESS = "preprocess"
    QUEUE = "queue"
    INFER = "infer"
    DETECT = "detect"
    DECIDE = "decide"
    EMIT = "emit"
    TOTAL = "total"
    # within infer, measured by CUDA events on the GPU runner (zero, and not printed, on the CPU)
    UPLOAD = "upload"
    COMPUTE = "compute"
    DOWNLOAD = "download"

    def __str__(self) -> str:
        return self.value


GPU_STAGES = (Stage.UPLOAD, Stage.COMPUTE, Stage.DOWNLOAD)
STAGES = tuple(s for s in Stage if s not in GPU_STAGES)
ALL_STAGES = STAGES + GPU_STAGES
_INDEX = {s: i for i, s in enumerate(ALL_STAGES)}

log = logging.getLogger("edge.telemetry")


class Timings(dict):
    """One frame's stage timings in seconds. Each stage adds its own time, on whichever thread it
    runs (detection on the GPU runs in the inference thread, on the CPU in the emitting one), so no
    stage is ever derived by subtracting the others."""

    def add(self, stage: Stage, seconds: float):
        self[stage] = self.get(stage, 0.0) + seconds

    @contextmanager
    def timed(self, stage: Stage) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - t0)


class OutputStats:
    """Delivery state of one network output: queue depth, lag from verdict to acknowledged delivery."""

    def __init__(self, name: str, window: int = 1024):
        self.name = name
        self.connected = False
        self.depth_memory = 0
        self.depth_spool = 0
        self.delivered = 0
        self.disconnects = 0
        self.overflow = 0       # records dropped because the bounded queue was full
        self.errors = 0         # failures of the delivery thread itself (its spool's disk), not of the peer
        self.last_error = ""
        self._lag = np.zeros(window)
        self._n = 0
        self._lock = threading.Lock()

    @property
    def depth(self) -> int:
        return self.depth_memory + self.depth_spool

    def delivered_one(self, lag_s: float):
        with self._lock:
            self._lag[self._n % len(self._lag)] = lag_s
            self._n += 1
            self.delivered += 1

    def lag_ms(self) -> dict[str, float]:
        with self._lock:
            data = self._lag[:min(self._n, len(self._lag))].copy()
        if not data.size:
            return {}
        q = np.percentile(data, [50, 99]) * 1e3
        return {"p50": q[0], "p99": q[1], "max": data.max() * 1e3}


class NgWatch:
    """The NG share of the last `window` verdicts, and an alarm when it exceeds `above` (0 = off):
    raised once with a warning, cleared with a note when the share falls below three quarters of
    it (so a share hovering at the limit does not flood the log). Not thread-safe: Telemetry
    calls it under its lock."""

    def __init__(self, above: float = 0.0, window: int = 200):
        self.above, self.window = above, window
        self._ring = np.zeros(window, bool)
        self._n = self._ng = 0
        self.on, self.raised = False, 0

    @property
    def seen(self) -> int:
        """Verdicts the share is over: the last `window`, or all so far while fewer."""
        return min(self._n, self.window)

    @property
    def share(self) -> float | None:
        """NG share of the last `seen` verdicts; None before any."""
        return self._ng / self.seen if self._n else None

    def add(self, ng: bool) -> str | None:
        """Records one verdict; returns the line to log when the alarm is raised or cleared."""
        i = self._n % self.window
        self._ng += int(ng) - int(self._ring[i])
        self._ring[i] = ng
        self._n += 1
        if not self.above or self._n < self.window:
            return None
        share = self._ng / self.window
        if not self.on and share > self.above:
            self.on, self.raised = True, self.raised + 1
            return (f"NG share of the last {self.window} parts is {share:.1%}, above the alarm's {self.above:.1%}: "
                    f"check the camera, the light and the parts; a threshold calibrated on too few good parts "
                    f"gives it too (edge-train --calibrate-only, docs/ACCURACY.md)")
        if self.on and share < 0.75 * self.above:
            self.on = False
            return f"NG share of the last {self.window} parts back to {share:.1%} (alarm above {self.above:.1%})"
        return None


class Telemetry:
    """Thread-safe. Latencies in seconds in a ring buffer of `window` frames per stage; the NG
    share of the last verdicts (NgWatch)."""

    def __init__(self, window: int = 2048, camera: str = "", station: str = "", ng_alarm: float = 0.0,
                 ng_window: int = 200):
        self.window, self.camera, self.station = window, camera, station
        self.ng = NgWatch(ng_alarm, ng_window)
        self._lat = np.zeros((len(ALL_STAGES), window), np.float64)
        self._n = 0  # frames recorded (ring position = _n % window)
        self._max = np.zeros(len(ALL_STAGES))
        self.verdicts: Counter[str] = Counter()   # OK / NG
        self.dropped: Counter[str] = Counter()    # reason -> frames
        self.grabbed = 0            # frames that reached the host
        self.camera_skipped = 0     # frames the camera itself never sent (frame-id gaps): not station drops
        self.timeouts = 0           # grabs that saw no frame in time (e.g. waiting for a trigger)
        self.reconnects = 0         # attempts to reopen a lost camera
        self.reloads = 0            # configurations reloaded by SIGHUP
        self.failures: Counter[str] = Counter()   # what failed and went on (an output's emit, analysis, a reload) -> times
        self.started = time.perf_counter()
        self.outputs: dict[str, OutputStats] = {}
        self.archive = None  # edge.archive.Archive when the NG archive is on
        self._lock = threading.Lock()

    def output(self, name: str) -> OutputStats:
        """The stats object of a network output (created on first use, kept across reloads)."""
        if name not in self.outputs:
            self.outputs[name] = OutputStats(name)
        return self.outputs[name]

    def failure(self, what: str) -> int:
        with self._lock:
            self.failures[what] += 1
            return self.failures[what]

    def record(self, verdict: str, latencies: dict[Stage, float]):
        row = np.zeros(len(ALL_STAGES))
        for stage, seconds in latencies.items():
            row[_INDEX[stage]] = seconds  # KeyError for a stage that does not exist (Stage keys equal their names)
        with self._lock:
            self._lat[:, self._n % self.window] = row
            np.maximum(self._max, row, out=self._max)
            self._n += 1
            self.verdicts[verdict] += 1
            change = self.ng.add(verdict == "NG")
        if change:
            (log.warning if self.ng.on else log.info)(change)

    def drop(self, reason: str, count: int = 1):
        with self._lock:
            self.dropped[reason] += count

    def camera_skip(self, count: int):
        with self._lock:
            self.camera_skipped += count

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
        return {s.value: {"p50": q[0, i], "p95": q[1, i], "p99": q[2, i], "max": mx[i] * 1e3, "mean": mean[i]}
                for i, s in enumerate(ALL_STAGES) if s in STAGES or mx[i] > 0}

    def histogram(self, stage: Stage = Stage.TOTAL, bins: int = 20) -> dict:
        """Counts of the rolling window's latencies of one stage in `bins` equal bins (ms)."""
        with self._lock:
            n = min(self._n, self.window)
            data = self._lat[_INDEX[Stage(stage)], :n] * 1e3
        if n == 0:
            return {"edges_ms": [], "counts": []}
        counts, edges = np.histogram(data, bins=bins)
        return {"edges_ms": [round(float(e), 3) for e in edges], "counts": counts.tolist()}

    def snapshot(self) -> dict:
        """Everything an operator's view shows, as plain JSON-able values (any thread)."""
        pct = self.percentiles()
        with self._lock:
            counts = {"OK": self.verdicts["OK"], "NG": self.verdicts["NG"], "dropped": dict(self.dropped),
                      "camera_skipped": self.camera_skipped, "grabbed": self.grabbed, "reloads": self.reloads,
                      "failures": dict(self.failures), "ng_share": self.ng.share, "ng_alarm": self.ng.on}
        outputs = []
        for o in list(self.outputs.values()):
            lag = o.lag_ms()
            outputs.append({"name": o.name, "connected": o.connected, "delivered": o.delivered, "queued": o.depth,
                            "spool": o.depth_spool, "overflow": o.overflow, "disconnects": o.disconnects,
                            "errors": o.errors, "lag_p50_ms": lag.get("p50"), "lag_p99_ms": lag.get("p99"), "last_error": o.last_error})
        a = self.archive
        return {"camera": self.camera, "station": self.station, "counts": counts, "fps": self.fps(),
                "latency_ms": {s: {"p50": v["p50"], "p99": v["p99"]} for s, v in pct.items()},
                "histogram": self.histogram(), "outputs": outputs,
                "archive": None if a is None else {"written": a.written, "failed": a.failed, "skipped": a.skipped}}

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
                 + (f", skipped by the camera {self.camera_skipped} (frame-id gaps)" if self.camera_skipped else "")
                 + (f", grab timeouts {self.timeouts}" if self.timeouts else "")
                 + (f", reconnect attempts {self.reconnects}" if self.reconnects else "")
                 + (f", config reloads {self.reloads}" if self.reloads else ""),
                 *(["  failures survived: " + ", ".join(f"{k} {v}" for k, v in sorted(self.failures.items()))]
                   if self.failures else []),
                 *([f"  NG share of the last {self.ng.seen} verdicts {self.ng.share:.1%}; alarm above "
                    f"{self.ng.above:.1%} raised {self.ng.raised} times" + (", still on" if self.ng.on else "")]
                   if self.ng.above and self.ng.share is not None else []),
                 f"  throughput {self.fps():.1f} frames/s over {time.perf_counter() - self.started:.1f} s"]
        pct = self.percentiles()
        if pct:
            lines.append(f"  {'stage (ms)':<12}{'p50':>9}{'p95':>9}{'p99':>9}{'max':>9}{'mean':>9}")
            for s, v in pct.items():  # the CPU stages, then the GPU ones that were measured
                lines.append(f"  {s:<12}" + "".join(f"{v[k]:>9.3f}" for k in ("p50", "p95", "p99", "max", "mean")))
        a = self.archive
        if a is not None:
            lines.append(f"  archive {a.folder}: written {a.written}, failed {a.failed}, skipped {a.skipped}, "
                         f"removed for space {a.removed}" + (f", last error: {a.last_error}" if a.failed else ""))
        for o in self.outputs.values():
            lag = o.lag_ms()
            lines.append(f"  output {o.name}: delivered {o.delivered}, queued {o.depth} (spool {o.depth_spool}), "
                         f"disconnects {o.disconnects}, overflow {o.overflow}, errors {o.errors}"
                         + (f", lag p50 {lag['p50']:.2f} ms p99 {lag['p99']:.2f} ms" if lag else "")
                         + (f", last error: {o.last_error}" if o.last_error and (o.errors or not o.connected) else ""))
        return "\n".join(lines)


class PrometheusEndpoint:
    """Serves the telemetry on http://host:port/metrics, computed when scraped."""

    def __init__(self, telemetry: Telemetry, host: str, port: int, where: str = "config"):
        from prometheus_client import CollectorRegistry, start_http_server

        self.t = telemetry
        self.registry = CollectorRegistry()
        self.registry.register(self)
        try:
            self.server, self.thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as e:
            from .errors import InputError
            raise InputError(where, "telemetry.prometheus", f"cannot listen on {host}:{port} ({e.strerror})") from None
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
        skipped = CounterMetricFamily("edge_camera_skipped_frames", "Frames the camera never sent (frame-id gaps)",
                                      labels=labels)
        skipped.add_metric(ids, self.t.camera_skipped)
        yield skipped
        lat = GaugeMetricFamily("edge_stage_latency_ms", "Rolling per-stage latency percentiles",
                                labels=labels + ["stage", "quantile"])
        for stage, vals in self.t.percentiles().items():
            for q in ("p50", "p95", "p99", "max"):
                lat.add_metric(ids + [stage, q], vals[q])
        yield lat
        fps = GaugeMetricFamily("edge_throughput_fps", "Verdicts per second since start", labels=labels)
        fps.add_metric(ids, self.t.fps())
        yield fps
        share = self.t.ng.share
        if share is not None:
            ng = GaugeMetricFamily("edge_ng_share", f"NG share of the last {self.t.ng.window} verdicts", labels=labels)
            ng.add_metric(ids, share)
            yield ng
        alarm = GaugeMetricFamily("edge_ng_alarm", "1 while the NG share is above telemetry.ng_alarm", labels=labels)
        alarm.add_metric(ids, 1.0 if self.t.ng.on else 0.0)
        yield alarm
        olabels = labels + ["output"]
        depth = GaugeMetricFamily("edge_output_queue_depth", "Verdicts waiting for an output", labels=olabels)
        conn = GaugeMetricFamily("edge_output_connected", "1 while the output is connected", labels=olabels)
        delivered = CounterMetricFamily("edge_output_delivered", "Verdicts delivered and acknowledged", labels=olabels)
        overflow = CounterMetricFamily("edge_output_overflow", "Verdicts dropped from a full output queue", labels=olabels)
        errors = CounterMetricFamily("edge_output_errors", "Failures of the delivery thread itself (its spool)",
                                     labels=olabels)
        lag = GaugeMetricFamily("edge_output_delivery_lag_ms", "Verdict to acknowledged delivery",
                                labels=olabels + ["quantile"])
        for o in self.t.outputs.values():
            depth.add_metric(ids + [o.name], o.depth)
            conn.add_metric(ids + [o.name], 1.0 if o.connected else 0.0)
            delivered.add_metric(ids + [o.name], o.delivered)
            overflow.add_metric(ids + [o.name], o.overflow)
            errors.add_metric(ids + [o.name], o.errors)
            for q, v in o.lag_ms().items():
                lag.add_metric(ids + [o.name, q], v)
        yield from (depth, conn, delivered, overflow, errors, lag)
        a = self.t.archive
        if a is not None:
            arch = CounterMetricFamily("edge_archive_frames", "NG frames by archive outcome", labels=labels + ["outcome"])
            for outcome in ("written", "failed", "skipped"):
                arch.add_metric(ids + [outcome], getattr(a, outcome))
            yield arch

    def close(self):
        self.server.shutdown()
        self.server.server_close()
