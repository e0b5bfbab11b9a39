"""The record every output gets: built once per frame, frozen, one wire format."""

import dataclasses
import json

import pytest

from edge.verdict import Record, Verdict

BASE = ("line1", "cam0", 7, 123, "part.png", "2026-12-02T10:00:00.000+00:00")


def test_the_wire_format_keeps_its_keys_and_order():
    ok = Record(*BASE, Verdict.OK, score=0.25, regions=[], latency_ms={"total": 3.0})
    assert list(ok.to_record()) == ["station", "camera", "frame_id", "timestamp", "source", "time", "verdict",
                                    "score", "regions", "latency_ms"]
    assert json.loads(json.dumps(ok.to_record()))["verdict"] == "OK"
    dropped = Record(*BASE, Verdict.DROPPED, reason="queue_full").to_record()
    assert "score" not in dropped and "regions" not in dropped and dropped["reason"] == "queue_full"
    assert "detail" not in dropped and "latency_ms" not in dropped
    nan = Record(*BASE, Verdict.NG, score=None, reason="non_finite").to_record()
    assert nan["score"] is None and nan["reason"] == "non_finite" and nan["regions"] == []


def test_a_record_cannot_change_under_the_archive_writer():
    rec = Record(*BASE, Verdict.NG, score=0.9)
    with pytest.raises(dataclasses.FrozenInstanceError):
        rec.score = 0.1  # type: ignore[misc]
    later = dataclasses.replace(rec, latency_ms={"total": 1.0})
    assert "latency_ms" not in rec.to_record() and later.to_record()["latency_ms"] == {"total": 1.0}
