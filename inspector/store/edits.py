"""What a person changes in a recording: marks, comments, deletions.

The browser calls these; so can a script. Each is one transaction, safe while a proxy
records into the same file (SQLite's lock and the busy timeout serialise the writers).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

# SQLite's default limit on host parameters is 32766 since 3.32; stay well under it.
_CHUNK = 500


def _chunks(ids: Sequence[int]) -> list[Sequence[int]]:
    return [ids[i : i + _CHUNK] for i in range(0, len(ids), _CHUNK)]


def _in(ids: Sequence[int]) -> str:
    return "(" + ", ".join("?" * len(ids)) + ")"


def _set(conn: sqlite3.Connection, column: str, value: object, ids: Sequence[int]) -> int:
    changed = 0
    with conn:
        for part in _chunks(ids):
            cur = conn.execute(f"UPDATE flows SET {column} = ? WHERE id IN {_in(part)}", (value, *part))
            changed += cur.rowcount
    return changed


def set_marked(conn: sqlite3.Connection, ids: Sequence[int], marked: bool) -> int:
    """Mark or unmark flows; the number changed."""
    return _set(conn, "marked", int(marked), ids)


def set_comment(conn: sqlite3.Connection, ids: Sequence[int], comment: str | None) -> int:
    """Set (or with an empty text, clear) the comment of flows; the number changed."""
    return _set(conn, "comment", (comment or "").strip() or None, ids)


def delete_flows(conn: sqlite3.Connection, ids: Sequence[int]) -> int:
    """Delete flows with their bodies (and full-text entries) and findings; the number deleted.

    The highest id deleted is remembered so the store never hands it out again.
    """
    if not ids:
        return 0
    deleted = 0
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('deleted_max_id', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
            (max(ids),),
        )
        for part in _chunks(ids):
            conn.execute(f"DELETE FROM findings WHERE flow_id IN {_in(part)}", tuple(part))
            conn.execute(f"DELETE FROM bodies WHERE flow_id IN {_in(part)}", tuple(part))
            deleted += conn.execute(f"DELETE FROM flows WHERE id IN {_in(part)}", tuple(part)).rowcount
        conn.execute("COMMIT")
    except BaseException:
        conn.rollback()
        raise
    return deleted
