"""The live view: in a real browser (headless Chromium, driven over the DevTools protocol) during
a replay run, and its security: local by default, a token for anything else, read-only."""

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest
from conftest import free_port, make_station, run_cli, wait_line, wait_until

pytest.importorskip("aiohttp")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _view_yaml(port, extra=""):
    return f"view:\n  enabled: true\n  port: {port}\n{extra}telemetry:\n  summary: false\n"


def _get(url, headers=None, method="GET"):
    req = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


async def _page_state(devtools_port, wait_s):
    """Open the page's DevTools socket, wait, and read what the page recorded in its body's
    data attributes (frames seen, first/last sequence, counters, NG seen)."""
    import aiohttp
    async with aiohttp.ClientSession() as http:
        deadline = time.monotonic() + 20
        while True:
            try:
                async with http.get(f"http://127.0.0.1:{devtools_port}/json/list") as r:
                    pages = [p for p in await r.json() if p["type"] == "page"]
                if pages:
                    break
            except aiohttp.ClientError:
                pass
            assert time.monotonic() < deadline, "Chromium did not open the page"
            await asyncio.sleep(0.2)
        await asyncio.sleep(wait_s)
        async with http.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            expr = ("JSON.stringify(Object.assign({}, document.body.dataset, {"
                    "ok: document.getElementById('n-ok').textContent, img: document.getElementById('frame').src,"
                    "link: document.getElementById('link').textContent}))")
            await ws.send_json({"id": 1, "method": "Runtime.evaluate", "params": {"expression": expr, "returnByValue": True}})
            async for msg in ws:
                data = json.loads(msg.data)
                if data.get("id") == 1:
                    return json.loads(data["result"]["result"]["value"])


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (bash scripts/install-test-services.sh installs it)")
def test_page_in_a_real_browser_shows_frames_counters_and_ng_overlays(tmp_path):
    port = free_port()
    cfg = make_station(tmp_path, count=8, defects=(2, 5), source_opts="?loop=1&fps=20",
                       extra_yaml=_view_yaml(port) + "outputs:\n  jsonl:\n    stdout: false\n")
    proc = subprocess.Popen([sys.executable, "-m", "edge.cli", "--config", str(cfg)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    browser = None
    try:
        url = wait_line(proc.stderr, r"live view on (http://\S+)").group(1)
        assert url == f"http://127.0.0.1:{port}/"
        wait_line(proc.stderr, "ready")
        devtools = free_port()
        browser = subprocess.Popen([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                                    f"--remote-debugging-port={devtools}", f"--user-data-dir={tmp_path / 'chromium'}",
                                    url], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        state = asyncio.run(_page_state(devtools, 3.0))
        status, jpeg = _get(url + state["ngThumb"])  # the newest NG part's thumbnail, as the page shows it
    finally:
        if browser is not None:
            browser.terminate()
            browser.wait(10)
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    assert state["link"] == "live"
    assert int(state["frames"]) >= 5 and int(state["lastSeq"]) > int(state["firstSeq"]), state  # the frame changes
    assert int(state["lastGrabbed"]) > int(state["firstGrabbed"]) and int(state["ok"]) > 0, state  # counters move
    assert state["ngSeen"] == "1" and int(state["ngParts"]) >= 1, state  # an NG part was shown
    assert "frame.jpg?seq=" in state["img"]
    assert status == 200
    picture = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).astype(int)
    colour = np.abs(picture[..., 2] - picture[..., 0])  # the frames are grey: colour is the heat map and boxes
    assert (colour > 80).sum() > 50, "the NG part has no overlay"


def _live_view(monkeypatch, **cfg):
    from edge.config import View
    from edge.telemetry import Telemetry
    from edge.view import LiveView
    v = LiveView(View(enabled=True, port=0, **cfg), Telemetry(16, "cam", "st"), "station.yaml")
    return v, v.start_server("station.yaml")


def _page_stats(port) -> dict:
    """What an open page is sent as its first statistics event (the view process's answer)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/events", timeout=10) as stream:
        for line in stream:
            if line.startswith(b"event: stats"):
                return json.loads(next(stream).removeprefix(b"data: "))
    raise AssertionError("no statistics event")


def test_bound_to_localhost_by_default():
    from edge.config import View
    from edge.telemetry import Telemetry
    from edge.view import LiveView
    assert View().host == "127.0.0.1" and not View().enabled
    v = LiveView(View(enabled=True, port=0), Telemetry(16, "cam", "st"), "station.yaml")
    try:
        v.start_server("station.yaml")
        assert v.address[0] == "127.0.0.1"
    finally:
        v.close()


def test_a_non_local_address_without_a_token_is_refused_at_start(tmp_path):
    cfg = make_station(tmp_path, extra_yaml=_view_yaml(0, "  host: 0.0.0.0\n"))
    res = run_cli(["--config", str(cfg)])
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "view.host: 0.0.0.0 is reachable from other machines: set view.token_env" in res.stderr
    assert res.stdout == ""  # refused before any frame was grabbed
    (tmp_path / "b").mkdir()
    res = run_cli(["--config", str(make_station(tmp_path / "b", extra_yaml=_view_yaml(0, "  token_env: NO_SUCH_VAR\n")))])
    assert res.returncode == 2 and "view.token_env: environment variable NO_SUCH_VAR is empty or unset" in res.stderr


def test_a_busy_view_port_is_refused_before_any_frame_is_grabbed(tmp_path):
    """The port is bound by the view's own process; its refusal still reaches edge-run as one line,
    exit 2, and nothing is left running or lying in shared memory."""
    import socket

    from edge.view.live import SHARED_FOLDER
    before = set(os.listdir(SHARED_FOLDER))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        res = run_cli(["--config", str(make_station(tmp_path, count=2, defects=(), extra_yaml=_view_yaml(port)))])
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert f"view.port: cannot listen on 127.0.0.1:{port}" in res.stderr and res.stdout == ""
    assert not {f for f in set(os.listdir(SHARED_FOLDER)) - before if f.startswith("edge-view-")}


def test_with_a_token_every_request_needs_it_and_nothing_changes_the_station(monkeypatch):
    monkeypatch.setenv("EDGE_VIEW_TOKEN", "s3cret-token")
    v, port = _live_view(monkeypatch, host="0.0.0.0", token_env="EDGE_VIEW_TOKEN")
    base = f"http://127.0.0.1:{port}"
    try:
        for path in ("/", "/events", "/frame.jpg", "/ng/1.jpg", "/static/view.js"):
            assert _get(base + path)[0] == 401, path
            assert _get(base + path + "?token=wrong")[0] == 401, path
        assert _get(base + "/?token=s3cret-token")[0] == 200
        assert _get(base + "/static/view.js", {"Authorization": "Bearer s3cret-token"})[0] == 200
        assert _get(base + "/frame.jpg?token=s3cret-token")[0] == 404  # no frame yet: nothing to show, nothing leaks
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            assert _get(base + "/?token=s3cret-token", method=method)[0] == 405, method
        from edge.view.server import ViewServer
        methods = {r.method for r in ViewServer(None, "127.0.0.1", 0, "station.yaml", start=False).app().router.routes()}
        assert methods <= {"GET", "HEAD"}, methods  # read-only by construction
    finally:
        v.close()


def test_offers_never_wait_and_take_at_most_max_fps(monkeypatch):
    """The analysis thread's side: a frame is taken at most max_fps times a second, the rest are
    skipped at once; the view's process draws what was taken."""
    from edge.recipe import Recipe
    v, port = _live_view(monkeypatch, max_fps=2.0)
    v._ctl.counts[v._ctl.WATCHERS] = 1  # as the view's process reports an open page
    try:
        src = np.random.default_rng(0).random((256, 256), dtype=np.float32)
        t0 = time.perf_counter()
        worst, i = 0.0, 0
        # 200 frames, and on while fewer than 2 were taken: the view's process runs at idle priority
        # and holds the slot until it has drawn, which on a busy machine may take a second or more
        while i < 200 or (v.taken < 2 and time.perf_counter() - t0 < 20):
            t = time.perf_counter()
            v.offer({"frame_id": i, "verdict": "OK", "score": 0.1, "regions": []}, src, src * 0.9, (256, 256), Recipe())
            worst = max(worst, time.perf_counter() - t)
            time.sleep(0.005)
            i += 1
        elapsed = time.perf_counter() - t0
        assert v.offered == i and 2 <= v.taken <= 2.0 * elapsed + 2
        assert worst < 0.05  # a copy at most, never an encode
        assert wait_until(lambda: v.seq == v.taken)
        status, jpeg = _get(f"http://127.0.0.1:{port}/frame.jpg")
        assert status == 200 and cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape == (256, 256, 3)
    finally:
        v.close()


def test_a_rare_ng_part_is_not_skipped_for_an_ok_frame_taken_moments_ago(monkeypatch):
    """NG parts have their own max_fps and their own slot: one that comes right after an OK frame
    was taken is taken too, even while that OK frame is still being drawn."""
    from edge.recipe import Recipe
    v, port = _live_view(monkeypatch, max_fps=1.0)
    v._ctl.counts[v._ctl.WATCHERS] = 1  # as the view's process reports an open page
    try:
        src = np.random.default_rng(3).random((64, 64), dtype=np.float32)
        for i, verdict in enumerate(("OK", "OK", "NG", "NG")):
            v.offer({"frame_id": i, "verdict": verdict, "score": 0.5, "regions": []}, src, src * 0.5, (64, 64), Recipe())
        assert v.taken == 2  # the first OK and the first NG; the second of each within the second is skipped
        assert wait_until(lambda: v.ng_seq == 1)
        assert [m["frame_id"] for m in _page_stats(port)["ng_parts"]] == [2]
    finally:
        v.close()


def test_with_no_page_open_only_ng_parts_are_taken(monkeypatch):
    """Nobody looking: OK frames cost nothing (not even a copy), NG parts are still kept so the
    page shows the last rejects when it opens; an open page brings OK frames back."""
    from edge.recipe import Recipe
    v, port = _live_view(monkeypatch, max_fps=50.0)
    try:
        src = np.random.default_rng(2).random((64, 64), dtype=np.float32)

        def offer(verdict, i):
            v.offer({"frame_id": i, "verdict": verdict, "score": 0.5, "regions": []}, src, src * 0.5, (64, 64), Recipe())
            time.sleep(0.05)
        for i in range(5):
            offer("OK", i)
        assert v.offered == 5 and v.taken == 0 and _get(f"http://127.0.0.1:{port}/frame.jpg")[0] == 404
        offer("NG", 5)
        assert v.taken == 1
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/events", timeout=5):
            assert wait_until(lambda: v.watchers == 1)  # the view's process counts the open page
            assert wait_until(lambda: v.seq == 1)  # the NG part is drawn: the OK slot is free
            offer("OK", 6)
            assert v.taken == 2
        i = 7
        while v.watchers and i < 200:  # the server notices the page has gone at its next write
            offer("OK", i)
            i += 1
        assert v.watchers == 0
        taken = v.taken
        offer("OK", i)
        assert v.taken == taken
    finally:
        v.close()


def test_the_view_process_outlives_signals_meant_for_the_group_and_ends_with_its_socket(monkeypatch):
    """Ctrl-C, a hang-up or systemd's SIGTERM reach every process of the group: the view's must
    not die of them (edge-run would report it stopped, or print a KeyboardInterrupt traceback);
    it ends when edge-run closes the socket."""
    v, port = _live_view(monkeypatch)
    try:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            v._proc.send_signal(sig)
        time.sleep(0.3)
        assert v._proc.poll() is None and _get(f"http://127.0.0.1:{port}/static/view.js")[0] == 200
        proc = v._proc
    finally:
        v.close()
    assert proc.poll() == 0


def test_the_view_process_ends_with_edge_run_and_a_dead_one_stops_nothing(monkeypatch):
    """Closing the view ends its process and removes the shared files; a view process that dies
    leaves inspection's offers returning at once."""
    from edge.recipe import Recipe
    v, port = _live_view(monkeypatch, max_fps=50.0)
    src = np.random.default_rng(4).random((64, 64), dtype=np.float32)
    v.offer({"frame_id": 1, "verdict": "NG", "score": 0.5, "regions": []}, src, src, (64, 64), Recipe())
    assert wait_until(lambda: v.ng_seq == 1)
    shared = [s.path for s in v._slots.values() if s.path] + [v._ctl.path]
    assert shared and all(os.path.exists(p) for p in shared)
    v._proc.kill()
    assert wait_until(lambda: v._proc.poll() is not None)
    time.sleep(0.1)
    t = time.perf_counter()
    for i in range(100):
        v.offer({"frame_id": i, "verdict": "NG", "score": 0.5, "regions": []}, src, src, (64, 64), Recipe())
    assert time.perf_counter() - t < 0.5 and v.watchers == 0
    v.close()
    assert not any(os.path.exists(p) for p in shared)


def test_a_reload_to_another_frame_size_gets_new_slots(monkeypatch):
    """A reload may change the model-space size: the slot is made again at the new size (the old
    file removed) and the view's process maps the new one."""
    from edge.recipe import Recipe
    v, port = _live_view(monkeypatch, max_fps=50.0)
    try:
        paths = []
        for i, side in enumerate((64, 96)):
            src = np.random.default_rng(i).random((side, side), dtype=np.float32)
            v.offer({"frame_id": i, "verdict": "NG", "score": 0.5, "regions": []}, src, src * 0.5, (side, side), Recipe())
            assert wait_until(lambda: v.ng_seq == i + 1)  # noqa: B023  (called here, in this iteration)
            paths.append(v._slots["NG"].path)
            status, jpeg = _get(f"http://127.0.0.1:{port}/frame.jpg")
            assert status == 200 and cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape[:2] == (side, side)
            time.sleep(0.03)
        assert paths[0] != paths[1] and not os.path.exists(paths[0]) and os.path.exists(paths[1])
    finally:
        v.close()


def test_full_shared_memory_costs_the_view_a_frame_not_the_station_a_crash(monkeypatch, caplog):
    """/dev/shm full (a container's 64 MB default and big frames): the space is reserved when the
    slot is made, so the failure is an OSError there, not a SIGBUS on a later write. Simulated by
    refusing the reservation (no small tmpfs can be mounted here)."""
    import errno

    from edge.recipe import Recipe
    v, _ = _live_view(monkeypatch, max_fps=50.0)
    try:
        def full(fd, offset, size):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        monkeypatch.setattr(os, "posix_fallocate", full)
        src = np.zeros((64, 64), np.float32)
        for i in range(3):
            v.offer({"frame_id": i, "verdict": "NG", "score": 0.5, "regions": []}, src, src, (64, 64), Recipe())
            time.sleep(0.03)
        assert v.taken == 0 and v._slots["NG"].path is None  # nothing taken, no half-made file left
        assert caplog.text.count("no room for a 64x64 frame") == 1, caplog.text
    finally:
        v.close()


def test_ng_parts_name_their_archived_files_when_the_archive_is_on(tmp_path):
    from edge.archive import Archive
    from edge.config import View
    from edge.recipe import Recipe
    from edge.telemetry import Telemetry
    from edge.view import LiveView
    archive = Archive(tmp_path / "archive", 10 * 2**20)
    v = LiveView(View(enabled=True, port=0), Telemetry(16, "cam", "st"), "station.yaml", archive)
    try:
        record = {"frame_id": 7, "camera": "cam", "verdict": "NG", "score": 0.9, "time": "2026-11-23T10:00:00.000+00:00",
                  "regions": [{"x": 10, "y": 10, "w": 20, "h": 20, "area": 400, "peak": 1.0}]}
        src = np.random.default_rng(1).random((128, 128), dtype=np.float32)
        archive.submit(record, src, src * 0.5, (1.0, 1.0))
        v.start_server("station.yaml")
        v.offer(record, src, src * 0.5, (128, 128), Recipe())
        assert wait_until(lambda: v.ng_seq == 1 and archive.written == 1)
        shown = _page_stats(v.port)["ng_parts"][0]["archived"]
        assert shown in {str(p) for p in (tmp_path / "archive").iterdir()}
    finally:
        v.close()
        archive.close()


def test_a_rebound_host_name_is_refused_and_every_answer_carries_the_security_headers(monkeypatch):
    """DNS rebinding: a page of evil.example whose name now resolves to 127.0.0.1 sends Host:
    evil.example. Without a token the view answers only loopback names."""
    v, port = _live_view(monkeypatch)
    base = f"http://127.0.0.1:{port}"
    try:
        assert _get(base + "/", {"Host": f"evil.example:{port}"})[0] == 421
        assert _get(base + "/frame.jpg", {"Host": "evil.example"})[0] == 421
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"):
            assert _get(base + "/", {"Host": host})[0] == 200, host
        with urllib.request.urlopen(base + "/", timeout=5) as r:
            assert "default-src 'self'" in r.headers["Content-Security-Policy"]
            assert r.headers["X-Content-Type-Options"] == "nosniff" and r.headers["Referrer-Policy"] == "no-referrer"
    finally:
        v.close()


def test_a_non_ascii_token_is_a_401_not_a_500(monkeypatch):
    monkeypatch.setenv("EDGE_VIEW_TOKEN", "s3cret-token")
    v, port = _live_view(monkeypatch, host="0.0.0.0", token_env="EDGE_VIEW_TOKEN")
    try:
        assert _get(f"http://127.0.0.1:{port}/?token=%C3%A9t%C3%A9")[0] == 401
        assert _get(f"http://127.0.0.1:{port}/", {"Host": "evil.example"})[0] == 401  # the token protects it
    finally:
        v.close()


def test_the_view_process_gets_no_secrets_and_stale_shared_files_are_swept(monkeypatch, tmp_path):
    from edge.view.live import SHARED_FOLDER
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = os.path.join(SHARED_FOLDER, f"edge-view-{dead.pid}-NG-test")
    open(stale, "wb").close()
    monkeypatch.setenv("EDGE_MQTT_PASSWORD", "do-not-leak")
    v, _ = _live_view(monkeypatch)
    try:
        assert not os.path.exists(stale), "the file of a dead edge-run was left in shared memory"
        with open(f"/proc/{v._proc.pid}/environ", "rb") as f:
            env = f.read()
        assert b"do-not-leak" not in env and b"EDGE_MQTT_PASSWORD" not in env
        with open(f"/proc/{v._proc.pid}/cmdline", "rb") as f:
            assert f.read().split(b"\0")[1] == b"-I"
    finally:
        v.close()
