"""Request and response shapes for the mock, and the XML/JSON answers Xero gives."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from lxml import etree

from inspector.ingest import xmlsafe

XML_TYPE = "text/xml; charset=utf-8"
JSON_TYPE = "application/json; charset=utf-8"


@dataclass
class MockRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]  # lower-cased names
    body: bytes = b""
    scheme: str = "https"  # as the client used it (X-Forwarded-Proto through the proxy)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def param(self, name: str) -> str | None:
        lname = name.lower()
        for key, value in parse_qsl(self.query, keep_blank_values=True):
            if key.lower() == lname:
                return value
        return None

    @property
    def wants_json(self) -> bool:
        return "json" in (self.header("accept") or "").lower()


@dataclass
class MockResponse:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)

    def with_headers(self, extra: list[tuple[str, str]]) -> MockResponse:
        return MockResponse(self.status, self.body, [*self.headers, *extra])


def el(tag: str, *children: Any, attrib: dict[str, str] | None = None) -> etree._Element:
    """An element; children are elements, text (str/int/float), or None (skipped)."""
    node = etree.Element(tag, attrib or {})
    for child in children:
        if child is None:
            continue
        if isinstance(child, etree._Element):
            node.append(child)
        else:
            node.text = str(child)
    return node


def fields(**values: Any) -> list[etree._Element]:
    """<Key>value</Key> for each keyword, in order; None values become empty elements."""
    out = []
    for key, value in values.items():
        if isinstance(value, etree._Element):
            out.append(value)
        else:
            out.append(el(key, None if value is None else value))
    return out


def xml(root: etree._Element, status: int = 200) -> MockResponse:
    body = etree.tostring(root, encoding="utf-8", xml_declaration=True)
    return MockResponse(status, body, [("Content-Type", XML_TYPE)])


def as_json(doc: Any, status: int = 200) -> MockResponse:
    return MockResponse(status, json.dumps(doc).encode("utf-8"), [("Content-Type", JSON_TYPE)])


def problem(status: int, title: str, detail: str, headers: list[tuple[str, str]] | None = None) -> MockResponse:
    """The gateway's JSON problem document, sent even on XML APIs (XERO.md §4.2)."""
    doc: dict[str, Any] = {
        "Type": None,
        "Title": title,
        "Status": status,
        "Detail": detail,
        "Instance": str(uuid.uuid4()),
        "Extensions": {},
    }
    return as_json(doc, status).with_headers(headers or [])


def unauthorized(detail: str) -> MockResponse:
    """The gateway's 401 for a missing, bad or expired token (XERO.md §4.2)."""
    return problem(401, "Unauthorized", detail, [("WWW-Authenticate", 'Bearer error="invalid_token"')])


def parse_xml(body: bytes) -> etree._Element | None:
    """The request's XML, whether raw or in an `xml=` form field; None when not well-formed."""
    from inspector.ingest.decoding import sniff

    sniffed = sniff(body)
    return xmlsafe.try_parse(sniffed.xml) if sniffed.xml else None


def child_text(node: etree._Element | None, path: str) -> str | None:
    return xmlsafe.text(node, path)


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def new_id() -> str:
    return str(uuid.uuid4())
