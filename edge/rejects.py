"""edge-rejects: turn the NG parts an operator confirms into training data.

    edge-rejects list ARCHIVE                        NG parts in a station's archive, newest last
    edge-rejects confirm ARCHIVE STEM... --to DIR    copy confirmed parts into a rejects folder
        [--mask regions]                             with a mask of the station's boxes (when the
                                                     operator confirms they cover the defect)
    edge-rejects confirm ARCHIVE --all --to DIR      every archived part

The archive (edge/archive.py) keeps each NG part as <stem>.png (the frame as the model saw it),
<stem>_overlay.png and <stem>.json (the verdict record, with its regions). A rejects folder is
what edge-train's `rejects:` reads (edge.images.reject_items): <stem>.png, and <stem>_mask.png
when a mask is known. Without --mask the part is an image-level label: "this part is defective",
which is what an operator's confirmation says. Exit codes: 0 done, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np

from .errors import InputError, run_cli
from .images import MASK_SUFFIX, read_image_or_fail

log = logging.getLogger("edge.rejects")  # __main__ under python -m


def archived_parts(archive: Path) -> list[Path]:
    """The verdict records of an archive's parts (one <stem>.json each), oldest first by name."""
    if not archive.is_dir():
        raise InputError(str(archive), None, "expected the station's NG archive folder (archive.folder)")
    return sorted(p for p in archive.glob("*.json") if (archive / f"{p.stem}.png").is_file())


def _record(path: Path) -> dict:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise InputError(str(path), None, f"expected a verdict record (JSON): {e}") from None
    if not isinstance(record, dict):
        raise InputError(str(path), None, "expected a verdict record (a JSON object)")
    return record


def region_mask(shape: tuple[int, int], regions: list) -> np.ndarray:
    """A 0/255 mask of the record's region boxes (frame pixels: the archived image's own for a
    native-scale model, the kind that learns from rejects)."""
    mask = np.zeros(shape, np.uint8)
    for r in regions:
        x, y, w, h = (int(r[k]) for k in ("x", "y", "w", "h"))
        mask[max(0, y):y + h, max(0, x):x + w] = 255
    return mask


def confirm(archive: Path, stems: list[str], dest: Path, mask: str | None) -> list[Path]:
    """Copy the named parts into `dest` (made if missing); returns the images written."""
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for stem in stems:
        image, record_path = archive / f"{stem}.png", archive / f"{stem}.json"
        if not image.is_file() or not record_path.is_file():
            raise InputError(str(archive), None, f"expected an archived part {stem} ({stem}.png and {stem}.json), "
                                                 "found none: `edge-rejects list` shows the parts")
        record = _record(record_path)
        if mask == "regions":
            regions = record.get("regions") or []
            if not regions:
                raise InputError(str(record_path), "regions", "expected defect regions for --mask regions, found none; "
                                                              "confirm it without a mask (an image-level label)")
            shape = read_image_or_fail(image).shape[:2]
            cv2.imwrite(str(dest / f"{stem}{MASK_SUFFIX}.png"), region_mask(shape, regions))
        shutil.copyfile(image, dest / image.name)
        written.append(dest / image.name)
    return written


def _main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="edge-rejects", description="confirmed NG parts -> a rejects folder for edge-train")
    sub = ap.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("list", help="the NG parts in an archive")
    ls.add_argument("archive", type=Path)
    ls.add_argument("--to", type=Path, help="mark the parts already in this rejects folder")
    cf = sub.add_parser("confirm", help="copy confirmed NG parts into a rejects folder")
    cf.add_argument("archive", type=Path)
    cf.add_argument("stems", nargs="*", help="the parts' stems as `list` prints them")
    cf.add_argument("--all", action="store_true", help="every part in the archive")
    cf.add_argument("--to", type=Path, required=True, help="the rejects folder (edge-train's `rejects:`)")
    cf.add_argument("--mask", choices=("regions",), help="also write a mask of the station's region boxes")
    args = ap.parse_args(argv)
    parts = archived_parts(args.archive)
    if args.command == "list":
        for p in parts:
            r = _record(p)
            have = " confirmed" if args.to and (args.to / f"{p.stem}.png").is_file() else ""
            print(f"{p.stem}  score {r.get('score', float('nan')):.6g}  regions {len(r.get('regions') or [])}{have}")
        log.info("%d NG parts in %s", len(parts), args.archive)
        return 0
    if args.all == bool(args.stems):
        raise InputError("<command line>", "confirm", "expected part stems or --all (not both)")
    written = confirm(args.archive, [p.stem for p in parts] if args.all else args.stems, args.to, args.mask)
    log.info("%d parts in %s %s", len(written), args.to, "with region masks" if args.mask else "as image-level labels")
    return 0


def main(argv=None) -> int:
    return run_cli("edge-rejects", lambda: _main(argv))


if __name__ == "__main__":
    sys.exit(main())
