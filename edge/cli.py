"""edge-run: inspect frames from one camera and emit a verdict per frame.

    edge-run [--config station.yaml] [--camera cam0] [--engine model.onnx] [--frames N]

Without --config it runs the embedded default: camera cam0 replaying generated demo frames
through the packaged demo model with ONNX Runtime on the CPU.
Signals: SIGINT/SIGTERM stop after every grabbed frame has its verdict; SIGHUP reloads the
config's detect/decision overrides and outputs between two frames.
Exit codes: 0 done, 1 runtime failure (camera lost, ...), 2 bad input (config, model, URI).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from . import sdnotify
from .errors import InputError, SourceError, run_cli

log = logging.getLogger("edge.cli")  # not __name__: run as `python -m edge.cli` it is __main__


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="edge-run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", help="station YAML (default: the embedded demo station)")
    ap.add_argument("--camera", default="cam0", help="camera name from the config (default cam0)")
    ap.add_argument("--engine", help="model to run: .onnx (ONNX Runtime) or a build-engine engine "
                                             "(.plan with its .json sidecar, TensorRT on the GPU); overrides "
                                             "the config's model.path")
    ap.add_argument("--frames", type=int, default=0, help="stop after N grabbed frames (default: until the "
                                                          "source ends or SIGINT/SIGTERM)")
    ap.add_argument("--quiet", action="store_true", help="no JSON lines on stdout (the summary still goes to stderr)")
    return ap


def watchdog(pipeline, interval: float, done: threading.Event):
    """WATCHDOG=1 every interval/3 while frames flow (or the camera waits for a trigger, alive)."""
    while not done.wait(interval / 3):
        if pipeline.healthy(interval):
            sdnotify.notify("WATCHDOG=1", f"STATUS={pipeline.t.progress_line()}")


def run(args) -> int:
    from .station import Station, read_config

    if args.frames < 0:
        raise InputError("<command line>", "--frames", f"expected a number >= 0, got {args.frames}")
    cfg = read_config(args.config)
    stop_event = threading.Event()  # exists before the station: a signal during warm-up counts too
    station: Station | None = None
    watchdog_done, dog = threading.Event(), None

    def stop(signum, _frame):
        log.info("%s: stopping; queued frames still get verdicts", signal.Signals(signum).name)
        stop_event.set()

    def hup(_signum, _frame):
        if station is not None:
            station.request_reload()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, hup)
    st = Station(cfg, args.camera, model=args.engine, frames=args.frames, stdout=not args.quiet,
                 stop_event=stop_event, config_path=args.config)
    error = None
    try:
        with st:
            station = st
            log.info("ready: camera %s (%s), model %s %s, detect %s", args.camera, st.cam.source, st.runner.name,
                     st.recipe.model_family, st.recipe.detect.method)
            sdnotify.notify("READY=1", f"STATUS=inspecting camera {args.camera}")
            interval = sdnotify.watchdog_interval()
            if interval:
                dog = threading.Thread(target=watchdog, args=(st.pipeline, interval, watchdog_done), daemon=True)
                dog.start()
            try:
                st.run()
            except Exception as e:  # reported after the summary, with every verdict out
                error = e
    finally:
        watchdog_done.set()  # no ping may follow STOPPING=1
        if dog is not None:
            dog.join(5)
        sdnotify.notify("STOPPING=1")
    telemetry = st.telemetry
    if cfg.file.telemetry.summary:
        print(telemetry.summary(), file=sys.stderr, flush=True)  # a report, not a log record
    if error is not None:
        raise error
    if telemetry.grabbed and not telemetry.decided:  # a run that inspected nothing is no success
        reasons = ", ".join(f"{k} {v}" for k, v in telemetry.dropped.most_common())
        log.error("no frame was inspected: %d grabbed, all dropped (%s)", telemetry.grabbed, reasons)
        return 1
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)

    def source_failed(e):
        log.error("source failed: %s", e)
        return 1
    return run_cli("edge-run", lambda: run(args),
                   [(SourceError, source_failed), (BrokenPipeError, lambda e: 0)])


if __name__ == "__main__":
    sys.exit(main())
