"""A filter tested on one live exchange: the browser's own SQL, over that exchange alone.

The filter language compiles to SQL over ``flows`` (query.py); a second evaluator written in
Python would drift from it. So a call still on its way (a fault rule's candidate) is given to
the very WHERE the browser runs, as a one-row ``flows`` made of parameters: no table written,
no index touched. A filter that searches bodies gets the body in a private in-memory store,
for that query only. The browser and a rule agree on what a filter means by construction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from sqlite_utils import Database

from inspector.ingest import row as flow_row
from inspector.ingest.row import FlowRow
from inspector.store.database import MIGRATIONS, lenient_text, migrate
from inspector.store.query import Where, install

_ROW = "SELECT ? AS id, " + ", ".join(f"? AS {c}" for c in flow_row.COLUMNS)
_LIVE_ID = 1


class LiveMatcher:
    """Which of some filters one exchange matches; one per proxy, used from its event loop."""

    def __init__(self) -> None:
        conn = sqlite3.connect(":memory:", isolation_level=None)
        conn.text_factory = lenient_text
        install(conn)
        self.db = Database(conn)
        migrate(self.db, MIGRATIONS)  # the tables a filter may name (bodies, findings, tenants), empty
        self._sql: dict[tuple[Where, ...], tuple[str, bool]] = {}

    @staticmethod
    def reads_the_body(wheres: Sequence[Where]) -> bool:
        """Whether any of these filters looks at the request's body (its text, format or size)."""
        return any("bodies" in w.row or "request_format" in w.row or "request_size" in w.row for w in wheres)

    def matches(self, row: FlowRow, wheres: Sequence[Where], request_text: str | None = None) -> list[bool]:
        if not wheres:
            return []
        key = tuple(wheres)
        if key not in self._sql:  # one statement per rule set, prepared once by sqlite3's cache
            if len(self._sql) >= 32:  # rule sets the browser replaced: bounded, like everything a proxy keeps
                self._sql.clear()
            tests = ", ".join(f"coalesce(({w.row}), 0)" for w in wheres)
            self._sql[key] = (f"SELECT {tests} FROM ({_ROW}) AS flows", any("bodies" in w.row for w in wheres))
        sql, bodies = self._sql[key]
        params = (*(p for w in wheres for p in w.params), _LIVE_ID, *flow_row.values(row))
        conn = self.db.conn
        if not (bodies and request_text):
            return [bool(v) for v in conn.execute(sql, params).fetchone()]
        conn.execute("BEGIN")
        try:
            conn.execute("INSERT INTO bodies (flow_id, side, text) VALUES (?, 'request', ?)", (_LIVE_ID, request_text))
            return [bool(v) for v in conn.execute(sql, params).fetchone()]
        finally:
            conn.execute("ROLLBACK")  # nothing stays: the next call is alone again

    def close(self) -> None:
        self.db.close()
