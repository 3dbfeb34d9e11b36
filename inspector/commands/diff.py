"""Two stored exchanges compared: status, headers, bodies and findings.

XML bodies are compared canonicalised (C14N 2.0 with text trimmed, then indented), so
attribute order, namespace prefixes' placement and whitespace between elements do not
count; JSON is compared with sorted keys. Headers that change on every call (Date, the
correlation id, the rate-limit counters, the token) are shown but do not make two
exchanges different.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from lxml import etree
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from inspector.ingest import xmlsafe
from inspector.ingest.decoding import sniff
from inspector.store.flows import StoredFlow
from inspector.utils.text import safe

# Different on every call by design; a change there says nothing about the fix.
VOLATILE = frozenset(
    {
        "date",
        "xero-correlation-id",
        "x-daylimit-remaining",
        "x-minlimit-remaining",
        "x-appminlimit-remaining",
        "authorization",
        "idempotency-key",
        "content-length",
        "user-agent",
        "server",
        "connection",
        "keep-alive",
        "transfer-encoding",
    }
)
MAX_LINES = 20_000  # per body: a diff past this is not read by a person
CONTEXT = 3  # equal lines kept around a change

Tag = Literal["equal", "replace", "delete", "insert"]


@dataclass(frozen=True, slots=True)
class HeaderChange:
    name: str
    a: str | None  # None: only in B (added)
    b: str | None  # None: only in A (removed)

    @property
    def volatile(self) -> bool:
        return self.name.lower() in VOLATILE


@dataclass(frozen=True, slots=True)
class Row:
    tag: Tag
    a_no: int | None
    a: str | None
    b_no: int | None
    b: str | None


@dataclass(slots=True)
class SideDiff:
    side: str
    headers: list[HeaderChange] = field(default_factory=list)
    mode: str = "none"  # xml | json | text | binary | none
    rows: list[Row] = field(default_factory=list)
    note: str | None = None

    @property
    def body_changed(self) -> bool:
        return any(r.tag != "equal" for r in self.rows)

    @property
    def changed(self) -> bool:
        return self.body_changed or any(not h.volatile for h in self.headers)


@dataclass(slots=True)
class FlowDiff:
    a: StoredFlow
    b: StoredFlow
    request: SideDiff
    response: SideDiff
    gone: list[dict] = field(default_factory=list)  # findings of A that B no longer has
    new: list[dict] = field(default_factory=list)

    @property
    def same(self) -> bool:
        ra, rb = self.a.row, self.b.row
        return (
            (ra["method"], ra["url"], ra["status"], ra["outcome"])
            == (rb["method"], rb["url"], rb["status"], rb["outcome"])
            and not self.request.changed
            and not self.response.changed
            and not self.gone
            and not self.new
        )


def compare(a: StoredFlow, b: StoredFlow) -> FlowDiff:
    key = _finding_key
    ka, kb = {key(f) for f in a.findings}, {key(f) for f in b.findings}
    return FlowDiff(
        a,
        b,
        _side(a, b, "request"),
        _side(a, b, "response"),
        gone=[f for f in a.findings if key(f) not in kb],
        new=[f for f in b.findings if key(f) not in ka],
    )


def _finding_key(f: dict) -> tuple[str, str, str, str]:
    """The same finding in two flows: its line may move when the body is edited, the rest stays."""
    return (f["side"], f["rule"], f["xpath"] or "", f["message"])


def _side(a: StoredFlow, b: StoredFlow, side: str) -> SideDiff:
    out = SideDiff(side, headers=header_changes(a.headers(side) or [], b.headers(side) or []))
    body_a, body_b = a.body(side), b.body(side)
    if body_a is None and body_b is None:
        return out
    ct_a, ct_b = a.row.get(f"{side}_content_type"), b.row.get(f"{side}_content_type")
    (mode_a, lines_a), (mode_b, lines_b) = normal_lines(body_a, ct_a), normal_lines(body_b, ct_b)
    out.mode = mode_a if mode_a == mode_b else f"{mode_a} → {mode_b}"
    if len(lines_a) > MAX_LINES or len(lines_b) > MAX_LINES:
        out.note = f"only the first {MAX_LINES:,} lines compared"
    out.rows = align(lines_a[:MAX_LINES], lines_b[:MAX_LINES])
    return out


def header_changes(a: list[tuple[str, str]], b: list[tuple[str, str]]) -> list[HeaderChange]:
    """Changed, added and removed headers, names compared case-insensitively (repeats joined)."""

    def table(headers: list[tuple[str, str]]) -> dict[str, tuple[str, str]]:
        out: dict[str, tuple[str, str]] = {}
        for name, value in headers:
            key = name.lower()
            out[key] = (out[key][0], f"{out[key][1]}, {value}") if key in out else (name, value)
        return out

    ta, tb = table(a), table(b)
    changes = []
    for key in [*ta, *(k for k in tb if k not in ta)]:
        va, vb = ta.get(key), tb.get(key)
        if va is None or vb is None or va[1] != vb[1]:
            name = (va or vb)[0]  # type: ignore[index]
            changes.append(HeaderChange(name, va[1] if va else None, vb[1] if vb else None))
    return changes


def normal_lines(body: str | bytes | None, content_type: str | None) -> tuple[str, list[str]]:
    """A body as the lines to compare, and how it was normalised."""
    if body is None or body == b"" or body == "":
        return "none", []
    data = body.encode("utf-8") if isinstance(body, str) else body
    sniffed = sniff(data, content_type)
    if sniffed.xml is not None:
        canonical = canonical_xml(sniffed.xml)
        if canonical is not None:
            return "xml", canonical.splitlines()
    if sniffed.format == "json":
        try:
            return "json", json.dumps(json.loads(data), indent=2, sort_keys=True, ensure_ascii=False).splitlines()
        except ValueError:
            pass
    if isinstance(body, bytes):
        try:
            return "text", body.decode("utf-8").splitlines()
        except UnicodeDecodeError:
            return "binary", [f"{len(body):,} bytes, sha256 {hashlib.sha256(body).hexdigest()[:16]}"]
    return "text", body.splitlines()


def canonical_xml(data: bytes) -> str | None:
    """C14N 2.0 with text trimmed, indented; None when it is not well-formed."""
    root = xmlsafe.try_parse(data, lenient_label=True)  # shown, not judged: the bytes decide
    if root is None:
        return None
    c14n = etree.tostring(root, method="c14n2", strip_text=True)
    return etree.tostring(xmlsafe.parse(c14n, blankless=True), pretty_print=True, encoding="unicode")


def align(a: list[str], b: list[str]) -> list[Row]:
    """Side-by-side rows (like diff -y): equal lines paired, changes paired where they can be."""
    rows: list[Row] = []
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            rows += [Row("equal", i + 1, a[i], j + 1, b[j]) for i, j in zip(range(i1, i2), range(j1, j2), strict=True)]
            continue
        for k in range(max(i2 - i1, j2 - j1)):
            i, j = i1 + k, j1 + k
            left = (i + 1, a[i]) if i < i2 else (None, None)
            right = (j + 1, b[j]) if j < j2 else (None, None)
            kind: Tag = "insert" if left[1] is None else "delete" if right[1] is None else "replace"
            rows.append(Row(kind, *left, *right))
    return rows


def folded(rows: list[Row], context: int = CONTEXT) -> Iterator[Row | int]:
    """Rows with long equal runs folded to a count (an int) beyond ``context`` lines of a change."""
    near = [False] * len(rows)
    for i, r in enumerate(rows):
        if r.tag != "equal":
            for k in range(max(0, i - context), min(len(rows), i + context + 1)):
                near[k] = True
    skipped = 0
    for r, keep in zip(rows, near, strict=True):
        if keep:
            if skipped:
                yield skipped
                skipped = 0
            yield r
        else:
            skipped += 1
    if skipped:
        yield skipped


def unified(d: FlowDiff) -> str:
    """The bodies as a unified diff (for a pipe, a CI log, an issue comment)."""
    out: list[str] = []
    for s in (d.request, d.response):
        a = [safe(r.a) for r in s.rows if r.a is not None]
        b = [safe(r.b) for r in s.rows if r.b is not None]
        out += difflib.unified_diff(a, b, f"#{d.a.id} {s.side}", f"#{d.b.id} {s.side}", lineterm="", n=CONTEXT)
    return "\n".join(out)


# --- rendering (Rich: the CLI prints it, the browser shows it) --------------------------------


def _text(text: str, style: str = "") -> Text:
    """Text that came (partly) from traffic: never a raw control to the terminal."""
    return Text(safe(text, lines=True), style=style)


_STYLE = {"equal": "dim", "replace": "yellow", "delete": "red", "insert": "green"}


def render(d: FlowDiff, full: bool = False) -> RenderableType:
    parts: list[RenderableType] = [_heading(d)]
    for s in (d.request, d.response):
        parts.append(Text(f"\n{s.side.capitalize()} headers", style="bold"))
        parts += _header_lines(s.headers)
        label = {"xml": "XML, canonical: attribute order and whitespace ignored", "json": "JSON, keys sorted"}
        parts.append(Text(f"\n{s.side.capitalize()} body ({label.get(s.mode, s.mode)})", style="bold"))
        if s.note:
            parts.append(_text(f"  {s.note}", style="dim"))
        if not s.rows:
            parts.append(Text("  none on either side"))
        elif not s.body_changed and not full:
            parts.append(Text(f"  the same ({len(s.rows)} lines)"))
        else:
            parts.append(_body_table(d, s, full))
    parts.append(Text("\nFindings", style="bold"))
    if not d.gone and not d.new:
        parts.append(Text(f"  the same ({len(d.b.findings)})"))
    for sign, style, fs in (("gone", "green", d.gone), ("new ", "red", d.new)):
        for f in fs:
            where = f" {f['xpath']}" if f.get("xpath") else ""
            parts.append(_text(f"  {sign} {f['severity']} {f['side']}/{f['rule']}{where}: {f['message']}", style=style))
    return Group(*parts)


def _heading(d: FlowDiff) -> RenderableType:
    lines: list[RenderableType] = []
    for label, f in (("A", d.a), ("B", d.b)):
        r = f.row
        status = f"{r['status']} {r['reason'] or ''}".strip() if r["status"] is not None else "no answer"
        problem = r.get("api_error") or r.get("error")
        lines.append(Text.assemble((f"{label} #{f.id}  ", "bold"), safe(f"{r['method']} {r['url']}")))
        lines.append(
            Text.assemble(
                " " * (len(label) + len(str(f.id)) + 4),
                (safe(f"{status} · {r['outcome']}"), "green" if r["outcome"] == "ok" else "red"),
                (safe(f" · {problem}") if problem else "", "dim"),
            )
        )
    verdict = "the same" if d.same else f"{d.a.row['outcome']} → {d.b.row['outcome']}"
    lines.append(Text(f"outcome: {verdict}", style="bold"))
    return Group(*lines)


def _header_lines(headers: list[HeaderChange]) -> list[Text]:
    """Changes that matter one per line; the ones every call makes named on one line."""
    lines = []
    for h in headers:
        if h.volatile:
            continue
        if h.a is None:
            lines.append(_text(f"  + {h.name}: {h.b}", style="green"))
        elif h.b is None:
            lines.append(_text(f"  - {h.name}: {h.a}", style="red"))
        else:
            lines.append(_text(f"  ~ {h.name}: {h.a} → {h.b}", style="yellow"))
    volatile = [h.name for h in headers if h.volatile]
    if volatile:
        lines.append(_text(f"  (different on every call: {', '.join(volatile)})", style="dim"))
    return lines or [Text("  the same")]


def _body_table(d: FlowDiff, s: SideDiff, full: bool) -> Table:
    t = Table(show_header=True, header_style="bold", box=None, padding=(0, 1), expand=True)
    t.add_column("", justify="right", style="dim", no_wrap=True)
    t.add_column(f"A #{d.a.id}", ratio=1, overflow="fold")
    t.add_column("", justify="right", style="dim", no_wrap=True)
    t.add_column(f"B #{d.b.id}", ratio=1, overflow="fold")
    for item in s.rows if full else folded(s.rows):
        if isinstance(item, int):
            t.add_row("", Text(f"… {item} equal lines", style="dim italic"), "", "")
            continue
        style = _STYLE[item.tag]
        t.add_row(
            str(item.a_no or ""),
            _text(item.a or "", style=style),
            str(item.b_no or ""),
            _text(item.b or "", style=style),
        )
    return t
