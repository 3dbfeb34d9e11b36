"""Facts read off Xero traffic: tenant, rate limits, token claims, the Xero error in a body.

All of it comes from XERO.md: headers (§2), limits (§3) and the three error shapes (§4)
plus the Customer API's Errors form. A status code alone misses most Xero failures.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl

from lxml import etree

from inspector.ingest import xmlsafe
from inspector.ingest.record import Headers, TokenFacts, header
from inspector.ingest.redact import fingerprint, is_redacted

Outcome = Literal["ok", "api-error", "http-error", "rate-limited", "transport-error"]
OUTCOMES: tuple[Outcome, ...] = ("ok", "api-error", "http-error", "rate-limited", "transport-error")

_TITLE_RE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True, slots=True)
class RateLimits:
    day_remaining: int | None = None
    minute_remaining: int | None = None
    app_minute_remaining: int | None = None
    retry_after: int | None = None
    problem: str | None = None  # X-Rate-Limit-Problem: minute | day | appminute


def rate_limits(headers: Headers | None) -> RateLimits:
    return RateLimits(
        day_remaining=_int(header(headers, "x-daylimit-remaining")),
        minute_remaining=_int(header(headers, "x-minlimit-remaining")),
        app_minute_remaining=_int(header(headers, "x-appminlimit-remaining")),
        retry_after=_int(header(headers, "retry-after")),
        problem=header(headers, "x-rate-limit-problem"),
    )


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None


def token_facts(authorization: str | None) -> TokenFacts | None:
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or token.count(".") != 2:
        return None
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, binascii.Error):
        return None
    if not isinstance(claims, dict):
        return None
    scope = claims.get("scope", ())
    scopes = tuple(scope.split()) if isinstance(scope, str) else tuple(str(s) for s in scope)
    return TokenFacts(
        exp=_claim_int(claims.get("exp")),
        nbf=_claim_int(claims.get("nbf")),
        scopes=scopes,
        client_id=_claim_str(claims.get("client_id")),
        user_id=_claim_str(claims.get("xero_userid") or claims.get("sub")),
    )


def _claim_int(v: Any) -> int | None:
    return int(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _claim_str(v: Any) -> str | None:
    return str(v) if isinstance(v, str | int) else None


def tenant_id(headers: Headers, query: str, tenant_param: str | None) -> str | None:
    """The organisation a call is for: the xero-tenant-id header, or for key-based APIs
    the fingerprint of the key that names the organisation (never the key itself)."""
    value = header(headers, "xero-tenant-id")
    if value:
        return value.strip()
    if tenant_param:
        for key, val in parse_qsl(query, keep_blank_values=True):
            if key.lower() == tenant_param.lower() and val:
                return val if is_redacted(val) else fingerprint(val)
    return None


@dataclass(frozen=True, slots=True)
class ApiError:
    """The error Xero put in a body, whatever the status code said."""

    kind: str  # xpm-status | api-exception | validation | network | problem | oauth | html
    message: str
    details: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class BodyVerdict:
    api_status: str | None = None  # <Status> of an XML Response, Status of a JSON problem
    error: ApiError | None = None


def read_xml_answer(root: etree._Element | None) -> BodyVerdict:
    if root is None or not isinstance(root.tag, str):
        return BodyVerdict()
    if root.tag == "ApiException":
        return BodyVerdict("ERROR", _api_exception_xml(root))
    if root.tag != "Response":
        return BodyVerdict()
    status = xmlsafe.text(root, "Status")
    if status and status.upper() == "ERROR":
        message = xmlsafe.text(root, "ErrorDescription") or "Status ERROR with no ErrorDescription"
        return BodyVerdict(status, ApiError("xpm-status", message))
    errors = root.find("Errors")
    if errors is not None and len(errors):
        return BodyVerdict(status, _network_errors(errors, status))
    per_element = _element_validation_errors_xml(root)
    if per_element:
        return BodyVerdict(status, per_element)
    return BodyVerdict(status)


def _api_exception_xml(root: etree._Element) -> ApiError:
    message = xmlsafe.text(root, "Message") or xmlsafe.text(root, "Type") or "ApiException"
    details: list[dict[str, Any]] = []
    elements = root.find("Elements")
    for index, el in enumerate(elements if elements is not None else ()):
        if not isinstance(el.tag, str):
            continue
        xsi_type = next((v for k, v in el.attrib.items() if k.endswith("}type") or k == "type"), None)
        for msg in el.iterfind("ValidationErrors/ValidationError/Message"):
            details.append({"index": index, "element": xsi_type or el.tag, "message": (msg.text or "").strip()})
    return ApiError("api-exception", _with_first_detail(message, details), details)


def _network_errors(errors: etree._Element, status: str | None) -> ApiError:
    details = []
    for err in errors.iterfind("Error"):
        details.append(
            {
                "message": xmlsafe.text(err, "Exception/Message") or xmlsafe.text(err, "Description") or "",
                "type": xmlsafe.text(err, "Exception/ExceptionType"),
            }
        )
    first = next((d["message"] or d["type"] for d in details if d["message"] or d["type"]), None)
    return ApiError("network", first or f"Errors returned (Status {status})", details)


def _element_validation_errors_xml(root: etree._Element) -> ApiError | None:
    """Accounting with summarizeErrors=false answers 200 and marks each failed element."""
    details: list[dict[str, Any]] = []
    total = 0
    for collection in root:
        if not isinstance(collection.tag, str) or len(collection) == 0:
            continue
        for index, el in enumerate(c for c in collection if isinstance(c.tag, str)):
            total += 1
            for msg in el.iterfind("ValidationErrors/ValidationError/Message"):
                details.append({"index": index, "element": el.tag, "message": (msg.text or "").strip()})
    if not details:
        return None
    failed = len({d["index"] for d in details})
    return ApiError("validation", f"{failed} of {total} elements failed validation: {details[0]['message']}", details)


def read_json_answer(data: bytes) -> BodyVerdict:
    try:
        doc = json.loads(data)
    except ValueError:
        return BodyVerdict()
    if not isinstance(doc, dict):
        return BodyVerdict()
    if "ErrorNumber" in doc and "Message" in doc:
        details = []
        for index, el in enumerate(doc.get("Elements") or ()):
            for ve in (el or {}).get("ValidationErrors") or ():
                details.append({"index": index, "message": str((ve or {}).get("Message", ""))})
        message = _with_first_detail(str(doc.get("Message")), details)
        return BodyVerdict("ERROR", ApiError("api-exception", message, details))
    if "Status" in doc and ("Detail" in doc or "Title" in doc):  # RFC 7807-ish problem document
        title, detail = doc.get("Title"), doc.get("Detail")
        message = f"{title}: {detail}" if title and detail else str(detail or title)
        return BodyVerdict(str(doc.get("Status")), ApiError("problem", message))
    if isinstance(doc.get("error"), str):  # OAuth 2.0 error from identity.xero.com
        desc = doc.get("error_description")
        message = f"{doc['error']}: {desc}" if desc else doc["error"]
        return BodyVerdict(None, ApiError("oauth", message))
    details = []
    total = 0
    for value in doc.values():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for index, el in enumerate(value):
                total += 1
                for ve in el.get("ValidationErrors") or ():
                    details.append({"index": index, "message": str((ve or {}).get("Message", ""))})
    if details:
        failed = len({d["index"] for d in details})
        message = f"{failed} of {total} elements failed validation: {details[0]['message']}"
        return BodyVerdict(
            str(doc.get("Status")) if "Status" in doc else None, ApiError("validation", message, details)
        )
    return BodyVerdict(str(doc["Status"]) if isinstance(doc.get("Status"), str) else None)


def read_html_answer(data: bytes) -> BodyVerdict:
    """An API that answers with a web page (a bad Customer API key redirects to a login page)."""
    m = _TITLE_RE.search(data[:65536])
    title = m.group(1).decode("utf-8", "replace").strip() if m else ""
    message = f"an HTML page instead of an API answer: {title}" if title else "an HTML page instead of an API answer"
    return BodyVerdict(None, ApiError("html", message))


def _with_first_detail(message: str, details: list[dict[str, Any]]) -> str:
    return f"{message}: {details[0]['message']}" if details and details[0]["message"] else message


def outcome(status: int | None, transport_error: str | None, api_error: ApiError | None) -> Outcome:
    if status is None:
        return "transport-error" if transport_error else "http-error"
    if status == 429:
        return "rate-limited"
    if status >= 400:
        return "http-error"
    if api_error is not None:
        return "api-error"
    return "ok"


# What a failed call is, the one definition that report, JUnit, `replay --failed`, the ~failed
# filter and the failed_calls view share: an answer that is not ok (HTTP >= 400, a Xero error
# inside a 2xx, a 429, no answer at all), or a call to an endpoint Xero has retired, whatever
# it answered (WorkflowMax v1 was switched off at the end of 2020: XERO.md §1).
FAILING_RULES = frozenset({"retired-endpoint"})


def failure(outcome: str, rules: Iterable[str]) -> str | None:
    """Why a call failed: its outcome when not ok, else the failing rule it broke; None if it did not."""
    if outcome != "ok":
        return outcome
    return next((r for r in rules if r in FAILING_RULES), None)


def connections(data: bytes) -> list[dict[str, Any]]:
    """Tenant rows from a GET /connections answer (the only place a tenant gets a name)."""
    try:
        doc = json.loads(data)
    except ValueError:
        return []
    rows = []
    for c in doc if isinstance(doc, list) else ():
        if isinstance(c, dict) and c.get("tenantId"):
            rows.append(
                {
                    "id": str(c["tenantId"]),
                    "name": c.get("tenantName"),
                    "type": c.get("tenantType"),
                    "connection_id": c.get("id"),
                    "created_at": c.get("createdDateUtc"),
                    "updated_at": c.get("updatedDateUtc"),
                }
            )
    return rows
