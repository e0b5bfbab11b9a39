"""NG archive: NG frames with a heat-map overlay, written by a background thread.

Never blocks inspection: the analysis thread hands over copies through a bounded queue and a full
queue only counts a skip. The folder is capped in size (oldest parts removed first). A write that
fails (disk full, read-only) is counted and inspection carries on: the archive degrades to
counting, and tries again with the next NG frame.

Each archived part is three files sharing a stem <UTC time>_<camera>_<frame id>:
  .png (the frame as the model saw it, 8-bit), _overlay.png (heat map of the residual, defect
  regions boxed), .json (the verdict record).
"""

from __future__ import annotations

import json
import queue
import threading
from pathlib import Path

import cv2
import numpy as np

from .overlay import anomaly_map, overlay


class Archive:
    def __init__(self, folder: Path, max_bytes: int, queue_size: int = 16):
        self.folder, self.max_bytes = folder, max_bytes
        self.written = 0
        self.failed = 0    # writes that failed (disk full, permissions)
        self.skipped = 0   # NG frames not archived because the writer was behind
        self.removed = 0   # files removed to keep under the cap
        self.last_error = ""
        folder.mkdir(parents=True, exist_ok=True)
        self._files = sorted((p for p in folder.iterdir() if p.is_file()), key=lambda p: p.stat().st_mtime)
        self._sizes = {p: p.stat().st_size for p in self._files}
        self.total = sum(self._sizes.values())
        self._q: queue.Queue = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._run, name="archive", daemon=True)
        self._thread.start()

    def submit(self, record: dict, src: np.ndarray, rec: np.ndarray, scale: tuple[float, float],
               probability: bool = False):
        """Called by the analysis thread for an NG frame; copies, never waits. `scale`: frame
        pixels per model-space pixel (y, x); `probability`: rec is a defect probability map."""
        try:
            self._q.put_nowait((record, src.copy(), rec.copy(), scale, probability))
        except queue.Full:
            self.skipped += 1

    def close(self, timeout: float = 10.0):
        self._q.put(None)
        self._thread.join(timeout)

    def _run(self):
        while True:
            item = self._q.get()
            if item is None:
                return
            try:
                self._write(*item)
                self.written += 1
            except OSError as e:  # disk full, read-only file system, folder removed
                self.failed += 1
                self.last_error = f"{e.strerror or e}"

    @staticmethod
    def stem(record: dict) -> str:
        """The file-name stem an NG part is archived under."""
        return f"{record['time'].replace(':', '').replace('-', '')[:18]}_{record['camera']}_{record['frame_id']}"

    def _write(self, record: dict, src: np.ndarray, rec: np.ndarray, scale, probability: bool):
        stem = self.stem(record)
        frame_hw = (src.shape[0] * scale[0], src.shape[1] * scale[1])
        gray, over = overlay(src, anomaly_map(src, rec, probability), record.get("regions", []), frame_hw,
                             probability=probability)
        paths = [self.folder / f"{stem}.png", self.folder / f"{stem}_overlay.png", self.folder / f"{stem}.json"]
        blobs = []
        for img in (gray, over):
            ok, buf = cv2.imencode(".png", img)
            if not ok:
                raise OSError("PNG encoding failed")
            blobs.append(buf.tobytes())
        blobs.append(json.dumps(record).encode())
        self._make_room(sum(len(b) for b in blobs))
        written = []
        try:
            for path, blob in zip(paths, blobs):
                path.write_bytes(blob)
                written.append(path)
        except OSError:
            for path in written + [paths[len(written)]]:  # no half-archived part
                path.unlink(missing_ok=True)
            raise
        for path, blob in zip(paths, blobs):
            self._files.append(path)
            self._sizes[path] = len(blob)
            self.total += len(blob)

    def _make_room(self, incoming: int):
        while self._files and self.total + incoming > self.max_bytes:
            oldest = self._files.pop(0)
            self.total -= self._sizes.pop(oldest, 0)
            oldest.unlink(missing_ok=True)
            self.removed += 1
