"""The v1 to v3 migration assistant end to end: WorkflowMax v1 calls recorded through the real proxy
over TLS, the `migrate` checklist in its three formats, and `replay --as-v3` to the mock's
Practice Manager 3.0 and WorkflowMax 3.0."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from inspector.samples.mock_xero import TENANTS, MockXero

from tests.helpers import ROOT, ProxyProcess, client, copy_db, rows, wait_for_rows
from tests.test_replay import PRACTICE, XPM, replay_cli

pytestmark = pytest.mark.e2e

LEGACY = "https://api.workflowmax.com"
AGENCY = next(t.id for t in TENANTS if t.type == "WORKFLOWMAX")
JOB_ADD = "<Job><Name>Fit-out</Name><ClientID>24097642</ClientID><StartDate>20260101</StartDate><DueDate>20260131</DueDate></Job>"
ASSIGN = '<Job><ID>J000001</ID><add id="859231"/></Job>'


class Recorded:
    def __init__(self, db: Path, mock: MockXero, ids: dict[str, int]) -> None:
        self.db, self.mock, self.ids = db, mock, ids


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory, confdir: Path, upstream: MockXero) -> Recorded:
    """An app still on v1: a read and two writes with keys in the URL (the interim /v3/ path for
    one), and one Practice Manager 3.0 call that is not v1."""
    tmp = tmp_path_factory.mktemp("migrate")
    proxy = ProxyProcess(tmp, confdir, ["--redirect", upstream.url, "--upstream-ca", str(upstream.ca_path)]).start()
    c = upstream.app.config
    keys = f"apiKey={c.legacy_api_key}&accountKey={c.legacy_account_key}"
    calls = {
        "current": ("GET", f"{LEGACY}/job.api/current?{keys}", None),
        "add": ("POST", f"{LEGACY}/v3/job.api/add?{keys}", JOB_ADD),
        "assign": ("PUT", f"{LEGACY}/job.api/assign?{keys}", ASSIGN),
        "v3": ("GET", f"{XPM}/client.api/list", None),
    }
    try:
        with client(proxy) as http:
            for name, (method, url, body) in calls.items():
                http.request(method, url, headers={"X-Test": name, "Content-Type": "text/xml"}, content=body)
        wait_for_rows(proxy.db, "select id from flows where request_headers like '%X-Test%'", len(calls))
    finally:
        proxy.stop()
    ids = {
        name: rows(proxy.db, "select id from flows where request_headers like ?", [f'%"X-Test", "{name}"%'])[0]["id"]
        for name in calls
    }
    return Recorded(proxy.db, upstream, ids)


@pytest.fixture
def db(recorded: Recorded, tmp_path: Path) -> Path:
    """Each replay test sends into its own copy of the recording."""
    return copy_db(recorded.db, tmp_path / "flows.db")


def migrate(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "inspector", "migrate", "--db", str(db), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def test_migrate_lists_what_changes_per_endpoint(recorded: Recorded, tmp_path: Path) -> None:
    text = migrate(recorded.db)
    assert text.returncode == 0, text.stderr
    out = text.stdout
    assert "3 v1 calls to 3 endpoints" in out and "0 on Practice Manager 3.0, 2 on WorkflowMax 3.0" in out
    # The interim /v3/ path and the keys are gone from the new URLs; no key is printed anywhere.
    assert "https://api.xero.com/practicemanager/3.0/job.api/add" in out
    assert "https://api.xero.com/workflowmax/3.0/job.api/assign" in out
    assert recorded.mock.app.config.legacy_api_key not in out and "apiKey=" not in out
    assert "Authorization: Bearer" in out and "xero-tenant-id" in out
    assert "rename <ClientID> → <ClientUUID>" in out and 'rename <add id="…"> → <add uuid="…">' in out
    assert "client.api/list" not in out  # a v3 call is not part of the migration

    data = json.loads(migrate(recorded.db, "--format", "json").stdout)
    assert data["calls"] == 3
    by_call = {(e["method"], e["endpoint"]): e for e in data["endpoints"]}
    add = by_call[("POST", "job.api/add")]
    assert add["flows"] == [recorded.ids["add"]]
    (body,) = add["bodies"]
    checks = {c["target"]: c for c in body["checks"]}
    assert checks["xpm"]["issues"] == [] and checks["xpm"]["renames"] == []
    wfm = {(i["rule"], i["xpath"]) for i in checks["wfm"]["issues"]}
    assert wfm == {("unknown-element", "/Job/ClientID"), ("xsd", "/Job")}
    assert by_call[("GET", "job.api/current")]["bodies"] == []

    out_file = tmp_path / "MIGRATION.md"
    written = migrate(recorded.db, "--format", "markdown", "-o", str(out_file))
    assert written.returncode == 0 and "3 v1 calls" in written.stderr
    md = out_file.read_text()
    assert oct(out_file.stat().st_mode & 0o777) == "0o600"
    assert "| `POST job.api/add` | 1 | `https://api.xero.com/practicemanager/3.0/job.api/add` |" in md
    assert "- [x] **Practice Manager 3.0**: valid" in md and "&lt;ClientID&gt; → &lt;ClientUUID&gt;" in md


def test_migrate_with_no_v1_traffic_says_so(tmp_path: Path) -> None:
    from inspector.store.database import open_db

    open_db(tmp_path / "empty.db").close()
    result = migrate(tmp_path / "empty.db")
    assert result.returncode == 0 and "no WorkflowMax v1 calls" in result.stdout
    missing = migrate(tmp_path / "nope.db")
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1


def test_replay_as_v3_to_practice_manager(recorded: Recorded, db: Path) -> None:
    token = recorded.mock.app.tokens.issue(["practicemanager"])
    ids = [str(recorded.ids[n]) for n in ("current", "add", "assign")]
    result = replay_cli(db, *ids, "--as-v3", "xpm", "--tenant", PRACTICE, "--yes", mock=recorded.mock, token=token)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 replayed: 3 fixed" in result.stdout
    assert (
        "--as-v3 xpm: sent to https://api.xero.com/practicemanager/3.0/…, apiKey and accountKey dropped: #"
        in result.stdout
    )
    replayed = rows(db, "select * from flows where source = 'replay' order by id")
    assert [r["replay_of"] for r in replayed] == [int(i) for i in ids]
    for r in replayed:
        assert r["family"] == "xpm-3.0" and r["url"].startswith(f"{XPM}/job.api/")
        assert "apiKey" not in r["url"] and "/v3/" not in r["url"]
        headers = {k.lower(): v for k, v in json.loads(r["request_headers"])}
        assert headers["xero-tenant-id"] == PRACTICE and headers["authorization"].startswith("Bearer redacted:")
        assert r["outcome"] == "ok" and r["errors"] == r["warnings"] == 0


def test_replay_as_v3_to_workflowmax_keeps_the_body(recorded: Recorded, db: Path) -> None:
    """The body goes as recorded: WorkflowMax refuses the integer ClientID, and the replay's
    findings say why, against the v3 schema."""
    token = recorded.mock.app.tokens.issue(["workflowmax"])
    add = str(recorded.ids["add"])
    result = replay_cli(db, add, "--as-v3", "wfm", "--tenant", AGENCY, "--yes", mock=recorded.mock, token=token)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "still failing" in result.stdout and "/Job/ClientUUID" in result.stdout
    (r,) = rows(db, "select * from flows where source = 'replay'")
    assert r["family"] == "wfm-3.0" and r["outcome"] == "api-error"
    found = {(f["rule"], f["xpath"]) for f in rows(db, "select rule, xpath from findings where flow_id = ?", [r["id"]])}
    assert {("unknown-element", "/Job/ClientID"), ("xsd", "/Job")} <= found
    read = replay_cli(
        db, str(recorded.ids["current"]), "--as-v3", "wfm", "--tenant", AGENCY, mock=recorded.mock, token=token
    )
    assert read.returncode == 0 and "1 replayed: 1 fixed" in read.stdout


def test_replay_as_v3_refusals_are_one_line(recorded: Recorded, db: Path) -> None:
    token = recorded.mock.app.tokens.issue(["practicemanager"])
    current = str(recorded.ids["current"])
    cases = [
        (replay_cli(db, current, "--as-v3", "xpm", mock=recorded.mock, token=token), "--tenant"),
        (replay_cli(db, current, "--as-v3", "xpm", "--tenant", PRACTICE, mock=recorded.mock), "--token"),
        (
            replay_cli(
                db, str(recorded.ids["v3"]), "--as-v3", "xpm", "--tenant", PRACTICE, mock=recorded.mock, token=token
            ),
            "not WorkflowMax v1",
        ),
        (replay_cli(db, current, "--as-v3", "v2", mock=recorded.mock, token=token), "'v2' is not one of"),
    ]
    for result, said in cases:
        assert result.returncode == 2, result.stdout + result.stderr
        assert said in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert rows(db, "select count(*) n from flows where source = 'replay'")[0]["n"] == 0


def test_an_endpoint_only_one_v3_api_has(tmp_path: Path) -> None:
    """Client relationships exist in Practice Manager only, draft purchase orders in WorkflowMax
    only: the checklist says so rather than printing a URL that would answer 404."""
    from inspector.ingest.catalog import Catalog
    from inspector.ingest.pipeline import Ingest
    from inspector.store.database import insert, open_db
    from tests.test_ingest import record

    db = tmp_path / "v1.db"
    ingest = Ingest(Catalog.load())
    keys = "?apiKey=K1&accountKey=K2"
    calls = [
        ("client.api/addrelationship", b"<Relationship><ClientID>1</ClientID></Relationship>"),
        ("purchaseorder.api/adddraft", b"<PurchaseOrder><SupplierID>7</SupplierID></PurchaseOrder>"),
    ]
    with open_db(db) as store:
        recs = [record(url=f"{LEGACY}/{path}{keys}", request_body=body, request_headers=()) for path, body in calls]
        insert(store, [ingest(r) for r in recs], 1700000000.0)
    data = json.loads(migrate(db, "--format", "json").stdout)
    v3 = {e["endpoint"]: e["v3"] for e in data["endpoints"]}
    assert v3["client.api/addrelationship"] == {"xpm": f"{XPM}/client.api/addrelationship", "wfm": None}
    assert v3["purchaseorder.api/adddraft"] == {
        "xpm": None,
        "wfm": "https://api.xero.com/workflowmax/3.0/purchaseorder.api/adddraft",
    }
    notes = [c["note"] for e in data["endpoints"] for b in e["bodies"] for c in b["checks"] if c["note"]]
    assert "WorkflowMax 3.0 has no POST client.api/addrelationship" in notes
    assert "K1" not in json.dumps(data)
