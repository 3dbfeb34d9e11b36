"""How an app answered the faults injected into its traffic (``xero-inspector chaos``).

Each answer a fault rule made is followed, in the recording, by what the app did next with the
same call (same method, endpoint and organisation): whether it tried again, how long after, with
which token and which body. Each fault gets a verdict against what Xero asks of an app
(shared/XERO.md):

    rate-limit           tried again, and no sooner than Retry-After said
    token-expired        tried again with another token (a refreshed one)
    unavailable, drop    tried again
    wrong-tenant         the organisation not called again with that token before a look at
                         GET /connections (is it still connected?)
    xpm-error            the same request not sent again unchanged (Xero's 400, inside a 200)

A ``delay`` is not judged: the answer was Xero's, only later.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

from inspector.ingest.record import header

JUDGED = ("rate-limit", "token-expired", "unavailable", "drop", "wrong-tenant", "xpm-error")
SLACK_S = 0.05  # timestamps are the proxy's, to the microsecond; a retry this early is on time


@dataclass(frozen=True)
class Verdict:
    flow_id: int
    kind: str
    call: str  # "GET job.api/current"
    ok: bool
    what: str  # what the app did, in a line
    retry_id: int | None = None


@dataclass(frozen=True)
class _Call:
    id: int
    key: tuple[str, str, str]
    family: str
    path: str
    started_at: float
    ended_at: float
    injected: str | None
    retry_after: int | None
    token: str | None

    @property
    def name(self) -> str:
        return f"{self.key[0]} {self.key[1]}"


def judge(conn: sqlite3.Connection, since_id: int = 0) -> list[Verdict]:
    """A verdict for each judged fault injected into flows after ``since_id``, oldest first."""
    calls = [
        _Call(
            r[0],
            (r[1], r[2] or r[3], r[4] or ""),
            r[5] or "",
            r[3],
            r[6],
            r[7] if r[7] is not None else r[6],
            r[8],
            r[9],
            header(tuple(tuple(h) for h in json.loads(r[10] or "[]")), "authorization"),
        )
        for r in conn.execute(
            "SELECT id, method, endpoint, path, tenant_id, family, started_at, ended_at, injected, retry_after, "
            "request_headers FROM flows WHERE id > ? ORDER BY started_at, id",
            (since_id,),
        )
    ]
    out = []
    for i, call in enumerate(calls):
        if call.injected not in JUDGED:
            continue
        later = calls[i + 1 :]
        retry = next((c for c in later if c.key == call.key and c.started_at >= call.ended_at), None)
        ok, what = _verdict(conn, call, retry, later)
        out.append(Verdict(call.id, str(call.injected), call.name, ok, what, retry.id if retry else None))
    return out


def _verdict(conn: sqlite3.Connection, call: _Call, retry: _Call | None, later: list[_Call]) -> tuple[bool, str]:
    kind = call.injected
    waited = retry.started_at - call.ended_at if retry else 0.0
    if kind == "wrong-tenant":
        if retry is None or retry.token != call.token:
            return True, "did not call that organisation again with that token"
        if any(c.family == "connections" and call.ended_at <= c.started_at <= retry.started_at for c in later):
            return True, "checked GET /connections before calling that organisation again"
        return False, f"called that organisation again with the same token, unchecked (#{retry.id})"
    if kind == "xpm-error":
        if retry and _body(conn, retry.id) == _body(conn, call.id):
            return False, f"sent the same rejected request again after {waited:.1f} s (#{retry.id})"
        return True, "did not send the rejected request again unchanged"
    if retry is None:
        return False, "never tried the call again"
    if kind == "rate-limit":
        asked = call.retry_after or 0
        if waited + SLACK_S < asked:
            return False, f"tried again after {waited:.1f} s; Retry-After said {asked} s (#{retry.id})"
        return True, f"waited {waited:.1f} s (Retry-After {asked} s), then tried again"
    if kind == "token-expired":
        if retry.token == call.token:
            return False, f"tried again with the same expired token (#{retry.id})"
        refreshed = any(
            c.family == "identity" and c.path.endswith("/connect/token") and call.ended_at <= c.started_at
            for c in later
            if c.started_at <= retry.started_at
        )
        how = "refreshed the token at connect/token" if refreshed else "used another token"
        return True, f"{how}, then tried again"
    return True, f"tried again after {waited:.1f} s"  # unavailable, drop


def _body(conn: sqlite3.Connection, flow_id: int) -> str | bytes | None:
    row = conn.execute("SELECT text, data FROM bodies WHERE flow_id = ? AND side = 'request'", (flow_id,)).fetchone()
    return None if row is None else row[0] if row[0] is not None else row[1]
