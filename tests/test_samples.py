"""Every sample body in samples/bodies/ produces exactly the findings its cases.toml annotates,
through `validate` (validate_files) and through the recorder's ingest alike."""

from __future__ import annotations

import tomllib
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from inspector.commands.validate_files import check_file, target
from inspector.ingest.catalog import Catalog
from inspector.ingest.findings import SCHEMA_RULES
from inspector.ingest.pipeline import Ingest
from inspector.ingest.validate import SchemaCache, Validator, preload
from tests.test_ingest import record

BODIES = Path(__file__).resolve().parent.parent / "samples" / "bodies"
CATALOG = Catalog.load()
VALIDATOR = Validator()
# Rules a body alone can trigger, beside the schema ones; the exchange rules have their own tests.
BODY_RULES = SCHEMA_RULES | {"xpm-error", "validation-error", "api-exception", "network-error", "content-type"}


def _cases() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for manifest in sorted(BODIES.glob("*/cases.toml")):
        for case in tomllib.loads(manifest.read_text("utf-8"))["case"]:
            out.append((manifest.parent.name, case))
    return out


CASES = _cases()


def _ids() -> list[str]:
    return [f"{fam}/{case['file']}" for fam, case in CASES]


def _matches(found: list[Any], expect: list[dict[str, Any]]) -> None:
    assert Counter((f.rule, f.xpath) for f in found) == Counter((e["rule"], e.get("xpath")) for e in expect), [
        (f.rule, f.xpath, f.line, f.column, f.message) for f in found
    ]
    for e in expect:
        if "line" in e:
            hit = [f for f in found if (f.rule, f.xpath) == (e["rule"], e.get("xpath"))]
            assert any(f.line == e["line"] and f.column == e.get("column") for f in hit), (e, hit)


@pytest.mark.parametrize(("family", "case"), CASES, ids=_ids())
def test_validate_gives_the_annotated_findings(family: str, case: dict[str, Any]) -> None:
    data = (BODIES / family / case["file"]).read_bytes()
    t = target(CATALOG, case["endpoint"], case.get("response", False))
    expect = [e for e in case["expect"] if e["rule"] != "content-type"]  # a file has no content type
    _matches(check_file(VALIDATOR, t, data), expect)


@pytest.mark.parametrize(("family", "case"), CASES, ids=_ids())
def test_the_recorder_finds_the_same(family: str, case: dict[str, Any]) -> None:
    data = (BODIES / family / case["file"]).read_bytes()
    method, url = case["endpoint"].split(" ", 1)
    content_type = case.get("content_type", "text/xml; charset=utf-8")
    headers = (("Authorization", "Bearer x.y.z"), ("xero-tenant-id", "T1"), ("Content-Type", content_type))
    if case.get("response"):
        rec = record(method=method, url=url, request_body=None, response_body=data, response_headers=headers[2:])
    else:
        ok = b"<Response><Status>OK</Status></Response>"
        rec = record(
            method=method,
            url=url,
            request_headers=headers,
            request_body=data,
            response_body=ok,
            response_headers=(("Content-Type", "text/xml"),),
        )
    out = Ingest(CATALOG, validator=VALIDATOR)(rec)
    assert not out.flow.ingest_error
    from inspector.ingest.findings import Finding

    found = [Finding(**f) for f in out.findings if f["rule"] in BODY_RULES]
    _matches(found, case["expect"])
    errors = sum(1 for f in out.findings if f["severity"] == "error")
    assert out.flow.errors == errors


def test_every_schema_has_a_valid_and_two_invalid_samples() -> None:
    per_schema: dict[str, Counter[str]] = {}
    for _, case in CASES:
        t = target(CATALOG, case["endpoint"], case.get("response", False))
        errors = [e for e in case["expect"] if e["rule"] != "content-type"]
        per_schema.setdefault(t.schema.label, Counter())["invalid" if errors else "valid"] += 1
    schemas = {
        p.relative_to(BODIES.parent.parent / "inspector" / "schemas").as_posix()
        for p in (BODIES.parent.parent / "inspector" / "schemas").glob("*/*.xsd")
    }
    assert set(per_schema) == schemas
    for label, n in per_schema.items():
        assert n["valid"] >= 1 and n["invalid"] >= 2, (label, n)


def test_every_sample_file_is_annotated() -> None:
    listed = {f"{fam}/{case['file']}" for fam, case in CASES}
    on_disk = {f"{p.parent.name}/{p.name}" for p in BODIES.glob("*/*") if p.name != "cases.toml"}
    assert listed == on_disk


def test_every_built_in_schema_compiles() -> None:
    assert preload(CATALOG, SchemaCache(), builtin=True) > 80


def test_no_valid_sample_warns_under_validates_default() -> None:
    """What a user sees: `validate` as typed, with its default --fail-on, on every sample named
    valid (those written from bodies Xero accepted among them), prints no finding and exits 0."""
    from click.testing import CliRunner

    from inspector.cli import main

    by_endpoint: dict[tuple[str, bool], list[str]] = {}
    for family, case in CASES:
        if ".valid." in case["file"]:
            key = (case["endpoint"], bool(case.get("response", False)))
            by_endpoint.setdefault(key, []).append(str(BODIES / family / case["file"]))
    assert len(by_endpoint) >= 25  # the samples were found
    for (endpoint, response), files in by_endpoint.items():
        args = ["validate", *files, "--endpoint", endpoint, *(["--response"] if response else [])]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, (endpoint, result.output)
        assert "warning[" not in result.output and "error[" not in result.output, result.output
        assert "0 errors, 0 warnings" in result.output, result.output


def test_every_request_type_has_a_valid_sample_that_names_its_source() -> None:
    """Every write the catalog has a schema for is shown by at least one valid body, and each such
    body says where its shape comes from: recorded traffic, Xero's spec, or Xero's docs."""
    covered = set()
    for _family, case in CASES:
        if ".valid." not in case["file"] or case.get("response"):
            continue
        assert case.get("source", "").split(":")[0] in ("recorded", "spec", "docs"), case
        method, url = case["endpoint"].split(" ", 1)
        parts = urlsplit(url)
        c = CATALOG.classify(method, parts.hostname or "", parts.path)
        covered.add((c.family, method, c.endpoint))
    writes = [ep for ep in CATALOG.endpoints if ep.request is not None]
    missing = [f"{ep.family} {ep.method} {ep.path}" for ep in writes if ep.family != "wfm-legacy"]
    assert [m for m in missing if tuple(m.split(" ", 2)) not in covered] == []
    # v1 is retired and was checked against Practice Manager's schema: each of its writes has a twin there.
    legacy = [ep for ep in writes if ep.family == "wfm-legacy"]
    assert legacy and all(("xpm-3.0", ep.method, ep.path) in covered for ep in legacy)
