"""`xero-inspector validate`: check XML files against the schema of one endpoint, like a compiler.

The endpoint is given as the call would be made ("POST https://api.xero.com/practicemanager/3.0/job.api/add"):
the catalog picks the request schema (or, with --response, the answer's schema), so a file
is judged exactly as the proxy would judge that call's body.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from inspector.ingest import xero_facts
from inspector.ingest.catalog import BodySchema, Catalog, Classification
from inspector.ingest.decoding import sniff
from inspector.ingest.findings import Finding
from inspector.ingest.rules import answer_findings
from inspector.ingest.validate import Validator


class TargetError(ValueError):
    """An --endpoint that names no schema; the message says what to do instead."""


@dataclass(frozen=True, slots=True)
class Target:
    method: str
    url: str
    classification: Classification
    schema: BodySchema
    side: str

    def describe(self) -> str:
        c = self.classification
        where = f"{self.method} {c.family} {c.endpoint or urlsplit(self.url).path}"
        return f"{where} ({self.schema.describe()})"


def target(catalog: Catalog, endpoint: str, response: bool = False) -> Target:
    method, _, url = endpoint.strip().partition(" ")
    url = url.strip()
    parts = urlsplit(url)
    if not method.isalpha() or not parts.scheme or not parts.hostname:
        example = "POST https://api.xero.com/practicemanager/3.0/job.api/add"
        raise TargetError(f'--endpoint must be "METHOD URL", e.g. "{example}"; got {endpoint!r}')
    method = method.upper()
    c = catalog.classify(method, parts.hostname, parts.path)
    if c.family == "unknown":
        raise TargetError(
            f"{parts.hostname}{parts.path} is not a Xero API the catalog knows (see xero-inspector endpoints)"
        )
    schema = c.response_schema if response else c.request_schema
    if schema is None:
        if response:
            raise TargetError(f"{c.family} answers have no schema in the catalog")
        if c.operation is None:
            raise TargetError(f"no {method} endpoint matches {parts.path} in {c.family} (see xero-inspector endpoints)")
        raise TargetError(
            f"{method} {c.endpoint} ({c.family}) takes no XML body the catalog describes; "
            "use --response to check an answer"
        )
    return Target(method, url, c, schema, "response" if response else "request")


# What a body that is not XML looks like instead, in words (bodies.sniff's formats).
_LOOKS_LIKE = {
    "empty": "it is empty",
    "json": "it looks like JSON",
    "form": "it looks like a urlencoded form",
    "html": "it looks like an HTML page",
    "text": "it looks like plain text",
    "binary": "it looks like binary data",
}


def check_file(validator: Validator, t: Target, data: bytes) -> list[Finding]:
    """Findings for one file's bytes: BOM, CRLF and the `xml=` form field are handled as the proxy does."""
    sniffed = sniff(data)
    if sniffed.xml is None:
        looks = _LOOKS_LIKE.get(sniffed.format, f"it looks like {sniffed.format}")
        return [Finding.of(t.side, "not-well-formed", f"not an XML document ({looks})")]
    checked = validator.check(sniffed.xml, t.schema, t.side)
    found = list(checked.findings)
    if t.side == "response" and checked.root is not None:
        found += answer_findings(xero_facts.read_xml_answer(checked.root), checked.root)
    return found


def format_finding(name: str, f: Finding) -> str:
    """file:line:col: severity[rule] message (xpath), then the hint on its own line."""
    pos = f":{f.line}" + (f":{f.column}" if f.column else "") if f.line else ""
    text = f"{name}{pos}: {f.severity}[{f.rule}] {f.message}"
    if f.xpath:
        text += f" ({f.xpath})"
    if f.hint:
        text += f"\n    hint: {f.hint}"
    return text
