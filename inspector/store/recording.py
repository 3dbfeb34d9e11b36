"""The one way exchanges get into the store, for the recorder, import and replay alike:
organisations the file already names seed ingest, each FlowRecord is ingested, and the rows
go in with ``insert``."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from sqlite_utils import Database

from inspector.ingest.pipeline import Ingest, Ingested
from inspector.ingest.record import FlowRecord
from inspector.store.database import insert, tenant_names


class Recording:
    """Records into an open store (``open_db``). Ingest is told the organisations named earlier
    in this file, so a 403 for a tenant the token is not connected to can name the ones it is."""

    def __init__(self, db: Database, ingest: Ingest) -> None:
        self.db = db
        self.ingest = ingest
        ingest.known_tenants.update({i: name or i for i, name in tenant_names(db).items()})

    def ingest_all(self, records: Iterable[FlowRecord]) -> list[Ingested]:
        return [self.ingest(rec) for rec in records]

    def insert(self, items: Sequence[Ingested], recorder: dict[str, Any] | None = None) -> list[int]:
        """All of ``items`` in one transaction (with the recorder's row, if given); their flow ids."""
        return insert(self.db, items, time.time(), recorder)

    def record(self, records: Iterable[FlowRecord]) -> tuple[list[int], list[Ingested]]:
        """Ingest and insert; the flow ids and what ingest made of each record."""
        items = self.ingest_all(records)
        return self.insert(items), items
