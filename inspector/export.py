"""Flows out of the store: as a curl command, or as HAR 1.2 that browsers and tools import.

Secrets stay as the store holds them (fingerprints, unless recorded with --keep-secrets);
a redacted bearer token becomes ``$XERO_ACCESS_TOKEN`` in curl so the command runs once
the user exports a fresh token.
"""

from __future__ import annotations

import base64
import json
import shlex
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import TextIO

from . import __version__
from .flows import StoredFlow, load
from .query import Where
from .redact import is_redacted

TOKEN_VARIABLE = "XERO_ACCESS_TOKEN"
# Set by curl itself, or wrong once the body is re-sent decoded.
_CURL_SKIP = {"host", "content-length", "connection", "transfer-encoding", "accept-encoding"}


def curl(flow: StoredFlow) -> str:
    """The request as a curl command line that can be pasted into a shell."""
    method = str(flow.row["method"])
    head = "curl" + (f" -X {method}" if method != "GET" else "") + " " + shlex.quote(str(flow.row["url"]))
    parts: list[str] = []
    for name, value in flow.headers("request") or []:
        if name.lower() in _CURL_SKIP:
            continue
        if name.lower() == "authorization" and value.lower().startswith("bearer ") and is_redacted(value):
            parts += ["-H", f'"Authorization: Bearer ${TOKEN_VARIABLE}"']
        else:
            parts += ["-H", shlex.quote(f"{name}: {value}")]
    body = flow.request_body
    if isinstance(body, bytes):
        parts += ["--data-binary", "@request.bin"]  # bytes do not survive a shell line; save them first
    elif body:
        parts += ["--data-binary", shlex.quote(body)]
    if any(n.lower() == "accept-encoding" for n, _ in flow.headers("request") or []):
        parts.append("--compressed")
    return " \\\n  ".join([head, *_pairs(parts)])


def _pairs(parts: list[str]) -> Iterator[str]:
    """Keep each option with its value on one line."""
    i = 0
    while i < len(parts):
        if parts[i].startswith("-") and i + 1 < len(parts) and not parts[i + 1].startswith("-"):
            yield f"{parts[i]} {parts[i + 1]}"
            i += 2
        else:
            yield parts[i]
            i += 1


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _har_headers(headers: Sequence[tuple[str, str]] | None) -> list[dict[str, str]]:
    return [{"name": n, "value": v} for n, v in headers or []]


def _content(body: str | bytes | None, mime: str | None) -> dict[str, object]:
    if body is None:
        return {"size": 0, "mimeType": mime or ""}
    if isinstance(body, bytes):
        text = base64.b64encode(body).decode()
        return {"size": len(body), "mimeType": mime or "", "text": text, "encoding": "base64"}
    return {"size": len(body.encode("utf-8")), "mimeType": mime or "", "text": body}


def har_entry(flow: StoredFlow) -> dict[str, object]:
    r = flow.row
    version = r["http_version"] or "HTTP/1.1"
    request: dict[str, object] = {
        "method": r["method"],
        "url": r["url"],
        "httpVersion": version,
        "cookies": [],
        "headers": _har_headers(flow.headers("request")),
        "queryString": [],
        "headersSize": -1,
        "bodySize": r["request_raw_size"] if r["request_raw_size"] is not None else -1,
    }
    if flow.request_body is not None:
        post = _content(flow.request_body, r["request_content_type"])
        request["postData"] = {k: post[k] for k in ("mimeType", "text", "encoding") if k in post}
    duration = r["duration_ms"] if r["duration_ms"] is not None else -1
    response: dict[str, object] = {
        "status": r["status"] or 0,
        "statusText": r["reason"] or "",
        "httpVersion": version,
        "cookies": [],
        "headers": _har_headers(flow.headers("response")),
        "content": _content(flow.response_body, r["response_content_type"]),
        "redirectURL": "",
        "headersSize": -1,
        "bodySize": r["response_raw_size"] if r["response_raw_size"] is not None else -1,
    }
    if r["error"]:
        response["_error"] = r["error"]
    return {
        "startedDateTime": _iso(r["started_at"]),
        "time": duration,
        "request": request,
        "response": response,
        "cache": {},
        "timings": {"send": 0, "wait": duration, "receive": 0},
        "serverIPAddress": (r["server_addr"] or "").rsplit(":", 1)[0],
        # Custom fields start with an underscore (HAR 1.2); what a Xero integrator needs.
        "_xeroInspector": {
            "id": flow.id,
            "family": r["family"],
            "resource": r["resource"],
            "operation": r["operation"],
            "tenant": r["tenant_id"],
            "outcome": r["outcome"],
            "apiError": r["api_error"],
            "correlationId": r["correlation_id"],
            "replayOf": r["replay_of"],
            "comment": r["comment"],
            "findings": flow.findings,
        },
    }


def flow_ids(conn: sqlite3.Connection, where: Where) -> Iterator[int]:
    for (fid,) in conn.execute(f"SELECT id FROM flows WHERE {where.sql} ORDER BY id", where.params):
        yield int(fid)


def write_har(conn: sqlite3.Connection, ids: Iterable[int], out: TextIO) -> int:
    """Stream HAR to ``out`` one entry at a time (a filtered export may be large); the entry count."""
    creator = {"name": "xero-inspector", "version": __version__}
    out.write('{"log": {"version": "1.2", "creator": ' + json.dumps(creator) + ', "entries": [\n')
    n = 0
    for fid in ids:
        flow = load(conn, fid)
        if flow is None:
            continue
        out.write((",\n" if n else "") + json.dumps(har_entry(flow), ensure_ascii=False))
        n += 1
    out.write("\n]}}\n")
    return n
