"""edge-run: inspect frames from one camera and emit a verdict per frame.

    edge-run [--config station.yaml] [--camera cam0] [--engine model.onnx] [--frames N]

Without --config it runs the embedded default: camera cam0 replaying generated demo frames
through the packaged demo model with ONNX Runtime on the CPU.
Exit codes: 0 done, 1 runtime failure (camera lost, ...), 2 bad input (config, model, URI).
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
import sys
from pathlib import Path

from .errors import InputError, SourceError


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="edge-run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", help="station YAML (default: the embedded demo station)")
    ap.add_argument("--camera", default="cam0", help="camera name from the config (default cam0)")
    ap.add_argument("--engine", help="model to run (.onnx); overrides the config's model.path")
    ap.add_argument("--frames", type=int, default=0, help="stop after N grabbed frames (default: until the "
                                                          "source ends or SIGINT/SIGTERM)")
    ap.add_argument("--quiet", action="store_true", help="no JSON lines on stdout (the summary still goes to stderr)")
    return ap


def _load(args):
    import yaml

    from . import config as cfgmod
    from .backends import open_runner
    from .recipe import effective_recipe, recipe_from_metadata

    if args.frames < 0:
        raise InputError("<command line>", "--frames", f"expected a number >= 0, got {args.frames}")
    if args.config:
        cfg = cfgmod.load_file(args.config)
    else:
        from . import demo
        cfg = cfgmod.parse(yaml.safe_load(demo.default_config_yaml()), "<embedded default>", Path.cwd())
    cam = cfg.camera(args.camera)
    if args.engine:
        model_path, where = Path(args.engine), "<command line>"
        if not model_path.is_file():
            raise InputError("<command line>", "--engine", f"model file not found: {model_path}")
    elif cfg.file.model.path:
        model_path, where = cfg.resolve(cfg.file.model.path), cfg.path
    else:
        from . import demo
        model_path, where = demo.MODEL, cfg.path
    runner = open_runner(model_path, cfg.file.model.backend, cfg.file.model.threads, where)
    recipe = effective_recipe(recipe_from_metadata(runner.metadata, str(model_path)), cfg.overrides,
                              str(model_path), cfg.path)
    return cfg, cam, runner, recipe


def _first_frame(source):
    from .sources import EndOfStream
    try:
        return source.grab(5.0)
    except EndOfStream:
        return None


def run(args) -> int:
    from .outputs import JsonLinesOutput
    from .pipeline import Inspector, Pipeline
    from .sources import open_source
    from .telemetry import PrometheusEndpoint, Telemetry

    cfg, cam, runner, recipe = _load(args)
    source = open_source(cam.source, where=cfg.path, key=f"cameras.{args.camera}.source", base_dir=cfg.base_dir)
    tcfg = cfg.file.telemetry
    telemetry = Telemetry(tcfg.window, args.camera, cfg.file.station)
    jcfg = cfg.file.outputs.jsonl
    outputs = [JsonLinesOutput(stdout=jcfg.stdout and not args.quiet,
                               path=cfg.resolve(jcfg.path) if jcfg.path else None)]
    endpoint = None
    pipeline = None
    stop_event = threading.Event()  # exists before the pipeline: a signal during warm-up counts too

    def stop(signum, _frame):
        print(f"edge-run: {signal.Signals(signum).name}: stopping; queued frames still get verdicts", file=sys.stderr)
        stop_event.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        with runner, source:
            inspector = Inspector(runner, recipe, args.camera, cfg.file.station)
            first = _first_frame(source)  # sizes buffers and compiles kernels on a real frame shape
            _, _, h, w = runner.input_shape
            inspector.warm_up(first.image.shape if first is not None and first.image is not None else (h, w))
            pipeline = Pipeline(source, inspector, outputs, telemetry, cam.queue, cam.drop_when_full,
                                args.frames, tcfg.progress_s, first, stop_event=stop_event)
            if tcfg.prometheus.enabled:
                endpoint = PrometheusEndpoint(telemetry, tcfg.prometheus.host, tcfg.prometheus.port)
                print(f"edge-run: metrics on http://{tcfg.prometheus.host}:{endpoint.port}/metrics", file=sys.stderr)
            print(f"edge-run: ready: camera {args.camera} ({cam.source}), model {runner.name} "
                  f"{recipe.model_family}, detect {recipe.detect.method}", file=sys.stderr)
            pipeline.run()
    finally:
        for out in outputs:
            out.close()
        if endpoint is not None:
            endpoint.close()
    if tcfg.summary:
        print(telemetry.summary(), file=sys.stderr)
    if pipeline is not None and pipeline.error is not None:
        raise pipeline.error
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except InputError as e:
        print(f"edge-run: error: {e.line()}", file=sys.stderr)
        return 2
    except SourceError as e:
        print(f"edge-run: source failed: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
    except Exception as e:  # a bug or an unforeseen failure: one line, the traceback only on request
        if os.environ.get("EDGE_DEBUG"):
            raise
        print(f"edge-run: failed: {type(e).__name__}: {e} (set EDGE_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
