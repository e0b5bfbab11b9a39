"""Replay: an image folder, a glob, a single image or a video file, optionally looped and paced.

URI: file:///abs/dir | file:///abs/*.png | file://rel/path (relative to the config's folder)
options: loop=0|1, fps=<float, 0 = as fast as the pipeline takes them>, start=<index>
"""

from __future__ import annotations

import glob
import time
from pathlib import Path
from urllib.parse import SplitResult, unquote

import cv2
import numpy as np

from ..errors import InputError
from .base import EndOfStream, Frame, query_options

IMAGE_SUFFIXES = {".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff", ".pgm", ".ppm", ".webp"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm"}
OPTIONS = {"loop": (bool, False), "fps": (float, 0.0), "start": (int, 0)}


class FileSource:
    live = False

    def __init__(self, files: list[Path] | None, video: Path | None, loop: bool, fps: float, start: int):
        self.files, self.video, self.loop, self.fps, self.start = files, video, loop, fps, start
        self._cap = None
        self._index = 0
        self._frame_id = 0
        self._next_due = 0.0

    @classmethod
    def from_uri(cls, parts: SplitResult, where: str, key: str, base_dir: Path) -> "FileSource":
        opts = query_options(parts.query, where, key, OPTIONS)
        if opts["fps"] < 0 or opts["start"] < 0:
            raise InputError(where, key, "URI options fps and start expected >= 0")
        text = unquote(parts.netloc + parts.path)
        if not text:
            raise InputError(where, key, "expected a path after file://, got nothing")
        path = Path(text) if Path(text).is_absolute() else base_dir / text
        if path.suffix.lower() in VIDEO_SUFFIXES:
            if not path.is_file():
                raise InputError(where, key, f"video file not found: {path}")
            return cls(None, path, opts["loop"], opts["fps"], opts["start"])
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif glob.has_magic(str(path)):
            files = sorted(Path(p) for p in glob.glob(str(path)) if Path(p).suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            files = [path]
        else:
            raise InputError(where, key, f"no such file or folder: {path}")
        if not files:
            raise InputError(where, key, f"expected image files ({', '.join(sorted(IMAGE_SUFFIXES))}) at {path}, found none")
        if opts["start"] >= len(files):
            raise InputError(where, key, f"URI option start={opts['start']} is past the {len(files)} images")
        return cls(files, None, opts["loop"], opts["fps"], opts["start"])

    def __enter__(self):
        self._index = self.start
        if self.video is not None:
            self._cap = cv2.VideoCapture(str(self.video))
            if not self._cap.isOpened():
                raise InputError(str(self.video), None, "cannot open the video (codec or file damaged)")
            if self.start:
                self._cap.set(cv2.CAP_PROP_POS_FRAMES, self.start)
        self._next_due = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def _pace(self):
        if self.fps > 0:
            now = time.perf_counter()
            if self._next_due > now:
                time.sleep(self._next_due - now)
            self._next_due = max(self._next_due, now) + 1.0 / self.fps

    def grab(self, timeout_s: float = 1.0) -> Frame:
        self._pace()
        t0 = time.perf_counter()
        if self._cap is not None:
            ok, image = self._cap.read()
            if not ok:
                if not self.loop or self._frame_id == 0:
                    raise EndOfStream
                self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, image = self._cap.read()
                if not ok:
                    raise EndOfStream
            name = f"{self.video.name}#{int(self._cap.get(cv2.CAP_PROP_POS_FRAMES)) - 1}"
            error = None
        else:
            if self._index >= len(self.files):
                if not self.loop:
                    raise EndOfStream
                self._index = 0
            path = self.files[self._index]
            self._index += 1
            name = path.name
            image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            error = None if image is not None else f"unreadable image file {path}"
            if image is not None and image.ndim == 3 and image.shape[2] == 4:
                image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        t1 = time.perf_counter()
        frame = Frame(self._frame_id, image, timestamp=0, t_grab=t1, acquire_s=t1 - t0, name=name, error=error)
        self._frame_id += 1
        return frame


def write_images(folder: Path, images: list[np.ndarray], prefix: str = "frame") -> list[Path]:
    """Helper for demos and tests: write numbered PNGs."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, img in enumerate(images):
        p = folder / f"{prefix}_{i:04d}.png"
        cv2.imwrite(str(p), img)
        paths.append(p)
    return paths
