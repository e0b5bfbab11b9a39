"""The live view's HTTP side (aiohttp, in its own thread and event loop of the view's process,
edge.view.worker): the static page, an SSE stream of frame and statistics events, the latest
frame and the NG thumbnails as JPEG.

Read-only by construction: only GET routes exist (anything else is 405), and none of them
reaches the station's settings. With a token, every request must carry it (?token=, an
`Authorization: Bearer` header, or the cookie the page sets); without, 401.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import threading
from pathlib import Path

from ..errors import InputError

STATIC = Path(__file__).parent / "static"
# Every answer: no script or frame from elsewhere, no MIME sniffing, no referrer to other sites
SECURITY_HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; "
                                               "base-uri 'none'; frame-ancestors 'none'",
                    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"}
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "[::1]", "::1"}
KEEPALIVE_S = 5.0  # a comment line to each page this often when nothing else is sent: a closed page is noticed


class ViewServer:
    def __init__(self, view, host: str, port: int, where: str, start: bool = True):
        """view: edge.view.worker.Shown (edge.view.live checked that aiohttp is installed).
        start=False: only for looking at the routes."""
        self.view, self.host = view, host
        self._pages: set[asyncio.Event] = set()  # one per connected page, set when a new frame is ready
        self._closing = False
        self._stats: tuple[dict, bytes] | None = None  # (view.stats, its event): encoded once for all pages
        if not start:
            return
        self.loop = asyncio.new_event_loop()
        ready, result = threading.Event(), {}

        def run():
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
        view.listeners.append(lambda: self.loop.call_soon_threadsafe(self._wake_all))

    def _wake_all(self):
        for page in self._pages:
            page.set()

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
        # bytes: compare_digest refuses str with non-ASCII characters (a TypeError, a 500)
        return bool(given) and hmac.compare_digest(given.encode(), token.encode())

    def _host_allowed(self, request) -> bool:
        """Without a token the view listens on a loopback address only, and answers only requests
        addressed to one: a web page elsewhere whose name an attacker points at 127.0.0.1 (DNS
        rebinding) sends its own Host and is refused."""
        if self.view.token is not None:
            return True  # the token, which such a page cannot know, protects it
        host = request.headers.get("Host", "")
        name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
        return name in LOOPBACK_NAMES or name == self.host

    async def _auth(self, request, handler):
        from aiohttp import web

        if not self._host_allowed(request):
            return web.Response(status=421, text="421: this view answers only requests addressed to the local "
                                                 "machine (localhost, 127.0.0.1, [::1])\n", headers=SECURITY_HEADERS)
        if not self._authorised(request):
            return web.Response(status=401, text="401: a token is required (open the page with ?token=...)\n",
                                headers=SECURITY_HEADERS)
        response = await handler(request)
        if not response.prepared:
            response.headers.update(SECURITY_HEADERS)
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
        return web.Response(body=jpeg, content_type="image/jpeg", headers={"Cache-Control": "no-store"})  # numbers restart with the process

    async def _events(self, request):
        """Server-sent events: `frame` when a new frame is ready, `stats` every 0.5 s (while a
        page is connected; without one the view takes no OK frames and no statistics)."""
        from aiohttp import web

        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store", **SECURITY_HEADERS})
        await resp.prepare(request)
        wake = asyncio.Event()
        self._pages.add(wake)
        self.view.page_opened()
        sent_seq, sent_stats = -1, None
        try:
            while not self._closing:
                wake.clear()  # before reading: a frame that lands after this wakes the wait below
                latest = self.view.latest()
                if latest is not None and latest[0]["seq"] != sent_seq:
                    sent_seq = latest[0]["seq"]
                    await resp.write(_event("frame", latest[0]))
                stats = self._stats_event()
                if stats is not None and stats is not sent_stats:
                    sent_stats = stats
                    await resp.write(stats)
                try:
                    await asyncio.wait_for(wake.wait(), KEEPALIVE_S)
                except asyncio.TimeoutError:
                    await resp.write(b": keepalive\n\n")
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._pages.discard(wake)
            self.view.page_closed()
        return resp

    def _stats_event(self) -> bytes | None:
        """The latest statistics (edge-run sends them twice a second while a page is open) as an
        event, encoded once however many pages are open."""
        stats = self.view.stats
        if stats is None:
            return None
        if self._stats is None or self._stats[0] is not stats:
            self._stats = (stats, _event("stats", stats))
        return self._stats[1]

    def close(self):
        async def stop():
            self._closing = True  # the event streams end now, not at their next keep-alive
            self._wake_all()
            await self._runner.cleanup()
        try:
            asyncio.run_coroutine_threadsafe(stop(), self.loop).result(5)
        except Exception:
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


def _event(kind: str, data: dict) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'), default=float)}\n\n".encode()
