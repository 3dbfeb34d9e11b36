"""What a report reads: failed calls and findings in a filter's scope, grouped by endpoint.

``build`` runs the queries and returns plain data (``Report``); ``commands/report.py`` renders
it as text, Markdown, JSON, JUnit or HTML. URLs leave here with any kept key fingerprinted: a
report is read outside the store.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from inspector.ingest.findings import fails
from inspector.ingest.redact import Redactor
from inspector.store import query

EXAMPLES = 3  # worst examples shown per group
_RANK = "CASE severity WHEN 'error' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END"


@dataclass(slots=True)
class Example:
    flow_id: int
    url: str
    side: str
    line: int | None
    column: int | None
    xpath: str | None
    message: str
    hint: str | None


@dataclass(slots=True)
class Group:
    family: str
    method: str
    endpoint: str
    rule: str
    severity: str
    findings: int
    flows: int
    examples: list[Example] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{self.method} {self.family} {self.endpoint}"


@dataclass(slots=True)
class FailedCall:
    flow_id: int
    url: str
    status: int | None
    detail: str | None  # Xero's error message, or the transport error


@dataclass(slots=True)
class Failure:
    """Failed calls to one endpoint, for one reason (an outcome, or a failing rule)."""

    family: str
    method: str
    endpoint: str
    failure: str
    calls: int
    examples: list[FailedCall] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{self.method} {self.family} {self.endpoint}"


@dataclass(slots=True)
class Report:
    db: str
    filter: str | None
    generated_at: float
    flows: int
    flows_with_findings: int
    errors: int
    warnings: int
    groups: list[Group]
    failed_calls: int = 0
    failures: list[Failure] = field(default_factory=list)
    injected: int = 0  # answers fault rules made in the filter's scope, left out (not Xero's)

    def failed(self, fail_on: str) -> bool:
        """A failed call counts as an error: it fails the report unless --fail-on never."""
        return fails(fail_on, self.errors + self.failed_calls, self.warnings)


def _asks_for_injected(filter_expr: str | None) -> bool:
    return bool(filter_expr) and "~injected" in str(filter_expr)


def scope(filter_expr: str | None) -> query.Where:
    """The flows a report covers: the filter's, less the answers fault rules made, unless the
    filter asks for those (~injected)."""
    where = query.compile_filter(filter_expr)
    if _asks_for_injected(filter_expr):
        return where
    return query.Where(f"({where.sql}) AND NOT ({query.INJECTED_ANSWER})", where.params)


def build(conn: sqlite3.Connection, db_name: str, filter_expr: str | None = None) -> Report:
    where = scope(filter_expr)
    injected = 0
    if not _asks_for_injected(filter_expr):
        asked = query.compile_filter(filter_expr)
        sql = f"SELECT count(*) FROM flows WHERE ({asked.sql}) AND {query.INJECTED_ANSWER}"
        injected = conn.execute(sql, asked.params).fetchone()[0]
    flows = f"SELECT id FROM flows WHERE {where.sql}"
    total, with_findings = conn.execute(
        f"SELECT count(*), sum(errors + warnings > 0) FROM flows WHERE {where.sql}", where.params
    ).fetchone()
    counts = dict(
        conn.execute(
            f"SELECT severity, count(*) FROM findings WHERE flow_id IN ({flows}) GROUP BY severity", where.params
        ).fetchall()
    )
    grouped = f"""
        SELECT coalesce(f.family, 'unknown') AS family, f.method, coalesce(nullif(f.endpoint, ''), f.path) AS endpoint,
               x.rule, x.severity, count(*) AS n, count(DISTINCT x.flow_id) AS nflows
        FROM findings x JOIN flows f ON f.id = x.flow_id
        WHERE x.flow_id IN ({flows}) AND x.severity != 'info'
        GROUP BY 1, 2, 3, 4, 5
        ORDER BY {_RANK.replace("severity", "x.severity")}, n DESC, 1, 3
    """
    groups = [
        Group(family, method, endpoint, rule, severity, n, nflows)
        for family, method, endpoint, rule, severity, n, nflows in conn.execute(grouped, where.params).fetchall()
    ]
    # The worst examples per group: the most findings on one flow first, then the newest.
    examples = f"""
        SELECT * FROM (
            SELECT *, row_number() OVER (
                PARTITION BY fam, m, ep, rule, severity ORDER BY ferrors DESC, fwarnings DESC, id DESC
            ) AS k
            FROM (
                SELECT coalesce(f.family, 'unknown') AS fam, f.method AS m,
                       coalesce(nullif(f.endpoint, ''), f.path) AS ep, x.rule AS rule, x.severity AS severity,
                       f.id AS id, f.url, x.side, x.line, x.column, x.xpath, x.message, x.hint,
                       f.errors AS ferrors, f.warnings AS fwarnings
                FROM findings x JOIN flows f ON f.id = x.flow_id
                WHERE x.flow_id IN ({flows}) AND x.severity != 'info'
            )
        ) WHERE k <= {EXAMPLES}
    """
    by_key = {(g.family, g.method, g.endpoint, g.rule, g.severity): g for g in groups}
    outgoing = Redactor()  # a report leaves the store: a key kept in a URL is fingerprinted here
    for row in conn.execute(examples, where.params).fetchall():
        flow_id, url, *rest = row[5:13]
        by_key[tuple(row[:5])].examples.append(Example(flow_id, outgoing.url(url), *rest))
    failures = _failures(conn, where, outgoing)
    return Report(
        db=db_name,
        filter=filter_expr,
        generated_at=time.time(),
        flows=total or 0,
        flows_with_findings=with_findings or 0,
        errors=counts.get("error", 0),
        warnings=counts.get("warning", 0),
        groups=groups,
        failed_calls=sum(f.calls for f in failures),
        failures=failures,
        injected=injected,
    )


def _failures(conn: sqlite3.Connection, where: query.Where, outgoing: Redactor) -> list[Failure]:
    """Failed calls in scope, by endpoint and reason, with the newest examples of each."""
    rows = conn.execute(
        f"""
        SELECT fam, m, ep, failure, count(*) OVER w, row_number() OVER (w ORDER BY id DESC) AS k,
               id, url, status, detail
        FROM (
            SELECT coalesce(family, 'unknown') AS fam, method AS m, coalesce(nullif(endpoint, ''), path) AS ep,
                   {query.failure_sql()} AS failure, id, url, status, coalesce(api_error, error) AS detail
            FROM flows WHERE {where.sql} AND {query.failed_sql()}
        )
        WINDOW w AS (PARTITION BY fam, m, ep, failure)
        ORDER BY 5 DESC, 1, 3, 2, 4, k
        """,
        where.params,
    ).fetchall()
    out: dict[tuple[str, ...], Failure] = {}
    for fam, m, ep, why, calls, k, flow_id, url, status, detail in rows:
        group = out.setdefault((fam, m, ep, why), Failure(fam, m, ep, why, calls))
        if k <= EXAMPLES:
            group.examples.append(FailedCall(flow_id, outgoing.url(url), status, detail))
    return list(out.values())


_FINDING_FIELDS = ("side", "rule", "severity", "line", "column", "xpath", "message", "hint")


_FLOW_FIELDS = ("id", "family", "method", "url", "endpoint", "duration_ms", "status", "failure", "detail")


def flows_with_findings(conn: sqlite3.Connection, r: Report) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Every flow in the report's scope with why it failed and its findings, streamed in one query (for JUnit)."""
    where = scope(r.filter)
    outgoing = Redactor()
    cursor = conn.execute(
        "SELECT f.id, f.family, f.method, f.url, coalesce(nullif(f.endpoint, ''), f.path), f.duration_ms, f.status, "
        f"{query.failure_sql('f')}, coalesce(f.api_error, f.error), "
        f"{', '.join('x.' + c for c in _FINDING_FIELDS)} "
        "FROM (SELECT * FROM flows WHERE " + where.sql + ") f "
        "LEFT JOIN findings x ON x.flow_id = f.id AND x.severity != 'info' "
        f"ORDER BY f.id, {_RANK.replace('severity', 'x.severity')}, x.id",
        where.params,
    )
    n = len(_FLOW_FIELDS)
    flow: dict[str, Any] | None = None
    found: list[dict[str, Any]] = []
    for row in cursor:
        if flow is None or flow["id"] != row[0]:
            if flow is not None:
                yield flow, found
            flow = dict(zip(_FLOW_FIELDS, row[:n], strict=True))
            flow["url"] = outgoing.url(flow["url"])  # as in the examples: reports leave the store
            found = []
        if row[n] is not None:
            found.append(dict(zip(_FINDING_FIELDS, row[n:], strict=True)))
    if flow is not None:
        yield flow, found
