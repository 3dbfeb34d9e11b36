"""Findings: what is wrong with one exchange, precisely enough to fix the call from it alone.

Every finding names a rule from ``RULES``; the rule fixes its default severity and the
one-line hint shown beside it. Schema findings come from ``validate``, the rest from ``rules``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

Severity = Literal["error", "warning", "info"]


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    severity: Severity
    title: str
    hint: str


def _rules(*rules: Rule) -> dict[str, Rule]:
    return {r.id: r for r in rules}


RULES = _rules(
    # From parsing and the XSDs (validate.py). Re-run by `revalidate` when a schema changes.
    Rule(
        "not-well-formed",
        "error",
        "Body is not well-formed XML",
        "Fix the XML at this line and column; Xero cannot read it.",
    ),
    Rule(
        "xml-dtd",
        "error",
        "DOCTYPE or entities in the body",
        "Remove the DOCTYPE; Xero takes plain XML and entities are never expanded here.",
    ),
    Rule(
        "wrong-root",
        "error",
        "Wrong root element for this endpoint",
        "Send the root element this endpoint takes (xero-inspector endpoints).",
    ),
    Rule(
        "xsd", "error", "Schema violation", "Change the element as the message says; Xero rejects the call otherwise."
    ),
    Rule(
        "unknown-element",
        "warning",
        "Element Xero does not know",
        "Xero silently drops elements it does not know: fix the spelling or remove it.",
    ),
    Rule(
        "not-validated",
        "info",
        "Body too large to validate",
        "Raise the inspector_max_body option to check bodies this large.",
    ),
    Rule("duplicate-element", "warning", "Element sent twice", "Send each element once; Xero keeps only one of them."),
    # From the exchange (rules.py): what a schema and a status code cannot show.
    Rule(
        "xpm-error",
        "error",
        "Practice Manager error inside HTTP 200",
        "Xero refused the call although the status is 200: fix what ErrorDescription says.",
    ),
    Rule(
        "api-exception",
        "error",
        "Accounting ApiException",
        "Fix what the exception says; nothing in the request was saved.",
    ),
    Rule(
        "validation-error",
        "error",
        "Element failed Xero's validation",
        "Fix this element of the batch; with summarizeErrors=false the others were saved.",
    ),
    Rule("network-error", "error", "Customer API error", "Fix what the Error says (ExceptionType names the cause)."),
    Rule(
        "html-answer",
        "error",
        "A web page instead of an API answer",
        "Check the URL and keys: a wrong apiKey redirects to a login page.",
    ),
    Rule(
        "retired-endpoint",
        "error",
        "Retired API",
        "Call the v3 API on api.xero.com with OAuth 2.0 (the URL is in the message).",
    ),
    Rule(
        "plain-http",
        "error",
        "Plain HTTP to a Xero host",
        "Use https://; Xero refuses plain HTTP and the token travelled in clear text.",
    ),
    Rule(
        "missing-tenant",
        "error",
        "No xero-tenant-id header",
        "Add xero-tenant-id: <tenantId from GET https://api.xero.com/connections>.",
    ),
    Rule(
        "token-expired",
        "error",
        "Access token expired",
        "Refresh the token before calling: Xero access tokens live 30 minutes.",
    ),
    Rule(
        "auth-unsuccessful",
        "error",
        "403 AuthenticationUnsuccessful",
        "Send a tenantId this token is connected to (GET /connections), or reconnect the organisation.",
    ),
    Rule(
        "rate-limited",
        "error",
        "Rate limited (429)",
        "Wait Retry-After seconds, then send fewer calls: 60/minute and 5,000/day per organisation.",
    ),
    Rule(
        "rate-limit-low",
        "warning",
        "Rate limit nearly used up",
        "Slow down now: the next calls will be refused with 429.",
    ),
    # Info, not a warning: Xero answered OK to 21 of 21 such bodies recorded live (xpm_ruby sends
    # XML as application/x-www-form-urlencoded), so a warning would flag calls that work.
    Rule(
        "content-type",
        "info",
        "XML sent with a non-XML content type",
        "Xero accepts this; a gateway or tool of yours may not: send Content-Type: text/xml; charset=utf-8.",
    ),
    Rule(
        "secret-in-query",
        "warning",
        "Secret in the query string",
        "Send credentials in headers or the body: URLs end up in logs and browser history.",
    ),
)

SCHEMA_RULES = frozenset(
    {"not-well-formed", "xml-dtd", "wrong-root", "xsd", "unknown-element", "duplicate-element", "not-validated"}
)


@dataclass(frozen=True, slots=True)
class Finding:
    side: str  # request | response | exchange
    rule: str
    severity: Severity
    message: str
    line: int | None = None
    column: int | None = None
    xpath: str | None = None
    schema: str | None = None
    hint: str | None = None

    @classmethod
    def of(cls, side: str, rule: str, message: str, **kw: Any) -> Finding:
        """A finding with its rule's severity and hint unless given."""
        spec = RULES[rule]
        kw.setdefault("severity", spec.severity)
        kw.setdefault("hint", spec.hint)
        return cls(side=side, rule=rule, message=message, **kw)

    def row(self) -> dict[str, Any]:
        # Every field is a plain value: asdict's recursive deep copy was an eighth of ingest's time.
        return {name: getattr(self, name) for name in _FINDING_FIELDS}


_FINDING_FIELDS = tuple(f.name for f in fields(Finding))


def counts(findings: list[Finding]) -> tuple[int, int]:
    """(errors, warnings)."""
    errors = sum(1 for f in findings if f.severity == "error")
    return errors, sum(1 for f in findings if f.severity == "warning")


def fails(fail_on: str, errors: int, warnings: int) -> bool:
    """Whether a check run fails at ``--fail-on`` (error, warning or never)."""
    return fail_on != "never" and (errors > 0 or (fail_on == "warning" and warnings > 0))
