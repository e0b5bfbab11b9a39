"""The pipeline in-process: its modes must not change a single verdict."""

import json

import cv2
import numpy as np
import pytest
from conftest import station_config
from test_outputs_network import broker  # noqa: F401  (the mosquitto fixture)

from edge.demo import paint_defect, texture
from edge.outputs import JsonLinesOutput
from edge.pipeline import Reload
from edge.station import Station
from edge.telemetry import STAGES


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    d = tmp_path_factory.mktemp("frames")
    for i in range(10):
        img = texture(300 + i, 512)
        if i % 3 == 1:
            paint_defect(img, i, 300 + i)
        cv2.imwrite(str(d / f"f{i}.png"), (img * 255 + 0.5).astype(np.uint8))
    return d


def _run(model, frames, preload, overlap, n=25):
    out = frames.parent / f"{frames.name}-{preload}-{overlap}-{n}.jsonl"
    cfg = station_config(frames.parent, model, f"file://{frames}?loop=1&preload={int(preload)}",
                         cam={"queue": 2}, outputs={"jsonl": {"stdout": False, "path": str(out)}})
    with Station(cfg, "cam", frames=n, overlap=overlap) as st:
        t = st.run()
    lines = [json.loads(l) for l in out.read_text().splitlines()]
    out.unlink()
    return lines, t


def test_modes_give_identical_verdicts(frames, lowpass_model):
    results = {(pre, ov): _run(lowpass_model, frames, pre, ov) for pre in (False, True) for ov in (False, True)}
    base, t = results[(False, False)]
    assert len(base) == 25 and t.grabbed == 25 and t.decided == 25
    assert [l["verdict"] for l in base] == ["NG" if int(l["source"][1]) % 3 == 1 else "OK" for l in base]
    for (pre, ov), (lines, _) in results.items():
        assert [(l["frame_id"], l["verdict"], l["score"], l["regions"]) for l in lines] == \
               [(l["frame_id"], l["verdict"], l["score"], l["regions"]) for l in base], (pre, ov)


def test_telemetry_agrees_with_each_frames_latencies(frames, lowpass_model):
    """Every stage is measured (a misspelt stage would record zeros), the rolling percentiles are
    those of the per-frame latencies each record carries, and a frame's total covers its stages."""
    lines, t = _run(lowpass_model, frames, True, True, n=12)
    pct = t.percentiles()
    assert set(pct) == {str(s) for s in STAGES}
    for stage in ("preprocess", "infer", "detect", "decide"):
        per_frame = [l["latency_ms"][stage] for l in lines]
        assert min(per_frame) > 0, stage
        assert pct[stage]["p50"] == pytest.approx(np.median(per_frame), abs=2e-3), stage  # records round to 1 us
        assert pct[stage]["max"] == pytest.approx(max(per_frame), abs=2e-3), stage
    for l in lines:
        lat = l["latency_ms"]
        assert lat["total"] >= lat["preprocess"] + lat["infer"] + lat["detect"] + lat["decide"] - 0.01, lat


def test_warm_up_compiles_the_defect_path(lowpass_model):
    """After warm-up, the first NG frame must not pay for JIT compilation of fusion or regions.
    A fresh interpreter, so no earlier test has compiled them."""
    import subprocess
    import sys
    code = (
        "from edge.backends import open_runner\n"
        "from pathlib import Path\n"
        "from testkit.lowpass_model import DEMO_RECIPE\n"
        "from edge.inspector import Inspector\n"
        "from edge.recipe import Recipe\n"
        "from edge.schema import load\n"
        "from edge.detect.dct_kernel import fuse, features_and_stats\n"
        "from edge.detect.regions import label_peaks\n"
        "assert not fuse.signatures and not label_peaks.signatures\n"
        f"with open_runner(Path({str(lowpass_model)!r})) as r:\n"
        "    Inspector(r, load(Recipe, DEMO_RECIPE, 't'), 'c', 's').warm_up((512, 512))\n"
        "print(len(features_and_stats.signatures), len(fuse.signatures), len(label_peaks.signatures))\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["1", "1", "1"], res.stdout


@pytest.mark.parametrize("overlap", [True, False])
def test_reloads_that_replace_the_outputs_lose_no_record(lowpass_model, tmp_path, overlap):
    """A free-running camera outpaces the station (frames dropped with reason queue_full) while
    reloads replace the outputs again and again, as SIGHUP with changed outputs does: every
    grabbed frame's record (verdict or DROPPED) must reach the file, exactly once."""
    import threading
    import time

    from testkit.sources import SyntheticCamera

    path = tmp_path / "verdicts.jsonl"
    cfg = station_config(tmp_path, lowpass_model, cam={"queue": 1},
                         outputs={"jsonl": {"stdout": False, "path": str(path)}})

    def replace_outputs():
        time.sleep(0.005)  # building outputs takes a while (a queued output opens its spool)
        return Reload(outputs=[JsonLinesOutput(stdout=False, path=path)])
    stop = threading.Event()
    with Station(cfg, "cam", frames=80, overlap=overlap, source=SyntheticCamera(0.001)) as st:
        def sighup():
            while not stop.wait(0.003):
                st.pipeline.request_reload(replace_outputs)
        th = threading.Thread(target=sighup)
        th.start()
        try:
            t = st.run()
        finally:
            stop.set()
            th.join()
    ids = [json.loads(line)["frame_id"] for line in path.read_text().splitlines()]
    assert t.grabbed == 80 and t.dropped["queue_full"] > 0  # the case exercises drops during reloads
    assert sorted(ids) == list(range(1, 81))


def test_a_misspelt_stage_is_refused_not_recorded_as_zero():
    from edge.telemetry import Stage, Telemetry
    t = Telemetry(16)
    t.record("OK", {Stage.DETECT: 0.002, "infer": 0.004})  # members and their names are the same keys
    with pytest.raises(KeyError):
        t.record("OK", {"detekt": 0.002})
    assert t.percentiles()["detect"]["p50"] == pytest.approx(2.0)


def test_the_ng_watch_raises_on_a_full_window_above_the_level_and_clears_below_three_quarters():
    from edge.telemetry import NgWatch
    w = NgWatch(above=0.4, window=5)
    said = [w.add(ng) for ng in (True, True, True, False, False)]  # 60 % NG, but only now a full window
    assert said[:4] == [None] * 4 and said[4].startswith("NG share of the last 5 parts is 60.0%") and w.on
    assert w.add(False) is None and w.on and w.share == pytest.approx(0.4)  # 40 %: not below 30 % yet
    assert w.add(False).startswith("NG share of the last 5 parts back to 20.0%") and not w.on
    assert [w.add(True) is None for _ in range(3)] == [True, True, False] and w.raised == 2  # 40 %, then 60 %
    off = NgWatch(above=0.0, window=5)
    assert all(off.add(True) is None for _ in range(20)) and off.share == 1.0 and not off.on


def test_a_reload_rebuilds_only_the_outputs_whose_settings_changed(lowpass_model, tmp_path, broker):  # noqa: F811
    """SIGHUP with a new verdict file: the MQTT output (its connection, its spool) runs on as it
    was, the JSON lines output is rebuilt; between them the files hold every record once."""
    import yaml

    from edge.config import load_file
    from edge.outputs.delivery import QueuedOutput
    from testkit.sources import SyntheticCamera
    first, second, path = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "station.yaml"
    (tmp_path / "parts").mkdir()
    cv2.imwrite(str(tmp_path / "parts" / "p0.png"), np.full((128, 128), 100, np.uint8))
    raw = {"station": "st", "cameras": {"cam": {"source": "file://parts"}}, "model": {"path": str(lowpass_model)},
           "outputs": {"jsonl": {"stdout": False, "path": str(first)}, "mqtt": {"enabled": True, "port": broker.port},
                       "spool": {"dir": str(tmp_path / "spool")}}}
    path.write_text(yaml.safe_dump(raw))
    with Station(load_file(path), "cam", frames=60, source=SyntheticCamera(0.01), config_path=path) as st:
        mqtt_before = next(o for o in st.pipeline.outputs if isinstance(o, QueuedOutput))
        raw["outputs"]["jsonl"]["path"] = str(second)
        path.write_text(yaml.safe_dump(raw))
        st.request_reload()
        t = st.run()
        after = list(st.pipeline.outputs)
    assert mqtt_before in after and mqtt_before.stats.disconnects == 0 and t.reloads == 1
    assert not any(getattr(o, "path", None) == first for o in after)
    ids = [json.loads(line)["frame_id"] for p in (first, second) for line in p.read_text().splitlines()]
    assert sorted(ids) == list(range(1, 61)) and second.read_text()
    assert mqtt_before.stats.delivered == 60
