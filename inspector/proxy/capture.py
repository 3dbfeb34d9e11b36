"""mitmproxy HTTPFlow -> FlowRecord: copy plain data out, so no live flow escapes the hook.

Only references to immutable objects are taken (header field tuples, body bytes): this
runs on the proxy's event loop for every exchange and must cost next to nothing.
"""

from __future__ import annotations

from typing import Any

from mitmproxy import http

from inspector.ingest.record import FlowRecord, Headers
from inspector.utils.text import safe

# flow.metadata keys: what the app asked for, taken before any addon rewrites the request.
ASKED = "xero_inspector.asked"
RECORDED = "xero_inspector.recorded"
INJECTED = "xero_inspector.injected"  # set by the Faults addon: the rule's kind
# Set by the Breaks addon: what happened at each breakpoint, and bodies as they were before an edit.
PAUSED = "xero_inspector.paused"  # list[str]
ORIGINAL_REQUEST = "xero_inspector.original_request"
ORIGINAL_RESPONSE = "xero_inspector.original_response"


def snapshot_request(flow: http.HTTPFlow) -> None:
    """Remember the URL and headers as the app sent them (a redirect changes both later).

    ``headers.fields`` is an immutable tuple that mitmproxy replaces on every change, so
    keeping the reference is a snapshot for free.
    """
    flow.metadata[ASKED] = (flow.request.pretty_url, flow.request.headers.fields)


def asked_url(flow: http.HTTPFlow) -> str:
    """The URL as the app asked for it (after a --redirect, the request names the target)."""
    asked = flow.metadata.get(ASKED)
    return str(asked[0]) if asked else flow.request.pretty_url


def to_record(flow: http.HTTPFlow) -> FlowRecord:
    req, resp, err = flow.request, flow.response, flow.error
    url, fields = flow.metadata.get(ASKED) or (req.pretty_url, req.headers.fields)
    ended: float | None
    if resp is not None:
        ended = resp.timestamp_end or resp.timestamp_start
    else:
        ended = err.timestamp if err is not None else None
    return FlowRecord(
        started_at=req.timestamp_start,
        ended_at=ended,
        method=req.method,
        url=url,
        http_version=req.http_version,
        request_headers=header_pairs(fields),
        request_body=req.raw_content,
        client_addr=_addr(flow.client_conn.peername),
        # Where it really went: the peer, or (no connection made) the target after any redirect.
        server_addr=_addr(flow.server_conn.peername or (req.host, req.port)),
        tls=bool(flow.client_conn.tls_established),
        status=resp.status_code if resp is not None else None,
        reason=resp.reason if resp is not None else None,
        response_http_version=resp.http_version if resp is not None else None,
        response_headers=header_pairs(resp.headers.fields) if resp is not None else None,
        response_body=resp.raw_content if resp is not None else None,
        error=err.msg if err is not None else None,
        injected=flow.metadata.get(INJECTED),
        paused="; ".join(flow.metadata[PAUSED]) if flow.metadata.get(PAUSED) else None,
        original_request_body=flow.metadata.get(ORIGINAL_REQUEST),
        original_response_body=flow.metadata.get(ORIGINAL_RESPONSE),
    )


def where(flow: http.HTTPFlow) -> str:
    """'POST https://host/path' for a log line: no query (it may hold a key), no controls."""
    return safe(f"{flow.request.method} {flow.request.pretty_url.split('?', 1)[0]}")


def header_pairs(fields: tuple[tuple[bytes, bytes], ...]) -> Headers:
    return tuple((k.decode("utf-8", "surrogateescape"), v.decode("utf-8", "surrogateescape")) for k, v in fields)


def _addr(address: Any) -> str | None:
    if not address:
        return None
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
