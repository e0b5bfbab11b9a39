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


def overlay(src: np.ndarray, rec: np.ndarray, regions: list[dict], scale: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(frame as 8-bit gray, BGR overlay): JET heat map of |src - rec| blended over the frame."""
    lo, hi = float(src.min()), float(src.max())
    gray = ((src - lo) * (255.0 / (hi - lo if hi > lo else 1.0))).astype(np.uint8)
    residual = np.abs(src - rec)
    top = float(np.percentile(residual, 99.9)) or 1.0
    heat = cv2.applyColorMap(np.clip(residual * (255.0 / top), 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
    out = cv2.addWeighted(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR), 0.55, heat, 0.45, 0)
    fy, fx = scale  # regions are in frame pixels; the overlay is in model-space pixels
    for r in regions:
        x0, y0 = int(r["x"] / fx), int(r["y"] / fy)
        cv2.rectangle(out, (x0, y0), (x0 + max(1, int(r["w"] / fx)), y0 + max(1, int(r["h"] / fy))), (255, 255, 255), 1)
    return gray, out


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

    def submit(self, record: dict, src: np.ndarray, rec: np.ndarray, scale: tuple[float, float]):
        """Called by the analysis thread for an NG frame; copies, never waits."""
        try:
            self._q.put_nowait((record, src.copy(), rec.copy(), scale))
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

    def _write(self, record: dict, src: np.ndarray, rec: np.ndarray, scale):
        stem = f"{record['time'].replace(':', '').replace('-', '')[:18]}_{record['camera']}_{record['frame_id']}"
        gray, over = overlay(src, rec, record.get("regions", []), scale)
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
