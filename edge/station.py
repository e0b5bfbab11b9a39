"""One station (one camera), assembled from a config in one place: model runner, recipe, source,
inspector, outputs, NG archive, telemetry, metrics endpoint, warm-up and the pipeline, plus the
SIGHUP reload. edge-run, the benchmarks and the tests all build stations here.

    with Station(cfg, "cam0") as st:      # opens everything, grabs the first frame, warms up
        st.run()                           # until the source ends or st.stop_event is set
    # every part closed, outputs drained (or spooled)

The order of opening is part of the contract: the metrics port is bound and the outputs are
running before the first frame is grabbed, so a start-up failure never costs a grabbed frame its
verdict; the first frame sizes the buffers and compiles the kernels, then is inspected like any
other.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from contextlib import ExitStack
from pathlib import Path

from .config import StationConfig
from .errors import CameraAbsent, InputError, SourceError
from .inspector import Inspector
from .pipeline import Pipeline, Reload
from .recipe import Recipe, load_recipe
from .sources import EndOfStream
from .telemetry import Telemetry

log = logging.getLogger(__name__)


def read_config(path: str | None) -> StationConfig:
    """The station YAML, or the embedded default station (demo replay, packaged model)."""
    from . import config as cfgmod

    if path:
        return cfgmod.load_file(path)
    import yaml

    from . import demo
    return cfgmod.parse(yaml.safe_load(demo.default_config_yaml()), "<embedded default>", Path.cwd())


def model_path(cfg: StationConfig, override: str | Path | None = None) -> tuple[Path, str]:
    """(model file, where it was named) from --engine, else the config, else the packaged demo."""
    if override:
        path = Path(override)
        if not path.is_file():
            raise InputError("<command line>", "--engine", f"model file not found: {path}")
        return path, "<command line>"
    if cfg.file.model.path:
        return cfg.resolve(cfg.file.model.path), cfg.path
    from . import demo
    return demo.MODEL, cfg.path


def open_archive(cfg: StationConfig, camera: str):
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


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class Station:
    def __init__(self, cfg: StationConfig, camera: str = "cam0", *, model: str | Path | None = None,
                 frames: int = 0, stdout: bool = True, stop_event: threading.Event | None = None,
                 overlap: bool = True, config_path: str | None = None, runner=None, source=None):
        """`config_path`: the file SIGHUP re-reads (None: the embedded default); `frames`: stop
        after that many grabbed frames (0 = until the source ends); `stop_event` may be set from
        a signal handler before or during the run. `runner` and `source` replace the config's
        model and camera (test doubles for what cannot run here: a GPU runner, a faulty camera);
        the station opens and closes them like its own."""
        self.cfg, self.camera, self.frames, self.stdout, self.overlap = cfg, camera, frames, stdout, overlap
        self.config_path = config_path
        self.stop_event = stop_event or threading.Event()
        self.cam = cfg.camera(camera)
        self.model_path, self.model_where = model_path(cfg, model) if runner is None else (Path(runner.name), "<runner>")
        self._given_runner, self._given_source = runner, source
        t = cfg.file.telemetry
        self.telemetry = Telemetry(t.window, camera, cfg.file.station, t.ng_alarm, t.ng_window)
        self.runner = self.recipe = self.source = self.inspector = self.pipeline = None
        self.archive = self.endpoint = self.view = None
        self._outputs_cfg = cfg.outputs_for(camera)
        self._stack = ExitStack()

    # -- assembly ---------------------------------------------------------------------------------
    def __enter__(self) -> "Station":
        try:
            self._open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def _open(self):
        from .backends import open_runner
        from .sources import open_source
        from .telemetry import PrometheusEndpoint

        cfg, m, tcfg = self.cfg, self.cfg.file.model, self.cfg.file.telemetry
        self.runner = self._given_runner or open_runner(self.model_path, m.backend, m.threads, self.model_where,
                                                        m.cuda, m.precision)
        self.recipe = self._recipe(cfg)
        self.source = self._given_source or open_source(self.cam.source, where=cfg.path,
                                                        key=f"cameras.{self.camera}.source", base_dir=cfg.base_dir)
        self._stack.enter_context(self.runner)  # allocates (GPU buffers, engine) once, freed last
        self._enter_source()
        self.inspector = Inspector(self.runner, self.recipe, self.camera, cfg.file.station)
        outputs = self._build_outputs(cfg)
        self._stack.callback(lambda: self._close_outputs(outputs))
        self.archive = self.telemetry.archive = open_archive(cfg, self.camera)
        if self.archive is not None:
            self._stack.callback(self.archive.close)
        if tcfg.prometheus.enabled:  # before the first grab: a busy port must not cost that frame its verdict
            self.endpoint = PrometheusEndpoint(self.telemetry, tcfg.prometheus.host, tcfg.prometheus.port, cfg.path)
            self._stack.callback(self.endpoint.close)
            log.info("metrics on http://%s:%d/metrics", tcfg.prometheus.host, self.endpoint.port)
        if cfg.file.view.enabled:  # bound before the first grab too
            from .view import LiveView
            self.view = LiveView(cfg.file.view, self.telemetry, cfg.path, self.archive)
            self._stack.callback(self.view.close)
            port = self.view.start_server(cfg.path)
            log.info("live view on http://%s:%d/%s", _url_host(cfg.file.view.host), port,
                     "?token=<token>" if self.view.token else "")
        first = self._first_frame()  # sizes buffers and compiles kernels on a real frame shape
        _, _, h, w = self.runner.input_shape
        self.inspector.warm_up(first.image.shape if first is not None and first.image is not None
                               else (h or 128, w or 128))  # a whole-frame model without a frame yet
        self.pipeline = Pipeline(self.source, self.inspector, outputs, self.telemetry, queue_size=self.cam.queue,
                                 drop_when_full=self.cam.drop_when_full, max_frames=self.frames,
                                 progress_s=tcfg.progress_s, first=first, overlap=self.overlap,
                                 stop_event=self.stop_event, archive=self.archive, view=self.view,
                                 reconnect=(self.cam.reconnect_attempts, self.cam.reconnect_backoff_s))

    def _enter_source(self):
        """Open the camera, waiting for it at start: a PoE camera powered up with the plant takes
        longer to appear than edge-run. Retried with backoff for cameras.<name>.start_timeout_s,
        systemd told to extend its start timeout and what we wait for; then the last error ends
        the run (exit 2 for a camera never listed, 1 for one that fails to open)."""
        from . import sdnotify
        deadline = time.monotonic() + self.cam.start_timeout_s
        delay, attempt = 0.5, 0
        while True:
            attempt += 1
            try:
                self._stack.enter_context(self.source)
                if attempt > 1:
                    log.info("camera %s opened after %d attempts", self.camera, attempt)
                return
            except (SourceError, CameraAbsent) as e:
                left = deadline - time.monotonic()
                if left <= 0 or self.stop_event.is_set():
                    raise
                wait = min(delay, left)
                text = e.line() if isinstance(e, InputError) else str(e)
                log.warning("waiting for camera %s (%s); attempt %d in %.1f s, giving up in %.0f s",
                            self.camera, text, attempt + 1, wait, left)
                sdnotify.notify(f"STATUS=waiting for camera {self.camera}",
                                f"EXTEND_TIMEOUT_USEC={int((wait + 60) * 1e6)}")
                if self.stop_event.wait(wait):
                    raise
                delay = min(delay * 2, 10.0)

    def _recipe(self, cfg: StationConfig) -> Recipe:
        return load_recipe(self.runner.metadata, str(self.model_path), cfg.overrides, cfg.path)

    def _build_outputs(self, cfg: StationConfig, running: tuple | None = None) -> list:
        from .outputs import build_outputs
        return build_outputs(cfg.outputs_for(self.camera), station=cfg.file.station, camera=self.camera,
                             telemetry=self.telemetry, source=self.source, resolve=cfg.resolve, where=cfg.path,
                             stdout=self.stdout, running=running)

    def _close_outputs(self, built: list):
        from .outputs import close_all
        # the pipeline's current outputs (a reload may have replaced the ones built at start)
        close_all(self.pipeline.outputs if self.pipeline is not None else built)

    def _first_frame(self):
        try:
            return self.source.grab(5.0)
        except EndOfStream:
            return None

    def close(self):
        self._stack.close()

    # -- running ----------------------------------------------------------------------------------
    def run(self) -> Telemetry:
        """Inspect until the source ends, `frames` are done or stop_event is set; raises what
        ended the run abnormally (a lost camera, a failed model) after every verdict went out."""
        self.pipeline.run()
        if self.pipeline.error is not None:
            raise self.pipeline.error
        return self.telemetry

    def request_reload(self):
        """Thread-safe (SIGHUP): re-read the config file and apply detect/decision and changed
        outputs between two frames."""
        if self.pipeline is not None:
            self.pipeline.request_reload(self._reload)

    def _reload(self) -> Reload | None:
        """On the emitting thread. A config that fails validation changes nothing; preprocessing,
        the model and the cameras need a restart (they shape buffers and threads already running)."""
        try:
            cfg = read_config(self.config_path)
            cfg.camera(self.camera)
            recipe = self._recipe(cfg)
        except InputError as e:
            log.warning("reload refused, keeping the running config: %s", e.line())
            return None
        running = self.inspector.recipe
        if cfg.file.model.path != self.cfg.file.model.path:
            log.warning("reload: model.path changed; restart edge-run to load another model (the running model stays)")
        if recipe.preprocess != running.preprocess:
            log.warning("reload: preprocess changed; restart edge-run to apply it")
            recipe = dataclasses.replace(recipe, preprocess=running.preprocess)
        outputs = None
        if cfg.outputs_for(self.camera) != self._outputs_cfg:  # unchanged outputs keep running
            try:
                outputs = self._build_outputs(cfg, (self._outputs_cfg, list(self.pipeline.outputs)))
                self._outputs_cfg = cfg.outputs_for(self.camera)
            except InputError as e:
                log.warning("reload: outputs refused, keeping the running ones: %s", e.line())
        self.telemetry.reloads += 1
        log.info("reloaded %s: detect %s, min_area %s", cfg.path, recipe.detect.method, recipe.decision.min_area)
        return Reload(recipe=recipe, outputs=outputs)

    def healthy(self, within_s: float) -> bool:
        return self.pipeline is not None and self.pipeline.healthy(within_s)
