"""The live view's HTTP side (aiohttp, in its own thread and event loop): the static page, an
SSE stream of frame and statistics events, the latest frame and the NG thumbnails as JPEG.

Read-only by construction: only GET routes exist (anything else is 405), and none of them
reaches the station's settings. With a token, every request must carry it (?token=, an
`Authorization: Bearer` header, or the cookie the page sets); without, 401.
"""

from __future__ import annotations

import asyncio
import hmac
import importlib.util
import json
import threading
from pathlib import Path

from ..errors import InputError

STATIC = Path(__file__).parent / "static"
STATS_EVERY_S = 0.5


class ViewServer:
    def __init__(self, view, host: str, port: int, where: str):
        if importlib.util.find_spec("aiohttp") is None:
            raise InputError(where, "view.enabled", "needs aiohttp: pip install 'edge-inspect[view]'")
        self.view, self.host = view, host
        self.loop = asyncio.new_event_loop()
        self._new_frame: asyncio.Condition | None = None  # every connected page waits on it
        ready, result = threading.Event(), {}

        def run():
            from .live import lower_priority
            lower_priority()
            asyncio.set_event_loop(self.loop)
            try:
                result["port"] = self.loop.run_until_complete(self._start(port))
            except Exception as e:  # reported on the starting thread
                result["error"] = e
            ready.set()
            if "port" in result:
                self.loop.run_forever()
        self._thread = threading.Thread(target=run, name="view-server", daemon=True)
        self._thread.start()
        ready.wait(30)
        e = result.get("error")
        if isinstance(e, OSError):
            raise InputError(where, "view.port", f"cannot listen on {host}:{port}: {e.strerror}")
        if e is not None or "port" not in result:
            raise RuntimeError(f"the live view did not start: {e!r}")
        self.port = result["port"]
        view.listeners.append(lambda: asyncio.run_coroutine_threadsafe(self._wake_all(), self.loop))

    async def _wake_all(self):
        async with self._new_frame:
            self._new_frame.notify_all()

    def app(self):
        from aiohttp import web

        @web.middleware
        async def auth(request, handler):
            return await self._auth(request, handler)

        app = web.Application(middlewares=[auth])
        app.router.add_get("/", self._index)
        app.router.add_get("/events", self._events)
        app.router.add_get("/frame.jpg", self._frame)
        app.router.add_get("/ng/{seq}.jpg", self._ng)
        app.router.add_static("/static/", STATIC, show_index=False)
        return app

    async def _start(self, port: int) -> int:
        from aiohttp import web

        self._new_frame = asyncio.Condition()
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, port)
        await site.start()
        self.address = site._server.sockets[0].getsockname()[:2]  # (host, port) actually bound
        return self.address[1]

    # -- requests ---------------------------------------------------------------------------------
    def _authorised(self, request) -> bool:
        token = self.view.token
        if token is None:
            return True
        given = (request.query.get("token") or request.cookies.get("edge_view_token")
                 or request.headers.get("Authorization", "").removeprefix("Bearer ").strip())
        return bool(given) and hmac.compare_digest(given, token)

    async def _auth(self, request, handler):
        from aiohttp import web

        if not self._authorised(request):
            return web.Response(status=401, text="401: a token is required (open the page with ?token=...)\n")
        response = await handler(request)
        if self.view.token is not None and request.query.get("token") and not response.prepared:
            response.set_cookie("edge_view_token", request.query["token"], httponly=True, samesite="Strict")
        return response

    async def _index(self, request):
        from aiohttp import web
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def _frame(self, request):
        from aiohttp import web
        latest = self.view.latest()
        if latest is None:
            return web.Response(status=404, text="no frame yet\n")
        return web.Response(body=latest[1], content_type="image/jpeg", headers={"Cache-Control": "no-store"})

    async def _ng(self, request):
        from aiohttp import web
        try:
            jpeg = self.view.ng_jpeg(int(request.match_info["seq"]))
        except ValueError:
            jpeg = None
        if jpeg is None:
            return web.Response(status=404, text="no such NG part (only the last ones are kept)\n")
        return web.Response(body=jpeg, content_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})

    async def _events(self, request):
        """Server-sent events: `frame` when a new frame is ready, `stats` every 0.5 s."""
        from aiohttp import web

        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
        await resp.prepare(request)
        sent_seq, last_stats = -1, 0.0
        try:
            while True:
                latest = self.view.latest()
                if latest is not None and latest[0]["seq"] != sent_seq:
                    sent_seq = latest[0]["seq"]
                    await resp.write(_event("frame", latest[0]))
                now = self.loop.time()
                if now - last_stats >= STATS_EVERY_S:
                    last_stats = now
                    stats = self.view.telemetry.snapshot()
                    stats["ng_parts"] = self.view.ng_parts()
                    stats["view"] = {"offered": self.view.offered, "shown": self.view.seq, "max_fps": self.view.cfg.max_fps}
                    await resp.write(_event("stats", stats))
                async with self._new_frame:
                    try:
                        await asyncio.wait_for(self._new_frame.wait_for(lambda: self._seq() != sent_seq), STATS_EVERY_S)
                    except asyncio.TimeoutError:
                        pass
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return resp

    def _seq(self) -> int:
        latest = self.view.latest()
        return -1 if latest is None else latest[0]["seq"]

    def close(self):
        async def stop():
            await self._runner.cleanup()
        try:
            asyncio.run_coroutine_threadsafe(stop(), self.loop).result(5)
        except Exception:
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


def _event(kind: str, data: dict) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'), default=float)}\n\n".encode()
