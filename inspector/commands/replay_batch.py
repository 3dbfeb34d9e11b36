"""`xero-inspector replay`: choose the flows, check them all, send, and sum up.

Everything that could stop a replay (a token missing, a secret still redacted, a write
without --yes) is checked for every chosen flow before the first one is sent: a batch
never stops half-way through for a reason that was known at the start.
"""

from __future__ import annotations

from contextlib import closing
from pathlib import Path
from urllib.parse import urlsplit

from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from rich.text import Text

from inspector.commands.replay import SAFE_METHODS, Options, Prepared, Replayer, ReplayError, Result
from inspector.commands.replay import since as since_time
from inspector.ingest.catalog import Catalog
from inspector.ingest.validate import Validator
from inspector.store.database import open_for_reading
from inspector.store.flows import StoredFlow, flow_ids, load
from inspector.store.query import Where, compile_filter, failed_sql
from inspector.utils.text import safe

_VERDICT_STYLE = {"fixed": "green", "ok": "", "still failing": "red", "newly failing": "bold red"}


def chosen_flows(
    db: str | Path, ids: tuple[int, ...], failed: bool, expr: str | None, since: str | None
) -> list[StoredFlow]:
    """The flows named, or matching the filter (with --failed: the failed ones that are not replays)."""
    with closing(open_for_reading(db)) as conn:
        if not ids:
            where = compile_filter(expr)
            sql, params = where.sql, list(where.params)
            if failed:  # replays of a failed call are not failed calls to replay again
                sql += f" AND {failed_sql()} AND source != 'replay'"
            if since:
                sql += " AND started_at >= ?"
                params.append(since_time(since))
            ids = tuple(flow_ids(conn, Where(sql, tuple(params))))
        found = {i: load(conn, i) for i in dict.fromkeys(ids)}
    missing = [str(i) for i, f in found.items() if f is None]
    if missing:
        raise ReplayError(f"no flow {', '.join(missing)} in {db}")
    return [f for f in found.values() if f is not None]


def run_replay(
    db: str,
    ids: tuple[int, ...],
    failed: bool,
    expr: str | None,
    since: str | None,
    opts: Options,
    yes: bool,
    keep_secrets: bool,
    catalog: Catalog,
    validator: Validator,
) -> int:
    """The exit code: 0 all replays succeed, 1 any still fails, 2 nothing sent."""
    flows = chosen_flows(db, ids, failed, expr, since)
    err = Console(stderr=True)
    if not flows:
        err.print("no flows match: nothing to replay")
        return 0
    with Replayer(db, catalog, validator, opts, keep_secrets) as replayer:
        plans = _prepare_all(replayer, flows, yes)
        for warning in dict.fromkeys(w for _, plan in plans for w in plan.warnings):
            err.print(Text(safe(f"warning: {warning}")), style="yellow", highlight=False, soft_wrap=True)
        results = []
        with Progress(console=err, transient=True) as progress:
            task = progress.add_task("replaying", total=len(plans))
            for flow, plan in plans:
                results.append(replayer.send(flow, plan))
                progress.advance(task)
    out = Console()
    if not out.is_terminal:
        out.width = 200  # a CI log or a file: no reason to cut the table at 80 columns
    out.print(summary_table(flows, results))
    for line in notes(plans):
        out.print(Text(safe(line)), style="dim", highlight=False, overflow="ellipsis", no_wrap=True)
    counts = {v: sum(r.verdict == v for r in results) for v in _VERDICT_STYLE}
    out.print(
        f"{len(results)} replayed: {counts['fixed']} fixed, {counts['still failing']} still failing, "
        f"{counts['newly failing']} newly failing, {counts['ok']} ok",
        highlight=False,
    )
    if len(results) == 1:
        compare = f"compare: xero-inspector diff {results[0].original} {results[0].replay} --db {db}"
        out.print(Text(safe(compare)), highlight=False)
    return 1 if any(r.failing for r in results) else 0


def _prepare_all(replayer: Replayer, flows: list[StoredFlow], yes: bool) -> list[tuple[StoredFlow, Prepared]]:
    writes = [f for f in flows if str(f.row["method"]).upper() not in SAFE_METHODS]
    if writes and not yes:
        named = ", ".join(f"{f.row['method']} #{f.id}" for f in writes[:5]) + (" …" if len(writes) > 5 else "")
        raise ReplayError(
            f"refused: {len(writes)} of {len(flows)} chosen flow(s) create or change data ({named}); "
            "nothing was sent. Add --yes to replay them"
        )
    plans, problems = [], []
    for f in flows:
        try:
            plans.append((f, replayer.prepare(f)))
        except ReplayError as e:
            problems.append(str(e))
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ReplayError(f"{problems[0]}{more}; nothing was sent")
    return plans


def summary_table(flows: list[StoredFlow], results: list[Result]) -> Table:
    by_id = {f.id: f for f in flows}
    t = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("FLOW", "CALL", "BEFORE → AFTER", "VERDICT"):
        t.add_column(name, no_wrap=True)
    t.add_column("WHY", no_wrap=True, overflow="ellipsis", min_width=12)
    for r in results:
        f = by_id[r.original]
        style = _VERDICT_STYLE[r.verdict]
        t.add_row(  # Text, not markup: a path or an error from traffic may hold "[" or escapes
            f"#{r.original} → #{r.replay}",
            Text(safe(f"{f.row['method']} {f.row['endpoint'] or urlsplit(str(f.row['url'])).path}")),
            Text(safe(f"{f.row['status'] or '-'} {r.before} → {r.status or '-'} {r.after}")),
            Text(r.verdict, style=style),
            Text(safe(r.error or "")),
        )
    return t


def notes(plans: list[tuple[StoredFlow, Prepared]]) -> list[str]:
    """What preparing changed, one line per change, with the flows it applies to."""
    by_note: dict[str, list[int]] = {}
    for flow, plan in plans:
        for note in plan.notes:
            by_note.setdefault(note, []).append(flow.id)
    lines = []
    for note, ids in by_note.items():
        named = " ".join(f"#{i}" for i in ids[:8]) + (f" (+{len(ids) - 8})" if len(ids) > 8 else "")
        lines.append(f"  {note}: {named}")
    return lines
