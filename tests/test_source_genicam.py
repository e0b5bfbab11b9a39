"""genicam:// against the real TLSimu GenTL producer shipped in the genicam==1.5.0 wheel (no mock)."""

import json
import time

import numpy as np
import pytest
from conftest import run_cli

pytest.importorskip("harvesters")
from edge.errors import InputError  # noqa: E402
from edge.sources import open_source  # noqa: E402
from edge.sources.genicam import simulator_cti  # noqa: E402

pytestmark = [pytest.mark.camera,
              pytest.mark.skipif(simulator_cti() is None, reason="TLSimu.cti not found in the genicam wheel")]


def test_enumerate_and_select_by_serial_id_and_index():
    for device, serial in [("SN_InterfaceA_0", "SN_InterfaceA_0"), ("index:2", "SN_InterfaceB_0"),
                           ("TLSimuColor", "SN_InterfaceA_1"), ("", "SN_InterfaceA_0")]:
        src = open_source(f"genicam://{device}")
        with src:
            assert src.serial == serial


def test_unknown_device_lists_what_the_producer_sees():
    src = open_source("genicam://SN_NOPE")
    with pytest.raises(InputError, match=r"camera 'SN_NOPE' not found; the producer lists: SN_InterfaceA_0 \(TLSimuMono\)"):
        with src:
            pass


def test_free_run_grabs_copied_frames_with_ids_and_timestamps():
    src = open_source("genicam://SN_InterfaceA_0?pixel_format=Mono8&timeout_ms=2000")
    frames, snapshots = [], []
    with src:
        for _ in range(8):  # more grabs than the producer has buffers, so each buffer is reused
            f = src.grab()
            assert f is not None
            frames.append(f)
            snapshots.append(f.image.copy())
    ids = [f.frame_id for f in frames]
    assert ids == sorted(ids) and len(set(ids)) == 8
    assert all(f.image.shape == (512, 512) and f.image.dtype == np.uint8 for f in frames)
    # the device's timestamps; TLSimu's count the nanoseconds within the second, so they rise
    # and wrap at most once in the ~50 ms these eight frames take
    ts = [f.timestamp for f in frames]
    assert all(t > 0 for t in ts) and len(set(ts)) == 8
    assert sum(b < a for a, b in zip(ts, ts[1:])) <= 1
    # each frame owns its pixels: had it kept a view of the requeued buffer, later grabs would
    # have overwritten it (TLSimu's consecutive frames differ, which makes this observable)
    assert not np.array_equal(snapshots[0], snapshots[1])
    assert all(f.image.flags.owndata for f in frames)
    assert all(np.array_equal(f.image, snap) for f, snap in zip(frames, snapshots))


def test_configure_roi_size():
    src = open_source("genicam://SN_InterfaceA_0?width=256&height=128")
    with src:
        assert src.grab().image.shape == (128, 256)


def test_software_trigger_one_frame_per_grab():
    src = open_source("genicam://SN_InterfaceA_0?trigger=software&timeout_ms=2000")
    with src:
        ids = [src.grab().frame_id for _ in range(3)]
    assert ids == [0, 1, 2]


def test_no_trigger_times_out_then_a_trigger_delivers():
    src = open_source("genicam://SN_InterfaceA_0?trigger=hardware&trigger_source=Software&timeout_ms=300")
    with src:
        t0 = time.perf_counter()
        assert src.grab() is None
        assert 0.25 <= time.perf_counter() - t0 < 2.0
        src.fire_trigger()
        frame = src.grab()
        assert frame is not None and frame.frame_id == 0


def test_colour_camera_gives_bgr():
    src = open_source("genicam://TLSimuColor?pixel_format=RGB8")
    with src:
        img = src.grab().image
    assert img.ndim == 3 and img.shape[2] == 3


@pytest.mark.parametrize("uri,expected", [
    ("genicam://SN_InterfaceA_0?trigger=sometimes", "URI option trigger expected one of off, software, hardware"),
    ("genicam://SN_InterfaceA_0?cti=/no/such.cti", "GenTL producer not found: /no/such.cti"),
    ("genicam://SN_InterfaceA_0?timeout_ms=0", "URI option timeout_ms expected > 0"),
])
def test_bad_camera_uris(uri, expected):
    with pytest.raises(InputError, match=expected):
        open_source(uri)


def test_camera_rejects_a_node_value_with_a_clear_error():
    src = open_source("genicam://SN_InterfaceA_0?pixel_format=Mono99")
    with pytest.raises(InputError, match="camera rejected PixelFormat='Mono99'"):
        with src:
            pass


def test_edge_run_on_the_simulated_camera(tmp_path):
    cfg = tmp_path / "station.yaml"
    cfg.write_text("cameras:\n  line1:\n    source: genicam://SN_InterfaceA_0?trigger=software\n")
    res = run_cli(["--config", str(cfg), "--camera", "line1", "--frames", "6"])
    assert res.returncode == 0, res.stderr
    lines = [json.loads(l) for l in res.stdout.splitlines()]
    assert [l["frame_id"] for l in lines] == list(range(6))
    assert all(l["verdict"] in ("OK", "NG") and l["source"] == "SN_InterfaceA_0" and l["timestamp"] > 0 for l in lines)


def test_a_pixel_format_without_a_conversion_is_refused_at_open_naming_the_usable_ones():
    src = open_source("genicam://TLSimuColor?pixel_format=YUV411Packed")
    with pytest.raises(InputError) as err:
        with src:
            pass
    line = err.value.line()
    assert "pixel format YUV411Packed cannot be converted" in line and "RGBa8" in line and "BayerRG12" in line


def test_edge_run_refuses_an_unconvertible_format_with_exit_2(tmp_path):
    cfg = tmp_path / "station.yaml"
    cfg.write_text("station: t\ncameras:\n  cam0:\n    source: genicam://TLSimuColor?pixel_format=YUV411Packed\n")
    res = run_cli(["--config", str(cfg), "--frames", "2"], timeout=120)
    assert res.returncode == 2 and "cannot be converted" in res.stderr and "Traceback" not in res.stderr
    assert res.stdout == ""


def test_colour_camera_frames_are_converted_and_inspected():
    """TLSimuColor: whatever format it delivers, the frame reaches the station as BGR or grey."""
    src = open_source("genicam://TLSimuColor?pixel_format=RGBa8&timeout_ms=3000")
    with src:
        f = src.grab()
    assert f.error is None and f.image.dtype == np.uint8 and f.image.shape[-1] == 3 and f.image.flags.owndata


def test_a_camera_not_there_at_start_is_waited_for_then_named(tmp_path):
    """The real TLSimu producer, asked for a camera it never lists: edge-run waits with backoff
    for start_timeout_s, saying what it waits for, then exits 2 with the producer's list."""
    import time as _time

    from conftest import make_station, run_cli
    cfg = make_station(tmp_path, count=1)
    cfg.write_text(cfg.read_text().replace("source: file://parts", f"source: genicam://SN_BOOTING?cti={simulator_cti()}")
                   .replace("    source:", "    start_timeout_s: 1.5\n    source:"))
    t0 = _time.monotonic()
    res = run_cli(["--config", str(cfg)])
    assert res.returncode == 2 and 1.4 < _time.monotonic() - t0 < 30, res.stderr
    assert res.stderr.count("waiting for camera cam0 (") >= 2
    assert res.stderr.splitlines()[-1].endswith("camera 'SN_BOOTING' not found; the producer lists: "
                                                 "SN_InterfaceA_0 (TLSimuMono), SN_InterfaceA_1 (TLSimuColor), "
                                                 "SN_InterfaceB_0 (TLSimuMono), SN_InterfaceB_1 (TLSimuColor)")
