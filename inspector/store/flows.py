"""Reading one stored flow back whole: its row, bodies, findings and replays.

Shared by the browser's detail view, export and replay; plain sqlite3 so any thread can
use its own connection.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from inspector.ingest.xero_facts import failure
from inspector.store.query import Where

Headers = list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class StoredFlow:
    """One flow read back whole: its row as SQLite returns it (every column, by name), its
    bodies, findings and replays."""

    row: dict[str, Any]
    request_body: str | bytes | None = None
    response_body: str | bytes | None = None
    findings: list[dict[str, Any]] = field(default_factory=list)
    replays: list[int] = field(default_factory=list)
    tenant_name: str | None = None
    # Bodies as they were before an edit at a breakpoint: "request" and/or "response".
    originals: dict[str, str | bytes] = field(default_factory=dict)

    @property
    def id(self) -> int:
        return int(self.row["id"])

    def headers(self, side: str) -> Headers | None:
        raw = self.row.get(f"{side}_headers")
        if raw is None:
            return None
        return [(str(k), str(v)) for k, v in json.loads(raw)]

    def body(self, side: str) -> str | bytes | None:
        return self.request_body if side == "request" else self.response_body

    def http_version(self, side: str) -> str:
        """The side's HTTP version; an answer recorded before it was stored separately (or
        with none) is taken to be in the request's."""
        version = self.row.get("response_http_version") if side == "response" else None
        return str(version or self.row["http_version"] or "HTTP/1.1")

    @property
    def failure(self) -> str | None:
        """Why this call failed (``xero_facts.failure``), or None."""
        return failure(str(self.row["outcome"]), (f["rule"] for f in self.findings))


def load(conn: sqlite3.Connection, flow_id: int) -> StoredFlow | None:
    row = conn.execute("SELECT * FROM flows WHERE id = ?", (flow_id,)).fetchone()
    if row is None:
        return None
    bodies: dict[str, str | bytes | None] = {}
    for b in conn.execute("SELECT side, text, data FROM bodies WHERE flow_id = ?", (flow_id,)):
        bodies[b["side"]] = b["text"] if b["text"] is not None else b["data"]
    findings = [
        dict(f)
        for f in conn.execute(
            'SELECT side, rule, severity, line, "column", xpath, message, schema, hint FROM findings '
            "WHERE flow_id = ? ORDER BY CASE severity WHEN 'error' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END, "
            'rule, side DESC, line, "column"',
            (flow_id,),
        )
    ]
    replays = [r[0] for r in conn.execute("SELECT id FROM flows WHERE replay_of = ? ORDER BY id", (flow_id,))]
    name = None
    if row["tenant_id"]:
        t = conn.execute("SELECT name FROM tenants WHERE id = ?", (row["tenant_id"],)).fetchone()
        name = t[0] if t else None
    originals = {
        side.removesuffix("-original"): body
        for side, body in bodies.items()
        if side.endswith("-original") and body is not None
    }
    return StoredFlow(dict(row), bodies.get("request"), bodies.get("response"), findings, replays, name, originals)


def flow_ids(conn: sqlite3.Connection, where: Where) -> Iterator[int]:
    """The ids of the flows a compiled filter matches, oldest first, streamed."""
    for (fid,) in conn.execute(f"SELECT id FROM flows WHERE {where.sql} ORDER BY id", where.params):
        yield int(fid)


def missing(conn: sqlite3.Connection, ids: Iterable[int]) -> list[int]:
    """The ids of no stored flow."""
    return [i for i in ids if conn.execute("SELECT 1 FROM flows WHERE id = ?", (i,)).fetchone() is None]


def matches(conn: sqlite3.Connection, where: Where, flow_id: int) -> bool:
    sql = f"SELECT 1 FROM flows WHERE id = ? AND ({where.sql})"
    return conn.execute(sql, (flow_id, *where.params)).fetchone() is not None


def v1_calls(conn: sqlite3.Connection, replays: bool = False) -> list[sqlite3.Row]:
    """The recorded WorkflowMax v1 calls (id, method, url, endpoint), oldest first; their
    replays (on v3, say) only when asked."""
    sql = "SELECT id, method, url, endpoint FROM flows WHERE family = 'wfm-legacy'"
    return conn.execute(sql + ("" if replays else " AND source != 'replay'") + " ORDER BY id").fetchall()


def request_body(conn: sqlite3.Connection, flow_id: int) -> bytes | None:
    """The stored request body as bytes (text is re-encoded as it came, stray bytes included)."""
    row = conn.execute("SELECT text, data FROM bodies WHERE flow_id = ? AND side = 'request'", (flow_id,)).fetchone()
    if row is None:
        return None
    value = row[0] if row[0] is not None else row[1]
    return value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
