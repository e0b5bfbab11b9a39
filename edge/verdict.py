"""The three verdicts a frame can get (no dependencies: outputs and the view import it)."""

from __future__ import annotations

from enum import Enum


class Verdict(str, Enum):
    """What a frame gets. A str, so records, JSON and the PLC mappings read it as "OK", "NG" or
    "DROPPED" (json.dumps writes the value)."""
    OK = "OK"
    NG = "NG"
    DROPPED = "DROPPED"

    def __str__(self) -> str:
        return self.value
