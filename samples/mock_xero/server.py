"""The mock Xero's TLS server: HTTP/1.1 with keep-alive on loopback, a thread per connection."""

from __future__ import annotations

import contextlib
import gzip
import logging
import socket
import ssl
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .app import Exchange, MockApp
from .auth import MockConfig
from .tls import make_certificates
from .wire import MockRequest

log = logging.getLogger(__name__)

GZIP_MIN = 512  # like most gateways, compress only what is worth it


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: MockApp, context: ssl.SSLContext) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, _Handler)
        self.app = app
        self.context = context
        self.open: set[socket.socket] = set()
        self.open_lock = threading.Lock()

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake runs here, on the connection's own thread, not in the accept loop.
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            log.debug("TLS handshake with %s failed: %s", client_address, e)
            return
        with self.open_lock:
            self.open.add(tls)
        try:
            _Handler(tls, client_address, self)
        finally:
            with self.open_lock:
                self.open.discard(tls)
            _close(tls)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-answer (a proxy stopped by Ctrl+C) is routine, not a
        # traceback on the terminal of whoever runs the mock or the demo.
        log.debug("connection from %s ended with an error", client_address, exc_info=True)

    def close_connections(self) -> None:
        """Hang up on every client: a stopped Xero must not keep answering on kept-alive sockets."""
        with self.open_lock:
            for sock in list(self.open):
                _close(sock)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already gone
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Buffered: head and body leave in one write (the base class flushes after each request).
    # Two small writes meet Nagle and delayed ACK and cost 40 ms per exchange.
    wbufsize = 64 * 1024
    server: _Server

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.client_address[0], *args)

    def _serve(self) -> None:
        path, _, query = self.path.partition("?")
        headers = {k.lower(): v for k, v in self.headers.items()}
        req = MockRequest(
            method=self.command,
            path=path,
            query=query,
            headers=headers,
            body=read_body(self),
            scheme=headers.get("x-forwarded-proto", "https"),
        )
        resp = self.server.app.handle(req)
        body = resp.body
        out_headers = list(resp.headers)
        if len(body) >= GZIP_MIN and "gzip" in headers.get("accept-encoding", ""):
            body = gzip.compress(body, mtime=0)
            out_headers += [("Content-Encoding", "gzip"), ("Vary", "Accept-Encoding")]
        self.send_response(resp.status)
        for name, value in out_headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.server.app.record(Exchange(req, resp.status, out_headers, body))


def read_body(handler: BaseHTTPRequestHandler) -> bytes:
    """A request's body, chunked or with a length (the trailer of a chunked body is skipped)."""
    if "chunked" in (handler.headers.get("Transfer-Encoding") or "").lower():
        chunks: list[bytes] = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                handler.rfile.readline()
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


class MockXero:
    """A Xero on loopback: ``MockXero().start()`` in a thread, or ``serve_forever()``."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        config: MockConfig | None = None,
        cert_dir: str | Path | None = None,
    ) -> None:
        self.app = MockApp(config)
        self._tmp = None if cert_dir else tempfile.TemporaryDirectory(prefix="mock-xero-")
        directory = Path(cert_dir) if cert_dir else Path(self._tmp.name)  # type: ignore[union-attr]
        self.ca_path, cert, key = make_certificates(directory)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        context.set_alpn_protocols(["http/1.1"])
        self._server = _Server((host, port), self.app, context)
        address = self._server.server_address
        self.host, self.port = str(address[0]), int(address[1])
        self._thread: threading.Thread | None = None
        self._stopped = False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    def start(self) -> MockXero:
        self._thread = threading.Thread(target=self._server.serve_forever, name="mock-xero", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._thread:
            self._server.shutdown()
        self._server.server_close()
        self._server.close_connections()
        if self._thread:
            self._thread.join(5)
        if self._tmp:
            self._tmp.cleanup()

    def __enter__(self) -> MockXero:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
