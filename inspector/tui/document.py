"""One side of an exchange as lines to show: start line, headers, then the body.

The body is pretty-printed when it was sent minified (two elements or keys to a line, as a
one-line body has, or a line past LONG_LINE: XML re-indented, JSON indented) and shown as sent
otherwise, so the line numbers findings carry stay the ones on screen; a
finding on a pretty body is placed by its XPath. XML and JSON are highlighted by Pygments'
lexers (through Rich); binary is shown as size and hex. Findings are drawn under their line.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from lxml import etree
from rich.syntax import Syntax
from rich.text import Text

from inspector.ingest import xmlsafe
from inspector.ingest.redact import is_redacted
from inspector.store.flows import StoredFlow
from inspector.utils.text import safe

HIGHLIGHT_LIMIT = 512 * 1024  # past this a body is shown plain: lexing megabytes would stall the view
HEX_LIMIT = 64 * 1024
LONG_LINE = 200  # a body with a line longer than this was sent minified
SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}
LEXERS = {"xml": "xml", "json": "json", "html": "html"}


@dataclass(slots=True)
class Document:
    lines: list[Text] = field(default_factory=list)
    # body line (as numbered on screen) -> document row
    body_rows: dict[int, int] = field(default_factory=dict)
    # (finding line, column, xpath) -> document row of the line it belongs to
    finding_rows: dict[tuple[Any, Any, Any], int] = field(default_factory=dict)
    mode: str = "none"  # pretty | as-sent | hex | none

    @property
    def width(self) -> int:
        return max((t.cell_len for t in self.lines), default=0)


def start_line(flow: StoredFlow, side: str) -> Text:
    r = flow.row
    if side == "request":
        version = safe(r["http_version"] or "")
        return Text.assemble((safe(r["method"]), "bold"), " ", safe(r["url"]), " ", (version, "dim"))
    if r["status"] is None:
        return Text(f"no response: {safe(r['error'] or 'none recorded')}", style="bold red")
    return Text.assemble(
        (safe(flow.http_version("response")), "dim"), " ", (str(r["status"]), "bold"), " ", safe(r["reason"] or "")
    )


def header_line(name: str, value: str) -> Text:
    name = safe(name)
    line = Text.assemble((name, "bold cyan"), ": ", safe(value))
    if is_redacted(value):
        line.stylize("black on yellow", len(name) + 2)
        line.append("  redacted", style="italic yellow")
    return line


def pretty_xml(data: str) -> tuple[str, etree._Element] | None:
    try:
        root = xmlsafe.parse(data.encode("utf-8"), lenient_label=True)  # text we encoded: its label may not say so
    except (etree.XMLSyntaxError, ValueError):
        return None
    for el in root.iter():
        if el.text is not None and not el.text.strip() and len(el):
            el.text = None
        if el.tail is not None and not el.tail.strip():
            el.tail = None
    etree.indent(root, space="  ")
    text = etree.tostring(root, encoding="unicode")
    return text, xmlsafe.parse(text.encode("utf-8"))


def _pretty_json(data: str) -> str | None:
    try:
        return json.dumps(json.loads(data), indent=2, ensure_ascii=False)
    except ValueError:
        return None


_START_TAG = re.compile(r"<[A-Za-z_]")


def minified(data: str, fmt: str | None) -> bool:
    """Sent without its own layout: some line holds two elements (XML) or two keys (JSON), as
    one-line bodies of any length do, or runs past LONG_LINE. Pretty XML has one start tag a line."""
    for line in data.splitlines():
        if len(line) > LONG_LINE:
            return True
        if fmt == "xml" and len(_START_TAG.findall(line)) > 1:
            return True
        if fmt == "json" and line.count('":') > 1:
            return True
    return False


def _hex(data: bytes) -> list[Text]:
    out = [Text(f"{len(data):,} bytes of binary", style="bold")]
    for off in range(0, min(len(data), HEX_LIMIT), 16):
        chunk = data[off : off + 16]
        hexes = " ".join(f"{b:02x}" for b in chunk)
        ascii_ = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        out.append(Text.assemble((f"{off:08x}", "dim"), f"  {hexes:<47}  ", (ascii_, "green")))
    if len(data) > HEX_LIMIT:
        out.append(Text(f"… {len(data) - HEX_LIMIT:,} more bytes", style="dim"))
    return out


def _highlight(code: str, fmt: str | None) -> list[Text]:
    lexer = LEXERS.get(fmt or "")
    if lexer is None or len(code) > HIGHLIGHT_LIMIT:
        return [Text(safe(line, lines=True)) for line in code.split("\n")]
    syntax = Syntax("", lexer, theme="ansi_dark", background_color="default")
    text = syntax.highlight(safe(code, lines=True))
    text.rstrip()
    return list(text.split("\n", allow_blank=True))


def build(flow: StoredFlow, side: str, pretty: bool | None = None) -> Document:
    """``pretty`` None: pretty only when the body was sent minified."""
    doc = Document()
    doc.lines.append(start_line(flow, side))
    headers = flow.headers(side)
    if headers is not None:
        doc.lines += [header_line(n, v) for n, v in headers]
    doc.lines.append(Text())
    body = flow.body(side)
    fmt = flow.row[f"{side}_format"]
    findings = [f for f in flow.findings if f["side"] == side]
    if body is None or body == "" or body == b"":
        doc.lines.append(Text("no body" if body is None else "empty body", style="dim italic"))
        _unplaced(doc, findings)
        return doc
    if isinstance(body, bytes):
        doc.mode = "hex"
        doc.lines += _hex(body)
        _unplaced(doc, findings)
        return doc
    want_pretty = minified(body, fmt) if pretty is None else pretty
    shown, tree, doc.mode = body, None, "as-sent"
    if want_pretty and fmt in ("xml", "json"):
        if fmt == "xml" and (px := pretty_xml(body)) is not None:
            shown, tree, doc.mode = px[0], px[1], "pretty"
        elif fmt == "json" and (pj := _pretty_json(body)) is not None:
            shown, doc.mode = pj, "pretty"
    size = flow.row[f"{side}_size"]
    note = f"{size:,} bytes · {fmt or 'text'} · {'pretty' if doc.mode == 'pretty' else 'as sent'}"
    if flow.row[f"{side}_truncated"]:
        note += " · cut at the size limit"
    doc.lines.append(Text(f"── {note} ──", style="dim"))
    placed = _place(findings, tree, doc.mode)
    unplaced = [f for f in findings if _key(f) not in placed]
    _unplaced(doc, unplaced)
    lines = _highlight(shown, fmt)
    gutter = len(str(len(lines)))
    by_line: dict[int, list[dict[str, Any]]] = {}
    for f in findings:
        if _key(f) in placed:
            by_line.setdefault(placed[_key(f)], []).append(f)
    for number, line in enumerate(lines, 1):
        doc.body_rows[number] = len(doc.lines)
        doc.lines.append(Text.assemble((f"{number:>{gutter}} │ ", "dim"), line))
        for f in by_line.get(number, []):
            doc.finding_rows[_key(f)] = len(doc.lines) - 1
            doc.lines.append(_annotation(f, gutter, f["column"] if doc.mode == "as-sent" else None))
    return doc


def _key(f: dict[str, Any]) -> tuple[Any, Any, Any]:
    return (f["line"], f["column"], f["xpath"])


def _place(findings: list[dict[str, Any]], tree: etree._Element | None, mode: str) -> dict[tuple[Any, Any, Any], int]:
    """The body line each finding belongs to on screen."""
    placed = {}
    for f in findings:
        if mode == "as-sent" and f["line"]:
            placed[_key(f)] = int(f["line"])
        elif mode == "pretty" and tree is not None and f["xpath"]:
            try:
                hits = tree.getroottree().xpath(f["xpath"])
            except etree.XPathError:
                continue
            if hits and isinstance(hits[0], etree._Element) and hits[0].sourceline:
                placed[_key(f)] = int(hits[0].sourceline)
    return placed


def _annotation(f: dict[str, Any], gutter: int, column: int | None) -> Text:
    pointer = " " * (column - 1) + "▲ " if column else "▲ "
    style = SEVERITY_STYLE.get(f["severity"], "")
    return Text.assemble(
        (f"{'':>{gutter}} │ ", "dim"), (pointer, style), (f"{f['severity']}[{f['rule']}] ", style), safe(f["message"])
    )


def _unplaced(doc: Document, findings: list[dict[str, Any]]) -> None:
    for f in findings:
        doc.finding_rows[_key(f)] = len(doc.lines)
        style = SEVERITY_STYLE.get(f["severity"], "")
        where = f" at {safe(f['xpath'])}" if f["xpath"] else ""
        label = f"{f['severity']}[{f['rule']}]"
        doc.lines.append(Text.assemble(("● ", style), (label, style), f"{where}: {safe(f['message'])}"))
