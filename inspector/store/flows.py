"""Reading one stored flow back whole: its row, bodies, findings and replays.

Shared by the browser's detail view, export and replay; plain sqlite3 so any thread can
use its own connection.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inspector.ingest.facts import failure
from inspector.store.database import StoreError, lenient_text
from inspector.store.query import install

Headers = list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class StoredFlow:
    row: dict[str, Any]
    request_body: str | bytes | None = None
    response_body: str | bytes | None = None
    findings: list[dict[str, Any]] = field(default_factory=list)
    replays: list[int] = field(default_factory=list)
    tenant_name: str | None = None

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
        """Why this call failed (``facts.failure``), or None."""
        return failure(str(self.row["outcome"]), (f["rule"] for f in self.findings))


def connect(path: str | Path, readonly: bool = True) -> sqlite3.Connection:
    """A connection for a reader (the file must already be a migrated store), able to run
    every filter: regex ones need the REGEXP function."""
    path = Path(path)
    if not path.exists():
        raise StoreError(f"{path}: no such database")
    uri = f"file:{path.resolve()}?mode=ro" if readonly else f"file:{path.resolve()}"
    conn = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=10)
    conn.row_factory = sqlite3.Row
    conn.text_factory = lenient_text
    install(conn)
    return conn


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
    return StoredFlow(dict(row), bodies.get("request"), bodies.get("response"), findings, replays, name)
