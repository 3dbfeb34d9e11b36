"""Paused calls: what a proxy holds at a breakpoint, and what the browser answers.

The channel is the recording itself, as for controls (store/controls.py): the proxy writes one
row per call it holds (the half it holds, secrets redacted as a stored flow would have them),
and reads the row again every fraction of a second; the browser lists the rows and writes its
answer into them (resume, with or without edits, or kill). The proxy deletes the row once the
call has gone on. Nothing listens beyond the proxy's own loopback port, and any number of
browsers (or a script, or a test) can answer through these functions.

A row nobody answers is resumed unchanged at its ``deadline`` by the proxy, so an app is never
hung for good. Opening a call in the editor moves the deadline once, a whole timeout on.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from inspector.ingest.record import Headers
from inspector.store.database import open_db

PAUSED, RESUME, KILL = "paused", "resume", "kill"
SIDES = ("request", "response")
STALE_S = 60.0  # rows of a proxy that died holding them: gone this long after their deadline


@dataclass(frozen=True)
class Held:
    """The half of a call a proxy holds, as the browser will see it (secrets redacted)."""

    side: str
    method: str
    url: str
    headers: Headers
    body: bytes | None
    status: int | None  # response side: Xero's status
    timeout_s: float


@dataclass(frozen=True)
class Paused:
    """A held call as the browser lists it."""

    id: int
    side: str
    method: str
    url: str
    headers: Headers
    body: bytes | None
    status: int | None
    created_at: float
    deadline: float
    held: bool  # opened in the editor: the deadline already moved

    def left_s(self, now: float | None = None) -> float:
        return max(0.0, self.deadline - (time.time() if now is None else now))


@dataclass(frozen=True)
class Edit:
    """What to send instead: None leaves that part as it was."""

    method: str | None = None
    url: str | None = None
    headers: Headers | None = None
    body: bytes | None = None


@dataclass(frozen=True)
class Decision:
    """The row as the proxy reads it back: still paused, or the browser's answer."""

    state: str
    deadline: float
    edit: Edit


# -- the proxy's side --------------------------------------------------------------------------


def hold(db: str | Path, held: Held, pid: int, now: float | None = None) -> int:
    """Write a held call into the recording; its row id. The proxy's writer makes the file when
    it first has something to write, and a breakpoint may come first: then this makes it.
    Rows a dead proxy left behind go at the same time."""
    now = time.time() if now is None else now
    with _writing(db, create=True) as conn:
        conn.execute("DELETE FROM pauses WHERE deadline < ?", (now - STALE_S,))
        cur = conn.execute(
            "INSERT INTO pauses (proxy_pid, side, state, created_at, deadline, timeout_s, held, method, url, "
            "headers, body, status) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?)",
            (
                pid,
                held.side,
                PAUSED,
                now,
                now + held.timeout_s,
                held.timeout_s,
                held.method,
                held.url,
                json.dumps(held.headers),
                held.body,
                held.status,
            ),
        )
        return int(cur.lastrowid or 0)


def decisions(conn: sqlite3.Connection, ids: Sequence[int]) -> dict[int, Decision]:
    """The rows of these held calls as they stand (a row that is gone is missing)."""
    if not ids:
        return {}
    marks = ", ".join("?" * len(ids))
    sql = (
        f"SELECT id, state, deadline, edit_method, edit_url, edit_headers, edit_body FROM pauses WHERE id IN ({marks})"
    )
    out = {}
    for pid, state, deadline, method, url, headers, body in conn.execute(sql, tuple(ids)):
        edit = Edit(method, url, _headers(headers) if headers is not None else None, body)
        out[int(pid)] = Decision(state, float(deadline), edit)
    return out


def release(db: str | Path, ids: Sequence[int]) -> None:
    """The calls went on: their rows go (they hold a request the browser no longer needs)."""
    if ids:
        with _writing(db) as conn:
            conn.execute(f"DELETE FROM pauses WHERE id IN ({', '.join('?' * len(ids))})", tuple(ids))


# -- the browser's side ------------------------------------------------------------------------


def paused(conn: sqlite3.Connection, now: float | None = None) -> list[Paused]:
    """Calls held and not yet answered, oldest first (a file from before breakpoints: none)."""
    now = time.time() if now is None else now
    sql = (
        "SELECT id, side, method, url, headers, body, status, created_at, deadline, held FROM pauses "
        "WHERE state = ? AND deadline > ? ORDER BY id"
    )
    try:
        rows = conn.execute(sql, (PAUSED, now)).fetchall()
    except sqlite3.OperationalError:  # no pauses table: an older file nobody migrated yet
        return []
    return [Paused(r[0], r[1], r[2], r[3], _headers(r[4]), r[5], r[6], r[7], r[8], bool(r[9])) for r in rows]


def resume(conn: sqlite3.Connection, pause_id: int, edit: Edit | None = None) -> bool:
    """Let a held call go on, with ``edit`` applied; False when it was no longer held."""
    e = edit or Edit()
    headers = json.dumps(e.headers) if e.headers is not None else None
    return _answer(
        conn,
        "state = ?, edit_method = ?, edit_url = ?, edit_headers = ?, edit_body = ?",
        (RESUME, e.method, e.url, headers, e.body),
        pause_id,
    )


def kill(conn: sqlite3.Connection, pause_id: int) -> bool:
    """End a held call: the app's connection is closed; False when it was no longer held."""
    return _answer(conn, "state = ?", (KILL,), pause_id)


def resume_all(conn: sqlite3.Connection) -> int:
    """Let every held call go on unchanged; how many there were."""
    with conn:
        return conn.execute("UPDATE pauses SET state = ? WHERE state = ?", (RESUME, PAUSED)).rowcount


def take_longer(conn: sqlite3.Connection, pause_id: int, now: float | None = None) -> float | None:
    """Someone is editing this call: its deadline moves a whole timeout on, once. The new
    deadline, or None when the call is no longer held (or already had its extra time)."""
    now = time.time() if now is None else now
    with conn:
        changed = conn.execute(
            "UPDATE pauses SET deadline = max(deadline, ? + timeout_s), held = 1 WHERE id = ? AND state = ? "
            "AND held = 0",
            (now, pause_id, PAUSED),
        ).rowcount
        if not changed:
            return None
        row = conn.execute("SELECT deadline FROM pauses WHERE id = ?", (pause_id,)).fetchone()
    return float(row[0]) if row else None


def _answer(conn: sqlite3.Connection, assignments: str, params: tuple[object, ...], pause_id: int) -> bool:
    with conn:
        sql = f"UPDATE pauses SET {assignments} WHERE id = ? AND state = ?"
        return conn.execute(sql, (*params, pause_id, PAUSED)).rowcount == 1


def _headers(text: str | None) -> Headers:
    try:
        pairs = json.loads(text or "[]")
    except ValueError:
        return ()
    if not isinstance(pairs, list):
        return ()
    return tuple((str(p[0]), str(p[1])) for p in pairs if isinstance(p, list) and len(p) == 2)


@contextmanager
def _writing(db: str | Path, create: bool = False) -> Iterator[sqlite3.Connection]:
    """A write connection for one transaction, closed after: a proxy holds none open."""
    with closing(open_db(db, create=create)) as d, d.conn:
        yield d.conn
