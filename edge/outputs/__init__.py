"""Where verdicts go. Every output has emit(record: dict) and close()."""

from __future__ import annotations

from .jsonl import JsonLinesOutput

__all__ = ["JsonLinesOutput"]
