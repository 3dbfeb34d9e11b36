"""What a database holds, at a glance: calls and outcomes per family and resource."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from inspector.ingest.xero_facts import OUTCOMES
from inspector.store.query import INJECTED_ANSWER, failed_sql
from inspector.utils.text import plural, safe

OUTCOME_STYLE = {
    "ok": "green",
    "api-error": "magenta",
    "http-error": "red",
    "rate-limited": "yellow",
    "transport-error": "bold red",
}


@dataclass
class Summary:
    rows: list[dict[str, Any]]  # family, resource, calls, and one count per outcome
    tenants: list[dict[str, Any]]
    recorders: dict[str, int] = field(default_factory=dict)
    failed: int = 0  # ~failed: the outcomes above but ok, plus calls to retired endpoints
    injected: int = 0  # answers fault rules made (proxy --fault): counted above, never as failed
    paused: int = 0  # calls held at a breakpoint (proxy --break)

    @property
    def total(self) -> int:
        return sum(r["calls"] for r in self.rows)


def summarize(conn: sqlite3.Connection) -> Summary:
    """``conn`` from ``open_for_reading`` (rows by name)."""
    counts = ", ".join(f"sum(outcome = '{o}') as \"{o}\"" for o in OUTCOMES)
    rows = [
        dict(r)
        for r in conn.execute(
            f"select family, coalesce(resource, '?') as resource, count(*) as calls, {counts} "
            "from flows group by family, resource order by family, resource"
        )
    ]
    tenants = [
        dict(r)
        for r in conn.execute(
            "select f.tenant_id as id, t.name, group_concat(distinct f.family) as families, count(*) as calls "
            "from flows f "
            "left join tenants t on t.id = f.tenant_id where f.tenant_id is not null "
            "group by f.tenant_id order by calls desc"
        )
    ]
    rec = conn.execute(
        "select coalesce(sum(recorded), 0), coalesce(sum(dropped), 0), coalesce(sum(errors), 0) from recorders"
    ).fetchone()
    failed, injected, paused = conn.execute(
        f"select coalesce(sum(({failed_sql()}) and not ({INJECTED_ANSWER})), 0), coalesce(sum({INJECTED_ANSWER}), 0), "
        "coalesce(sum(paused is not null), 0) from flows"
    ).fetchone()
    recorders = {"recorded": rec[0], "dropped": rec[1], "errors": rec[2]}
    return Summary(rows, tenants, recorders, failed, injected, paused)


def _cell(value: str | None) -> Text:
    """A cell from the recording: the organisation's name is whatever Xero (or a HAR) said."""
    return Text(safe(value or ""))


def render(summary: Summary, console: Console) -> None:
    # What xero-inspector itself did to the traffic, on a line of its own (80 columns).
    ours = ", ".join(
        part
        for part, n in (
            (f"{summary.injected} injected by fault rules", summary.injected),
            (f"{summary.paused} held at a breakpoint", summary.paused),
        )
        if n
    )
    table = Table(
        title="\n".join(filter(None, (f"{plural(summary.total, 'exchange')} recorded, {summary.failed} failed", ours))),
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("family", no_wrap=True)
    table.add_column("resource", no_wrap=True)
    table.add_column("calls", justify="right", min_width=5)
    for outcome in OUTCOMES:
        # "rate limited" rather than "rate-limited": headers may wrap at spaces on narrow terminals.
        words = outcome.split("-")
        table.add_column(" ".join(words), justify="right", style=OUTCOME_STYLE[outcome], width=max(map(len, words)))
    for r in summary.rows:
        table.add_row(_cell(r["family"]), _cell(r["resource"]), str(r["calls"]), *(str(r[o] or "") for o in OUTCOMES))
    console.print(table)
    if summary.tenants:
        orgs = Table(
            title="organisations", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True
        )
        for col in ("tenant", "name", "families"):
            orgs.add_column(col, no_wrap=True)
        orgs.add_column("calls", justify="right")
        for t in summary.tenants:
            orgs.add_row(_cell(t["id"]), _cell(t["name"]), _cell(t["families"]), str(t["calls"]))
        console.print(orgs)
    r = summary.recorders
    console.print(
        f"recorder: {r.get('recorded', 0)} recorded, {r.get('dropped', 0)} dropped, {r.get('errors', 0)} errors"
    )
