"""Flows out of the store: as curl commands, as HAR 1.2 that browsers and tools import,
or (``export_mitmproxy``) as a mitmproxy flow file.

Secrets go out redacted, even from a database recorded with --keep-secrets, unless the
export itself is asked to keep them. In curl, each redacted secret becomes a shell
variable (``${XERO_ACCESS_TOKEN}``, ``${XERO_API_KEY}``…), so the command runs once the
user exports fresh values.
"""

from __future__ import annotations

import base64
import io
import json
import re
import shlex
import sqlite3
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, TextIO
from urllib.parse import parse_qsl, urlsplit

from inspector import __version__
from inspector.commands.outgoing import outgoing, token_claims
from inspector.ingest.redact import FINGERPRINT_RE
from inspector.store.database import StoreError
from inspector.store.flows import StoredFlow, flow_ids, load, matches, missing
from inspector.utils import files
from inspector.utils.text import has_unsafe, json_safe, safe

TOKEN_VARIABLE = "XERO_ACCESS_TOKEN"
# Set by curl itself, or wrong once the body is re-sent decoded.
_CURL_SKIP = {"host", "content-length", "connection", "transfer-encoding", "accept-encoding"}
# Where a fingerprint sits says which secret it stands for: the placeholder is named after it.
_SECRET_CONTEXTS = (
    (re.compile(r"^authorization:\s*bearer\s+$", re.IGNORECASE), lambda m: TOKEN_VARIABLE),
    (re.compile(r"^authorization:\s*basic\s+$", re.IGNORECASE), lambda m: "XERO_BASIC_CREDENTIALS"),
    (re.compile(r"([A-Za-z_][\w.-]*)=$"), lambda m: _variable(m.group(1))),
    (re.compile(r'"([A-Za-z_]\w*)"\s*:\s*"$'), lambda m: _variable(m.group(1))),
)


def curl(flow: StoredFlow, keep_secrets: bool = False) -> str:
    """The request as a curl command line that can be pasted into a shell."""
    flow = outgoing(flow, keep_secrets)
    names: dict[str, str] = {}
    method = str(flow.row["method"])
    verb = " -I" if method == "HEAD" else (f" -X {method}" if method != "GET" else "")
    head = f"curl{verb} " + _sh(str(flow.row["url"]), names)
    parts: list[str] = []
    for name, value in flow.headers("request") or []:
        if name.lower() not in _CURL_SKIP:
            parts += ["-H", _sh(f"{name}: {value}", names)]
    body = flow.request_body
    if isinstance(body, bytes):
        # Bytes do not survive a shell line; the user saves them to this file first.
        parts += ["--data-binary", f"@request-{flow.id}.bin"]
    elif body:
        parts += ["--data-binary", _sh(body, names)]
    if any(n.lower() == "accept-encoding" for n, _ in flow.headers("request") or []):
        parts.append("--compressed")
    return " \\\n  ".join([head, *_pairs(parts)])


def curl_variables(command: str) -> list[str]:
    """The shell variables a curl command from ``curl`` needs set, in order of appearance."""
    return list(dict.fromkeys(re.findall(r"\$\{([A-Z][A-Z0-9_]*)\}", command)))


def write_curl(conn: sqlite3.Connection, ids: Iterable[int], out: TextIO, keep_secrets: bool = False) -> int:
    """A shell script: one commented curl command per flow; the variables it needs named on top."""
    commands = []
    for fid in ids:
        flow = load(conn, fid)
        if flow is None:
            continue
        r = flow.row
        status = r["status"] if r["status"] is not None else "—"
        note = safe(f"# #{fid} {r['method']} {str(r['url']).split('?')[0]}  →  {status} {r['outcome']}")
        if r["request_truncated"]:
            note += f"\n# the request body was cut at {r['request_size']} bytes when recorded: this sends only that"
        commands.append(f"{note}\n{curl(flow, keep_secrets)}\n")
    variables = curl_variables("".join(commands))
    script = "".join(commands)
    # $'...' (see _quote) is bash's, not POSIX sh's (dash has no such quoting).
    shell = "/usr/bin/env bash" if "$'" in script else "/bin/sh"
    out.write(f"#!{shell}\n# xero-inspector: each recorded call as a curl command.\n")
    if variables:
        out.write("# Secrets were redacted; set these first: " + ", ".join(variables) + "\n")
        out.write("".join(f': "${{{v}:?set {v}}}"\n' for v in variables))
    out.write("\n" + "\n".join(commands))
    return len(commands)


def _variable(field: str) -> str:
    """apiKey → XERO_API_KEY, client_secret → XERO_CLIENT_SECRET."""
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", field).upper().replace("-", "_").replace(".", "_")
    return snake if snake.startswith("XERO") else f"XERO_{snake}"


def _sh(text: str, names: dict[str, str]) -> str:
    """Shell-quoted ``text``; any fingerprint in it becomes a ``${VARIABLE}`` inside double quotes
    (or, in text holding controls, a ``"${VARIABLE}"`` between $'...' pieces)."""
    if not FINGERPRINT_RE.search(text):
        return _quote(text)
    plain = not has_unsafe(text, lines=True)
    out, pos = ['"'] if plain else [], 0
    for m in FINGERPRINT_RE.finditer(text):
        before = text[pos : m.start()]
        out.append(re.sub(r'([\\"$`])', r"\\\1", before) if plain else _quote(before) if before else "")
        if m.group(0) not in names:
            names[m.group(0)] = _name_for(text[: m.start()], len(names) + 1)
        out.append("${" + names[m.group(0)] + "}" if plain else '"${' + names[m.group(0)] + '}"')
        pos = m.end()
    rest = text[pos:]
    out.append(re.sub(r'([\\"$`])', r"\\\1", rest) + '"' if plain else _quote(rest) if rest else "")
    return "".join(out)


def _quote(text: str) -> str:
    """One shell word. Text holding controls (an ESC in a crafted URL, say) is written in bash's
    $'...' with every such character as an escape: the script sends the same bytes, and printing
    it (cat, or export to stdout) hands the terminal no escape sequence."""
    if not has_unsafe(text, lines=True):  # newlines and tabs are safe inside '...'
        return shlex.quote(text)
    body = "".join(c if c.isascii() and c.isprintable() and c not in "\\'" else _ansi_c(c) for c in text)
    return f"$'{body}'"


def _ansi_c(c: str) -> str:
    if c in "\\'":
        return "\\" + c
    if c in "\n\t":
        return c.encode("unicode_escape").decode()
    if 0xDC80 <= ord(c) <= 0xDCFF:  # a byte that was not UTF-8: that byte again
        return f"\\x{ord(c) - 0xDC00:02x}"
    if ord(c) < 0x80:
        return f"\\x{ord(c):02x}"
    if not has_unsafe(c):
        return c  # any other character is printable and goes as itself
    return "".join(f"\\x{b:02x}" for b in c.encode("utf-8"))


def _name_for(before: str, n: int) -> str:
    tail = before[-200:]
    for pattern, name in _SECRET_CONTEXTS:
        if m := pattern.search(tail):
            return name(m)
    return f"XERO_SECRET_{n}"


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


def iso_time(ts: float) -> str:
    """UTC, to the millisecond, as HAR and the agent's answers give it. Rounded, not cut: isoformat
    would truncate to the millisecond below."""
    return datetime.fromtimestamp(round(ts, 3), UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _har_headers(headers: Sequence[tuple[str, str]] | None) -> list[dict[str, str]]:
    return [{"name": n, "value": v} for n, v in headers or []]


def _content(body: str | bytes | None, mime: str | None) -> dict[str, object]:
    if body is None:
        return {"size": 0, "mimeType": mime or ""}
    if isinstance(body, bytes):
        text = base64.b64encode(body).decode()
        return {"size": len(body), "mimeType": mime or "", "text": text, "encoding": "base64"}
    return {"size": len(body.encode("utf-8")), "mimeType": mime or "", "text": body}


def har_entry(flow: StoredFlow, keep_secrets: bool = False) -> dict[str, object]:
    flow = outgoing(flow, keep_secrets)
    r = flow.row
    request: dict[str, object] = {
        "method": r["method"],
        "url": r["url"],
        "httpVersion": flow.http_version("request"),
        "cookies": [],
        "headers": _har_headers(flow.headers("request")),
        "queryString": [{"name": k, "value": v} for k, v in parse_qsl(urlsplit(r["url"]).query, True)],
        "headersSize": -1,
        "bodySize": r["request_raw_size"] if r["request_raw_size"] is not None else -1,
    }
    if flow.request_body is not None:
        post = _content(flow.request_body, r["request_content_type"])
        request["postData"] = {k: post[k] for k in ("mimeType", "text", "encoding") if k in post}
    duration = max(r["duration_ms"] or 0, 0)
    response: dict[str, object] = {
        "status": r["status"] or 0,
        "statusText": r["reason"] or "",
        "httpVersion": flow.http_version("response"),
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
        "startedDateTime": iso_time(r["started_at"]),
        "time": duration,
        "request": request,
        "response": response,
        "cache": {},
        # Only the total is known: it is all "wait"; -1 is HAR's "does not apply".
        "timings": {"blocked": -1, "dns": -1, "connect": -1, "ssl": -1, "send": 0, "wait": duration, "receive": 0},
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
            "serverAddr": r["server_addr"],  # with its port (a --redirect target, say)
            "findings": flow.findings,
            "token": token_claims(r),
        },
    }


def write_har(conn: sqlite3.Connection, ids: Iterable[int], out: TextIO, keep_secrets: bool = False) -> int:
    """Stream HAR to ``out`` one entry at a time (a filtered export may be large); the entry count."""
    creator = {"name": "xero-inspector", "version": __version__}
    out.write('{"log": {"version": "1.2", "creator": ' + json.dumps(creator) + ', "pages": [], "entries": [\n')
    n = 0
    for fid in ids:
        flow = load(conn, fid)
        if flow is None:
            continue
        out.write((",\n" if n else "") + json_safe(json.dumps(har_entry(flow, keep_secrets), ensure_ascii=False)))
        n += 1
    out.write("\n]}}\n")
    return n


FORMATS = {"har": ".har", "curl": ".sh", "mitm": ".mitm"}  # and the file name ending each is saved with


def export_flows(
    db: str | Path, fmt: str, ids: Sequence[int], expr: str | None, output: str | None, keep_secrets: bool = False
) -> int:
    """The CLI's export: the flows named (or matching ``expr``, or all) to ``output`` or stdout."""
    from inspector.store.database import open_for_reading
    from inspector.store.query import compile_filter

    where = compile_filter(expr or "")
    with closing(open_for_reading(db)) as conn:
        if ids:
            absent = missing(conn, ids)
            if absent:
                raise StoreError(f"no flow {', '.join(map(str, absent))} in {db}")
        chosen: Iterable[int] = [i for i in ids if matches(conn, where, i)] if ids else flow_ids(conn, where)
        if output is None:
            return _write(conn, fmt, chosen, sys.stdout.buffer, keep_secrets)
        return write_file(conn, fmt, chosen, output, keep_secrets)


def write_file(
    conn: sqlite3.Connection, fmt: str, ids: Iterable[int], path: str | Path, keep_secrets: bool = False
) -> int:
    """Export to a file, written beside its final name and renamed into place: a failed export
    never leaves half a file where a good one was. Used by the CLI and the browser."""
    with files.replacing(path, files.SCRIPT if fmt == "curl" else files.PRIVATE) as out:
        return _write(conn, fmt, ids, out, keep_secrets)


def _write(conn: sqlite3.Connection, fmt: str, ids: Iterable[int], out: BinaryIO, keep_secrets: bool) -> int:
    if fmt == "mitm":
        from inspector.commands.export_mitmproxy import write_mitm

        return write_mitm(conn, ids, out, keep_secrets)
    # surrogateescape: a header that was not UTF-8 goes out as the bytes it came in as
    text = io.TextIOWrapper(out, encoding="utf-8", errors="surrogateescape", newline="\n", write_through=True)
    try:
        return (write_har if fmt == "har" else write_curl)(conn, ids, text, keep_secrets)
    finally:
        text.detach()  # leave ``out`` open for its owner
