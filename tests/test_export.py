"""curl and HAR out of a real store: secrets stay redacted, HAR is valid and complete."""

from __future__ import annotations

import io
import json
import shlex
from pathlib import Path

from inspector.samples.traffic import Traffic, fill

from inspector.commands import export
from inspector.store import flows
from inspector.store.database import open_db, open_for_reading
from inspector.store.query import compile_filter


def store(tmp_path: Path, count: int = 13) -> Path:
    path = tmp_path / "flows.db"
    with open_db(path) as db:
        fill(db, count, Traffic())
    return path


def test_curl_is_a_shell_line_with_the_token_as_a_variable(tmp_path: Path) -> None:
    path = store(tmp_path)
    with open_for_reading(path) as conn:
        fid = conn.execute("SELECT id FROM flows WHERE operation = 'add' AND errors > 0").fetchone()[0]
        flow = flows.load(conn, fid)
    assert flow is not None
    command = export.curl(flow)
    words = shlex.split(command.replace("\\\n", " "))
    assert words[:4] == ["curl", "-X", "POST", "https://api.xero.com/practicemanager/3.0/job.api/add"]
    assert "Authorization: Bearer ${XERO_ACCESS_TOKEN}" in words
    assert "redacted:" not in command
    body = words[words.index("--data-binary") + 1]
    assert body == flow.request_body and "<ClientId>24097642</ClientId>" in body


def test_har_streams_every_filtered_flow_with_bodies_and_findings(tmp_path: Path) -> None:
    path = store(tmp_path, 26)
    out = io.StringIO()
    with open_for_reading(path) as conn:
        n = export.write_har(conn, flows.flow_ids(conn, compile_filter("~api accounting")), out)
        expected = conn.execute("SELECT count(*) FROM flows WHERE family LIKE 'accounting%'").fetchone()[0]
    har = json.loads(out.getvalue())
    entries = har["log"]["entries"]
    assert har["log"]["version"] == "1.2" and n == len(entries) == expected == 6
    pdf = next(e for e in entries if e["response"]["content"]["mimeType"] == "application/pdf")
    assert pdf["response"]["content"]["encoding"] == "base64"
    put = next(e for e in entries if e["request"]["method"] == "PUT")
    assert put["response"]["status"] == 400 and put["request"]["postData"]["text"].startswith("<Invoices>")
    assert {f["rule"] for f in put["_xeroInspector"]["findings"]} >= {"xsd", "validation-error"}
    auth = next(h["value"] for h in put["request"]["headers"] if h["name"] == "Authorization")
    assert auth.startswith("Bearer redacted:sha256:")
    assert put["startedDateTime"].endswith("Z") and put["time"] > 0
