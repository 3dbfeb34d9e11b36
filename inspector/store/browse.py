"""What the browser reads: pages of the flow list by keyset, counts, organisations, recorders.

Plain sqlite3 and no Textual, so it is tested (and benchmarked) on its own. Listing never
reads a body or a header: the columns below are all the list shows.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from inspector.store.database import open_for_reading, tenant_names
from inspector.store.query import Where, compile_filter
from inspector.utils.text import safe

LIST_COLUMNS = (
    "id, started_at, tenant_id, family, method, resource, operation, host, path, status, outcome, "
    "errors, warnings, duration_ms, response_size, marked, comment, source, replay_of"
)
# A recorder whose counters are older than this is taken for dead (it saves them every second).
RECORDER_STALE_S = 10.0


@dataclass(frozen=True, slots=True)
class ListedFlow:
    """One line of the browser's list: the listing's columns only (no headers, no bodies)."""

    id: int
    started_at: float
    tenant_id: str | None
    family: str | None
    method: str
    resource: str | None
    operation: str | None
    host: str | None
    path: str | None
    status: int | None
    outcome: str
    errors: int
    warnings: int
    duration_ms: float | None
    response_size: int | None
    marked: int
    comment: str | None
    source: str | None
    replay_of: int | None


def resource_label(row: ListedFlow) -> str:
    """What the list names a call by: resource/operation as the catalog knows it, else host and path."""
    if row.resource:
        return safe(f"{row.resource}/{row.operation}" if row.operation else row.resource)
    return safe(f"{row.host or ''}{row.path or ''}")


def org_label(row: ListedFlow, names: dict[str, str | None]) -> str:
    return safe(names.get(row.tenant_id or "") or row.tenant_id or "-")


@dataclass(frozen=True, slots=True)
class RecorderStatus:
    listen: str | None
    recorded: int
    dropped: int
    errors: int
    live: bool


@dataclass(frozen=True, slots=True)
class TenantStats:
    tenant_id: str
    name: str | None
    calls_minute: int
    calls_day: int
    calls: int
    rate_limited: int
    minute_remaining: int | None
    day_remaining: int | None
    minute_series: tuple[int, ...]


class Reader:
    """A small pool of read-only connections: each worker thread borrows one.

    A query the user no longer wants (the filter changed while counting a million rows)
    is stopped with ``interrupt`` rather than waited for.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._free: list[sqlite3.Connection] = []
        self._busy: set[sqlite3.Connection] = set()
        self._lock = threading.Lock()
        self._closed = False

    @contextmanager
    def conn(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            c = self._free.pop() if self._free else None
        if c is None:
            c = open_for_reading(self.path)
        with self._lock:
            self._busy.add(c)
        try:
            yield c
        finally:
            with self._lock:
                self._busy.discard(c)
                if self._closed:  # closed while borrowed: closed now, by the thread that used it
                    c.close()
                else:
                    self._free.append(c)

    def interrupt(self) -> None:
        with self._lock:
            for c in self._busy:
                c.interrupt()

    def close(self) -> None:
        """Close what is idle; a connection a worker holds closes when it is given back (closing
        a connection another thread is using crashes the process)."""
        with self._lock:
            self._closed = True
            for c in self._busy:
                c.interrupt()
            for c in self._free:
                c.close()
            self._free.clear()


def _rows(cur: sqlite3.Cursor) -> list[ListedFlow]:
    return [ListedFlow(*r) for r in cur]


class FlowQuery:
    """The flow list under one filter, ordered by id (arrival order), read a page at a time.

    Keyset queries (``id > ?`` / ``id < ?``) page from a known row in constant time; only
    a jump to a position nobody has paged to yet (a drag of the scrollbar) uses OFFSET.
    """

    def __init__(self, expr: str = "") -> None:
        self.expr = expr.strip()
        self.where: Where = compile_filter(self.expr)  # raises FilterError

    def _sql(self, extra: str, order: str, limit: int) -> str:
        return f"SELECT {LIST_COLUMNS} FROM flows WHERE ({self.where.sql}){extra} ORDER BY id {order} LIMIT {limit}"

    def count(self, conn: sqlite3.Connection, after_id: int, upto_id: int) -> int:
        """Rows in (after_id, upto_id]: bounded both ways, so rows landing meanwhile count once."""
        sql = f"SELECT count(*) FROM flows WHERE ({self.where.sql}) AND id > ? AND id <= ?"
        return int(conn.execute(sql, (*self.where.params, after_id, upto_id)).fetchone()[0])

    def after(self, conn: sqlite3.Connection, flow_id: int, limit: int) -> list[ListedFlow]:
        return _rows(conn.execute(self._sql(" AND id > ?", "ASC", limit), (*self.where.params, flow_id)))

    def before(self, conn: sqlite3.Connection, flow_id: int, limit: int) -> list[ListedFlow]:
        rows = _rows(conn.execute(self._sql(" AND id < ?", "DESC", limit), (*self.where.params, flow_id)))
        return rows[::-1]

    def at(self, conn: sqlite3.Connection, offset: int, limit: int) -> list[ListedFlow]:
        sql = self._sql("", "ASC", limit) + f" OFFSET {max(0, offset)}"
        return _rows(conn.execute(sql, self.where.params))

    def last(self, conn: sqlite3.Connection, limit: int, upto_id: int) -> list[ListedFlow]:
        """The newest rows up to ``upto_id``: rows recorded since the list was counted come in by grow()."""
        return _rows(conn.execute(self._sql(" AND id <= ?", "DESC", limit), (*self.where.params, upto_id)))[::-1]

    def contains(self, conn: sqlite3.Connection, flow_id: int) -> bool:
        sql = f"SELECT 1 FROM flows WHERE id = ? AND ({self.where.row})"
        return conn.execute(sql, (flow_id, *self.where.params)).fetchone() is not None

    def ending_at(self, conn: sqlite3.Connection, flow_id: int, limit: int) -> tuple[list[ListedFlow], int | None]:
        """Up to ``limit`` rows ending at a flow, and its place among them (the last); ([], None)
        when the filter excludes it. One page query: a body search pays for its match list once."""
        if not self.contains(conn, flow_id):
            return [], None
        rows = self.before(conn, flow_id + 1, limit)
        return rows, len(rows) - 1

    def index_of(self, conn: sqlite3.Connection, flow_id: int) -> int | None:
        """The position of a flow in this list, or None when the filter excludes it."""
        return self.position(conn, flow_id) if self.contains(conn, flow_id) else None

    def position(self, conn: sqlite3.Connection, flow_id: int) -> int:
        """Where a flow known to match would be: the matches before it."""
        sql = f"SELECT count(*) FROM flows WHERE ({self.where.sql}) AND id < ?"
        return int(conn.execute(sql, (*self.where.params, flow_id)).fetchone()[0])


MARKED = FlowQuery("~marked")


def max_id(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT coalesce(max(id), 0) FROM flows").fetchone()[0])


def data_version(conn: sqlite3.Connection) -> int:
    """Changes whenever another connection commits: the cheap 'anything new?' poll."""
    return int(conn.execute("PRAGMA data_version").fetchone()[0])


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recorder_status(conn: sqlite3.Connection, now: float | None = None) -> RecorderStatus | None:
    """The most recent recorder on this file; live if it has not stopped and its process runs."""
    r = conn.execute(
        "SELECT listen, recorded, dropped, errors, stopped_at, updated_at, pid FROM recorders "
        "ORDER BY (stopped_at IS NULL) DESC, updated_at DESC LIMIT 1"
    ).fetchone()
    if r is None:
        return None
    now = time.time() if now is None else now
    live = r["stopped_at"] is None and pid_alive(r["pid"]) and now - (r["updated_at"] or 0) < RECORDER_STALE_S
    return RecorderStatus(r["listen"], r["recorded"] or 0, r["dropped"] or 0, r["errors"] or 0, live)


def tenant_stats(conn: sqlite3.Connection, now: float, series: int = 120) -> list[TenantStats]:
    """Per organisation: calls in the minute and day before ``now``, the latest limits, 429s.

    ``now`` is the wall clock while a recorder is live and the newest flow's time otherwise,
    so a recording opened next week still shows the minute it ended with.
    """
    names = tenant_names(conn)
    out = []
    groups = conn.execute(
        "SELECT tenant_id, count(*), sum(started_at >= ?), sum(started_at >= ?), sum(status = 429) "
        "FROM flows WHERE tenant_id IS NOT NULL GROUP BY tenant_id ORDER BY count(*) DESC",
        (now - 60, now - 86400),
    ).fetchall()
    for tenant, calls, minute, day, limited in groups:
        latest = conn.execute(
            "SELECT rl_minute_remaining, rl_day_remaining FROM flows WHERE tenant_id = ? "
            "AND (rl_minute_remaining IS NOT NULL OR rl_day_remaining IS NOT NULL) ORDER BY started_at DESC LIMIT 1",
            (tenant,),
        ).fetchone()
        points = conn.execute(
            "SELECT rl_minute_remaining FROM flows WHERE tenant_id = ? AND rl_minute_remaining IS NOT NULL "
            "ORDER BY started_at DESC LIMIT ?",
            (tenant, series),
        ).fetchall()
        out.append(
            TenantStats(
                tenant_id=tenant,
                name=names.get(tenant),
                calls_minute=minute or 0,
                calls_day=day or 0,
                calls=calls,
                rate_limited=limited or 0,
                minute_remaining=latest[0] if latest else None,
                day_remaining=latest[1] if latest else None,
                minute_series=tuple(p[0] for p in reversed(points)),
            )
        )
    return out


def clock(conn: sqlite3.Connection, live: bool) -> float:
    if live:
        return time.time()
    newest = conn.execute("SELECT max(started_at) FROM flows").fetchone()[0]
    return float(newest) if newest is not None else time.time()
