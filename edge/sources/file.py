"""Replay: an image folder, a glob, a single image or a video file, optionally looped and paced.

URI: file:///abs/dir | file:///abs/*.png | file://rel/path (relative to the config's folder)
options: loop=0|1, fps=<float, 0 = as fast as the pipeline takes them>, start=<index>,
  preload=0|1 (decode every image once at start and replay from memory, so acquisition costs what
  a camera's copy does rather than a PNG decode; limited to 2 GiB of decoded frames)
"""

from __future__ import annotations

import glob
import time
from pathlib import Path
from urllib.parse import SplitResult, unquote

import cv2

from ..errors import InputError
from ..images import read_image
from .base import EndOfStream, Frame, query_options

IMAGE_SUFFIXES = {".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff", ".pgm", ".ppm", ".webp"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm"}
OPTIONS = {"loop": (bool, False), "fps": (float, 0.0), "start": (int, 0), "preload": (bool, False)}
PRELOAD_LIMIT = 2 << 30


class FileSource:
    live = False

    def __init__(self, files: list[Path] | None, video: Path | None, loop: bool, fps: float, start: int,
                 preload: bool = False):
        self.files, self.video, self.loop, self.fps, self.start = files, video, loop, fps, start
        self.preload = preload and files is not None
        self._cache: list = []
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
            if opts["preload"]:
                raise InputError(where, key, "URI option preload works for image files, not videos")
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
        return cls(files, None, opts["loop"], opts["fps"], opts["start"], opts["preload"])

    def __enter__(self):
        self._index = self.start
        if self.video is not None:
            self._cap = cv2.VideoCapture(str(self.video))
            if not self._cap.isOpened():
                raise InputError(str(self.video), None, "cannot open the video (codec or file damaged)")
            if self.start:
                self._cap.set(cv2.CAP_PROP_POS_FRAMES, self.start)
        if self.preload:
            self._cache, total = [], 0
            for path in self.files:
                image, error = self._read(path)
                total += image.nbytes if image is not None else 0
                if total > PRELOAD_LIMIT:
                    raise InputError(str(path.parent), None, "preload: the decoded images exceed 2 GiB; replay without preload")
                self._cache.append((image, error))
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

    @staticmethod
    def _read(path: Path):
        image, reason = read_image(path)
        return image, (f"{path}: {reason}" if reason else None)

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
            name = path.name
            if self.preload:
                image, error = self._cache[self._index]
                image = image.copy() if image is not None else None  # a frame owns its pixels, as a camera's does
            else:
                image, error = self._read(path)
            self._index += 1
        t1 = time.perf_counter()
        frame = Frame(self._frame_id, image, timestamp=0, t_grab=t1, acquire_s=t1 - t0, name=name, error=error)
        self._frame_id += 1
        return frame
