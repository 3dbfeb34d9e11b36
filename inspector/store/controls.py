"""What the browser tells a running proxy, through the file they already share.

The browser and the proxy are separate processes, and the proxy listens on loopback for
traffic only. So the channel is a table in the recording: the browser writes a control (the
fault rules or breakpoints it set), the proxy reads it every ``POLL_S``. Nothing new listens,
nothing new is exposed, and a proxy started later picks up what was set before it. Paused
calls go the same way, in their own table (store/pauses.py).
"""

from __future__ import annotations

import json
import sqlite3
import time

FAULTS = "faults"  # a JSON list of fault rules, as typed
BREAKS = "breaks"  # a JSON list of breakpoints, as typed
POLL_S = 1.0


def set_faults(conn: sqlite3.Connection, rules: list[str]) -> None:
    """The browser's fault rules, for every proxy recording into this file (none: clear them)."""
    _set(conn, FAULTS, rules)


def faults(conn: sqlite3.Connection) -> list[str]:
    """The fault rules the browser set in this file ([] when none, or the file is older)."""
    return _texts(conn, FAULTS)


def set_breaks(conn: sqlite3.Connection, rules: list[str]) -> None:
    """The browser's breakpoints, for every proxy recording into this file (none: clear them)."""
    _set(conn, BREAKS, rules)


def breaks(conn: sqlite3.Connection) -> list[str]:
    """The breakpoints the browser set in this file ([] when none, or the file is older)."""
    return _texts(conn, BREAKS)


def _set(conn: sqlite3.Connection, key: str, texts: list[str]) -> None:
    with conn:
        conn.execute(
            "INSERT INTO controls (key, value, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            (key, json.dumps(texts), time.time()),
        )


def _texts(conn: sqlite3.Connection, key: str) -> list[str]:
    try:
        row = conn.execute("SELECT value FROM controls WHERE key = ?", (key,)).fetchone()
    except sqlite3.OperationalError:  # a file from before controls: nothing was set
        return []
    if row is None:
        return []
    try:
        texts = json.loads(row[0])
    except (TypeError, ValueError):
        return []
    return [t for t in texts if isinstance(t, str)] if isinstance(texts, list) else []
