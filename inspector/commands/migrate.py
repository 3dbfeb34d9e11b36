"""`xero-inspector migrate`: what recorded WorkflowMax v1 traffic must change to run on v3.

For every v1 endpoint the app called: the URL on Practice Manager 3.0 and on WorkflowMax 3.0
(or that the endpoint has no counterpart there), the change of authentication, and each
distinct recorded request body checked against the v3 schema of both targets, with the
renames WorkflowMax's UUIDs call for (<ClientID> to <ClientUUID>, <add id> to <add uuid>).
"""

from __future__ import annotations

import hashlib
import json
import textwrap
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from inspector.commands.validate_files import TargetError, check_file, target
from inspector.ingest.catalog import Catalog
from inspector.ingest.findings import Finding
from inspector.ingest.v3 import TARGETS, V3Target, method_path, v3_url
from inspector.ingest.validate import Validator
from inspector.store.database import open_for_reading
from inspector.store.flows import request_body, v1_calls
from inspector.utils.text import json_safe, plural, safe

AUTH_BEFORE = "apiKey and accountKey in the query string (no header)"
AUTH_AFTER = (
    "Authorization: Bearer <access token> (OAuth 2.0, 30 minutes; scope {scope}) and "
    "xero-tenant-id: <tenantId from GET https://api.xero.com/connections>"
)


@dataclass(frozen=True, slots=True)
class Issue:
    severity: str
    rule: str
    message: str
    line: int | None
    column: int | None
    xpath: str | None

    @classmethod
    def of(cls, f: Finding) -> Issue:
        return cls(f.severity, f.rule, f.message, f.line, f.column, f.xpath)


@dataclass(slots=True)
class TargetCheck:
    """One body against one v3 target's schema."""

    target: str
    issues: list[Issue] = field(default_factory=list)
    renames: list[str] = field(default_factory=list)
    note: str | None = None  # why it was not checked


@dataclass(slots=True)
class BodyCheck:
    flows: list[int]  # the recorded calls that sent this body, oldest first
    checks: list[TargetCheck]


@dataclass(slots=True)
class EndpointPlan:
    method: str
    endpoint: str  # the catalog's pattern (job.api/get/{number}) or the method path called
    calls: int
    flows: list[int]
    v3: dict[str, str | None]  # target key -> v3 URL (of the newest call), None: no such endpoint there
    bodies: list[BodyCheck] = field(default_factory=list)


@dataclass(slots=True)
class Plan:
    db: str
    calls: int
    endpoints: list[EndpointPlan]

    @property
    def failing_bodies(self) -> dict[str, int]:
        """Per target, how many distinct recorded bodies its v3 schema rejects (an error finding)."""
        checks = [c for e in self.endpoints for b in e.bodies for c in b.checks]
        return {
            key: sum(c.target == key and any(i.severity == "error" for i in c.issues) for c in checks)
            for key in TARGETS
        }


def build(db: str | Path, catalog: Catalog, validator: Validator) -> Plan:
    conn = open_for_reading(db)
    try:
        rows = v1_calls(conn)
        plans: dict[tuple[str, str], EndpointPlan] = {}
        newest: dict[tuple[str, str], str] = {}  # the URL of each endpoint's newest call
        bodies: dict[tuple[str, str], dict[str, tuple[list[int], bytes]]] = {}
        for flow_id, method, url, ep in rows:
            # A path the v1 catalog does not know is named as its method path (no /v3/, no keys).
            key = (str(method), str(ep or method_path(str(url)).split("?", 1)[0].lstrip("/")))
            plan = plans.setdefault(key, EndpointPlan(key[0], key[1], 0, [], {}))
            plan.calls += 1
            plan.flows.append(int(flow_id))
            newest[key] = str(url)
            body = request_body(conn, int(flow_id))
            if body:
                seen = bodies.setdefault(key, {})
                digest = hashlib.sha256(body).hexdigest()
                seen.setdefault(digest, ([], body))[0].append(int(flow_id))
    finally:
        conn.close()
    for key, plan in plans.items():
        plan.v3 = {k: _v3(catalog, plan.method, newest[key], t) for k, t in TARGETS.items()}
        for ids, body in bodies.get(key, {}).values():
            plan.bodies.append(BodyCheck(ids, [_check(catalog, validator, plan, k, body) for k in TARGETS]))
    ordered = sorted(plans.values(), key=lambda p: (-p.calls, p.endpoint, p.method))
    return Plan(str(db), len(rows), ordered)


def _v3(catalog: Catalog, method: str, url: str, target: V3Target) -> str | None:
    """The call's v3 URL, or None when that API has no such endpoint (addrelationship is
    Practice Manager's alone; purchaseorder.api/adddraft WorkflowMax's)."""
    new = v3_url(url, target)
    parts = urlsplit(new)
    c = catalog.classify(method, parts.hostname or "", parts.path)
    return new if c.family == target.family and c.operation is not None else None


def _check(catalog: Catalog, validator: Validator, plan: EndpointPlan, key: str, body: bytes) -> TargetCheck:
    url = plan.v3[key]
    if url is None:
        return TargetCheck(key, note=f"{TARGETS[key].title} has no {plan.method} {plan.endpoint}")
    try:
        t = target(catalog, f"{plan.method} {url}")
    except TargetError:
        return TargetCheck(key, note=f"{TARGETS[key].title} takes no body the catalog describes here")
    found = check_file(validator, t, body)
    issues = [Issue.of(f) for f in found if f.severity != "info"]
    return TargetCheck(key, issues, renames(found))


def renames(found: list[Finding]) -> list[str]:
    """The renames a WorkflowMax body needs, read off its findings: an element the schema does
    not take whose UUID twin it expects (<ClientID> for <ClientUUID>, <Task> for <TaskUUID>),
    and an id attribute where a uuid one is required (<add id> for <add uuid>)."""
    out: dict[str, None] = {}
    for f in found:
        tag = (f.xpath or "").rsplit("/", 1)[-1]
        if not tag:
            continue
        twin = (tag[:-2] if tag.endswith("ID") else tag) + "UUID"
        said = f"{f.message} {f.hint or ''}"
        if f.rule in ("xsd", "unknown-element") and _names(said, twin) and not _names(said, f"<{twin}> is missing"):
            out[f"<{tag}> → <{twin}> (its value the record's UUID)"] = None
        elif "attribute 'id'" in said:
            out[f'<{tag} id="…"> → <{tag} uuid="…">'] = None
    return list(out)


def _names(text: str, word: str) -> bool:
    """Whether ``word`` appears in ``text`` as a whole name (ClientUUID, not ClientUUIDs)."""
    start = text.find(word)
    while start != -1:
        end = start + len(word)
        before = text[start - 1] if start else " "
        after = text[end] if end < len(text) else " "
        if not (before.isalnum() or after.isalnum()):
            return True
        start = text.find(word, end)
    return False


# --- rendering ----------------------------------------------------------------------------------


def summary(p: Plan) -> str:
    if not p.calls:
        return f"no WorkflowMax v1 calls in {p.db}: nothing to migrate"
    failing = p.failing_bodies
    return (
        f"{plural(p.calls, 'v1 call')} to {plural(len(p.endpoints), 'endpoint')}; "
        f"bodies the v3 schema rejects: {failing['xpm']} on Practice Manager 3.0, "
        f"{failing['wfm']} on WorkflowMax 3.0"
    )


def _where(i: Issue) -> str:
    return f"{i.line}:{i.column}" if i.line and i.column else str(i.line or "-")


def _wrapped(text: str, indent: str, hang: str = "  ") -> list[str]:
    """One item, folded at 80 columns by words, its continuation lines indented under it."""
    return textwrap.wrap(text, 80, initial_indent=indent, subsequent_indent=indent + hang, break_on_hyphens=False)


def render_text(p: Plan) -> str:
    """For an 80-column terminal: long findings fold by words, not mid-word."""
    lines = [f"xero-inspector migrate: {p.db}", *summary(p).split("; "), ""]
    if p.calls:
        lines += [
            "Authentication, on every endpoint",
            f"  v1: {AUTH_BEFORE}",
            "  v3: Authorization: Bearer <access token>",
        ]
        lines += [f"      (OAuth 2.0, 30 minutes; scope {' or '.join(t.scope for t in TARGETS.values())})"]
        lines += ["      xero-tenant-id: <tenantId from GET https://api.xero.com/connections>", ""]
    for e in p.endpoints:
        lines.append(f"{e.method} {e.endpoint}: {plural(e.calls, 'call')} (#{', #'.join(map(str, e.flows[:5]))})")
        for key, t in TARGETS.items():
            lines += _wrapped(f"{t.title}: {e.v3[key] or 'no such endpoint'}", "  ")
        for b in e.bodies:
            lines.append(f"  body of #{', #'.join(map(str, b.flows[:5]))}:")
            for c in b.checks:
                title = TARGETS[c.target].title
                if c.note:
                    lines += _wrapped(f"{title}: {c.note}", "    ")
                    continue
                lines.append(f"    {title}: " + ("valid" if not c.issues else plural(len(c.issues), "finding")))
                for i in c.issues:
                    lines += _wrapped(f"{i.severity}[{i.rule}] {_where(i)} {i.message}", "      ", "    ")
                lines += [f"      rename {r}" for r in c.renames]
        lines.append("")
    return safe("\n".join(lines).rstrip() + "\n", lines=True)


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;").replace("`", "'")


def render_markdown(p: Plan) -> str:
    out = [f"# WorkflowMax v1 → v3 migration: `{_md(p.db)}`", "", _md(summary(p)), ""]
    if p.calls:
        out += ["## Authentication", "", f"v1 sends {_md(AUTH_BEFORE)}; on every endpoint v3 takes instead:", ""]
        out += [f"- **{t.title}**: {_md(AUTH_AFTER.format(scope=t.scope))}" for t in TARGETS.values()]
        out += [
            "",
            "## Endpoints",
            "",
            "| v1 call | calls | Practice Manager 3.0 | WorkflowMax 3.0 |",
            "|---|---:|---|---|",
        ]
        for e in p.endpoints:
            urls = [f"`{_md(url)}`" if (url := e.v3[k]) else "no such endpoint" for k in TARGETS]
            out.append(f"| `{_md(e.method)} {_md(e.endpoint)}` | {e.calls} | {urls[0]} | {urls[1]} |")
        out.append("")
    for e in p.endpoints:
        for b in e.bodies:
            out += [f"### `{_md(e.method)} {_md(e.endpoint)}`, body of #{', #'.join(map(str, b.flows[:5]))}", ""]
            for c in b.checks:
                title = TARGETS[c.target].title
                if c.note or not c.issues:
                    out.append(f"- [{'x' if not c.note else ' '}] **{title}**: {_md(c.note or 'valid')}")
                    continue
                out.append(f"- [ ] **{title}**: {plural(len(c.issues), 'finding')}")
                out += [f"  - {i.severity} `{i.rule}` {_where(i)}: {_md(i.message)}" for i in c.issues]
                out += [f"  - rename {_md(r)}" for r in c.renames]
            out.append("")
    return safe("\n".join(out).rstrip() + "\n", lines=True)


def render_json(p: Plan) -> str:
    doc = {
        "db": p.db,
        "calls": p.calls,
        "summary": summary(p),
        "auth": {
            "v1": AUTH_BEFORE,
            **{k: {"url": t.base, "auth": AUTH_AFTER.format(scope=t.scope)} for k, t in TARGETS.items()},
        },
        "endpoints": [asdict(e) for e in p.endpoints],
    }
    return json_safe(json.dumps(doc, indent=2, ensure_ascii=False)) + "\n"


RENDERERS = {"text": render_text, "markdown": render_markdown, "json": render_json}
