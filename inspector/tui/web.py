"""`xero-inspector web`: the terminal browser served as a web page, by textual-serve (the Textual
project's own server): each page that opens runs `xero-inspector tui` in a process of its own and
draws it with xterm.js. No second UI: what the page shows is the app.

The page's process gets its replay token through the environment, never on its command line
(which any user of the machine can read in ps).
"""

from __future__ import annotations

import asyncio
import os
import shlex
import sys
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from textual_serve.server import Server

from inspector.commands.export import TOKEN_VARIABLE
from inspector.proxy.spawn import is_loopback


def command(db: str, tui_args: Sequence[str] = ()) -> str:
    """The shell line textual-serve runs per page: this interpreter, so the page runs the same install."""
    return shlex.join([sys.executable, "-m", "inspector", "tui", "--db", db, *tui_args])


def url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def trusted(host_header: str, origin: str | None, port: int, loopback: bool) -> bool:
    """Whether a request may drive a page. Any web site the developer visits can open a socket to
    127.0.0.1 (browsers let a page open a WebSocket anywhere) and would then read the recording and
    replay with their token; or reach it under its own name pointed at 127.0.0.1 (DNS rebinding). So
    on loopback the Host and a page's Origin must be loopback names (the page may be opened as
    localhost and talk to 127.0.0.1); beyond it, the Origin must be the Host."""
    host = host_header.lower()
    source = urlsplit(origin).netloc.lower() if origin is not None else None
    if loopback:
        names = {f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"}
        return host in names and (source is None or source in names)
    return source is None or source == host


class PageServer(Server):
    """textual-serve's server, with two changes: only pages served from this address may drive it
    (``trusted``), and its Ctrl+C ends the pages' apps at once: by itself it waits for each open
    page's socket to give up (24 s, measured with one page open)."""

    def __init__(self, *args: Any, loopback: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.loopback = loopback
        self._pages: set[asyncio.Task[Any]] = set()

    def _refuse(self, request: web.Request) -> None:
        if not trusted(request.headers.get("Host", ""), request.headers.get("Origin"), self.port, self.loopback):
            raise web.HTTPForbidden(text="xero-inspector: this page is served to its own address only\n")

    async def handle_index(self, request: web.Request) -> web.StreamResponse:
        self._refuse(request)
        # The page's socket goes back to the address it was opened at (localhost, or this host's
        # name beyond loopback), not to the address listened on (127.0.0.1, 0.0.0.0). Set just
        # before the page is made from it, with nothing awaited between.
        self.public_url = f"{request.scheme}://{request.host}"
        return await super().handle_index(request)

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        self._refuse(request)
        task = asyncio.current_task()
        assert task is not None
        self._pages.add(task)
        try:
            return await super().handle_websocket(request)
        finally:
            self._pages.discard(task)

    async def on_shutdown(self, app: web.Application) -> None:
        # Cancelled, each page's handler tells its app to quit and closes the socket (the page says
        # "Session ended").
        pages = list(self._pages)
        for task in pages:
            task.cancel()
        await asyncio.gather(*pages, return_exceptions=True)


def serve(db: str, host: str, port: int, tui_args: Sequence[str] = (), token: str | None = None) -> None:
    """Serve until Ctrl+C. A page that closes ends its own app process."""
    if token:
        os.environ[TOKEN_VARIABLE] = token
    title = f"xero-inspector: {db}"
    page = PageServer(
        command(db, tui_args), host=host, port=port, title=title, public_url=url(host, port), loopback=is_loopback(host)
    )
    page.serve()
