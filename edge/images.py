"""Image files and image folders, shared by the station (file replay), training, evaluation,
calibration and the engine gate. No torch: build-engine and edge-eval import it on stations.

- read_image: a file as a camera would deliver it (8 or 16 bit, grey or colour), or a one-line
  reason why it cannot be read.
- list_images, good_images, test_items, load_mask: folders of good images and MVTec-style trees
  (train/good, test/<type>, ground_truth/<type>/<name>_mask.png).
- split_holdout: the one hold-out policy (every k-th file by name), used by edge-train for
  threshold calibration and by build-engine for its accuracy gate.

PNGs are checked before OpenCV sees them: every chunk's CRC, the IDAT zlib stream and its
length, and only the chunks that shape pixels are passed on (IHDR, PLTE, tRNS, IDAT, IEND).
Otherwise libpng prints its own lines on stderr ("libpng error: IDAT: invalid stored block
lengths", "libpng warning: iCCP: known incorrect sRGB profile") beside ours, from C code that
Python cannot silence. Colour profiles and text chunks do not matter to inspection.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .errors import InputError

IMAGE_SUFFIXES = {".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff", ".pgm", ".ppm", ".webp"}

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_KEEP = {b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND"}
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # PNG colour type -> samples per pixel


def _clean_png(data: bytes) -> bytes:
    """The PNG with only pixel-shaping chunks; ValueError saying what is wrong."""
    pos, kept, idat, ihdr = 8, [PNG_SIGNATURE], [], None
    while True:
        if pos + 8 > len(data):
            raise ValueError("truncated PNG (no IEND chunk)")
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        end = pos + 12 + length
        if end > len(data):
            raise ValueError(f"truncated PNG (chunk {kind.decode('latin-1')} cut short)")
        body = data[pos + 8:pos + 8 + length]
        if zlib.crc32(kind + body) != struct.unpack(">I", data[end - 4:end])[0]:
            raise ValueError(f"corrupt PNG (chunk {kind.decode('latin-1')} fails its CRC)")
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        if kind in _KEEP:
            kept.append(data[pos:end])
        pos = end
        if kind == b"IEND":
            break
    if ihdr is None or not idat:
        raise ValueError("corrupt PNG (no IHDR or IDAT)")
    width, height, depth, colour, _, _, interlace = ihdr
    try:
        raw = zlib.decompress(b"".join(idat))
    except zlib.error as e:
        raise ValueError(f"corrupt PNG (pixel data: {e})") from None
    if interlace == 0 and colour in _CHANNELS:
        expected = height * (1 + (width * _CHANNELS[colour] * depth + 7) // 8)
        if len(raw) != expected:
            raise ValueError(f"corrupt PNG (pixel data is {len(raw)} bytes, {width}x{height} needs {expected})")
    return b"".join(kept)


def read_image(path: Path) -> tuple[np.ndarray | None, str | None]:
    """(image as stored: uint8/uint16, HxW or HxWx3 BGR, alpha dropped; None) or (None, reason);
    the reason does not name the file (callers do)."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        return None, f"unreadable image ({e.strerror})"
    if data.startswith(PNG_SIGNATURE):
        try:
            data = _clean_png(data)
        except ValueError as e:
            return None, f"unreadable image: {e}"
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        return None, "unreadable image (expected PNG, JPEG, BMP or TIFF)"
    if image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image, None


def read_image_or_fail(path: Path) -> np.ndarray:
    """read_image for tools: an unreadable file is an InputError naming it."""
    image, reason = read_image(path)
    if image is None:
        raise InputError(str(path), None, reason or "unreadable")
    return image


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def good_images(root: Path) -> list[Path]:
    """train/good of an MVTec tree, or the folder itself."""
    root = Path(root)
    folder = root / "train" / "good" if (root / "train" / "good").is_dir() else root
    if not folder.is_dir():
        raise InputError(str(root), None, "expected a folder of good images or an MVTec tree with train/good")
    files = list_images(folder)
    if not files:
        raise InputError(str(folder), None, f"expected good images ({', '.join(sorted(IMAGE_SUFFIXES))}), found none")
    return files


def split_holdout(files: list[Path], fraction: float) -> tuple[list[Path], list[Path]]:
    """(kept, held out): every k-th file by name is held out, k = round(1 / fraction) >= 2.
    Deterministic, spread over the whole folder (names often follow capture order), and the same
    for every tool that holds images out."""
    if fraction <= 0:
        return list(files), []
    k = max(2, round(1 / fraction))
    return [f for i, f in enumerate(files) if i % k != k - 1], [f for i, f in enumerate(files) if i % k == k - 1]


def evenly(files: list[Path], n: int) -> list[Path]:
    """n files spread evenly over the list (all of them when there are fewer)."""
    if n >= len(files):
        return list(files)
    return [files[i] for i in np.linspace(0, len(files) - 1, n).round().astype(int)]


@dataclass
class TestItem:
    path: Path
    kind: str                 # "good" or the defect type
    mask: Path | None         # ground-truth mask, None for good images (and types without masks)


def test_items(root: Path) -> list[TestItem]:
    root = Path(root)
    test = root / "test"
    if not test.is_dir():
        raise InputError(str(root), None, "expected an MVTec-style tree with test/<type>/ (and ground_truth/<type>/)")
    items = []
    for kind_dir in sorted(p for p in test.iterdir() if p.is_dir()):
        for img in list_images(kind_dir):
            mask = None
            if kind_dir.name != "good":
                candidate = root / "ground_truth" / kind_dir.name / f"{img.stem}_mask.png"
                mask = candidate if candidate.is_file() else None
            items.append(TestItem(img, kind_dir.name, mask))
    if not items:
        raise InputError(str(test), None, "no test images found")
    return items


def load_mask(path: Path | None, shape: tuple[int, int]) -> np.ndarray:
    """A ground-truth mask as 0/1 uint8 at `shape` (all zeros for None)."""
    if path is None:
        return np.zeros(shape, np.uint8)
    m, reason = read_image(path)
    if m is None:
        raise InputError(str(path), None, f"mask: {reason}")
    if m.ndim == 3:
        m = cv2.cvtColor(m, cv2.COLOR_BGR2GRAY)
    if m.dtype != np.uint8:
        m = (m // 256).astype(np.uint8)  # 16-bit masks: the high byte
    if m.shape != shape:
        m = cv2.resize(m, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
    return (m >= 128).astype(np.uint8)


MASK_SUFFIX = "_mask"


def reject_items(folder: Path) -> list[tuple[Path, Path | None]]:
    """A rejects folder: confirmed defective images, each with an optional pixel mask beside it
    named <stem>_mask.png (white = defect). Without a mask an image is an image-level label.
    Returns (image, mask or None) pairs; refuses an empty folder and masks without an image."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(str(folder), None, "expected a folder of rejects (defective images, optional <name>_mask.png)")
    files = list_images(folder)
    images = [p for p in files if not p.stem.endswith(MASK_SUFFIX)]
    stems = {p.stem for p in images}
    orphans = [p.name for p in files if p.stem.endswith(MASK_SUFFIX) and p.stem[:-len(MASK_SUFFIX)] not in stems]
    if orphans:
        raise InputError(str(folder / orphans[0]), None, "expected an image beside this mask "
                                                          f"({orphans[0][:-len(MASK_SUFFIX) - 4]}.*), found none")
    if not images:
        raise InputError(str(folder), None, f"expected defective images ({', '.join(sorted(IMAGE_SUFFIXES))}), "
                                            "found none")
    out = []
    for p in images:
        mask = folder / f"{p.stem}{MASK_SUFFIX}.png"
        out.append((p, mask if mask.is_file() else None))
    return out
