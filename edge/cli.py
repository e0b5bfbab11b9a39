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
import dataclasses
import signal
import sys
import threading
from pathlib import Path

from . import sdnotify
from .errors import InputError, SourceError, run_cli


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


def _read_config(args):
    import yaml

    from . import config as cfgmod

    if args.config:
        return cfgmod.load_file(args.config)
    from . import demo
    return cfgmod.parse(yaml.safe_load(demo.default_config_yaml()), "<embedded default>", Path.cwd())


def _model_path(args, cfg):
    if args.engine:
        path = Path(args.engine)
        if not path.is_file():
            raise InputError("<command line>", "--engine", f"model file not found: {path}")
        return path, "<command line>"
    if cfg.file.model.path:
        return cfg.resolve(cfg.file.model.path), cfg.path
    from . import demo
    return demo.MODEL, cfg.path


def _recipe(runner, model_path, cfg):
    from .recipe import effective_recipe, recipe_from_metadata
    return effective_recipe(recipe_from_metadata(runner.metadata, str(model_path)), cfg.overrides, str(model_path), cfg.path)


def _archive(cfg, camera):
    from .archive import Archive
    from .outputs import default_spool_dir

    a = cfg.file.archive
    if not a.enabled:
        return None
    folder = cfg.resolve(a.dir) if a.dir else default_spool_dir().parent / "archive"
    try:
        return Archive(folder / camera, int(a.max_mb * 1024 * 1024), a.queue)
    except OSError as e:
        raise InputError(cfg.path, "archive.dir", f"cannot use {folder}: {e.strerror}") from None


class Reloader:
    """SIGHUP: re-read the config and apply detect/decision and outputs between two frames, on the
    thread that emits records (Pipeline._apply_reload). Outputs whose settings did not change keep
    running; changed ones are closed without waiting (their spool keeps what is undelivered) and rebuilt.

    A config that fails validation changes nothing. Preprocessing, the model and the cameras need
    a restart (they shape buffers and threads already running)."""

    def __init__(self, args, runner, model_path, telemetry, source, cfg):
        self.args, self.runner, self.model_path, self.telemetry, self.source = args, runner, model_path, telemetry, source
        self.current = cfg  # the config whose outputs are running

    def _outputs(self, cfg):
        from .outputs import build_outputs
        return build_outputs(cfg.outputs_for(self.args.camera), station=cfg.file.station, camera=self.args.camera,
                             telemetry=self.telemetry, source=self.source, resolve=cfg.resolve, where=cfg.path,
                             stdout=not self.args.quiet)

    def __call__(self, pipeline):
        from .outputs import close_all

        try:
            cfg = _read_config(self.args)
            cfg.camera(self.args.camera)
            recipe = _recipe(self.runner, self.model_path, cfg)
        except InputError as e:
            print(f"edge-run: reload refused, keeping the running config: {e.line()}", file=sys.stderr, flush=True)
            return
        running = pipeline.inspector.recipe
        if recipe.preprocess != running.preprocess:
            print("edge-run: reload: preprocess changed; restart edge-run to apply it", file=sys.stderr)
            recipe = dataclasses.replace(recipe, preprocess=running.preprocess)
        if cfg.outputs_for(self.args.camera) == self.current.outputs_for(self.args.camera):
            self.current = cfg  # outputs unchanged: kept running, no close (a down broker would stall it)
        else:
            close_all(pipeline.outputs, wait=False)  # no stall; the new outputs deliver the spool's rest in order
            try:
                pipeline.outputs = self._outputs(cfg)
                self.current = cfg
            except InputError as e:
                print(f"edge-run: reload: outputs refused, keeping the previous ones: {e.line()}", file=sys.stderr,
                      flush=True)
                pipeline.outputs = self._outputs(self.current)
        pipeline.inspector.set_recipe(recipe)
        self.telemetry.reloads += 1
        print(f"edge-run: reloaded {cfg.path}: detect {recipe.detect.method}, min_area {recipe.decision.min_area}",
              file=sys.stderr, flush=True)


def _watchdog(pipeline, interval: float, done: threading.Event):
    """WATCHDOG=1 every interval/3 while frames flow (or the camera waits for a trigger, alive)."""
    while not done.wait(interval / 3):
        if pipeline.healthy(interval):
            sdnotify.notify("WATCHDOG=1", f"STATUS={pipeline.t.progress_line()}")


def run(args) -> int:
    from .backends import open_runner
    from .outputs import build_outputs, close_all
    from .pipeline import Inspector, Pipeline
    from .sources import open_source
    from .telemetry import PrometheusEndpoint, Telemetry

    if args.frames < 0:
        raise InputError("<command line>", "--frames", f"expected a number >= 0, got {args.frames}")
    cfg = _read_config(args)
    cam = cfg.camera(args.camera)
    model_path, model_where = _model_path(args, cfg)
    runner = open_runner(model_path, cfg.file.model.backend, cfg.file.model.threads, model_where, cfg.file.model.cuda)
    recipe = _recipe(runner, model_path, cfg)
    source = open_source(cam.source, where=cfg.path, key=f"cameras.{args.camera}.source", base_dir=cfg.base_dir)
    tcfg = cfg.file.telemetry
    telemetry = Telemetry(tcfg.window, args.camera, cfg.file.station)
    stop_event = threading.Event()  # exists before the pipeline: a signal during warm-up counts too
    pipeline = None
    outputs, endpoint, archive, watchdog_done = [], None, None, threading.Event()

    def stop(signum, _frame):
        print(f"edge-run: {signal.Signals(signum).name}: stopping; queued frames still get verdicts", file=sys.stderr)
        stop_event.set()

    def hup(_signum, _frame):
        if pipeline is not None:
            pipeline.reload_request = reloader

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, hup)
    try:
        with runner, source:
            inspector = Inspector(runner, recipe, args.camera, cfg.file.station)
            outputs = build_outputs(cfg.outputs_for(args.camera), station=cfg.file.station, camera=args.camera,
                                    telemetry=telemetry, source=source, resolve=cfg.resolve, where=cfg.path,
                                    stdout=not args.quiet)
            archive = telemetry.archive = _archive(cfg, args.camera)
            if tcfg.prometheus.enabled:  # before the first grab: a busy port must not cost that frame its verdict
                endpoint = PrometheusEndpoint(telemetry, tcfg.prometheus.host, tcfg.prometheus.port, cfg.path)
                print(f"edge-run: metrics on http://{tcfg.prometheus.host}:{endpoint.port}/metrics", file=sys.stderr)
            first = _first_frame(source)  # sizes buffers and compiles kernels on a real frame shape
            _, _, h, w = runner.input_shape
            inspector.warm_up(first.image.shape if first is not None and first.image is not None else (h, w))
            pipeline = Pipeline(source, inspector, outputs, telemetry, cam.queue, cam.drop_when_full, args.frames,
                                tcfg.progress_s, first, stop_event=stop_event,
                                reconnect=(cam.reconnect_attempts, cam.reconnect_backoff_s))
            pipeline.archive = archive
            reloader = Reloader(args, runner, model_path, telemetry, source, cfg)
            print(f"edge-run: ready: camera {args.camera} ({cam.source}), model {runner.name} "
                  f"{recipe.model_family}, detect {recipe.detect.method}", file=sys.stderr, flush=True)
            sdnotify.notify("READY=1", f"STATUS=inspecting camera {args.camera}")
            interval = sdnotify.watchdog_interval()
            if interval:
                threading.Thread(target=_watchdog, args=(pipeline, interval, watchdog_done), daemon=True).start()
            pipeline.run()
    finally:
        sdnotify.notify("STOPPING=1")
        watchdog_done.set()
        close_all(pipeline.outputs if pipeline is not None else outputs)
        if archive is not None:
            archive.close()
        if endpoint is not None:
            endpoint.close()
    if tcfg.summary:
        print(telemetry.summary(), file=sys.stderr)
    if pipeline is not None and pipeline.error is not None:
        raise pipeline.error
    if telemetry.grabbed and not telemetry.decided:  # a run that inspected nothing is no success
        reasons = ", ".join(f"{k} {v}" for k, v in telemetry.dropped.most_common())
        print(f"edge-run: no frame was inspected: {telemetry.grabbed} grabbed, all dropped ({reasons})",
              file=sys.stderr)
        return 1
    return 0


def _first_frame(source):
    from .sources import EndOfStream
    try:
        return source.grab(5.0)
    except EndOfStream:
        return None


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)

    def source_failed(e):
        print(f"edge-run: source failed: {e}", file=sys.stderr)
        return 1
    return run_cli("edge-run", lambda: run(args),
                   [(SourceError, source_failed), (BrokenPipeError, lambda e: 0)])


if __name__ == "__main__":
    sys.exit(main())
