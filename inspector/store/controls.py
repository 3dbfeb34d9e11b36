"""What the browser tells a running proxy, through the file they already share.

The browser and the proxy are separate processes, and the proxy listens on loopback for
traffic only. So the channel is a table in the recording: the browser writes a control (the
fault rules it set), the proxy reads it every ``POLL_S``. Nothing new listens, nothing new
is exposed, and a proxy started later picks up what was set before it.
"""

from __future__ import annotations

import json
import sqlite3
import time

FAULTS = "faults"  # a JSON list of fault rules, as typed
POLL_S = 1.0


def set_faults(conn: sqlite3.Connection, rules: list[str]) -> None:
    """The browser's fault rules, for every proxy recording into this file (none: clear them)."""
    with conn:
        conn.execute(
            "INSERT INTO controls (key, value, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            (FAULTS, json.dumps(rules), time.time()),
        )


def faults(conn: sqlite3.Connection) -> list[str]:
    """The fault rules the browser set in this file ([] when none, or the file is older)."""
    try:
        row = conn.execute("SELECT value FROM controls WHERE key = ?", (FAULTS,)).fetchone()
    except sqlite3.OperationalError:  # a file from before controls: nothing was set
        return []
    if row is None:
        return []
    try:
        rules = json.loads(row[0])
    except (TypeError, ValueError):
        return []
    return [r for r in rules if isinstance(r, str)] if isinstance(rules, list) else []
