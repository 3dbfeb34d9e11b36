"""What ``revalidate`` reads and writes: stored flows a batch at a time, and their schema
findings replaced, one transaction per batch so a reader is never locked out for long."""

from __future__ import annotations

from collections.abc import Sequence, Sized
from dataclasses import dataclass, field

from sqlite_utils import Database

from inspector.ingest.findings import SCHEMA_RULES, Finding
from inspector.store.database import insert_findings

_RULES_SQL = ", ".join(f"'{r}'" for r in sorted(SCHEMA_RULES))


@dataclass(slots=True)
class StoredCall:
    """What classifying and validating a stored flow again needs."""

    id: int
    method: str
    host: str
    path: str
    content_type: dict[str, str | None]  # by side
    truncated: dict[str, bool]
    errors: int
    warnings: int
    bodies: dict[str, bytes] = field(default_factory=dict)


@dataclass(slots=True)
class Reclassified:
    """A flow's new classification and schema findings."""

    id: int
    family: str | None
    resource: str | None
    operation: str | None
    endpoint: str | None
    findings: list[Finding]


def read_batch(db: Database, after_id: int, size: int) -> list[StoredCall]:
    """Up to ``size`` flows after ``after_id``, oldest first, with their bodies."""
    calls = [
        StoredCall(
            fid,
            method,
            host or "",
            path or "/",
            {"request": req_ct, "response": resp_ct},
            {"request": bool(req_cut), "response": bool(resp_cut)},
            errors,
            warnings,
        )
        for fid, method, host, path, req_ct, resp_ct, req_cut, resp_cut, errors, warnings in db.execute(
            "SELECT id, method, host, path, request_content_type, response_content_type, request_truncated, "
            "response_truncated, errors, warnings FROM flows WHERE id > ? ORDER BY id LIMIT ?",
            (after_id, size),
        )
    ]
    by_id = {c.id: c for c in calls}
    if calls:
        for flow_id, side, text, data in db.execute(
            f"SELECT flow_id, side, text, data FROM bodies WHERE flow_id IN ({_marks(by_id)})", list(by_id)
        ):
            by_id[flow_id].bodies[side] = text.encode("utf-8") if text is not None else data
    return calls


def save(db: Database, batch: Sequence[Reclassified]) -> dict[int, tuple[int, int]]:
    """Replace each flow's schema findings and classification, recount its errors and warnings;
    the new (errors, warnings) by flow id. The rules' findings stand: they read facts (the JWT,
    the keys) that redaction removed before the flow was stored."""
    ids = [r.id for r in batch]
    marks = _marks(ids)
    with db.conn:  # one transaction per batch
        db.execute(f"DELETE FROM findings WHERE flow_id IN ({marks}) AND rule IN ({_RULES_SQL})", ids)
        insert_findings(db.conn, [(r.id, f.row()) for r in batch for f in r.findings])
        db.conn.executemany(
            "UPDATE flows SET family = ?, resource = ?, operation = ?, endpoint = ? WHERE id = ?",
            [(r.family, r.resource, r.operation, r.endpoint, r.id) for r in batch],
        )
        db.execute(
            f"""UPDATE flows SET
                errors = (SELECT count(*) FROM findings WHERE flow_id = flows.id AND severity = 'error'),
                warnings = (SELECT count(*) FROM findings WHERE flow_id = flows.id AND severity = 'warning')
                WHERE id IN ({marks})""",
            ids,
        )
        counts = db.execute(f"SELECT id, errors, warnings FROM flows WHERE id IN ({marks})", ids)
        return {i: (e, w) for i, e, w in counts}


def _marks(ids: Sized) -> str:
    return ", ".join("?" * len(ids))
