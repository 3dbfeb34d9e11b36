"""The report: failed calls and findings, grouped by endpoint, in five formats.

One ``Report`` is read from the store (``store/report.py``; a filter narrows the flows), then rendered: text for
a terminal, Markdown for a pull request, JSON for scripts, JUnit so CI shows each failing
call as a failed test case, HTML that stands alone in a browser. A failed call (``~failed``:
HTTP >= 400, a Xero error in a 2xx, 429, no answer, a retired endpoint) fails the report like
an error finding does, whether or not it has findings.
"""

from __future__ import annotations

import html
import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from lxml import etree

from inspector.store.report import Example, FailedCall, Report, flows_with_findings
from inspector.utils.text import json_safe, plural, safe


def summary(r: Report) -> str:
    scope = f" matching {r.filter!r}" if r.filter else ""
    left_out = f"; {plural(r.injected, 'injected answer')} left out (~injected)" if r.injected else ""
    return (
        f"{plural(r.flows, 'flow')}{scope}: {r.failed_calls} failed, {r.flows_with_findings} with findings "
        f"({plural(r.errors, 'error')}, {plural(r.warnings, 'warning')}){left_out}"
    )


def _failed_at(c: FailedCall) -> str:
    return f"#{c.flow_id} {c.status or '---'}" + (f": {c.detail}" if c.detail else "")


def _at(e: Example) -> str:
    pos = f":{e.line}" + (f":{e.column}" if e.column else "") if e.line else ""
    return f"#{e.flow_id} {e.side}{pos}" + (f" {e.xpath}" if e.xpath else "")


def render_text(r: Report, db: sqlite3.Connection | None = None) -> str:
    lines = [f"xero-inspector report: {r.db}", summary(r), ""]
    for f in r.failures:
        lines.append(f"failed[{f.failure}] {f.where}: {plural(f.calls, 'call')}")
        lines += [f"  {_failed_at(c)}" for c in f.examples]
        lines.append("")
    for g in r.groups:
        lines.append(f"{g.severity}[{g.rule}] {g.where}: {g.findings} finding(s) in {g.flows} flow(s)")
        for e in g.examples:
            lines.append(f"  {_at(e)}: {e.message}")
            if e.hint:
                lines.append(f"      hint: {e.hint}")
        lines.append("")
    if not r.groups and not r.failures:
        lines.append("No failed calls, no findings.")
    return safe("\n".join(lines).rstrip() + "\n", lines=True)


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def render_markdown(r: Report, db: sqlite3.Connection | None = None) -> str:
    out = [f"# xero-inspector report: `{r.db}`", "", summary(r), ""]
    if r.failures:
        out += ["## Failed calls", "", "| failure | endpoint | calls | newest |", "|---|---|---:|---|"]
        out += [
            f"| `{f.failure}` | `{_md(f.where)}` | {f.calls} | {_md('; '.join(_failed_at(c) for c in f.examples))} |"
            for f in r.failures
        ]
        out.append("")
    if r.groups:
        out += ["| severity | rule | endpoint | findings | flows |", "|---|---|---|---:|---:|"]
        out += [f"| {g.severity} | `{g.rule}` | `{_md(g.where)}` | {g.findings} | {g.flows} |" for g in r.groups]
        out.append("")
    for g in r.groups:
        out += [f"## {g.severity}[{g.rule}] `{_md(g.where)}`", ""]
        for e in g.examples:
            out.append(f"- `{_md(_at(e))}`: {_md(e.message)}" + (f"  \n  *hint:* {_md(e.hint)}" if e.hint else ""))
        out.append("")
    return safe("\n".join(out).rstrip() + "\n", lines=True)


def render_json(r: Report, db: sqlite3.Connection | None = None) -> str:
    # Every control, C1 and bidi character is a \u escape (the value stays exact), a stray byte U+FFFD.
    return json_safe(json.dumps(asdict(r), indent=2, ensure_ascii=False)) + "\n"


def render_junit(r: Report, db: sqlite3.Connection | None = None, fail_on: str = "error") -> str:
    """One test case per call, one suite per endpoint; a case fails when its call failed
    (``~failed``) or has findings at --fail-on (neither, with --fail-on never)."""
    assert db is not None
    failing = {"error"} if fail_on == "error" else {"error", "warning"} if fail_on == "warning" else set()
    suites: dict[str, etree._Element] = {}
    root = etree.Element("testsuites", name="xero-inspector", tests="0", failures="0")
    tests = failures = 0
    for flow, findings in flows_with_findings(db, r):
        key = f"{flow['family'] or 'unknown'}.{flow['method']} {flow['endpoint']}"
        suite = suites.get(key)
        if suite is None:
            suite = suites[key] = etree.SubElement(root, "testsuite", name=safe(key), tests="0", failures="0")
        case = etree.SubElement(
            suite,
            "testcase",
            name=safe(f"#{flow['id']} {flow['method']} {flow['url']}"),
            classname=safe(key),
            time=f"{(flow['duration_ms'] or 0) / 1000:.3f}",
        )
        bad = [f for f in findings if f["severity"] in failing]
        lines = [_finding_line(f) for f in findings]
        if flow["failure"]:
            call = FailedCall(flow["id"], flow["url"], flow["status"], flow["detail"])
            lines.insert(0, f"failed[{flow['failure']}] {_failed_at(call)}")
        tests += 1
        suite.set("tests", str(int(suite.get("tests", "0")) + 1))
        if failing and (flow["failure"] or bad):
            failures += 1
            suite.set("failures", str(int(suite.get("failures", "0")) + 1))
            # XML 1.0 cannot hold most controls at all: what traffic put there is shown as pictures.
            message = lines[0] if flow["failure"] else _message(bad[0])
            fail = etree.SubElement(case, "failure", message=safe(message))
            fail.set("type", safe(flow["failure"] or bad[0]["rule"]))
            fail.text = safe("\n".join(lines), lines=True)
        elif lines:
            etree.SubElement(case, "system-out").text = safe("\n".join(lines), lines=True)
    root.set("tests", str(tests))
    root.set("failures", str(failures))
    return etree.tostring(root, pretty_print=True, xml_declaration=True, encoding="UTF-8").decode()


def _message(f: dict[str, Any]) -> str:
    return f"{f['severity']}[{f['rule']}] {f['message']}"


def _finding_line(f: dict[str, Any]) -> str:
    pos = f":{f['line']}" + (f":{f['column']}" if f["column"] else "") if f["line"] else ""
    text = f"{f['side']}{pos}: {f['severity']}[{f['rule']}] {f['message']}"
    if f["xpath"]:
        text += f" ({f['xpath']})"
    if f["hint"]:
        text += f"\n    hint: {f['hint']}"
    return text


_CSS = """body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:70em;color:#222}
h1{font-size:1.4em}h2{font-size:1.05em;margin-top:1.6em}code{background:#f3f3f3;padding:0 .2em}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left}
.error{color:#b00020}.warning{color:#9a6700}.hint{color:#555;font-style:italic}li{margin:.3em 0}"""


def render_html(r: Report, db: sqlite3.Connection | None = None) -> str:
    e = html.escape
    rows = "".join(
        f"<tr><td class='{g.severity}'>{g.severity}</td><td><code>{e(g.rule)}</code></td>"
        f"<td><code>{e(g.where)}</code></td><td>{g.findings}</td><td>{g.flows}</td></tr>"
        for g in r.groups
    )
    sections = []
    for g in r.groups:
        items = "".join(
            f"<li><code>{e(_at(x))}</code>: {e(x.message)}"
            + (f"<br><span class='hint'>hint: {e(x.hint)}</span>" if x.hint else "")
            + "</li>"
            for x in g.examples
        )
        title = f"<span class='{g.severity}'>{g.severity}[{e(g.rule)}]</span> <code>{e(g.where)}</code>"
        sections.append(f"<h2>{title}</h2><ul>{items}</ul>")
    table = (
        f"<table><tr><th>severity</th><th>rule</th><th>endpoint</th><th>findings</th><th>flows</th></tr>{rows}</table>"
        if rows
        else "<p>No findings.</p>"
    )
    failed = "".join(
        f"<tr><td class='error'><code>{e(f.failure)}</code></td><td><code>{e(f.where)}</code></td><td>{f.calls}</td>"
        f"<td>{'<br>'.join(e(_failed_at(c)) for c in f.examples)}</td></tr>"
        for f in r.failures
    )
    if failed:
        table = (
            "<h2>Failed calls</h2><table><tr><th>failure</th><th>endpoint</th><th>calls</th><th>newest</th></tr>"
            f"{failed}</table><h2>Findings</h2>{table}"
        )
    generated = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.generated_at))
    return safe(
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>xero-inspector report: {e(r.db)}</title><style>{_CSS}</style></head><body>"
        f"<h1>xero-inspector report: <code>{e(r.db)}</code></h1><p>{e(summary(r))}. Generated {generated}.</p>"
        f"{table}{''.join(sections)}</body></html>\n",
        lines=True,
    )


RENDERERS: dict[str, Callable[..., str]] = {
    "text": render_text,
    "markdown": render_markdown,
    "json": render_json,
    "junit": render_junit,
    "html": render_html,
}
