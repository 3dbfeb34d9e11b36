"""What the MCP server's tools do, as plain methods returning JSON-ready values.

Each is a thin call into the library the CLI and the browser use (``FlowQuery`` for the list,
``flows.load`` for a flow, ``report.build`` for the summary, ``validate_files`` for a body,
``commands.endpoints``, ``commands.diff``, ``commands.replay``), never a second implementation,
so an agent and the developer beside it see the same answers. Everything leaves through
``outgoing``: secrets stay fingerprinted even in a recording made with --keep-secrets, unless
the server itself was started with --keep-secrets. Anything a user could get wrong (a filter
that does not parse, an unknown id, a refused write) is a ``ToolFailure`` of one line.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from inspector.commands import report as report_mod
from inspector.commands.diff import FlowDiff, compare, unified
from inspector.commands.endpoints import NoEndpoints, listing
from inspector.commands.export import iso_time
from inspector.commands.outgoing import outgoing, token_claims
from inspector.commands.replay import NeedsToken, Options, Replayer, ReplayError, Request, request_of
from inspector.commands.validate_files import TargetError, check_file, format_finding, target
from inspector.ingest.catalog import Catalog
from inspector.ingest.findings import counts
from inspector.ingest.validate import Validator
from inspector.proxy.spawn import is_loopback
from inspector.store import report as report_store
from inspector.store.browse import FlowQuery, ListedFlow, max_id, org_label, resource_label
from inspector.store.database import StoreError, open_for_reading, tenant_names
from inspector.store.flows import StoredFlow, load
from inspector.store.query import FilterError, stopped

MAX_LIMIT = 200  # rows a list_flows call returns at most
BODY_CHARS = 20_000  # of a body per call; body_offset pages on
DIFF_CHARS = 20_000


class ToolFailure(Exception):
    """What the agent did that cannot be done, in one line it can act on."""


@dataclass(frozen=True)
class Settings:
    db: Path
    keep_secrets: bool = False  # return secrets as the recording holds them
    allow_writes: bool = False  # replay may send POST/PUT/DELETE (each still needs confirm=true)
    token: str | None = None  # for replays when the call gives none ($XERO_ACCESS_TOKEN)
    tenant: str | None = None
    to: str | None = None  # where replays go (the mock, a sandbox); a call may name this or loopback
    ca: str | None = None


def listed(row: ListedFlow, names: dict[str, str | None]) -> dict[str, Any]:
    """A flow as the browser's list shows it: its columns, by name."""
    return {
        "id": row.id,
        "time": iso_time(row.started_at),
        "organisation": org_label(row, names),
        "api": row.family,
        "method": row.method,
        "call": resource_label(row),
        "status": row.status,
        "outcome": row.outcome,
        "errors": row.errors,
        "warnings": row.warnings,
        "ms": round(row.duration_ms) if row.duration_ms is not None else None,
        "size": row.response_size,
        "marked": bool(row.marked),
        "comment": row.comment,
        "replay_of": row.replay_of,
    }


def page(body: str | bytes | None, offset: int, limit: int) -> dict[str, Any] | None:
    """A slice of a body and where the next one starts (None at the end): bodies run to megabytes."""
    if body is None:
        return None
    if isinstance(body, bytes):
        return {"binary": True, "bytes": len(body), "text": None, "next_offset": None}
    offset = max(0, offset)
    end = offset + limit
    more = end if end < len(body) else None
    return {"chars": len(body), "offset": offset, "text": body[offset:end], "next_offset": more}


class Tools:
    """One per server, with the catalog and validator the CLI loaded at start-up (a broken user
    schema fails there, in one line). The SDK runs a plain function's tool on its event loop, one
    call at a time, so the validator is never used by two threads at once."""

    def __init__(self, settings: Settings, catalog: Catalog, validator: Validator) -> None:
        self.settings = settings
        self.catalog = catalog
        self.validator = validator

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        try:
            with closing(open_for_reading(self.settings.db)) as conn:
                yield conn
        except StoreError as e:
            raise ToolFailure(str(e)) from e
        except sqlite3.OperationalError as e:
            why = stopped(e)
            raise ToolFailure(str(why) if why else f"{self.settings.db}: {e}") from e

    def _flow(self, conn: sqlite3.Connection, flow_id: int) -> StoredFlow:
        flow = load(conn, flow_id)
        if flow is None:
            raise ToolFailure(f"no flow {flow_id} in {self.settings.db}")
        return flow

    # -- the tools ------------------------------------------------------------------------
    def list_flows(self, filter: str = "", limit: int = 50, before_id: int | None = None) -> dict[str, Any]:
        query = _query(filter)
        limit = max(1, min(limit, MAX_LIMIT))
        with self._reading() as conn:
            top = max_id(conn)
            upto = top if before_id is None else min(before_id - 1, top)
            rows = query.last(conn, limit, upto)[::-1]  # newest first
            total = query.count(conn, 0, top)
            older = bool(rows) and query.count(conn, 0, rows[-1].id - 1) > 0
            names = tenant_names(conn)
        return {
            "filter": query.expr,
            "matching": total,
            "flows": [listed(r, names) for r in rows],
            "next_before_id": rows[-1].id if older else None,
        }

    def get_flow(
        self, flow_id: int, bodies: bool = True, body_offset: int = 0, body_limit: int = BODY_CHARS
    ) -> dict[str, Any]:
        with self._reading() as conn:
            flow = outgoing(self._flow(conn, flow_id), self.settings.keep_secrets)
        row = flow.row
        limit = max(1, min(body_limit, BODY_CHARS))
        out: dict[str, Any] = {
            "id": flow.id,
            "time": iso_time(row["started_at"]) if row["started_at"] is not None else None,
            "method": row["method"],
            "url": row["url"],
            "api": row["family"],
            "endpoint": row["endpoint"],
            "status": row["status"],
            "outcome": row["outcome"],
            "failure": flow.failure,
            "ms": round(row["duration_ms"]) if row["duration_ms"] is not None else None,
            "organisation": {"tenant_id": row["tenant_id"], "name": flow.tenant_name} if row["tenant_id"] else None,
            "xero_error": _xero_error(row),
            "rate_limits": _rate_limits(row),
            "token": token_claims(row),
            "findings": [_finding(f) for f in flow.findings],
            "replay_of": row["replay_of"],
            "replays": flow.replays,
            "injected": row.get("injected"),
            "paused": row.get("paused"),
            "comment": row.get("comment"),
            "transport_error": row["error"],
        }
        for side in ("request", "response"):
            out[side] = {
                "headers": flow.headers(side),
                "content_type": row[f"{side}_content_type"],
                "format": row[f"{side}_format"],
                "truncated": bool(row[f"{side}_truncated"]),
                "body": page(flow.body(side), body_offset, limit) if bodies else None,
            }
            if bodies and side in flow.originals:  # as it was before an edit at a breakpoint
                out[side]["original_body"] = page(flow.originals[side], body_offset, limit)
        return out

    def findings_summary(self, filter: str | None = None) -> dict[str, Any]:
        with self._reading() as conn:
            try:
                r = report_store.build(conn, str(self.settings.db), filter or None)
            except FilterError as e:
                raise ToolFailure(str(e)) from e
        # The same JSON `report --format json` prints, read back: one source for both.
        out: dict[str, Any] = json.loads(report_mod.render_json(r))
        out["summary"] = report_mod.summary(r)
        return out

    def validate(self, body: str, endpoint: str, response: bool = False) -> dict[str, Any]:
        try:
            t = target(self.catalog, endpoint, response)
        except TargetError as e:
            raise ToolFailure(str(e).replace("--endpoint", "endpoint").replace("--response", "response=true")) from e
        found = check_file(self.validator, t, body.encode("utf-8"))
        errors, warnings = counts(found)
        return {
            "checked_against": t.describe(),
            "valid": not found,
            "errors": errors,
            "warnings": warnings,
            "findings": [_finding(asdict(f)) for f in found],
            "lines": [format_finding("body", f) for f in found],  # as `xero-inspector validate` prints them
        }

    def endpoints(self, family: str | None = None) -> dict[str, Any]:
        try:
            rows = listing(self.catalog, family or None)
        except NoEndpoints as e:
            raise ToolFailure(str(e)) from e
        return {"families": sorted(self.catalog.families), "endpoints": [asdict(r) for r in rows]}

    def diff(self, a: int, b: int | None = None) -> dict[str, Any]:
        with self._reading() as conn:
            first = self._flow(conn, a)
            if b is None:
                if not first.replays:
                    raise ToolFailure(f"flow {a} has no replays; give b, a second flow id")
                b = first.replays[-1]
            second = self._flow(conn, b)
        keep = self.settings.keep_secrets
        return _diff(compare(outgoing(first, keep), outgoing(second, keep)))

    def replay(
        self,
        flow_id: int,
        token: str | None = None,
        to: str | None = None,
        edits: dict[str, Any] | None = None,
        confirm: bool = False,
    ) -> dict[str, Any]:
        with self._reading() as conn:
            flow = self._flow(conn, flow_id)
        try:
            request = _edited(request_of(flow), edits or {})
        except ReplayError as e:
            raise ToolFailure(str(e)) from e
        if request.writes and not self.settings.allow_writes:
            raise ToolFailure(
                f"refused: {request.method} #{flow_id} creates or changes data in a real organisation, and this "
                "server was started without --allow-writes; nothing was sent"
            )
        if request.writes and not confirm:
            raise ToolFailure(
                f"{request.method} #{flow_id} creates or changes data: call again with confirm=true to send it"
            )
        opts = Options(
            token=token or self.settings.token or Options.env_token(),
            tenant=self.settings.tenant,
            to=self._target(to),
            ca=self.settings.ca,
        )
        try:
            with Replayer(self.settings.db, self.catalog, self.validator, opts) as replayer:
                prepared = replayer.prepare(flow, request)
                result = replayer.send(flow, prepared)
        except NeedsToken as e:
            raise ToolFailure(
                f"flow {flow_id} was recorded with its token redacted: give token (a fresh access token; Xero "
                "tokens live 30 minutes), or start the server with --token or XERO_ACCESS_TOKEN"
            ) from e
        except ReplayError as e:
            raise ToolFailure(str(e)) from e
        with self._reading() as conn:
            answer = outgoing(self._flow(conn, result.replay), self.settings.keep_secrets)
        return {
            "original": result.original,
            "replay": result.replay,
            "verdict": result.verdict,
            "before": result.before,
            "after": result.after,
            "status": result.status,
            "error": result.error,
            "sent_to": opts.to or urlsplit(request.url)._replace(path="", query="", fragment="").geturl(),
            "notes": list(prepared.notes) + list(prepared.warnings),
            "findings": [_finding(f) for f in answer.findings],  # the edited request's and the answer's
            "compare": f"diff(a={result.original}, b={result.replay})",
        }

    def _target(self, to: str | None) -> str | None:
        """Where a replay may go: Xero itself, the server's --to, or loopback (the mock). An agent
        must not be able to send the developer's token to a host nobody chose."""
        if to is None or to.rstrip("/") == (self.settings.to or "").rstrip("/"):
            return to or self.settings.to
        host = urlsplit(to).hostname
        if host is None or not is_loopback(host):
            raise ToolFailure(
                f"refused: to={to!r} is neither loopback nor the --to this server was started with; "
                "start it with --to to send replays there"
            )
        return to


def _query(expr: str | None) -> FlowQuery:
    try:
        return FlowQuery(expr or "")
    except FilterError as e:
        raise ToolFailure(str(e)) from e


def _finding(f: dict[str, Any]) -> dict[str, Any]:
    keys = ("side", "severity", "rule", "line", "column", "xpath", "message", "hint")
    return {k: f.get(k) for k in keys}


def _xero_error(row: dict[str, Any]) -> dict[str, Any] | None:
    if not (row["api_error"] or row["api_error_kind"] or row["api_status"] not in (None, "OK")):
        return None
    return {
        "status": row["api_status"],
        "kind": row["api_error_kind"],
        "message": row["api_error"],
        "details": row["api_error_details"],
    }


def _rate_limits(row: dict[str, Any]) -> dict[str, Any] | None:
    keys = {
        "minute_remaining": "rl_minute_remaining",
        "day_remaining": "rl_day_remaining",
        "app_minute_remaining": "rl_app_minute_remaining",
        "retry_after": "retry_after",
        "problem": "rate_limit_problem",
    }
    found = {k: row[c] for k, c in keys.items() if row[c] is not None}
    return found or None


def _edited(req: Request, edits: dict[str, Any]) -> Request:
    """The recorded request with the agent's changes: body (text), headers (name to value, or
    null to remove), url. Unknown keys are refused rather than ignored."""
    unknown = set(edits) - {"body", "headers", "url"}
    if unknown:
        raise ToolFailure(f"edits takes body, headers and url; not {', '.join(sorted(unknown))}")
    if "body" in edits:
        body = edits["body"]
        if body is not None and not isinstance(body, str):
            raise ToolFailure("edits.body must be the body as text")
        req = replace(req, body=body.encode("utf-8") if body is not None else None)
    headers = edits.get("headers") or {}
    if not isinstance(headers, dict):
        raise ToolFailure('edits.headers must map a name to a value or null, e.g. {"Accept": "application/xml"}')
    for name, value in headers.items():
        req = req.with_header(str(name), None if value is None else str(value))
    if "url" in edits:
        url = str(edits["url"])
        if urlsplit(url).hostname != urlsplit(req.url).hostname:
            raise ToolFailure("edits.url may change the path and query, not the host (use to= for that)")
        req = replace(req, url=url)
    return req


def _diff(d: FlowDiff) -> dict[str, Any]:
    text = unified(d)
    return {
        "a": d.a.id,
        "b": d.b.id,
        "same": d.same,
        "status": [d.a.row["status"], d.b.row["status"]],
        "outcome": [d.a.row["outcome"], d.b.row["outcome"]],
        **{
            s.side: {
                "headers": [
                    {"name": h.name, "a": h.a, "b": h.b} for h in s.headers if not h.volatile
                ],  # those that change on every call say nothing about a fix
                "body_changed": s.body_changed,
                "mode": s.mode,
                "note": s.note,
            }
            for s in (d.request, d.response)
        },
        "findings_gone": [_finding(f) for f in d.gone],
        "findings_new": [_finding(f) for f in d.new],
        "unified": text[:DIFF_CHARS],
        "unified_cut": len(text) > DIFF_CHARS,
    }
