"""The three verdicts a frame can get and the record each frame gets (no dependencies: outputs
and the view import it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Verdict(str, Enum):
    """What a frame gets. A str, so records, JSON and the PLC mappings read it as "OK", "NG" or
    "DROPPED" (json.dumps writes the value)."""
    OK = "OK"
    NG = "NG"
    DROPPED = "DROPPED"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Record:
    """One frame's verdict as every output gets it. Built once per frame (frozen: the archive's
    writer thread and the outputs never see it change); `to_record()` is the one wire format
    (JSON lines, MQTT payloads, the spool), read back by key after a restart."""
    station: str
    camera: str
    frame_id: int
    timestamp: float | None
    source: str
    time: str  # UTC, ISO 8601 with milliseconds
    verdict: Verdict
    score: float | None = None  # OK/NG only; None when non-finite
    regions: list = field(default_factory=list)
    reason: str | None = None  # why DROPPED (or why an NG has no score)
    detail: str | None = None
    latency_ms: dict[str, float] | None = None

    def to_record(self) -> dict:
        d: dict = {"station": self.station, "camera": self.camera, "frame_id": self.frame_id,
                   "timestamp": self.timestamp, "source": self.source, "time": self.time, "verdict": self.verdict}
        if self.verdict is not Verdict.DROPPED:
            d.update(score=self.score, regions=self.regions)
        if self.reason is not None:
            d["reason"] = self.reason
        if self.detail is not None:
            d["detail"] = self.detail
        if self.latency_ms is not None:
            d["latency_ms"] = self.latency_ms
        return d
