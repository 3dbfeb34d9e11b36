"""validate, report, revalidate and endpoints as a user runs them (the CLI), on a real store."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from lxml import etree

from inspector.cli import main
from inspector.commands.replay_batch import chosen_flows
from inspector.ingest.catalog import Catalog
from inspector.ingest.pipeline import Ingest
from inspector.ingest.validate import Validator
from inspector.store.database import insert, open_db
from inspector.store.flows import StoredFlow
from inspector.store.query import compile_filter
from tests.test_ingest import record

XPM = "https://api.xero.com/practicemanager/3.0/"
GOOD_JOB = b"<Job><Name>A</Name><ClientID>1</ClientID><StartDate>20240101</StartDate><DueDate>20240102</DueDate></Job>"
OK = b'<Response api-method="Add"><Status>OK</Status><Job><ID>J000001</ID></Job></Response>'
PLAIN = (("Content-Type", "text/xml"),)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "flows.db"
    ingest = Ingest(Catalog.load(), validator=Validator())
    recs = [
        record(request_body=GOOD_JOB, response_body=OK, response_headers=PLAIN),  # 1 clean
        record(request_body=GOOD_JOB.replace(b"ClientID", b"ClientId"), response_body=OK, response_headers=PLAIN),  # 2
        record(),  # 3: ERROR in 200, body missing required elements
    ]
    with open_db(path) as db:
        insert(db, [ingest(r) for r in recs], 0)
    return path


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def test_validate_prints_like_a_compiler_and_exits_by_severity(tmp_path: Path) -> None:
    bad = tmp_path / "job.xml"
    bad.write_bytes(b"<Job>\n  <Name>A</Name>\n  <ClientId>1</ClientId>\n</Job>\n")
    good = tmp_path / "good.xml"
    good.write_bytes(GOOD_JOB)
    r = invoke("validate", str(bad), str(good), "--endpoint", f"POST {XPM}job.api/add")
    assert r.exit_code == 1
    assert f"{bad}:3:3: warning[unknown-element] <ClientId> is not an element Xero knows here" in r.output
    assert "hint: Did you mean <ClientID>?" in r.output
    assert f"{bad}:1:1: error[xsd] <Job> is missing required <ClientID>, <StartDate>, <DueDate>" in r.output
    assert str(good) + ":" not in r.output
    assert invoke("validate", str(good), "-e", f"POST {XPM}job.api/add").exit_code == 0


def test_validate_fails_on_a_dropped_field_by_default(tmp_path: Path) -> None:
    """A misspelt element is data Xero silently throws away: a pre-send check must stop it."""
    contact = tmp_path / "contact.xml"
    contact.write_bytes(b"<Contacts><Contact><Name>A</Name><EmailAdress>a@b.co</EmailAdress></Contact></Contacts>")
    put = ("-e", "PUT https://api.xero.com/api.xro/2.0/Contacts")
    r = invoke("validate", str(contact), *put)
    assert r.exit_code == 1 and "warning[unknown-element] <EmailAdress>" in r.output
    assert "Did you mean <EmailAddress>?" in r.output and "0 errors, 1 warning" in r.output
    assert invoke("validate", str(contact), *put, "--fail-on", "error").exit_code == 0
    bad = tmp_path / "bad.xml"
    bad.write_bytes(b"<Contacts><Contact><Nme>A</Nme></Contact></Contacts>")
    assert invoke("validate", str(bad), *put, "--fail-on", "error").exit_code == 1
    assert invoke("validate", str(bad), *put, "--fail-on", "never").exit_code == 0
    assert invoke("validate", str(bad), *put, "--fail-on", "sometimes").exit_code == 2


def test_validate_says_what_a_file_is_instead_and_names_a_missing_one(tmp_path: Path) -> None:
    empty = tmp_path / "empty.xml"
    empty.write_bytes(b"")
    r = invoke("validate", str(empty), "-e", f"POST {XPM}job.api/add")
    assert r.exit_code == 1 and "not an XML document (it is empty)" in r.output
    r = subprocess.run(
        [sys.executable, "-m", "inspector", "validate", "nope.xml", "-e", f"POST {XPM}job.api/add"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (r.returncode, r.stderr) == (2, "xero-inspector: error: nope.xml: no such file\n")


def test_validate_reads_stdin_and_checks_answers() -> None:
    r = CliRunner().invoke(
        main,
        ["validate", "-", "--response", "-e", f"PUT {XPM}job.api/state"],
        input="<Response><Status>ERROR</Status><ErrorDescription>Invalid state code</ErrorDescription></Response>",
    )
    assert (
        r.exit_code == 1 and "<stdin>:1: error[xpm-error] Status ERROR inside HTTP 200: Invalid state code" in r.output
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-e", "POST nowhere"], '--endpoint must be "METHOD URL"'),
        (["-e", f"GET {XPM}job.api/list"], "takes no XML body"),
        (["-e", "POST https://example.com/x"], "the catalog knows"),
        (["-e", f"POST {XPM}job.api/nothing"], "no POST endpoint matches"),
        ([], "Missing option '--endpoint'"),
    ],
)
def test_validate_usage_errors_are_one_line_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    f = tmp_path / "x.xml"
    f.write_bytes(GOOD_JOB)
    r = invoke("validate", str(f), *args)
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output


def test_report_text_json_and_fail_on(db_path: Path) -> None:
    r = invoke("report", "--db", str(db_path))
    assert r.exit_code == 1
    assert "3 flows: 1 failed, 2 with findings (" in r.output and "error[xsd] POST xpm-3.0 job.api/add" in r.output
    r = invoke(
        "report", "--db", str(db_path), "--format", "json", "--filter", "~v unknown-element", "--fail-on", "never"
    )
    assert r.exit_code == 0
    data = json.loads(r.output)
    assert data["flows"] == 1 and {g["rule"] for g in data["groups"]} == {"unknown-element", "xsd"}
    assert invoke("report", "--db", str(db_path), "--filter", "~v unknown-element & ~v xsd & !~v xsd").exit_code == 0
    assert (
        invoke("report", "--db", str(db_path), "--filter", "~v unknown-element", "--fail-on", "warning").exit_code == 1
    )


def test_junit_has_a_failed_case_per_failing_call(db_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "calls.xml"
    r = invoke("report", "--db", str(db_path), "--format", "junit", "-o", str(out))
    assert r.exit_code == 1
    suites = etree.parse(str(out)).getroot()
    assert (suites.get("tests"), suites.get("failures")) == ("3", "2")
    failed = [c.get("name") for c in suites.iter("testcase") if c.find("failure") is not None]
    assert failed == [f"#2 POST {XPM}job.api/add", f"#3 POST {XPM}job.api/add"]


LEGACY = "https://api.workflowmax.com/job.api/current?apiKey=K&accountKey=A"


@pytest.fixture
def failures(tmp_path: Path) -> Path:
    """One call of each kind of failure, and one that did not fail; findings on none of the first two."""
    path = tmp_path / "failures.db"
    ingest = Ingest(Catalog.load(), validator=Validator())
    get = {"method": "GET", "url": f"{XPM}job.api/current", "request_body": b"", "response_headers": PLAIN}
    recs = [
        record(**get, status=None, reason=None, response_body=None, error="Connect call failed"),  # 1: transport
        record(**{**get, "url": LEGACY}, response_body=b"<Response><Status>OK</Status></Response>"),  # 2: retired, 200
        record(**get, status=429, reason="Too Many Requests", response_body=b""),  # 3: rate-limited
        record(**get, status=500, reason="Internal Server Error", response_body=b""),  # 4: http-error
        record(),  # 5: Xero error inside a 200
        record(**get, response_body=OK),  # 6: fine
    ]
    with open_db(path) as db:
        insert(db, [ingest(r) for r in recs], 0)
    return path


def test_one_definition_of_a_failed_call_everywhere(failures: Path, tmp_path: Path) -> None:
    """report, JUnit, replay --failed and ~failed agree: a transport error (no findings) and a 200
    from a retired endpoint are failed calls; ~err keeps its narrower meaning."""
    db = str(failures)
    expected = {1: "transport-error", 2: "retired-endpoint", 3: "rate-limited", 4: "http-error", 5: "api-error"}
    with open_db(db, create=False) as database:
        assert {r["id"] for r in database.query(f"SELECT id FROM flows WHERE {compile_filter('~failed').sql}")} == set(
            expected
        )
        assert {r["id"] for r in database.query(f"SELECT id FROM flows WHERE {compile_filter('~err').sql}")} == {4, 5}
        view = {r["id"]: r["failure"] for r in database.query("SELECT id, failure FROM failed_calls")}
        assert view == expected
    data = json.loads(invoke("report", "--db", db, "--format", "json").output)
    assert data["failed_calls"] == 5
    assert {(f["failure"], c["flow_id"]) for f in data["failures"] for c in f["examples"]} == {
        (why, i) for i, why in expected.items()
    }
    text = invoke("report", "--db", db, "--filter", "~e")
    assert text.exit_code == 1 and "failed[transport-error] GET xpm-3.0 job.api/current: 1 call" in text.output
    assert "#1 ---: Connect call failed" in text.output
    assert invoke("report", "--db", db, "--filter", "~e", "--fail-on", "never").exit_code == 0
    out = tmp_path / "calls.xml"
    assert invoke("report", "--db", db, "--format", "junit", "-o", str(out)).exit_code == 1
    cases = {int(c.get("name").split()[0][1:]): c for c in etree.parse(str(out)).getroot().iter("testcase")}
    failed = {i: c.find("failure").get("type") for i, c in cases.items() if c.find("failure") is not None}
    assert failed == expected
    assert flow_ids(chosen_flows(db, (), True, None, None)) == sorted(expected)


def flow_ids(flows: list[StoredFlow]) -> list[int]:
    assert all(f.failure for f in flows)
    return sorted(f.id for f in flows)


def test_html_and_markdown_stand_alone(db_path: Path) -> None:
    page = invoke("report", "--db", str(db_path), "--format", "html").output
    assert page.startswith("<!DOCTYPE html>") and "&lt;ClientId&gt;" in page and "<script" not in page
    etree.fromstring(page.split("\n", 1)[0].replace("<!DOCTYPE html>", ""), etree.HTMLParser())
    md = invoke("report", "--db", str(db_path), "--format", "markdown").output
    assert "| error | `xsd` | `POST xpm-3.0 job.api/add` |" in md


def test_report_errors_are_one_line(tmp_path: Path, db_path: Path) -> None:
    r = invoke("report", "--db", str(tmp_path / "none.db"))
    assert r.exit_code == 2 and "no such database" in r.output
    r = invoke("report", "--db", str(db_path), "--filter", "~nope")
    assert r.exit_code == 2 and "unknown filter ~nope" in r.output


STRICT = """<?xml version="1.0"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">
  <xs:element name="Job"><xs:complexType><xs:all>
    <xs:element name="Name" type="xs:string"/><xs:element name="ClientID" type="xs:int"/>
    <xs:element name="StartDate" type="xs:string"/><xs:element name="DueDate" type="xs:string"/>
    <xs:element name="Budget" type="xs:decimal"/>
  </xs:all></xs:complexType></xs:element>
</xs:schema>
"""


def test_revalidate_applies_a_user_schema_to_stored_bodies(db_path: Path, tmp_path: Path) -> None:
    (tmp_path / "strict-job.xsd").write_text(STRICT)
    catalog = tmp_path / "mine.toml"
    catalog.write_text(
        '[[schema]]\nfamilies = ["xpm-3.0"]\nfile = "strict-job.xsd"\n'
        'requests = [{ method = "POST", path = "job.api/add", roots = ["Job"] }]\n'
    )
    r = invoke("revalidate", "--db", str(db_path), "--catalog", str(catalog))
    assert r.exit_code == 0 and "3 flows revalidated" in r.output and "; 1 flow changed" in r.output
    with open_db(db_path, create=False) as db:
        messages = [m for (m,) in db.execute("SELECT message FROM findings WHERE flow_id = 1")]
        assert messages == ["<Job> is missing required <Budget>"]
    # Back to the built-in schemas: the clean flow is clean again.
    assert invoke("revalidate", "--db", str(db_path)).exit_code == 0
    with open_db(db_path, create=False) as db:
        assert db.execute("SELECT errors, warnings FROM flows WHERE id = 1").fetchone() == (0, 0)


def test_a_broken_user_xsd_is_one_line_at_start(tmp_path: Path, db_path: Path) -> None:
    (tmp_path / "broken.xsd").write_text("<xs:schema xmlns:xs='http://www.w3.org/2001/XMLSchema'><xs:element/>")
    catalog = tmp_path / "mine.toml"
    catalog.write_text(
        '[[schema]]\nfamilies = ["xpm-3.0"]\nfile = "broken.xsd"\nrequests = [{ method = "POST", path = "job.api/add" }]\n'
    )
    r = invoke("revalidate", "--db", str(db_path), "--catalog", str(catalog))
    assert r.exit_code == 2 and "cannot read schema" in r.output and "Traceback" not in r.output
    catalog.write_text(
        '[[schema]]\nfamilies = ["xpm-3.0"]\nfile = "missing.xsd"\nrequests = [{ method = "POST", path = "job.api/add" }]\n'
    )
    r = invoke("endpoints", "--catalog", str(catalog))
    assert r.exit_code == 2 and "schema 'missing.xsd' not found" in r.output


def test_endpoints_lists_the_schemas() -> None:
    r = invoke("endpoints", "--family", "xpm-3.0", "--schemas-only")
    assert r.exit_code == 0
    assert any(
        line.split()[:4] == ["xpm-3.0", "POST", "job.api/add", "xpm-3.0/requests.xsd"] and "JobAdd" in line
        for line in r.output.splitlines()
    )
    assert "GET " not in r.output
    assert invoke("endpoints", "--family", "nope").exit_code == 2
