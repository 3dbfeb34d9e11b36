"""`xero-inspector chaos --app CMD` as a user runs it: a real app (samples/resilient_app.py, an
httpx client that knows nothing of us) through the real proxy over TLS to the mock Xero, with the
default fault profile; the verdicts come from what the app really did, in the recording."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from inspector.samples.mock_xero import MockXero
from lxml import etree

from inspector.store.database import open_for_reading
from inspector.store.resilience import judge
from tests.helpers import ROOT, rows

pytestmark = pytest.mark.e2e

APP = f"{sys.executable} -m inspector.samples.resilient_app"


def chaos(tmp: Path, confdir: Path, mock: MockXero, app: str, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "inspector", "chaos", "--app", app, "--db", str(tmp / "chaos.db")]
    cmd += ["--confdir", str(confdir), "--redirect", mock.url, "--upstream-ca", str(mock.ca_path), *extra]
    env = {**os.environ, "COLUMNS": "120", "PYTHONPATH": str(ROOT)}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp, env=env)


def test_an_app_that_copes_passes_every_fault(tmp_path: Path, confdir: Path, upstream: MockXero) -> None:
    out = chaos(tmp_path, confdir, upstream, APP, "--junit", str(tmp_path / "chaos.xml"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "4 injected faults, 0 handled badly" in out.stdout
    for line in (
        "waited 2.0 s (Retry-After 2 s), then tried again",
        "refreshed the token at connect/token, then tried again",
        "tried again after 1.5 s",
        "did not send the rejected request again unchanged",
    ):
        assert line in out.stdout, out.stdout
    assert "GET job.api/current: 429" in out.stdout  # the app's own output passes through
    doc = etree.parse(str(tmp_path / "chaos.xml")).getroot()
    assert (doc.get("tests"), doc.get("failures")) == ("4", "0")
    assert stat.S_IMODE((tmp_path / "chaos.xml").stat().st_mode) == 0o600
    injected = rows(tmp_path / "chaos.db", "select injected from flows where injected is not null order by id")
    assert [r["injected"] for r in injected] == ["rate-limit", "token-expired", "unavailable", "xpm-error"]


def test_a_naive_app_fails_where_it_did_not_cope(tmp_path: Path, confdir: Path, upstream: MockXero) -> None:
    out = chaos(tmp_path, confdir, upstream, f"{APP} --naive", "--junit", str(tmp_path / "chaos.xml"))
    assert out.returncode == 1, out.stdout + out.stderr
    assert "4 injected faults, 3 handled badly" in out.stdout
    assert "tried again after 0.0 s; Retry-After said 2 s" in out.stdout
    assert "tried again with the same expired token" in out.stdout
    assert "sent the same rejected request again" in out.stdout
    doc = etree.parse(str(tmp_path / "chaos.xml")).getroot()
    failures = [f.get("type") for f in doc.iter("failure")]
    assert sorted(failures) == ["rate-limit", "token-expired", "xpm-error"]
    with open_for_reading(tmp_path / "chaos.db") as conn:  # judged again, the same (the file keeps the run)
        assert [v.ok for v in judge(conn)] == [False, False, True, False]


def test_own_rules_a_second_run_and_what_goes_wrong_is_one_line(
    tmp_path: Path, confdir: Path, upstream: MockXero
) -> None:
    rule = "wrong-tenant ~u job.api/current times 1"
    out = chaos(tmp_path, confdir, upstream, APP, "--fault", rule)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 injected fault, 0 handled badly" in out.stdout
    assert "checked GET /connections before calling that organisation again" in out.stdout
    again = chaos(tmp_path, confdir, upstream, f"{APP} --reads 1", "--fault", "drop ~u job.api/current times 1")
    assert again.returncode == 0 and "1 injected fault, 0 handled badly" in again.stdout  # this run's only
    none = chaos(tmp_path, confdir, upstream, APP, "--fault", "unavailable ~u lead.api times 1")
    assert none.returncode == 1 and "no fault fired" in none.stderr
    missing = chaos(tmp_path, confdir, upstream, "no-such-app-here --x")
    assert (
        missing.returncode == 2
        and missing.stderr.strip() == "xero-inspector: error: --app: no-such-app-here: no such command"
    )
