"""Replay: send a stored request again (as recorded, or edited) and record the answer.

The answer goes through the same ingest as captured traffic, as a FlowRecord with
``source="replay"`` and ``replay_of`` the original: classified, validated, redacted, stored.

Stored requests have their secrets redacted, so a replay is *prepared* first: a fresh token
(``--token`` / ``XERO_ACCESS_TOKEN``) replaces the fingerprint, ``--secret NAME=VALUE``
fills a redacted key, a new Idempotency-Key replaces the old one. Whatever still holds a
redaction fingerprint after that stops the replay before anything is sent: a placeholder
never goes upstream.
"""

from __future__ import annotations

import os
import re
import ssl
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import quote, unquote_plus, urlsplit, urlunsplit

from inspector.commands.export import TOKEN_VARIABLE
from inspector.ingest.catalog import Catalog
from inspector.ingest.pipeline import Ingest
from inspector.ingest.record import FlowRecord, Headers, header
from inspector.ingest.redact import FINGERPRINT_RE, is_redacted, rewrite_form
from inspector.ingest.v3 import TARGETS, v3_url
from inspector.ingest.validate import Validator
from inspector.ingest.xero_facts import failure
from inspector.proxy.spawn import is_loopback
from inspector.store.database import open_db
from inspector.store.flows import StoredFlow
from inspector.store.recording import Recording

if TYPE_CHECKING:  # httpx is imported when a replay is sent: the browser starts without it
    import httpx

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Hop-by-hop, or computed again for the bytes actually sent (the stored body is decoded).
_DROP = frozenset(
    {
        "host",
        "content-length",
        "content-encoding",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "te",
        "upgrade",
    }
)
_CA_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")

Verdict = Literal["fixed", "still failing", "newly failing", "ok"]


class ReplayError(Exception):
    """A replay that cannot be sent as asked; the message is one line for the user."""


class NeedsToken(ReplayError):
    pass


@dataclass(frozen=True, slots=True)
class Request:
    """What a replay sends: the URL is the Xero URL (``--to`` is applied only on the wire)."""

    method: str
    url: str
    headers: Headers
    body: bytes | None = None

    @property
    def writes(self) -> bool:
        """POST, PUT, DELETE…: creates or changes data in a real organisation."""
        return self.method.upper() not in SAFE_METHODS

    def header(self, name: str) -> str | None:
        return header(self.headers, name)

    def with_header(self, name: str, value: str | None) -> Request:
        """Replace every header of that name (any case) by one, kept in place; None removes it."""
        out: list[tuple[str, str]] = []
        placed = value is None
        for key, old in self.headers:
            if key.lower() != name.lower():
                out.append((key, old))
            elif not placed:
                out.append((key, value or ""))
                placed = True
        if not placed:
            out.append((name, value or ""))
        return replace(self, headers=tuple(out))


@dataclass(frozen=True, slots=True)
class Options:
    token: str | None = None
    tenant: str | None = None
    to: str | None = None
    secrets: Mapping[str, str] = field(default_factory=dict)
    keep_idempotency_key: bool = False
    ca: str | None = None
    timeout: float = 30.0
    allow_plain_http: bool = False  # to a host other than loopback: the token would travel in clear
    as_v3: str | None = None  # a WorkflowMax v1 call sent to its v3 successor: "xpm" or "wfm" (v3.TARGETS)

    @staticmethod
    def env_token() -> str | None:
        return os.environ.get(TOKEN_VARIABLE) or None


@dataclass(frozen=True, slots=True)
class Prepared:
    request: Request
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()  # said before sending (plain HTTP, allowed)


@dataclass(frozen=True, slots=True)
class Result:
    original: int
    replay: int
    before: str  # the original's failure (xero_facts.failure), or "ok"
    after: str
    status: int | None
    error: str | None  # Xero's error message or the transport failure

    @property
    def verdict(self) -> Verdict:
        was_ok, is_ok = self.before == "ok", self.after == "ok"
        if is_ok:
            return "ok" if was_ok else "fixed"
        return "still failing" if not was_ok else "newly failing"

    @property
    def failing(self) -> bool:
        return self.after != "ok"


def request_of(flow: StoredFlow) -> Request:
    """The stored request as it can be sent again (hop-by-hop headers out, body decoded)."""
    row = flow.row
    if row.get("request_truncated"):
        raise ReplayError(
            f"flow {flow.id}: its request body was cut at {row.get('request_size')} bytes when recorded "
            "(inspector_max_body), so it cannot be sent again"
        )
    headers = tuple((k, v) for k, v in flow.headers("request") or [] if k.lower() not in _DROP)
    body = flow.request_body
    data = body.encode("utf-8") if isinstance(body, str) else body
    return Request(str(row["method"]), str(row["url"]), headers, data)


def as_v3(req: Request, catalog: Catalog, target: str, flow_id: int | str) -> tuple[Request, str]:
    """A v1 call as its v3 successor would take it: the v3 URL, apiKey and accountKey gone
    (``prepare`` then adds the token and xero-tenant-id); headers and body as recorded."""
    parts = urlsplit(req.url)
    family = catalog.classify(req.method, (parts.hostname or "").lower(), parts.path).family
    if family != "wfm-legacy":
        raise ReplayError(f"flow {flow_id} is a {family} call, not WorkflowMax v1: --as-v3 translates v1 calls only")
    return replace(req, url=v3_url(req.url, TARGETS[target])), (
        f"--as-v3 {target}: sent to {TARGETS[target].base}/…, apiKey and accountKey dropped"
    )


def prepare(req: Request, catalog: Catalog, opts: Options, flow_id: int | str = "edited") -> Prepared:
    """Put secrets back and refresh what must not be sent twice; refuse a placeholder."""
    notes: list[str] = []
    if opts.as_v3:
        req, note = as_v3(req, catalog, opts.as_v3, flow_id)
        notes.append(note)
    parts = urlsplit(req.url)
    cls = catalog.classify(req.method, (parts.hostname or "").lower(), parts.path)
    fam = catalog.family(cls.family)
    auth = req.header("authorization")
    bearer = auth.lower().startswith("bearer ") if auth is not None else fam is not None and fam.auth == "bearer"
    if opts.token and bearer:
        req = req.with_header(
            _header_name(req.headers, "authorization", "Authorization"), f"Bearer {opts.token.strip()}"
        )
        notes.append("Authorization: Bearer, the token given")
    elif bearer and auth is not None and is_redacted(auth):
        raise NeedsToken(
            f"flow {flow_id} was recorded with its token redacted: pass --token or set {TOKEN_VARIABLE} "
            "(Xero tokens live 30 minutes)"
        )
    if opts.tenant:
        name = "xero-tenant-id"
        if req.header(name) is not None or (fam is not None and fam.tenant == "header"):
            req = req.with_header(_header_name(req.headers, name, "Xero-Tenant-Id"), opts.tenant)
            notes.append(f"xero-tenant-id: {opts.tenant}")
    if req.header("idempotency-key") is not None and not opts.keep_idempotency_key:
        key = str(uuid.uuid4())
        req = req.with_header(_header_name(req.headers, "idempotency-key", "Idempotency-Key"), key)
        notes.append(f"Idempotency-Key: a fresh one, {key}")
    cookie = req.header("cookie")
    if cookie is not None and is_redacted(cookie):
        req = req.with_header("cookie", None)  # Xero's APIs take no cookies; the recorded ones were redacted
        notes.append("Cookie: dropped (redacted when recorded)")
    if opts.secrets:
        wanted = {k.lower(): v for k, v in opts.secrets.items()}
        headers = tuple((k, wanted.get(k.lower(), v) if is_redacted(v) else v) for k, v in req.headers)
        req = replace(req, url=_fill_query(req.url, opts.secrets), headers=headers, body=_fill_form(req, opts.secrets))
    _refuse_placeholders(req, flow_id)
    _sendable(req, opts, flow_id)
    return Prepared(req, tuple(notes), _plain_http(req, opts, flow_id))


def _sendable(req: Request, opts: Options, flow_id: int | str) -> None:
    """Refuse, before anything is sent, what no HTTP client can send: a URL or header holding
    controls (a crafted or damaged recording), said in one line."""
    import httpx

    try:
        httpx.Request(req.method, target_url(req.url, opts.to), headers=list(req.headers))
    except (httpx.InvalidURL, httpx.UnsupportedProtocol, ValueError, TypeError) as e:
        raise ReplayError(f"flow {flow_id} cannot be sent as recorded: {e}") from e


def _plain_http(req: Request, opts: Options, flow_id: int | str) -> tuple[str, ...]:
    """A token or key never travels in clear unless asked: plain HTTP goes to loopback (the
    mock, a local stub) only, or anywhere with --allow-plain-http, and then it is said."""
    wire = urlsplit(target_url(req.url, opts.to))
    host = wire.hostname or ""
    if wire.scheme != "http" or is_loopback(host):
        return ()
    if not opts.allow_plain_http:
        raise ReplayError(
            f"flow {flow_id}: refusing to send it over plain HTTP to {host}, where its token and keys would "
            "travel in clear; use an https:// target, or pass --allow-plain-http"
        )
    return (f"sending over plain HTTP to {host}: the token and keys travel in clear (--allow-plain-http)",)


def _header_name(headers: Headers, name: str, default: str) -> str:
    """Keep the spelling the app used (Xero-tenant-id, xero-tenant-id…)."""
    return next((k for k, _ in headers if k.lower() == name), default)


def _fill(pairs: str, secrets: Mapping[str, str]) -> str:
    """An urlencoded string with redacted values of the named fields replaced."""
    wanted = {k.lower(): v for k, v in secrets.items()}
    return rewrite_form(
        pairs, lambda name, value: quote(wanted[name], safe="") if name in wanted and is_redacted(value) else None
    )


def _fill_query(url: str, secrets: Mapping[str, str]) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(query=_fill(parts.query, secrets))) if parts.query else url


def _fill_form(req: Request, secrets: Mapping[str, str]) -> bytes | None:
    ct = (req.header("content-type") or "").lower()
    if req.body is None or "x-www-form-urlencoded" not in ct or b"=" not in req.body:
        return req.body
    try:
        return _fill(req.body.decode("ascii"), secrets).encode("ascii")
    except UnicodeDecodeError:
        return req.body


def _refuse_placeholders(req: Request, flow_id: int | str) -> None:
    where: list[str] = []
    query = urlsplit(req.url).query
    for part in query.split("&") if query else ():
        key, _, value = part.partition("=")
        if is_redacted(unquote_plus(value)):
            where.append(f"query parameter {unquote_plus(key)}")
    where += [f"header {k}" for k, v in req.headers if is_redacted(v)]
    if req.body and FINGERPRINT_RE.search(req.body.decode("utf-8", "replace")):
        where.append("the body")
    if where:
        names = [w.split()[-1] for w in where if w.startswith(("query parameter", "header"))]
        hint = f"pass --secret {names[0]}=VALUE" if names else "edit it, or record with --keep-secrets"
        raise ReplayError(f"flow {flow_id}: {', '.join(where)} held a secret redacted when recorded; {hint}")


def target_url(url: str, to: str | None) -> str:
    """The URL on the wire: ``--to`` replaces scheme and host (and prefixes its path), keeping path and query."""
    if not to:
        return url
    base, orig = urlsplit(to), urlsplit(url)
    if base.scheme not in ("http", "https") or not base.netloc:
        raise ReplayError(f"--to {to!r} is not an http(s) URL")
    return urlunsplit((base.scheme, base.netloc, base.path.rstrip("/") + orig.path, orig.query, ""))


def ssl_context(ca: str | None = None) -> ssl.SSLContext:
    """Public roots, the system store, what the environment names (SSL_CERT_FILE,
    REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE), and ``--ca``."""
    import certifi

    ctx = ssl.create_default_context(cafile=certifi.where())
    ctx.load_default_certs()
    files = [os.environ.get(v) for v in _CA_VARIABLES]
    for path in [f for f in files if f and Path(f).is_file()] + ([ca] if ca else []):
        try:
            ctx.load_verify_locations(cafile=path)
        except (OSError, ssl.SSLError) as e:
            raise ReplayError(f"cannot use {path} as a CA bundle: {e}") from e
    return ctx


def send(client: httpx.Client, req: Request, to: str | None, replay_of: int | None) -> FlowRecord:
    """Send one request; the exchange as a FlowRecord (a transport failure is recorded, not raised)."""
    import httpx

    wire = target_url(req.url, to)
    request = httpx.Request(req.method, wire, headers=list(req.headers), content=req.body)
    sent = tuple((k, v) for k, v in request.headers.multi_items())
    if to:  # the record keeps the Xero URL (classification and schemas follow it) and Xero's Host
        sent = tuple((k, urlsplit(req.url).netloc) if k.lower() == "host" else (k, v) for k, v in sent)
    parts = urlsplit(wire)
    base = FlowRecord(
        started_at=time.time(),
        method=req.method,
        url=req.url,
        http_version="HTTP/1.1",
        request_headers=sent,
        request_body=req.body,
        server_addr=f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}",
        tls=parts.scheme == "https",
        source="replay",
        replay_of=replay_of,
    )
    try:
        response = client.send(request, stream=True)
        try:
            raw = b"".join(response.iter_raw())
        finally:
            response.close()
    except httpx.HTTPError as e:
        return replace(base, ended_at=time.time(), error=_transport_error(e))
    return replace(
        base,
        ended_at=time.time(),
        status=response.status_code,
        reason=response.reason_phrase,
        response_http_version=response.http_version,
        response_headers=tuple((k, v) for k, v in response.headers.multi_items()),
        response_body=raw,
    )


def _transport_error(e: httpx.HTTPError) -> str:
    text = str(e) or type(e).__name__
    if "CERTIFICATE_VERIFY_FAILED" in text:
        text += " (trust its CA with --ca FILE or SSL_CERT_FILE)"
    return f"{type(e).__name__}: {text}"


def client(opts: Options) -> httpx.Client:
    """Straight to the target, not through HTTP(S)_PROXY: a replay through our own proxy
    would be recorded twice. Redirects are not followed (they are part of the answer)."""
    import httpx

    return httpx.Client(verify=ssl_context(opts.ca), timeout=opts.timeout, trust_env=False, follow_redirects=False)


def parse_secrets(values: Iterable[str]) -> dict[str, str]:
    out = {}
    for v in values:
        name, sep, value = v.partition("=")
        if not sep or not name.strip():
            raise ReplayError(f"--secret takes NAME=VALUE, not {v!r}")
        out[name.strip()] = value
    return out


class Replayer:
    """Sends replays and stores their answers through ingest; one per command or browser session."""

    def __init__(
        self,
        db_path: str | Path,
        catalog: Catalog,
        validator: Validator | None,
        opts: Options,
        keep_secrets: bool = False,
    ) -> None:
        self.db_path = db_path
        self.catalog = catalog
        self.opts = opts
        self.ingest = Ingest(catalog, keep_secrets=keep_secrets, validator=validator)
        self._client: httpx.Client | None = None

    def __enter__(self) -> Replayer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def prepare(self, flow: StoredFlow, edited: Request | None = None) -> Prepared:
        return prepare(edited or request_of(flow), self.catalog, self.opts, flow.id)

    def send(self, flow: StoredFlow, prepared: Prepared) -> Result:
        if self._client is None:
            self._client = client(self.opts)
        rec = send(self._client, prepared.request, self.opts.to, flow.id)
        db = open_db(self.db_path, create=False)
        try:
            (new_id,), (item,) = Recording(db, self.ingest).record([rec])
        finally:
            db.close()
        row = item.flow
        return Result(
            flow.id,
            new_id,
            flow.failure or "ok",
            failure(row.outcome, (f["rule"] for f in item.findings)) or "ok",
            rec.status,
            row.api_error or rec.error,
        )


def since(value: str, now: float | None = None) -> float:
    """'30m', '2h', '1d', '90s', or an ISO date/time: the epoch seconds it means."""
    now = time.time() if now is None else now
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", value)
    if m:
        return now - float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    try:
        return datetime.fromisoformat(value.strip()).timestamp()
    except ValueError as e:
        raise ReplayError(f"--since takes 30m, 2h, 1d or an ISO date/time, not {value!r}") from e
