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
from inspector.ingest.findings import Finding
from inspector.ingest.pipeline import check_body, stored_body
from inspector.ingest.validate import Validator
from inspector.store.revalidation import Reclassified, StoredCall, read_batch, save

BATCH = 500


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
    while calls := read_batch(db, last, BATCH):
        last = calls[-1].id
        after = save(db, [_recheck(catalog, validator, c) for c in calls])
        for c in calls:
            errors, warnings = after[c.id]
            result.flows += 1
            result.errors += errors
            result.warnings += warnings
            result.changed += (errors, warnings) != (c.errors, c.warnings)
        if progress:
            progress(len(calls))
    return result


def _recheck(catalog: Catalog, validator: Validator, call: StoredCall) -> Reclassified:
    cls = catalog.classify(call.method, call.host, call.path)
    found: list[Finding] = []
    for side, schema in (("request", cls.request_schema), ("response", cls.response_schema)):
        ct = call.content_type[side]
        body = stored_body(call.bodies.get(side), ct, call.truncated[side])
        found.extend(check_body(validator, body, ct, schema, side)[1])
    return Reclassified(call.id, cls.family, cls.resource, cls.operation, cls.endpoint, found)
