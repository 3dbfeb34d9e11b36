"""Findings a schema cannot see: Xero errors behind 200s, retired endpoints, tokens, tenants, limits.

Each check reads one ``Exchange`` (the facts ingest gathered before redaction) and yields
findings; the rule ids, severities and default hints live in ``findings.RULES``. Sources:
XERO.md §2 (headers), §3 (limits), §4 (the error shapes), §1 (the v1 retirement).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

from lxml import etree

from inspector.ingest.catalog import Classification, Family
from inspector.ingest.findings import Finding
from inspector.ingest.record import FlowRecord, TokenFacts, header
from inspector.ingest.redact import SECRET_FIELDS
from inspector.ingest.v3 import TARGETS, v3_url
from inspector.ingest.xero_facts import BodyVerdict, RateLimits

LIMITS = {
    "minute": "60 calls per minute per organisation",
    "day": "5,000 calls per day per organisation",
    "appminute": "10,000 calls per minute for the app across all organisations",
}
# Xero accepted a token 155 s past its exp (xpm_ruby job/current.yml, recorded live in 2020): the
# gateway allows for clock skew, 5 minutes being the usual JWT validators' default.
CLOCK_SKEW_S = 300
# Warn when this little is left: a few seconds of a busy sync loop.
LOW_MINUTE, LOW_DAY, LOW_APP_MINUTE = 5, 250, 500

# What to do about the Practice Manager error texts seen on the real API (XERO.md §4.1).
XPM_HINTS = {
    "invalid client identifier": "That ClientID is not in this practice: look it up with GET client.api/list.",
    "invalid job identifier": "Send the job number (<ID>J000031</ID>) from job.api/list or the add answer.",
    "invalid state code": "Send a state code from GET jobstate.api/list (codes are the practice's own).",
    "the client name is required": "Send a non-empty <Name>.",
    "invalid staff identifier": "Send a StaffID from GET staff.api/list.",
    "message not in expected format": "A required element is missing or misspelt: see the request's schema findings.",
}


@dataclass(frozen=True, slots=True)
class Exchange:
    """What the checks need to know about one exchange, gathered before redaction."""

    rec: FlowRecord
    classification: Classification
    family: Family | None
    xero_host: bool  # the host is one of the catalog's (not a user's gateway)
    token: TokenFacts | None
    tenant: str | None
    limits: RateLimits
    verdict: BodyVerdict
    request_format: str
    request_root: etree._Element | None = None
    response_root: etree._Element | None = None
    known_tenants: Mapping[str, str] = field(default_factory=dict)  # id -> name from /connections


Check = Callable[[Exchange], Iterator[Finding]]


def retired_endpoint(x: Exchange) -> Iterator[Finding]:
    if x.family is None or not x.family.retired:
        return
    instead = " or ".join(f"{v3_url(x.rec.url, t)} ({t.title})" for t in TARGETS.values())
    yield Finding.of(
        "exchange",
        "retired-endpoint",
        f"{x.family.title}: switched off at the end of 2020; call {instead} "
        "with an OAuth 2.0 Bearer token and xero-tenant-id",
    )


def plain_http(x: Exchange) -> Iterator[Finding]:
    if x.xero_host and urlsplit(x.rec.url).scheme == "http":
        yield Finding.of("exchange", "plain-http", f"{x.rec.method} {x.rec.url.split('?', 1)[0]} over plain HTTP")


def missing_tenant(x: Exchange) -> Iterator[Finding]:
    if x.family is None or x.family.tenant != "header" or x.tenant:
        return
    yield Finding.of(
        "request", "missing-tenant", f"{x.family.title} needs the xero-tenant-id header to name the organisation"
    )


def token_expired(x: Exchange) -> Iterator[Finding]:
    exp = x.token.exp if x.token else None
    if exp is not None and exp < x.rec.started_at:
        ago = int(x.rec.started_at - exp)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(exp))
        said = f"the access token expired at {stamp}, {ago} s before this request"
        if ago <= CLOCK_SKEW_S and (x.rec.status is None or x.rec.status < 400):
            # Xero took it all the same: a warning that the refresh comes late, not an error.
            yield Finding.of("request", "token-expired", f"{said}; Xero still accepted it", severity="warning")
        else:
            yield Finding.of("request", "token-expired", said)
        return
    if x.rec.status == 401:
        detail = x.verdict.error.message if x.verdict.error else ""
        challenge = header(x.rec.response_headers, "www-authenticate") or ""
        if "tokenexpired" in detail.lower().replace(" ", "") or "expired" in challenge.lower():
            yield Finding.of("response", "token-expired", f"401 from Xero: {detail or challenge}")


def auth_unsuccessful(x: Exchange) -> Iterator[Finding]:
    detail = x.verdict.error.message if x.verdict.error else ""
    if x.rec.status != 403 or "authenticationunsuccessful" not in detail.lower():
        return
    if not x.tenant:
        why = "no xero-tenant-id was sent"
    elif x.tenant in x.known_tenants:
        why = (
            f"tenant {x.tenant} ({x.known_tenants[x.tenant]}) is connected, but not for this token: "
            "it may belong to another user or app, or lack the scope"
        )
    elif x.known_tenants:
        names = ", ".join(f"{n} ({i})" for i, n in sorted(x.known_tenants.items(), key=lambda t: t[1]))
        why = f"tenant {x.tenant} is not among the connected organisations seen in GET /connections: {names}"
    else:
        why = f"tenant {x.tenant} is not connected to this token, or was disconnected (see GET /connections)"
    yield Finding.of("response", "auth-unsuccessful", f"403 AuthenticationUnsuccessful: {why}")


def rate_limited(x: Exchange) -> Iterator[Finding]:
    if x.rec.status != 429:
        return
    lim = x.limits
    which = (
        f"the {lim.problem} limit ({LIMITS.get(lim.problem, 'as Xero named it')})" if lim.problem else "a rate limit"
    )
    wait = f"retry after {lim.retry_after} s" if lim.retry_after is not None else "no Retry-After given"
    yield Finding.of("response", "rate-limited", f"429: {which} was exceeded; {wait}")


def rate_limit_low(x: Exchange) -> Iterator[Finding]:
    if x.rec.status == 429:
        return
    lim = x.limits
    for left, low, what in (
        (
            lim.minute_remaining,
            LOW_MINUTE,
            "X-MinLimit-Remaining: {n} of 60 calls left this minute for this organisation",
        ),
        (lim.day_remaining, LOW_DAY, "X-DayLimit-Remaining: {n} of 5,000 calls left today for this organisation"),
        (
            lim.app_minute_remaining,
            LOW_APP_MINUTE,
            "X-AppMinLimit-Remaining: {n} of 10,000 calls left this minute for the app",
        ),
    ):
        if left is not None and left <= low:
            yield Finding.of("response", "rate-limit-low", what.format(n=left))


def content_type(x: Exchange) -> Iterator[Finding]:
    if x.request_format != "xml":
        return
    declared = header(x.rec.request_headers, "content-type")
    if declared is None or "xml" not in declared.lower():
        what = f"as {declared}" if declared else "with no Content-Type"
        yield Finding.of("request", "content-type", f"an XML body sent {what}")


def secret_in_query(x: Exchange) -> Iterator[Finding]:
    # Key-based APIs (Customer API, legacy v1) take their keys in the query by design, and an
    # OAuth authorize redirect carries its code there: neither is the app's mistake.
    if x.family is not None and (x.family.auth == "keys" or x.family.id == "identity"):
        return
    names = sorted({k for k, _ in parse_qsl(urlsplit(x.rec.url).query) if k.lower() in SECRET_FIELDS})
    if names:
        yield Finding.of("request", "secret-in-query", f"{', '.join(names)} in the URL's query string")


def answer_errors(x: Exchange) -> Iterator[Finding]:
    yield from answer_findings(x.verdict, x.response_root, x.request_root, x.rec.status)


def answer_findings(
    verdict: BodyVerdict,
    response_root: etree._Element | None,
    request_root: etree._Element | None = None,
    status: int | None = 200,
) -> Iterator[Finding]:
    """The error Xero put in the body, one finding per failed element of a batch."""
    error = verdict.error
    if error is None or error.kind in ("problem", "oauth"):  # 401/403 have their own rules
        return
    if error.kind == "xpm-status":
        el = response_root.find("ErrorDescription") if response_root is not None else None
        hint = next((h for text, h in XPM_HINTS.items() if error.message.lower().startswith(text)), None)
        yield Finding.of(
            "response",
            "xpm-error",
            f"Status ERROR inside HTTP {status}: {error.message}",
            line=el.sourceline if el is not None else None,
            xpath="/Response/ErrorDescription",
            **({"hint": hint} if hint else {}),
        )
    elif error.kind == "html":
        yield Finding.of("response", "html-answer", error.message)
    elif error.kind == "network":
        for d in error.details or [{"message": error.message}]:
            kind = f" ({d['type']})" if d.get("type") else ""
            yield Finding.of("response", "network-error", f"{d.get('message') or 'error'}{kind}")
    elif error.details:
        yield from _element_errors(response_root, request_root, error.details)
    else:
        yield Finding.of("response", "api-exception", error.message)


def _element_errors(
    root: etree._Element | None, req: etree._Element | None, details: list[dict[str, object]]
) -> Iterator[Finding]:
    """Each ValidationError tied to its element: its index in the batch, the request element
    it came from (/Invoices/Invoice[2]), and its line in the answer."""
    located: dict[tuple[int, int], tuple[int | None, str]] = {}
    container = None
    if root is not None:
        container = root.find("Elements") if root.tag == "ApiException" else next((c for c in root if len(c)), None)
    if container is not None:
        tree = container.getroottree()
        for index, item in enumerate(c for c in container if isinstance(c.tag, str)):
            for k, msg in enumerate(item.iterfind("ValidationErrors/ValidationError/Message")):
                located[(index, k)] = (msg.sourceline, tree.getpath(msg))
    items = [c for c in req if isinstance(c.tag, str)] if req is not None else []
    batch = req is not None and req.tag.endswith("s") and bool(items)
    seen: dict[int, int] = {}
    for d in details:
        index = int(str(d.get("index", 0)))
        k = seen.get(index, 0)
        seen[index] = k + 1
        what = str(d.get("element") or "element")
        at = f"{what} #{index + 1} of the batch"
        if batch and req is not None and index < len(items):
            at += f" (request /{req.tag}/{items[index].tag}[{index + 1}])"
        line, path = located.get((index, k), (None, None))
        yield Finding.of("response", "validation-error", f"{at}: {d.get('message')}", line=line, xpath=path)


CHECKS: tuple[Check, ...] = (
    retired_endpoint,
    plain_http,
    missing_tenant,
    token_expired,
    auth_unsuccessful,
    rate_limited,
    rate_limit_low,
    content_type,
    secret_in_query,
    answer_errors,
)


def run(x: Exchange) -> list[Finding]:
    return [f for check in CHECKS for f in check(x)]
