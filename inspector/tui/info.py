"""The Info tab: timing, organisation, token facts, rate limits and replays of one flow."""

from __future__ import annotations

import time
from typing import Any

from textual.markup import escape as _escape

from inspector.store.flows import StoredFlow
from inspector.utils.text import safe


def escape(text: str) -> str:
    """Traffic's text for markup: made safe for a terminal, then never read as markup."""
    return _escape(safe(text))


def when(ts: float | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """Local time to the millisecond."""
    if ts is None:
        return "-"
    return time.strftime(fmt, time.localtime(ts)) + f".{int(ts * 1000) % 1000:03d}"


def time_of_day(ts: float | None, ms: bool = True) -> str:
    """The time of day, to the millisecond or to the second."""
    if ts is None or ms:
        return when(ts, "%H:%M:%S")
    return time.strftime("%H:%M:%S", time.localtime(ts))


def _relative(seconds: float) -> str:
    s = abs(int(seconds))
    text = f"{s // 3600}h {s % 3600 // 60}m" if s >= 3600 else f"{s // 60}m {s % 60}s" if s >= 60 else f"{s}s"
    return text


def token_text(row: dict[str, Any]) -> str:
    exp = row["token_exp"]
    if exp is None:
        return "no bearer token (or not a JWT)"
    left = exp - row["started_at"]
    state = (
        f"[green]valid for {_relative(left)} more[/]"
        if left > 0
        else f"[bold red]expired {_relative(left)} before this request[/]"
    )
    return f"expires {when(exp)}: {state}"


def render(flow: StoredFlow) -> str:
    """Console markup; replay ids are links that select that flow."""
    r = flow.row
    org = escape(flow.tenant_name or "") or "[dim]unknown name[/]"
    lines = [
        "[b]Timing[/]",
        f"  started   {when(r['started_at'])}",
        f"  ended     {when(r['ended_at'])}",
        f"  duration  {r['duration_ms']:.1f} ms" if r["duration_ms"] is not None else "  duration  -",
        "",
        "[b]Organisation[/]",
        f"  {org}  [dim]{escape(r['tenant_id'] or 'no tenant')}[/]",
        "",
        "[b]Call[/]",
        f"  {escape(r['family'] or '-')}  {escape(r['resource'] or '-')}/{escape(r['operation'] or '-')}",
        f"  endpoint  {escape(r['endpoint'] or '-')}",
        f"  outcome   {escape(r['outcome'])}  status {r['status'] if r['status'] is not None else '-'}",
        f"  Xero      {escape(r['api_status'] or '-')}  {escape(r['api_error'] or '')}",
        f"  correlation id  {escape(r['correlation_id'] or '-')}",
        *_injected(r["injected"]),
        *_paused(r["paused"], flow.originals),
        "",
        "[b]Token[/]",
        f"  {token_text(r)}",
        f"  scopes    {escape(r['token_scopes'] or '-')}",
        f"  client    {escape(r['token_client_id'] or '-')}",
        "",
        "[b]Rate limits (remaining)[/]",
        f"  minute {_num(r['rl_minute_remaining'])}  day {_num(r['rl_day_remaining'])}  "
        f"app minute {_num(r['rl_app_minute_remaining'])}  retry after {_num(r['retry_after'])}",
        "",
        "[b]Connection[/]",
        f"  client {escape(r['client_addr'] or '-')}  server {escape(r['server_addr'] or '-')}  TLS {bool(r['tls'])}",
        f"  {r['redactions'] or 0} secret(s) redacted before storing",
    ]
    if r["error"]:
        lines.append(f"  [bold red]transport error[/] {escape(r['error'])}")
    lines += ["", "[b]Replays[/]"]
    if r["replay_of"]:
        lines.append(f"  this is a replay of [@click=app.goto({r['replay_of']})]#{r['replay_of']}[/]")
    if flow.replays:
        links = " ".join(f"[@click=app.goto({i})]#{i}[/]" for i in flow.replays)
        lines.append(f"  replayed as {links}")
    if not r["replay_of"] and not flow.replays:
        lines.append("  [dim]none[/]")
    if r["comment"]:
        lines += ["", "[b]Comment[/]", f"  {escape(r['comment'])}"]
    return "\n".join(lines)


def _injected(kind: str | None) -> list[str]:
    if kind is None:
        return []
    if kind == "delay":
        return [f"  [bold yellow]injected[/] {escape(kind)}: a fault rule held the call; the answer is Xero's"]
    return [f"  [bold yellow]injected[/] {escape(kind)}: a fault rule made this answer, not Xero"]


ORIGINAL_SHOWN = 2000  # characters of a body as it was before a breakpoint edit


def _paused(what: str | None, originals: dict[str, str | bytes]) -> list[str]:
    """What a breakpoint did, and the body as it was before an edit there (the tabs show what was sent)."""
    if what is None:
        return []
    lines = [f"  [bold yellow]paused[/] {escape(what)}"]
    for side, body in originals.items():
        text = body if isinstance(body, str) else f"({len(body):,} bytes, not text)"
        cut = f"\n  … {len(text) - ORIGINAL_SHOWN:,} more characters" if len(text) > ORIGINAL_SHOWN else ""
        lines += [f"  [b]the {side} body before the edit[/] (the {side} tab shows what was sent):"]
        lines += [_escape(safe(text[:ORIGINAL_SHOWN], lines=True)) + cut]
    return lines


def _num(v: int | None) -> str:
    return "-" if v is None else f"{v:,}"
