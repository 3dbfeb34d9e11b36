"""The flow row: what ingest makes of one exchange, one field per column of the ``flows`` table.

Ingest builds it with keyword arguments and the store inserts ``values(row)`` under
``COLUMNS``, so a misspelt field is a TypeError where it is written, not a NULL nobody
notices. ``store.database.FLOW_COLUMNS`` is the table as migrations made it; a test holds
the two to the same names and types (the store sits above ingest and may not be imported here).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import Any

SIDES = ("request", "response")


@dataclass(slots=True)
class BodyColumns:
    """One side's body as the listing shows it (the bytes go to the ``bodies`` table)."""

    content_type: str | None = None
    format: str | None = None
    size: int | None = None  # bytes stored (after decoding, redaction and the body cap)
    raw_size: int | None = None  # bytes on the wire
    truncated: int | None = None  # 0/1: cut at the body cap
    decode_error: str | None = None


@dataclass(slots=True)
class FlowRow:
    """One exchange in the ``flows`` table, in the table's own terms (JSON text, 0/1 flags)."""

    started_at: float
    method: str
    url: str  # redacted unless secrets were kept
    outcome: str  # ok, api-error, http-error, rate-limited, transport-error
    # The exchange as it went.
    source: str | None = None
    replay_of: int | None = None
    ended_at: float | None = None
    duration_ms: float | None = None
    client_addr: str | None = None
    server_addr: str | None = None
    scheme: str | None = None
    host: str | None = None
    port: int | None = None
    path: str | None = None
    query: str | None = None
    http_version: str | None = None
    tls: int | None = None
    status: int | None = None
    reason: str | None = None
    error: str | None = None  # the transport's error, when there was no answer
    # What the catalog and the rules made of it.
    family: str | None = None
    resource: str | None = None
    operation: str | None = None
    endpoint: str | None = None
    path_params: str | None = None  # JSON object
    tenant_id: str | None = None
    correlation_id: str | None = None
    rl_day_remaining: int | None = None
    rl_minute_remaining: int | None = None
    rl_app_minute_remaining: int | None = None
    retry_after: int | None = None
    rate_limit_problem: str | None = None
    api_status: str | None = None
    api_error: str | None = None
    api_error_kind: str | None = None
    api_error_details: str | None = None  # JSON list
    token_exp: int | None = None
    token_scopes: str | None = None
    token_client_id: str | None = None
    token_user_id: str | None = None
    redactions: int | None = None
    ingest_error: str | None = None  # set only when ingest failed and stored what it safely could
    request: BodyColumns = field(default_factory=BodyColumns)
    response: BodyColumns = field(default_factory=BodyColumns)
    request_headers: str | None = None  # JSON list of [name, value], redacted
    response_headers: str | None = None
    errors: int = 0
    warnings: int = 0
    # The user's, from the browser; ingest never sets them.
    marked: int = 0
    comment: str | None = None
    response_http_version: str | None = None
    injected: str | None = None  # the fault rule's kind, when the answer (or its timing) was ours
    paused: str | None = None  # what happened at a breakpoint: "request edited (body); response resumed"


def _paths() -> list[tuple[str, str]]:
    """(column, attribute path) in field order; a side's body columns are ``request_size`` etc."""
    out: list[tuple[str, str]] = []
    for f in fields(FlowRow):
        if f.name in SIDES:
            out += [(f"{f.name}_{b.name}", f"{f.name}.{b.name}") for b in fields(BodyColumns)]
        else:
            out.append((f.name, f.name))
    return out


_PATHS = _paths()
COLUMNS: tuple[str, ...] = tuple(column for column, _ in _PATHS)
_VALUES = attrgetter(*(path for _, path in _PATHS))


def values(row: FlowRow) -> tuple[Any, ...]:
    """The row's values in ``COLUMNS`` order, for one INSERT."""
    result: tuple[Any, ...] = _VALUES(row)
    return result


def as_dict(row: FlowRow) -> dict[str, Any]:
    """Column name -> value (JSON output, tests)."""
    return dict(zip(COLUMNS, values(row), strict=True))
