"""Frame sources chosen by URI scheme. A new camera kind is a new module registered here."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from ..errors import InputError
from .base import EndOfStream, Frame, Source

SCHEMES = ("file", "genicam")


def open_source(uri: str, *, where: str = "<command line>", key: str = "source", base_dir: Path | None = None) -> Source:
    """Validate `uri` and return an (unopened) source; errors name `where` and `key`."""
    parts = urlsplit(uri)
    if parts.scheme == "file":
        from .file import FileSource
        return FileSource.from_uri(parts, where, key, base_dir or Path.cwd())
    if parts.scheme == "genicam":
        from .genicam import GenICamSource
        return GenICamSource.from_uri(parts, where, key, base_dir or Path.cwd())
    raise InputError(where, key, f"expected a URI starting with {' or '.join(s + '://' for s in SCHEMES)}, got '{uri}'")


__all__ = ["open_source", "Frame", "Source", "EndOfStream", "SCHEMES"]
