"""Stored flows as a mitmproxy flow file, which ``mitmproxy -r`` and ``mitmweb -r`` open.

The store keeps bodies decoded; each is encoded again by the ``Content-Encoding`` its
headers name (mitmproxy does that when ``content`` is set), so the flow is what crossed
the wire, give or take the compressor's settings.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any, BinaryIO
from urllib.parse import quote, urlsplit

from mitmproxy import connection, http
from mitmproxy.flow import Error
from mitmproxy.io import FlowWriter

from inspector.commands.outgoing import outgoing, token_claims
from inspector.store.flows import StoredFlow, load

METADATA_KEY = "xero_inspector"


# Everything printable in ASCII stays as it is; the rest (spaces, controls, non-ASCII a HAR
# may carry) is percent-encoded, the only form a URL on the wire and mitmproxy take.
_URL_SAFE = "".join(chr(c) for c in range(0x21, 0x7F))


def _ascii_url(url: str) -> str:
    return quote(url, safe=_URL_SAFE, errors="surrogateescape")


def to_http_flow(stored: StoredFlow, keep_secrets: bool = False) -> http.HTTPFlow:
    flow = outgoing(stored, keep_secrets)
    r = flow.row
    started = float(r["started_at"])
    ended = float(r["ended_at"]) if r["ended_at"] is not None else None
    parts = urlsplit(str(r["url"]))
    port = parts.port or (443 if parts.scheme == "https" else 80)
    client = connection.Client(
        peername=_address(r["client_addr"]) or ("127.0.0.1", 0),
        sockname=("127.0.0.1", 0),
        timestamp_start=started,
    )
    server = connection.Server(address=(parts.hostname or "", port))
    server.peername = _address(r["server_addr"])
    out = http.HTTPFlow(client, server)
    body, fields = _bytes(flow.request_body), _fields(flow, "request")
    out.request = http.Request.make(str(r["method"]), _ascii_url(str(r["url"])), body, fields)
    out.request.headers = http.Headers(fields)  # make() adds a content-length the call may not have had
    if flow.request_body is None and r["request_size"] is None:
        out.request.raw_content = None  # not captured (mitmproxy's own "streamed"), not empty
    out.request.http_version = flow.http_version("request")
    out.request.timestamp_start = started
    out.request.timestamp_end = started
    if r["status"] is not None:
        fields = _fields(flow, "response")
        resp = http.Response.make(int(r["status"]), _bytes(flow.response_body), fields)
        resp.headers = http.Headers(fields)
        if flow.response_body is None and r["response_size"] is None:
            resp.raw_content = None
        resp.reason = str(r["reason"] or "").encode("utf-8", "surrogateescape")  # a HAR may hold any text
        resp.http_version = flow.http_version("response")
        resp.timestamp_start = resp.timestamp_end = ended or started
        out.response = resp
    if r["error"]:
        out.error = Error(str(r["error"]), ended or started)
    if r["comment"]:
        out.comment = str(r["comment"])
    if r["marked"]:
        out.marked = ":default:"
    out.metadata[METADATA_KEY] = {
        "id": flow.id,
        "outcome": r["outcome"],
        "endpoint": r["endpoint"],
        "errors": r["errors"],
        "warnings": r["warnings"],
        "findings": [f"{f['severity']} {f['side']}/{f['rule']}: {f['message']}" for f in flow.findings],
        "token": token_claims(r),
    }
    return out


def write_mitm(conn: sqlite3.Connection, ids: Iterable[int], out: BinaryIO, keep_secrets: bool = False) -> int:
    writer = FlowWriter(out)
    n = 0
    for fid in ids:
        stored = load(conn, fid)
        if stored is not None:
            writer.add(to_http_flow(stored, keep_secrets))
            n += 1
    return n


def _bytes(body: str | bytes | None) -> bytes:
    if body is None:
        return b""
    return body if isinstance(body, bytes) else body.encode("utf-8")


def _fields(flow: StoredFlow, side: str) -> list[tuple[bytes, bytes]]:
    return [
        (k.encode("utf-8", "surrogateescape"), v.encode("utf-8", "surrogateescape"))
        for k, v in flow.headers(side) or []
    ]


def _address(text: Any) -> tuple[str, int] | None:
    """'127.0.0.1:443' or '[::1]:443' → (host, port)."""
    if not text:
        return None
    host, _, port = str(text).rpartition(":")
    return (host.strip("[]"), int(port)) if port.isdigit() else None
