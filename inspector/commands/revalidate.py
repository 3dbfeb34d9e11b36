"""Re-run stored bodies through the current catalog and schemas (after a user edits an XSD).

Only schema findings are replaced: the rules read facts that redaction removed (the JWT,
the keys), so what they found at recording time stands. Flows are re-classified too, since
a catalog change can move an endpoint. Works in batches, one transaction each, so a
reader (the browser, a report) is never locked out for long.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlite_utils import Database

from inspector.ingest.catalog import Catalog
from inspector.ingest.findings import SCHEMA_RULES, Finding
from inspector.ingest.pipeline import check_body, stored_body
from inspector.ingest.validate import Validator
from inspector.store.database import insert_findings

BATCH = 500
_RULES_SQL = ", ".join(f"'{r}'" for r in sorted(SCHEMA_RULES))


@dataclass(slots=True)
class Revalidated:
    flows: int = 0
    changed: int = 0  # flows whose error or warning count moved
    errors: int = 0
    warnings: int = 0


def revalidate(
    db: Database, catalog: Catalog, validator: Validator, progress: Callable[[int], None] | None = None
) -> Revalidated:
    result = Revalidated()
    last = 0
    while True:
        rows = db.execute(
            "SELECT id, method, host, path, request_content_type, response_content_type, request_truncated, "
            "response_truncated, errors, warnings FROM flows WHERE id > ? ORDER BY id LIMIT ?",
            (last, BATCH),
        ).fetchall()
        if not rows:
            break
        last = rows[-1][0]
        _batch(db, catalog, validator, rows, result)
        if progress:
            progress(len(rows))
    return result


def _batch(db: Database, catalog: Catalog, validator: Validator, rows: list[tuple], result: Revalidated) -> None:
    ids = [r[0] for r in rows]
    marks = ", ".join("?" * len(ids))
    bodies: dict[tuple[int, str], bytes] = {}
    for flow_id, side, text, data in db.execute(
        f"SELECT flow_id, side, text, data FROM bodies WHERE flow_id IN ({marks})", ids
    ):
        bodies[(flow_id, side)] = text.encode("utf-8") if text is not None else data
    updates, new = [], []
    for flow_id, method, host, path, req_ct, resp_ct, req_cut, resp_cut, *_counts in rows:
        cls = catalog.classify(method, host or "", path or "/")
        found: list[Finding] = []
        for side, ct, cut, schema in (
            ("request", req_ct, req_cut, cls.request_schema),
            ("response", resp_ct, resp_cut, cls.response_schema),
        ):
            body = stored_body(bodies.get((flow_id, side)), ct, bool(cut))
            found.extend(check_body(validator, body, ct, schema, side)[1])
        new.append((flow_id, found))
        updates.append((cls.family, cls.resource, cls.operation, cls.endpoint, flow_id))
    with db.conn:  # one transaction per batch
        db.execute(f"DELETE FROM findings WHERE flow_id IN ({marks}) AND rule IN ({_RULES_SQL})", ids)
        insert_findings(db.conn, [(fid, f.row()) for fid, fs in new for f in fs])
        db.conn.executemany(
            "UPDATE flows SET family = ?, resource = ?, operation = ?, endpoint = ? WHERE id = ?", updates
        )
        db.execute(
            f"""UPDATE flows SET
                errors = (SELECT count(*) FROM findings WHERE flow_id = flows.id AND severity = 'error'),
                warnings = (SELECT count(*) FROM findings WHERE flow_id = flows.id AND severity = 'warning')
                WHERE id IN ({marks})""",
            ids,
        )
        after = dict(
            (
                (i, (e, w))
                for i, e, w in db.execute(f"SELECT id, errors, warnings FROM flows WHERE id IN ({marks})", ids)
            )
        )
    for flow_id, *_, old_errors, old_warnings in rows:
        errors, warnings = after[flow_id]
        result.flows += 1
        result.errors += errors
        result.warnings += warnings
        result.changed += (errors, warnings) != (old_errors, old_warnings)
