"""`xero-inspector demo --headless` as a user runs it: mock, real proxy process, traffic, summary."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import rows

pytestmark = pytest.mark.e2e


def test_demo_headless(tmp_path: Path, confdir: Path) -> None:
    cmd = [sys.executable, "-m", "inspector", "demo", "--headless", "--confdir", str(confdir)]
    result = subprocess.run(
        cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "100"}
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "exchanges recorded" in out and "Demo Practice Ltd" in out and "0 dropped, 0 errors" in out
    db = tmp_path / "xero-demo.db"
    outcomes = {r["outcome"]: r["n"] for r in rows(db, "select outcome, count(*) n from flows group by outcome")}
    assert set(outcomes) == {"ok", "api-error", "http-error", "rate-limited", "transport-error"}
    families = {r["family"] for r in rows(db, "select distinct family from flows")}
    assert {"xpm-3.0", "wfm-legacy", "network-1.0", "accounting-2.0", "identity", "connections"} <= families
    formats = {r["request_format"] for r in rows(db, "select distinct request_format from flows")}
    assert {"xml", "form-xml", "form"} <= formats
    # The v1 migration: its checklist, and each v1 call replayed on both v3 APIs (the writes fail on
    # WorkflowMax until their bodies name records by UUID, as the checklist says).
    assert "bodies the v3 schema rejects: 0 on Practice Manager 3.0, 2 on WorkflowMax 3.0" in out
    assert "rename <ClientID> → <ClientUUID>" in out and out.count("v3: fixed") == 4
    replayed = rows(db, "select family, count(*) n from flows where replay_of is not null group by family")
    assert {r["family"]: r["n"] for r in replayed} == {"xpm-3.0": 3, "wfm-3.0": 3}
    (summary_total,) = [line for line in out.splitlines() if "exchanges recorded" in line]
    assert int(summary_total.split()[0]) == sum(outcomes.values())
    # Xero failing on purpose: one 429 the proxy made (a fault rule), honoured, then Xero's 200.
    staff = rows(db, "select status, injected from flows where path like '%/staff.api/get/%' order by id")
    assert [(r["status"], r["injected"]) for r in staff] == [(429, "rate-limit"), (200, None)]
    assert "\n1 injected by fault rules, 1 held at a breakpoint" in out
    assert "429  GET staff.api/get, rule 'rate-limit retry=1 ~u staff.api/get times 1'" in out
    # A breakpoint: the misspelt job was held, corrected by the script in the browser's place, and let go.
    (held,) = rows(db, "select id, status, paused, errors, warnings from flows where paused is not null")
    assert held["status"] == 200 and held["paused"].startswith("request edited (body) after ")
    assert (held["errors"], held["warnings"]) == (0, 0)  # the sent body is the corrected one
    bodies = {r["side"]: r["text"] for r in rows(db, "select side, text from bodies where flow_id = ?", [held["id"]])}
    assert "<Nmae>" in bodies["request-original"] and "<Name>Year-end accounts</Name>" in bodies["request"]
    # A second run starts from a fresh file rather than appending to the first.
    again = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0
    assert rows(db, "select count(*) n from flows")[0]["n"] == sum(outcomes.values())


def test_demo_will_not_delete_a_file_that_is_not_ours(tmp_path: Path) -> None:
    precious = tmp_path / "xero-demo.db"
    precious.write_text("my notes, not a database")
    result = subprocess.run(
        [sys.executable, "-m", "inspector", "demo", "--headless"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "not a xero-inspector database" in result.stderr
    assert precious.read_text() == "my notes, not a database"
