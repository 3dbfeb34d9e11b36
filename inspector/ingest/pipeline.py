"""Ingest: one FlowRecord in, the rows to store out (classify ▸ facts ▸ validate ▸ rules ▸ redact).

This is the one path into the store: captured, replayed and imported exchanges all go
through ``Ingest``. It runs in the writer process (on its thread), never in a proxy hook. Facts that need
secrets (JWT claims, the organisation a key names) are read before redaction; nothing
secret leaves this module unless ``keep_secrets`` was asked for.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from lxml import etree

from inspector.ingest import rules, xero_facts, xmlsafe
from inspector.ingest.catalog import BodySchema, Catalog, Classification
from inspector.ingest.decoding import DEFAULT_MAX_BODY, DecodeError, as_text, decode_content, sniff
from inspector.ingest.findings import Finding, counts
from inspector.ingest.record import FlowRecord, Headers, TokenFacts, header
from inspector.ingest.redact import Redactor
from inspector.ingest.row import BodyColumns, FlowRow
from inspector.ingest.validate import SchemaLoadError, Validator
from inspector.utils.first_traceback import FirstTraceback

log = logging.getLogger(__name__)

_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class Body:
    """One side's body, decoded, sniffed (and, after redaction, safe to store)."""

    data: bytes | None
    raw_size: int | None
    truncated: bool = False
    format: str = "none"
    xml: bytes | None = None  # the XML document to validate, when there is one
    decode_error: str | None = None


@dataclass(slots=True)
class Ingested:
    flow: FlowRow
    bodies: list[dict[str, Any]] = field(default_factory=list)
    tenants: list[dict[str, Any]] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)


class Ingest:
    def __init__(
        self,
        catalog: Catalog,
        keep_secrets: bool = False,
        max_body: int = DEFAULT_MAX_BODY,
        validator: Validator | None = None,
    ) -> None:
        self.catalog = catalog
        self.keep_secrets = keep_secrets
        self.max_body = max_body
        self.validator = validator  # None: record without schema checks (the rules still run)
        # Organisations named by GET /connections answers, to explain a 403 (seeded from the store).
        self.known_tenants: dict[str, str] = {}
        self._hosts_of: tuple[Catalog, frozenset[str]] | None = None  # the catalog's hosts, per catalog
        self._first = FirstTraceback()

    def __call__(self, rec: FlowRecord) -> Ingested:
        try:
            return self._ingest(rec)
        except Exception as e:  # a bug here must not lose the exchange: store what is safe
            why = f"{type(e).__name__}: {e}"
            log.error("ingest failed for %s %s (%s)", rec.method, _strip_query(rec.url), why, exc_info=self._first(e))
            return self._fallback(rec, e)

    def _ingest(self, rec: FlowRecord) -> Ingested:
        parts = urlsplit(rec.url)
        host = (parts.hostname or "").lower()
        cls = self.catalog.classify(rec.method, host, parts.path)
        fam = self.catalog.family(cls.family)
        identity = cls.family == "identity"

        encoded = not rec.content_decoded
        req = self._body(rec.request_body, rec.request_headers, encoded)
        resp = self._body(rec.response_body, rec.response_headers or (), encoded)

        # Facts first: they need what redaction is about to remove.
        token = xero_facts.token_facts(header(rec.request_headers, "authorization")) or rec.token
        tenant = xero_facts.tenant_id(rec.request_headers, parts.query, fam.tenant_param if fam else None)
        limits = xero_facts.rate_limits(rec.response_headers)
        req_ct, resp_ct = header(rec.request_headers, "content-type"), header(rec.response_headers, "content-type")
        req_root, found = check_body(self.validator, req, req_ct, cls.request_schema, "request")
        resp_root, resp_found = check_body(self.validator, resp, resp_ct, cls.response_schema, "response")
        found += resp_found
        verdict = self._verdict(resp, resp_root)
        tenants = []
        if cls.family == "connections" and rec.method == "GET" and rec.status == 200 and resp.data:
            tenants = xero_facts.connections(resp.data)
            self.known_tenants.update({t["id"]: t["name"] or t["id"] for t in tenants})
        exchange = rules.Exchange(
            rec=rec,
            classification=cls,
            family=fam,
            xero_host=host in self._hosts,
            token=token,
            tenant=tenant,
            limits=limits,
            verdict=verdict,
            request_format=req.format,
            request_root=req_root,
            response_root=resp_root,
            known_tenants=self.known_tenants,
        )
        found.extend(rules.run(exchange))
        errors, warnings = counts(found)

        redactor = Redactor(self.keep_secrets)
        url = redactor.url(rec.url, identity)
        req = _redact_body(redactor, req, identity)
        resp = _redact_body(redactor, resp, identity)
        req_headers = redactor.headers(rec.request_headers)
        resp_headers = redactor.headers(rec.response_headers) if rec.response_headers is not None else None

        error = verdict.error
        row = _exchange_row(rec, url, req_headers, resp_headers, xero_facts.outcome(rec.status, rec.error, error))
        _describe(row, cls, tenant, token)
        row.correlation_id = header(rec.response_headers, "xero-correlation-id")
        row.rl_day_remaining = limits.day_remaining
        row.rl_minute_remaining = limits.minute_remaining
        row.rl_app_minute_remaining = limits.app_minute_remaining
        row.retry_after = limits.retry_after
        row.rate_limit_problem = limits.problem
        row.api_status = verdict.api_status
        if error:
            row.api_error, row.api_error_kind = error.message, error.kind
            row.api_error_details = json.dumps(error.details) if error.details else None
        row.redactions = redactor.count
        row.errors, row.warnings = errors, warnings
        row.request = _body_columns(req, rec.request_headers)
        row.response = _body_columns(resp, rec.response_headers)
        sides = [("request", req), ("response", resp), *self._originals(rec, redactor, identity)]
        bodies = [_body_row(side, body) for side, body in sides if body.data]
        return Ingested(row, bodies, tenants, [f.row() for f in found])

    def request_row(self, rec: FlowRecord, with_body: bool = True) -> tuple[FlowRow, str | None]:
        """What the request alone says, as its row will say it, and its body as text: how a
        live filter (a fault rule) sees a call still on its way. No answer, no findings, no
        schema, and no redaction (fingerprinting a token is the dearest step, and this row is
        never stored): a fraction of ``__call__``'s work, paid before the call may leave."""
        parts = urlsplit(rec.url)
        cls = self.catalog.classify(rec.method, (parts.hostname or "").lower(), parts.path)
        fam = self.catalog.family(cls.family)
        token = xero_facts.token_facts(header(rec.request_headers, "authorization")) or rec.token
        tenant = xero_facts.tenant_id(rec.request_headers, parts.query, fam.tenant_param if fam else None)
        outcome = xero_facts.outcome(rec.status, rec.error, None)
        row = _exchange_row(rec, rec.url, rec.request_headers, None, outcome)
        _describe(row, cls, tenant, token)
        if not with_body:  # no filter asks for it: not decoded, not sniffed
            row.request = BodyColumns(content_type=header(rec.request_headers, "content-type"))
            return row, None
        body = self._body(rec.request_body, rec.request_headers, not rec.content_decoded)
        row.request = _body_columns(body, rec.request_headers)
        return row, as_text(body.data) if body.data else None

    def _originals(self, rec: FlowRecord, redactor: Redactor, identity: bool) -> list[tuple[str, Body]]:
        """Bodies as they were before an edit at a breakpoint, kept beside what was sent
        (sides ``request-original``, ``response-original``), decoded and redacted the same way."""
        out = []
        encoded = not rec.content_decoded
        for side, raw, headers in (
            ("request", rec.original_request_body, rec.request_headers),
            ("response", rec.original_response_body, rec.response_headers or ()),
        ):
            if raw is not None:
                out.append((f"{side}-original", _redact_body(redactor, self._body(raw, headers, encoded), identity)))
        return out

    @property
    def _hosts(self) -> frozenset[str]:
        if self._hosts_of is None or self._hosts_of[0] is not self.catalog:  # the addon may swap the catalog
            self._hosts_of = (self.catalog, frozenset(self.catalog.hosts()))
        return self._hosts_of[1]

    def _body(self, raw: bytes | None, headers: Headers, encoded: bool = True) -> Body:
        if raw is None:
            return Body(None, None)
        content_type = header(headers, "content-type")
        try:
            decoded = decode_content(raw, header(headers, "content-encoding") if encoded else None, self.max_body)
        except DecodeError as e:
            # Keep the bytes as they came; say why they are not readable.
            return Body(raw[: self.max_body], len(raw), len(raw) > self.max_body, "binary", None, str(e))
        sniffed = sniff(decoded.data, content_type)
        return Body(decoded.data, len(raw), decoded.truncated, sniffed.format, sniffed.xml)

    @staticmethod
    def _verdict(resp: Body, root: etree._Element | None) -> xero_facts.BodyVerdict:
        if resp.data is None:
            return xero_facts.BodyVerdict()
        if resp.format == "xml":
            return xero_facts.read_xml_answer(root)
        if resp.format == "json":
            return xero_facts.read_json_answer(resp.data)
        if resp.format == "html":
            return xero_facts.read_html_answer(resp.data)
        return xero_facts.BodyVerdict()

    def _fallback(self, rec: FlowRecord, exc: Exception) -> Ingested:
        """The exchange with what needs no parsing; the query (which may hold keys) is dropped."""
        url = _strip_query(rec.url)
        row = _exchange_row(rec, url, (), None, xero_facts.outcome(rec.status, rec.error, None))
        row.family = "unknown"
        row.ingest_error = f"{type(exc).__name__}: {exc}"[:500]
        return Ingested(row)


def check_body(
    validator: Validator | None, body: Body, content_type: str | None, schema: BodySchema | None, side: str
) -> tuple[etree._Element | None, list[Finding]]:
    """Parse (and with a validator, validate) one side's XML: its root for the rules, and the
    schema findings. Shared by ingest and revalidate."""
    found = body_findings(body, content_type, side)
    if body.xml is None or body.truncated:
        return None, found
    if validator is None:
        return xmlsafe.try_parse(body.xml, lenient_label=side == "response"), found
    try:
        checked = validator.check(body.xml, schema, side)
    except SchemaLoadError as e:  # a user's broken XSD: say so on the flow, keep recording
        found.append(Finding.of(side, "xsd", f"schema not usable: {e}", severity="warning"))
        return xmlsafe.try_parse(body.xml, lenient_label=side == "response"), found
    return checked.root, found + checked.findings


def stored_body(data: bytes | None, content_type: str | None, truncated: bool) -> Body:
    """A body as read back from the store, sniffed again (revalidate, replay)."""
    if data is None:
        return Body(None, None)
    sniffed = sniff(data, content_type)
    return Body(data, len(data), truncated, sniffed.format, sniffed.xml)


def body_findings(body: Body, content_type: str | None, side: str) -> list[Finding]:
    """What can be said of a body before any schema: too big to check, or XML that is not."""
    if body.truncated and body.xml is not None:
        return [
            Finding.of(
                side, "not-validated", f"body cut at {len(body.data or b'')} bytes (inspector_max_body): not validated"
            )
        ]
    declared_xml = content_type is not None and "xml" in content_type.lower()
    if declared_xml and body.xml is None and body.format in ("text", "binary", "json", "form"):
        return [Finding.of(side, "not-well-formed", f"declared {content_type} but the body is {body.format}, not XML")]
    return []


def _strip_query(url: str) -> str:
    return url.split("?", 1)[0]


def _redact_body(redactor: Redactor, body: Body, identity: bool) -> Body:
    if redactor.keep_secrets or body.data is None or body.format not in ("form", "form-xml", "json"):
        return body
    text = as_text(body.data)
    if text is None:
        return body
    redacted = redactor.json(text, identity) if body.format == "json" else redactor.form(text, identity)
    if redacted == text:
        return body
    data = redacted.encode("utf-8")
    return Body(data, body.raw_size, body.truncated, body.format, body.xml, body.decode_error)


def _exchange_row(
    rec: FlowRecord, url: str, req_headers: Headers, resp_headers: Headers | None, outcome: str
) -> FlowRow:
    """The row with what the exchange itself says (``url`` and the headers already redacted)."""
    parts = urlsplit(url)
    duration = (rec.ended_at - rec.started_at) * 1000 if rec.ended_at is not None else None
    return FlowRow(
        started_at=rec.started_at,
        method=rec.method,
        url=url,
        outcome=outcome,
        source=rec.source,
        replay_of=rec.replay_of,
        ended_at=rec.ended_at,
        duration_ms=round(duration, 3) if duration is not None else None,
        client_addr=rec.client_addr,
        server_addr=rec.server_addr,
        scheme=parts.scheme,
        host=(parts.hostname or "").lower(),
        port=parts.port or _DEFAULT_PORTS.get(parts.scheme),
        path=parts.path or "/",
        query=parts.query or None,
        http_version=rec.http_version,
        tls=int(rec.tls),
        status=rec.status,
        reason=rec.reason,
        error=rec.error,
        request_headers=json.dumps(req_headers),
        response_headers=json.dumps(resp_headers) if resp_headers is not None else None,
        response_http_version=rec.response_http_version,
        injected=rec.injected,
        paused=rec.paused,
    )


def _describe(row: FlowRow, cls: Classification, tenant: str | None, token: TokenFacts | None) -> None:
    """What the catalog and the request's headers say of the call: the same for a stored row
    and a live one."""
    row.family, row.resource, row.operation, row.endpoint = cls.family, cls.resource, cls.operation, cls.endpoint
    row.path_params = json.dumps(cls.params) if cls.params else None
    row.tenant_id = tenant
    if token:
        row.token_exp, row.token_client_id, row.token_user_id = token.exp, token.client_id, token.user_id
        row.token_scopes = " ".join(token.scopes) if token.scopes else None


def _body_columns(body: Body, headers: Headers | None) -> BodyColumns:
    return BodyColumns(
        content_type=header(headers, "content-type"),
        format=body.format,
        size=len(body.data) if body.data is not None else None,
        raw_size=body.raw_size,
        truncated=int(body.truncated),
        decode_error=body.decode_error,
    )


def _body_row(side: str, body: Body) -> dict[str, Any]:
    assert body.data is not None
    text = as_text(body.data)
    return {"side": side, "text": text, "data": None if text is not None else body.data}
