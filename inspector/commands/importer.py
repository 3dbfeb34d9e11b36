"""Import: HAR 1.2 and mitmproxy flow files into the store, through the same ingest as the proxy.

All or nothing. Every entry is read, checked and ingested before the first row is written;
the rows then go in as one transaction. A malformed entry stops the import with a message
naming it, and the database is as it was. The price is memory: the ingested rows of the
whole file are held until the commit (about the size of its bodies, decoded).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Literal
from urllib.parse import quote_plus, urlsplit

from inspector.ingest.catalog import Catalog
from inspector.ingest.pipeline import Ingest, Ingested
from inspector.ingest.record import FlowRecord, TokenFacts
from inspector.ingest.scope import HostScope
from inspector.ingest.validate import Validator
from inspector.store.database import open_db
from inspector.store.recording import Recording

Format = Literal["har", "mitm"]
Progress = Callable[[int, int | None], None]  # (done, total): entries for HAR, bytes for flow files


class ImportFileError(Exception):
    """The file cannot be imported; the message names the file and, where it can, the entry."""


@dataclass(frozen=True, slots=True)
class Entry:
    record: FlowRecord | None
    skipped: str | None = None  # why it is not an HTTP exchange (a TCP or DNS flow)


@dataclass(slots=True)
class ImportResult:
    path: str
    format: Format
    entries: int = 0
    ids: list[int] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    errors: int = 0
    warnings: int = 0

    def summary(self) -> str:
        where = f" (#{self.ids[0]}–#{self.ids[-1]})" if self.ids else ""
        what = "HAR entries" if self.format == "har" else "mitmproxy flows"
        line = f"{self.path}: {self.entries} {what}, {len(self.ids)} imported{where}"
        if self.skipped:
            why = ", ".join(f"{reason}: {n}" for reason, n in sorted(self.skipped.items()))
            line += f", {sum(self.skipped.values())} skipped ({why})"
        return line + f"; {self.errors} error(s), {self.warnings} warning(s)"


def detect(path: Path) -> Format:
    """HAR is JSON (an object); a mitmproxy dump is tnetstrings, which start with a length."""
    with path.open("rb") as f:
        head = f.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"{"):
        return "har"
    if head[:1].isdigit() and b":" in head:
        return "mitm"
    if not head:
        raise ImportFileError(f"{path}: the file is empty")
    raise ImportFileError(f"{path}: neither HAR (JSON) nor a mitmproxy flow file")


def run_import(
    db_path: str | Path,
    path: str | Path,
    catalog: Catalog,
    validator: Validator | None,
    *,
    keep_secrets: bool = False,
    hosts: tuple[str, ...] = (),
    progress: Progress | None = None,
) -> ImportResult:
    path, db_path = Path(path), Path(db_path)
    fmt = detect(path)
    created = not db_path.exists()
    db = open_db(db_path)  # first: a locked or foreign database fails before the file is read
    done = False
    try:
        recording = Recording(db, Ingest(catalog, keep_secrets=keep_secrets, validator=validator))
        scope = HostScope(catalog.hosts(), hosts)
        result = ImportResult(str(path), fmt)
        rows: list[Ingested] = []
        for entry in read_har(path, progress) if fmt == "har" else read_mitm(path, progress):
            result.entries += 1
            if entry.record is None:
                result.skipped[entry.skipped or "not HTTP"] += 1
            elif not scope.matches(urlsplit(entry.record.url).hostname or ""):
                result.skipped["not Xero"] += 1
            else:
                item = recording.ingest(entry.record)
                result.errors += item.flow.errors
                result.warnings += item.flow.warnings
                rows.append(item)
        result.ids += recording.insert(rows)
        done = True
        return result
    finally:
        db.close()
        if not done and created:  # nothing was imported: leave no empty database behind either
            for suffix in ("", "-wal", "-shm"):
                Path(f"{db_path}{suffix}").unlink(missing_ok=True)


# --- HAR -------------------------------------------------------------------------------------


def read_har(path: Path, progress: Progress | None = None) -> Iterator[Entry]:
    try:
        doc = json.loads(path.read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError as e:
        raise ImportFileError(f"{path}: not UTF-8 (byte {e.start}), so not a HAR file") from e
    except json.JSONDecodeError as e:
        raise ImportFileError(f"{path}: not valid JSON at line {e.lineno} column {e.colno}: {e.msg}") from e
    log = doc.get("log") if isinstance(doc, dict) else None
    entries = log.get("entries") if isinstance(log, dict) else None
    if not isinstance(entries, list):
        raise ImportFileError(f"{path}: not a HAR file (no log.entries list)")
    for i, raw in enumerate(entries):
        try:
            yield Entry(har_record(raw))
        except HarError as e:
            url = _get(raw, "request", "url")
            what = f" ({_get(raw, 'request', 'method')} {url})" if isinstance(url, str) else ""
            raise ImportFileError(f"{path}: entry {i + 1} of {len(entries)}{what}: {e}") from None
        if progress:
            progress(i + 1, len(entries))


class HarError(ValueError):
    pass


def _get(obj: Any, *keys: str) -> Any:
    for k in keys:
        obj = obj.get(k) if isinstance(obj, dict) else None
    return obj


_JSON_TYPES = {str: "a string", int: "a number", float: "a number", dict: "an object", list: "a list"}


def _need(obj: dict[str, Any], key: str, kind: type, where: str) -> Any:
    value = obj.get(key)
    if value is None:
        raise HarError(f"{where}{key} is missing")
    if not isinstance(value, kind) or isinstance(value, bool):
        raise HarError(f"{where}{key} is {_JSON_TYPES.get(type(value), 'true/false')}, not {_JSON_TYPES[kind]}")
    return value


def har_record(entry: Any) -> FlowRecord:
    """One HAR entry as the FlowRecord the proxy would have made of the same exchange."""
    if not isinstance(entry, dict):
        raise HarError("not an object")
    request = _need(entry, "request", dict, "")
    response = entry.get("response")
    started = _har_time(_need(entry, "startedDateTime", str, ""))
    elapsed = entry.get("time")
    method = _need(request, "method", str, "request.")
    url = _need(request, "url", str, "request.")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HarError(f"request.url {url!r} is not an http(s) URL")
    status: int | None = None
    error: str | None = entry.get("_error") if isinstance(entry.get("_error"), str) else None
    resp_headers = resp_body = reason = resp_version = None
    if isinstance(response, dict):
        code = _need(response, "status", int, "response.")
        if code > 0:  # 0: no answer (Chrome: blocked, failed or cancelled)
            status = code
            reason = response.get("statusText") if isinstance(response.get("statusText"), str) else ""
            resp_version = _version(response.get("httpVersion"))
            resp_headers = _headers(response.get("headers"), "response.headers")
            resp_body = _content(response.get("content"), "response.content")
        error = error or (response.get("_error") if isinstance(response.get("_error"), str) else None)
        if status is None and error is None:
            error = "no response (HAR status 0)"
    elif response is not None:
        raise HarError(f"response is {type(response).__name__}, not an object")
    server_ip, ours = entry.get("serverIPAddress"), _get(entry, "_xeroInspector", "serverAddr")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    server = None
    if isinstance(server_ip, str) and server_ip:
        ip = server_ip.strip("[]")
        server = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
    return FlowRecord(
        started_at=started,
        ended_at=started + elapsed / 1000 if isinstance(elapsed, int | float) and elapsed >= 0 else None,
        method=method.upper(),
        url=url,
        http_version=_version(request.get("httpVersion")),
        request_headers=_headers(request.get("headers"), "request.headers"),
        request_body=_post_data(request.get("postData"), request.get("bodySize")),
        server_addr=ours if isinstance(ours, str) else server,
        tls=parts.scheme == "https",
        status=status,
        reason=reason,
        response_http_version=resp_version,
        response_headers=resp_headers,
        response_body=resp_body,
        error=error,
        source="import",
        content_decoded=True,
        token=token_facts(_get(entry, "_xeroInspector", "token")),
    )


def token_facts(claims: Any) -> TokenFacts | None:
    """The token claims an export of ours carried (``outgoing.token_claims``); None otherwise."""
    if not isinstance(claims, dict):
        return None
    exp, scopes = claims.get("exp"), claims.get("scopes")
    return TokenFacts(
        exp=exp if isinstance(exp, int) and not isinstance(exp, bool) else None,
        scopes=tuple(str(s) for s in scopes) if isinstance(scopes, list) else (),
        client_id=claims.get("clientId") if isinstance(claims.get("clientId"), str) else None,
        user_id=claims.get("userId") if isinstance(claims.get("userId"), str) else None,
    )


def _har_time(text: str) -> float:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise HarError(f"startedDateTime {text!r} is not an ISO 8601 time") from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _version(value: Any) -> str:
    """'http/2.0', 'h2', 'HTTP/1.1' → mitmproxy's spelling; unknown or missing → HTTP/1.1."""
    v = str(value or "").strip().upper()
    return {"H2": "HTTP/2.0", "HTTP/2": "HTTP/2.0", "H3": "HTTP/3", "": "HTTP/1.1"}.get(v, v)


def _headers(value: Any, where: str) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise HarError(f"{where} is {type(value).__name__}, not a list")
    out = []
    for j, h in enumerate(value):
        name, val = _get(h, "name"), _get(h, "value")
        if not isinstance(name, str) or not isinstance(val, str):
            raise HarError(f"{where}[{j}] needs a string name and value")
        if not name.startswith(":"):  # HTTP/2 pseudo-headers (Chrome) are the request line, not headers
            out.append((name, val))
    return tuple(out)


def _post_data(value: Any, size: Any) -> bytes | None:
    if value is None:  # no body, or (size -1) one the tool did not keep
        return None if size == -1 else b""
    if not isinstance(value, dict):
        raise HarError(f"request.postData is {type(value).__name__}, not an object")
    if "text" in value:
        return _text(value, "request.postData")
    params = value.get("params")
    if isinstance(params, list):  # some tools keep a form as params only
        pairs = [f"{quote_plus(str(_get(p, 'name')))}={quote_plus(str(_get(p, 'value') or ''))}" for p in params]
        return "&".join(pairs).encode()
    return b""


def _content(value: Any, where: str) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise HarError(f"{where} is {type(value).__name__}, not an object")
    if "text" not in value:
        size = value.get("size")
        return b"" if size == 0 else None  # not saved by the tool that wrote the HAR
    return _text(value, where)


def _text(value: dict[str, Any], where: str) -> bytes:
    text = value.get("text")
    if text is None:
        return b""
    if not isinstance(text, str):
        raise HarError(f"{where}.text is {type(text).__name__}, not a string")
    if value.get("encoding") == "base64":
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise HarError(f"{where}.text is marked base64 but is not") from None
    return text.encode("utf-8", "surrogateescape")


# --- mitmproxy flow files ---------------------------------------------------------------------


def read_mitm(path: Path, progress: Progress | None = None) -> Iterator[Entry]:
    from mitmproxy import exceptions, http
    from mitmproxy.io import FlowReader

    from inspector.commands.export_mitmproxy import METADATA_KEY
    from inspector.proxy.capture import to_record

    size = os.path.getsize(path)
    with path.open("rb") as f:
        n = 0
        stream = iter(FlowReader(f).stream())
        while True:
            try:
                flow = next(stream, None)
            except (exceptions.FlowReadException, ValueError, KeyError, TypeError) as e:
                raise ImportFileError(f"{path}: flow {n + 1} (at byte {_tell(f)}): {e or type(e).__name__}") from e
            if flow is None:
                return
            n += 1
            if isinstance(flow, http.HTTPFlow):
                ours = flow.metadata.get(METADATA_KEY)
                token = token_facts(ours.get("token")) if isinstance(ours, dict) else None
                yield Entry(replace(to_record(flow), source="import", token=token))
            else:
                yield Entry(None, f"not HTTP ({flow.type})")
            if progress:
                progress(_tell(f), size)


def _tell(f: BinaryIO) -> int:
    try:
        return f.tell()
    except (OSError, ValueError):
        return 0
