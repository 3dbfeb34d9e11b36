"""An upstream that answers in every shape a proxy must pass through untouched, and notes
exactly which bytes it received and sent: gzip, deflate and br bodies, chunked transfers,
binary PDFs, 10 MB bodies, empty answers (204, a zero length, HEAD).

The shape of each exchange is decided by its sequence number, so the client and this server
agree on it without a side channel; what was sent is recorded here, not recomputed, so a
test compares the client's bytes with what really left the server.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import re
import ssl
import threading
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import brotli  # mitmproxy depends on it, so it is always there beside mitmproxy
from inspector.samples.mock_xero.server import read_body
from inspector.samples.mock_xero.tls import make_certificates

BIG = 10 * 1024 * 1024

# (name, method, path on a Xero host, response content type, response encoding, chunked response).
# post-gzip sends its request gzipped, post-chunked sends its request chunked. Every path
# carries the exchange's number as six digits: it is how the server and the store are matched
# to the client, even for a flow stored without its query (ingest's fallback drops it).
SHAPES: tuple[tuple[str, str, str, str, str, bool], ...] = (
    ("xml", "GET", "/practicemanager/3.0/job.api/get/J{seq:06d}", "text/xml; charset=utf-8", "", False),
    ("xml-gzip", "GET", "/practicemanager/3.0/client.api/get/C{seq:06d}", "text/xml; charset=utf-8", "gzip", False),
    ("json-br", "GET", "/api.xro/2.0/Invoices/{seq:06d}", "application/json; charset=utf-8", "br", False),
    (
        "xml-deflate",
        "GET",
        "/practicemanager/3.0/staff.api/get/S{seq:06d}",
        "text/xml; charset=utf-8",
        "deflate",
        False,
    ),
    ("xml-chunked", "GET", "/practicemanager/3.0/job.api/tasks/J{seq:06d}", "text/xml; charset=utf-8", "", True),
    ("gzip-chunked", "GET", "/practicemanager/3.0/time.api/job/J{seq:06d}", "text/xml; charset=utf-8", "gzip", True),
    ("pdf", "GET", "/api.xro/2.0/Invoices/{seq:06d}", "application/pdf", "", False),
    ("put-xml", "POST", "/api.xro/2.0/Invoices/{seq:06d}", "text/xml; charset=utf-8", "", False),
    ("post-gzip", "POST", "/api.xro/2.0/Contacts/{seq:06d}", "text/xml; charset=utf-8", "", False),
    ("post-chunked", "POST", "/api.xro/2.0/Items/{seq:06d}", "text/xml; charset=utf-8", "", False),
    ("empty-204", "DELETE", "/api.xro/2.0/Invoices/{seq:06d}/Attachments/a.pdf", "", "", False),
    ("empty-200", "POST", "/api.xro/2.0/Invoices/{seq:06d}/Email", "", "", False),
    ("head", "HEAD", "/api.xro/2.0/Invoices/{seq:06d}", "application/pdf", "", False),
    ("xml-error", "GET", "/practicemanager/3.0/client.api/get/C{seq:06d}", "text/xml; charset=utf-8", "", False),
)
BIG_DOWNLOAD = ("big-download", "GET", "/api.xro/2.0/Invoices/{seq:06d}/Attachments/scan.pdf", "application/pdf", "")
BIG_UPLOAD = ("big-upload", "PUT", "/api.xro/2.0/Invoices/{seq:06d}/Attachments/scan.pdf", "text/xml", "")


@dataclass(frozen=True)
class Shape:
    name: str
    method: str
    path: str
    content_type: str
    encoding: str
    chunked: bool = False

    @property
    def sends_body(self) -> bool:
        return self.method in ("PUT", "POST")


def shape(seq: int) -> Shape:
    """Every 100 exchanges: one 10 MB download and one 10 MB upload; the rest cycle the shapes."""
    if seq % 100 == 37:
        name, method, path, ctype, enc = BIG_DOWNLOAD
        return Shape(name, method, path.format(seq=seq), ctype, enc)
    if seq % 100 == 73:
        name, method, path, ctype, enc = BIG_UPLOAD
        return Shape(name, method, path.format(seq=seq), ctype, enc)
    name, method, path, ctype, enc, chunked = SHAPES[seq % len(SHAPES)]
    return Shape(name, method, path.format(seq=seq), ctype, enc, chunked)


def seq_of(url_or_path: str) -> int:
    """The exchange's number, from the last six digits in its path."""
    return int(re.findall(r"\d{6}", url_or_path.split("?", 1)[0])[-1])


def xml_body(rng: random.Random, seq: int, error: bool = False) -> bytes:
    if error:
        return f"<Response><Status>Error</Status><ErrorDescription>Client C{seq:06d} not found</ErrorDescription></Response>".encode()
    jobs = "".join(
        f"<Job><ID>J{seq:06d}-{i}</ID><Name>Audit {rng.randrange(10**6)} – Ōtautahi</Name>"
        f"<Description>{'x' * rng.randrange(0, 400)}</Description></Job>"
        for i in range(rng.randrange(1, 12))
    )
    return f'<?xml version="1.0" encoding="utf-8"?><Response><Status>OK</Status><Jobs>{jobs}</Jobs></Response>'.encode()


def binary(rng: random.Random, size: int) -> bytes:
    """A PDF's header over bytes that do not compress (and are not text)."""
    return (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + rng.randbytes(size))[:size]


def request_body(seq: int) -> bytes:
    """What the client sends for exchange ``seq`` (as it goes on the wire, encoding applied)."""
    s = shape(seq)
    rng = random.Random(seq * 7919)
    if s.name == "big-upload":
        return binary(rng, BIG)
    if not s.sends_body or s.name == "empty-200":
        return b""
    body = xml_body(rng, seq)
    return gzip.compress(body, mtime=0) if s.name == "post-gzip" else body


def response(seq: int) -> tuple[int, Shape, bytes, bytes]:
    """Status, shape, the decoded body and the body as it goes on the wire."""
    s = shape(seq)
    rng = random.Random(seq)
    if s.name in ("empty-204", "empty-200", "big-upload"):
        status = 204 if s.name == "empty-204" else 200
        decoded = b"" if s.name != "big-upload" else b'<?xml version="1.0"?><Attachments><Attachment/></Attachments>'
    elif s.name in ("pdf", "head"):
        status, decoded = 200, binary(rng, rng.randrange(20_000, 300_000))
    elif s.name == "big-download":
        status, decoded = 200, binary(rng, BIG)
    elif s.name == "json-br":
        items = [{"InvoiceID": f"{seq}-{i}", "Total": rng.randrange(10**6) / 100} for i in range(rng.randrange(1, 40))]
        status, decoded = 200, json.dumps({"Invoices": items}).encode()
    else:
        status, decoded = 200, xml_body(rng, seq, error=s.name == "xml-error")
    return status, s, decoded, encode(decoded, s.encoding)


def encode(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.compress(body, mtime=0)
    if encoding == "deflate":
        return zlib.compress(body)
    if encoding == "br":
        return bytes(brotli.compress(body))
    return body


@dataclass
class Seen:
    received: str  # sha256 of the request body as it arrived
    status: int
    sent: str  # sha256 of the response body as it left (encoding applied, chunking removed)
    encoding: str


class VariedUpstream:
    """A TLS server on loopback; ``seen[seq]`` says what it received and sent for each exchange."""

    def __init__(self, directory: Path) -> None:
        self.ca_path, cert, key = make_certificates(directory)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        self.seen: dict[int, Seen] = {}
        self.lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), self, context)
        self.url = f"https://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> VariedUpstream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], upstream: VariedUpstream, context: ssl.SSLContext) -> None:
        super().__init__(address, _Handler)
        self.upstream = upstream
        self.context = context

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            _Handler(tls, client_address, self)
        finally:
            tls.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 64 * 1024
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        seq = seq_of(self.path)
        received = read_body(self)
        status, s, _, wire = response(seq)
        self.send_response(status)
        if s.content_type:
            self.send_header("Content-Type", s.content_type)
        if s.encoding:
            self.send_header("Content-Encoding", s.encoding)
        if s.chunked:
            self.send_header("Transfer-Encoding", "chunked")
        elif status != 204:
            self.send_header("Content-Length", str(len(wire)))
        self.end_headers()
        if self.command != "HEAD" and status != 204:
            if s.chunked:
                rng = random.Random(-seq)
                rest = wire
                while rest:
                    n = rng.randrange(1, 700)
                    piece, rest = rest[:n], rest[n:]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.write(b"0\r\n\r\n")
            else:
                self.wfile.write(wire)
        self.wfile.flush()
        sent = b"" if self.command == "HEAD" or status == 204 else wire
        with self.server.upstream.lock:
            self.server.upstream.seen[seq] = Seen(
                hashlib.sha256(received).hexdigest(), status, hashlib.sha256(sent).hexdigest(), s.encoding
            )

    do_PUT = do_POST = do_DELETE = do_HEAD = do_GET
