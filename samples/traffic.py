"""Synthetic but realistic Xero traffic as FlowRecords, with no network and no clock.

Each exchange is built from the sample bodies (the same files the schema tests use) and
the answers Xero gives, with fixed tenants, tokens and times, so a test, a snapshot or a
million-flow benchmark database can be built through the real ingest and store.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from http import HTTPStatus
from pathlib import Path

from sqlite_utils import Database

from ..ingest.record import FlowRecord, Headers
from .mock_xero import TENANTS

BODIES = Path(__file__).parent / "bodies"
XPM = "https://api.xero.com/practicemanager/3.0"
ACCOUNTING = "https://api.xero.com/api.xro/2.0"
PRACTICE, ORGANISATION = TENANTS[0], TENANTS[1]
XML = "text/xml; charset=utf-8"
UNAUTHORIZED = 'Bearer error="invalid_token"'


def _jwt(exp: int, scopes: list[str]) -> str:
    def part(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    claims = {"exp": exp, "nbf": exp - 1800, "client_id": "DEMOCLIENT", "scope": scopes, "xero_userid": "u-1"}
    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


def _body(family: str, name: str) -> bytes:
    return (BODIES / family / name).read_bytes()


class Traffic:
    """Exchange number ``i`` happens at ``start + i * step`` seconds; templates cycle."""

    def __init__(self, start: float = 1_790_000_000.0, step: float = 1.5) -> None:
        self.start = start
        self.step = step
        self.templates: list[Callable[[int, float], FlowRecord]] = [
            self.connections,
            self.xpm_list,
            self.xpm_add_ok,
            self.xpm_list,
            self.xpm_add_typo,
            self.accounting_get_json,
            self.accounting_put_invalid,
            self.xpm_state_error,
            self.accounting_pdf,
            self.xpm_list,
            self.rate_limited,
            self.expired_token,
            self.dead_upstream,
        ]

    def records(self, count: int, first: int = 0) -> Iterator[FlowRecord]:
        for i in range(first, first + count):
            yield self.templates[i % len(self.templates)](i, self.start + i * self.step)

    def _headers(self, tenant: str, t: float, content_type: str | None = XML) -> Headers:
        token = _jwt(int(t) + 1200, ["openid", "practicemanager", "accounting.transactions"])
        h: Headers = (("Authorization", f"Bearer {token}"), ("xero-tenant-id", tenant), ("Accept", "*/*"))
        return (*h, ("Content-Type", content_type)) if content_type else h

    def _limits(self, i: int, content_type: str = XML) -> Headers:
        return (
            ("Content-Type", content_type),
            ("Xero-Correlation-Id", f"c0rre1a7-0000-4000-8000-{i:012d}"),
            ("X-DayLimit-Remaining", str(5000 - i % 5000)),
            ("X-MinLimit-Remaining", str(60 - i % 61)),
            ("X-AppMinLimit-Remaining", str(10000 - i % 10000)),
        )

    def _call(
        self,
        i: int,
        t: float,
        call: tuple[str, str, str],  # method, URL, tenant
        body: bytes | None,
        answer: bytes,
        *,
        took: float,
        client: str,
        status: int = 200,
        ct: str = XML,
    ) -> FlowRecord:
        method, url, tenant = call
        return FlowRecord(
            started_at=t,
            ended_at=t + took,
            method=method,
            url=url,
            http_version="HTTP/1.1",
            request_headers=self._headers(tenant, t, XML if body is not None else None),
            request_body=body,
            status=status,
            reason=HTTPStatus(status).phrase,
            response_headers=self._limits(i, ct),
            response_body=answer,
            client_addr=client,
            server_addr="127.0.0.1:8443",
            tls=True,
        )

    def _xpm(self, i: int, t: float, method: str, path: str, body: bytes | None, answer: bytes) -> FlowRecord:
        call = (method, f"{XPM}/{path}", PRACTICE.id)
        return self._call(i, t, call, body, answer, took=0.08 + (i % 7) * 0.03, client="127.0.0.1:50123")

    def connections(self, i: int, t: float) -> FlowRecord:
        answer = [
            {"id": x.connection_id, "tenantId": x.id, "tenantType": x.type, "tenantName": x.name} for x in TENANTS
        ]
        return FlowRecord(
            started_at=t,
            ended_at=t + 0.05,
            method="GET",
            url="https://api.xero.com/connections",
            http_version="HTTP/1.1",
            request_headers=self._headers("", t, None)[:1],
            request_body=b"",
            status=200,
            reason="OK",
            response_headers=(("Content-Type", "application/json"),),
            response_body=json.dumps(answer).encode(),
            tls=True,
        )

    def xpm_list(self, i: int, t: float) -> FlowRecord:
        return self._xpm(i, t, "GET", "client.api/list", None, _body("xpm-3.0", "response-list.valid.xml"))

    def xpm_add_ok(self, i: int, t: float) -> FlowRecord:
        body = _body("xpm-3.0", "job-add.valid.xml")
        return self._xpm(i, t, "POST", "job.api/add", body, _body("xpm-3.0", "response-add.valid.xml"))

    def xpm_add_typo(self, i: int, t: float) -> FlowRecord:
        answer = b'<Response api-method="Add">\n  <Status>ERROR</Status>\n  <ErrorDescription>Invalid client identifier</ErrorDescription>\n</Response>\n'  # noqa: E501
        return self._xpm(i, t, "POST", "job.api/add", _body("xpm-3.0", "job-add.typo.invalid.xml"), answer)

    def xpm_state_error(self, i: int, t: float) -> FlowRecord:
        body = _body("xpm-3.0", "job-state.valid.xml")
        return self._xpm(i, t, "PUT", "job.api/state", body, _body("xpm-3.0", "response-error.invalid.xml"))

    def _accounting(
        self, i: int, t: float, method: str, path: str, body: bytes | None, status: int, answer: bytes, ct: str
    ) -> FlowRecord:
        call = (method, f"{ACCOUNTING}/{path}", ORGANISATION.id)
        took = 0.12 + (i % 5) * 0.04
        return self._call(i, t, call, body, answer, took=took, client="127.0.0.1:50124", status=status, ct=ct)

    def accounting_get_json(self, i: int, t: float) -> FlowRecord:
        answer = {"Status": "OK", "Invoices": [{"InvoiceID": f"inv-{i}", "Type": "ACCREC", "Total": 115.0}]}
        return self._accounting(i, t, "GET", "Invoices", None, 200, json.dumps(answer).encode(), "application/json")

    def accounting_put_invalid(self, i: int, t: float) -> FlowRecord:
        body = _body("accounting-2.0", "invoices-put.second-bad.invalid.xml")
        answer = _body("accounting-2.0", "apiexception.invalid.xml")
        return self._accounting(i, t, "PUT", "Invoices", body, 400, answer, XML)

    def accounting_pdf(self, i: int, t: float) -> FlowRecord:
        pdf = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\n" + bytes(range(256)) + b"\n%%EOF\n"
        return self._accounting(i, t, "GET", f"Invoices/inv-{i}", None, 200, pdf, "application/pdf")

    def rate_limited(self, i: int, t: float) -> FlowRecord:
        rec = self.xpm_list(i, t)
        headers = (*self._limits(i)[:2], ("X-Rate-Limit-Problem", "minute"), ("Retry-After", "60"))
        return _replace(rec, status=429, reason="Too Many Requests", response_headers=headers, response_body=b"")

    def expired_token(self, i: int, t: float) -> FlowRecord:
        rec = self.xpm_list(i, t)
        token = _jwt(int(t) - 1800, ["openid", "practicemanager"])
        problem = {"Type": None, "Title": "Unauthorized", "Status": 401, "Detail": "TokenExpired: token expired"}
        return _replace(
            rec,
            request_headers=(("Authorization", f"Bearer {token}"), ("xero-tenant-id", PRACTICE.id)),
            status=401,
            reason="Unauthorized",
            response_headers=(("Content-Type", "application/json"), ("WWW-Authenticate", UNAUTHORIZED)),
            response_body=json.dumps(problem).encode(),
        )

    def dead_upstream(self, i: int, t: float) -> FlowRecord:
        rec = self.xpm_list(i, t)
        return _replace(
            rec, status=None, reason=None, response_headers=None, response_body=None, error="Connection refused"
        )


def _replace(rec: FlowRecord, **changes: object) -> FlowRecord:
    return replace(rec, **changes)


def fill(db: Database, count: int, traffic: Traffic | None = None, batch: int = 500) -> list[int]:
    """Record ``count`` synthetic exchanges into a store through the real ingest (with
    validation) and the real insert; the flow ids."""
    from ..ingest.catalog import Catalog
    from ..ingest.pipeline import Ingest
    from ..ingest.validate import SchemaCache, Validator
    from ..store.database import insert

    ingest = Ingest(Catalog.load(), validator=Validator(SchemaCache()))
    traffic = traffic or Traffic()
    ids: list[int] = []
    items = []
    for rec in traffic.records(count):
        items.append(ingest(rec))
        if len(items) >= batch:
            ids += insert(db, items, items[-1].flow.started_at)
            items = []
    if items:
        ids += insert(db, items, items[-1].flow.started_at)
    return ids
