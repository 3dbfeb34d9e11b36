"""Interop as a user runs it: traffic captured by the real proxy (the demo, over TLS to the mock),
exported as HAR / mitmproxy flows / curl and imported back, other tools' HAR, and Datasette."""

from __future__ import annotations

import base64
import gzip
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from inspector.samples.mock_xero import DEFAULT_SCOPES, TENANTS, MockXero

from inspector.proxy.spawn import free_port
from inspector.store.query import failed_sql
from tests.helpers import ROOT, WAIT

pytestmark = pytest.mark.e2e

XPM = "https://api.xero.com/practicemanager/3.0"
# What an exchange is, ids and import bookkeeping aside. Raw (on-the-wire) sizes are left out:
# HAR keeps bodies decoded. client_addr too: HAR has no field for it.
SAME = (
    "method, url, http_version, response_http_version, status, reason, error, family, resource, operation, endpoint, tenant_id, "
    "correlation_id, outcome, api_status, api_error, api_error_kind, token_exp, token_scopes, rl_day_remaining, "
    "rl_minute_remaining, retry_after, rate_limit_problem, errors, warnings, request_headers, response_headers, "
    "request_format, response_format, request_size, response_size, request_truncated, response_truncated, "
    "server_addr, started_at AS started, round(duration_ms) AS ms"
)


def cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "inspector", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd or ROOT,
        env=env,
    )


@pytest.fixture(scope="module")
def captured(tmp_path_factory: pytest.TempPathFactory, confdir: Path) -> Path:
    """The demo's traffic, recorded through a real mitmproxy over TLS (84 exchanges of every kind, the v3 replays of its v1 calls among them)."""
    tmp = tmp_path_factory.mktemp("interop")
    db = tmp / "captured.db"
    out = cli("demo", "--headless", "--db", str(db), "--confdir", str(confdir), cwd=tmp)
    assert db.exists(), out.stderr
    return db


def exchanges(db: Path) -> list[dict[str, Any]]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        out = []
        for row in conn.execute(f"SELECT id, {SAME} FROM flows ORDER BY id"):
            fid = row["id"]
            item = dict(row)
            del item["id"]
            # To the ms, rounded by Python as the export rounds (SQLite's round() can differ at .5).
            item["started"] = round(item["started"], 3)
            item["bodies"] = [
                tuple(b)
                # What was sent and answered; a body as it was before a breakpoint edit has no place in HAR.
                for b in conn.execute(
                    "SELECT side, text, data FROM bodies WHERE flow_id = ? AND side IN ('request', 'response') "
                    "ORDER BY side",
                    (fid,),
                )
            ]
            item["findings"] = sorted(
                tuple(f)
                for f in conn.execute(
                    'SELECT side, rule, severity, line, "column", xpath, message FROM findings WHERE flow_id = ?',
                    (fid,),
                )
            )
            out.append(item)
        return out
    finally:
        conn.close()


def count(db: Path, sql: str = "SELECT count(*) FROM flows") -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute(sql).fetchone()[0])
    finally:
        conn.close()


def assert_same_exchanges(a: Path, b: Path) -> None:
    first, second = exchanges(a), exchanges(b)
    assert len(first) == len(second) > 50
    for x, y in zip(first, second, strict=True):
        assert x == y, {k: (x[k], y[k]) for k in x if x[k] != y[k]}


def test_capture_export_har_import_gives_the_same_exchanges(captured: Path, tmp_path: Path) -> None:
    har = tmp_path / "calls.har"
    out = cli("export", "--db", str(captured), "--format", "har", "-o", str(har))
    assert out.returncode == 0, out.stderr
    n = count(captured)
    assert f"{n} flow(s) exported as har to {har}" in out.stderr
    doc = json.loads(har.read_text(encoding="utf-8"))
    entries = doc["log"]["entries"]
    assert doc["log"]["version"] == "1.2" and doc["log"]["pages"] == [] and len(entries) == n
    # What HAR readers (Chrome DevTools, Charles) require of every entry.
    for e in entries:
        assert {"startedDateTime", "time", "request", "response", "cache", "timings"} <= e.keys()
        assert {"method", "url", "httpVersion", "cookies", "headers", "queryString", "headersSize", "bodySize"} <= e[
            "request"
        ].keys()
        assert {"status", "statusText", "httpVersion", "cookies", "headers", "content", "redirectURL"} <= e[
            "response"
        ].keys()
        assert {"size", "mimeType"} <= e["response"]["content"].keys() and e["time"] >= 0
    network = next(e for e in entries if "networktest.xero.com" in e["request"]["url"])
    assert {q["name"] for q in network["request"]["queryString"]} >= {"apiKey", "xeroKey"}

    fresh = tmp_path / "fresh.db"
    out = cli("import", str(har), "--db", str(fresh))
    assert out.returncode == 0, out.stderr
    assert f"{n} HAR entries, {n} imported (#1–#{n})" in out.stdout
    assert_same_exchanges(captured, fresh)
    assert count(fresh, "SELECT count(*) FROM flows WHERE source = 'import'") == n


def test_capture_export_mitm_opens_in_mitmproxy_and_imports_the_same(captured: Path, tmp_path: Path) -> None:
    flows_file = tmp_path / "calls.mitm"
    out = cli("export", "--db", str(captured), "--format", "mitm", "-o", str(flows_file))
    assert out.returncode == 0, out.stderr
    n = count(captured)
    # mitmproxy's own reader, as `mitmproxy -r` and `mitmweb -r` use it (mitmdump prints each flow).
    mitmdump = Path(sys.executable).with_name("mitmdump")
    shown = subprocess.run(
        [str(mitmdump), "-n", "-r", str(flows_file), "--set", "flow_detail=1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.count("https://api.xero.com/practicemanager/3.0/job.api/add") == count(
        captured, "SELECT count(*) FROM flows WHERE url = 'https://api.xero.com/practicemanager/3.0/job.api/add'"
    )
    assert "<< 429 Too Many Requests" in shown.stdout

    fresh = tmp_path / "fresh.db"
    out = cli("import", str(flows_file), "--db", str(fresh))
    assert out.returncode == 0, out.stderr
    assert f"{n} mitmproxy flows, {n} imported" in out.stdout
    assert_same_exchanges(captured, fresh)


def test_a_mitmdump_capture_is_imported_and_checked(captured: Path, tmp_path: Path) -> None:
    """A file mitmproxy wrote (not one we wrote): a real `mitmdump -w` of traffic to the mock."""
    with MockXero() as mock:
        port = free_port()
        dump = tmp_path / "dump.mitm"
        proc = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("mitmdump")),
                "--listen-host", "127.0.0.1", "--listen-port", str(port),
                "--mode", f"reverse:{mock.url}", "--set", f"ssl_verify_upstream_trusted_ca={mock.ca_path}",
                "-w", str(dump), "-q",
            ],
        )  # fmt: skip
        try:
            token = mock.app.tokens.issue(DEFAULT_SCOPES)
            deadline = time.monotonic() + WAIT
            while True:
                try:
                    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
                        headers = {"Authorization": f"Bearer {token}", "xero-tenant-id": TENANTS[0].id}
                        typo = "<Job><Name>X</Name><ClientId>1</ClientId><StartDate>20260101</StartDate><DueDate>20260102</DueDate></Job>"
                        http.post("/practicemanager/3.0/job.api/add", headers=headers, content=typo)
                        http.get("/practicemanager/3.0/client.api/list", headers=headers)
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
        finally:
            proc.terminate()
            proc.wait(timeout=WAIT)
    # A reverse proxy records the mock's own address; --hosts brings it into scope, as for a gateway.
    db = tmp_path / "dump.db"
    skipped = cli("import", str(dump), "--db", str(db))
    assert skipped.returncode == 0 and "2 mitmproxy flows, 0 imported, 2 skipped (not Xero: 2)" in skipped.stdout
    out = cli("import", str(dump), "--db", str(db), "--hosts", r"^127\.0\.0\.1$")
    assert out.returncode == 0, out.stderr
    assert "2 mitmproxy flows, 2 imported" in out.stdout
    conn = sqlite3.connect(db)
    typo = conn.execute("SELECT outcome, errors, request_headers FROM flows WHERE method = 'POST'").fetchone()
    rules = {r for (r,) in conn.execute("SELECT rule FROM findings")}
    conn.close()
    assert typo[0] == "api-error" and typo[1] >= 1 and {"xsd", "unknown-element", "xpm-error"} <= rules
    assert token not in typo[2] and "redacted:sha256:" in typo[2]
    assert token.encode() not in db.read_bytes()


def chrome_har(token: str, api_key: str) -> dict[str, Any]:
    """What Chrome DevTools saves: HTTP/2 pseudo-headers, decoded text under a gzip header, base64
    for binary, status 0 for a failed request, and calls to other hosts in between."""
    xpm_headers = [
        {"name": ":authority", "value": "api.xero.com"},
        {"name": ":method", "value": "POST"},
        {"name": "authorization", "value": f"Bearer {token}"},
        {"name": "xero-tenant-id", "value": TENANTS[0].id},
        {"name": "content-type", "value": "text/xml"},
    ]
    typo = "<Job><Name>Audit</Name><ClientId>24097642</ClientId><StartDate>20260101</StartDate><DueDate>20260131</DueDate></Job>"
    ok_list = '<Response api-method="List"><Status>OK</Status><Clients/></Response>'

    def entry(
        method: str, url: str, status: int, headers: list[dict[str, str]], content: dict[str, Any], **extra: Any
    ) -> dict[str, Any]:
        return {
            "startedDateTime": "2026-11-20T09:30:00.125Z",
            "time": 181.5,
            "request": {
                "method": method,
                "url": url,
                "httpVersion": "http/2.0",
                "headers": headers,
                "queryString": [],
                "cookies": [],
                "headersSize": -1,
                "bodySize": 0,
                **extra,
            },
            "response": {
                "status": status,
                "statusText": "",
                "httpVersion": "http/2.0",
                "headers": [
                    {"name": "content-type", "value": content.get("mimeType", "")},
                    {"name": "content-encoding", "value": "gzip"},
                ],
                "cookies": [],
                "content": content,
                "redirectURL": "",
                "headersSize": -1,
                "bodySize": -1,
            },
            "cache": {},
            "timings": {"send": 0.1, "wait": 180, "receive": 1.4},
            "serverIPAddress": "[2606:4700::1]",
        }

    return {
        "log": {
            "version": "1.2",
            "creator": {"name": "WebInspector", "version": "537.36"},
            "pages": [{"id": "page_1", "title": "app", "startedDateTime": "2026-11-20T09:29:59Z", "pageTimings": {}}],
            "entries": [
                entry(
                    "GET",
                    "https://fonts.googleapis.com/css2?family=Inter",
                    200,
                    [],
                    {"size": 10, "mimeType": "text/css", "text": "body{}"},
                ),
                entry(
                    "POST",
                    f"{XPM}/job.api/add",
                    200,
                    xpm_headers,
                    {
                        "size": 80,
                        "mimeType": "text/xml",
                        "text": '<Response api-method="Add"><Status>ERROR</Status><ErrorDescription>Invalid client identifier</ErrorDescription></Response>',
                    },
                    postData={"mimeType": "text/xml", "text": typo},
                ),
                entry(
                    "GET",
                    f"{XPM}/client.api/list",
                    200,
                    xpm_headers[2:4],
                    {"size": len(ok_list), "mimeType": "text/xml", "text": ok_list},
                ),
                entry(
                    "GET",
                    f"https://api.xero.com/api.xro/2.0/Invoices/inv-1?apiKey={api_key}",
                    200,
                    xpm_headers[2:3],
                    {
                        "size": 9,
                        "mimeType": "application/pdf",
                        "text": base64.b64encode(b"%PDF-1.4\x00\xff").decode(),
                        "encoding": "base64",
                    },
                ),
                {
                    **entry("GET", f"{XPM}/job.api/current", 0, xpm_headers[2:4], {"size": 0, "mimeType": ""}),
                    "_error": "net::ERR_CONNECTION_RESET",
                },
            ],
        }
    }


def test_a_chrome_har_is_classified_redacted_and_checked(tmp_path: Path) -> None:
    token = "eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjE3OTk5OTk5OTl9.c2lnbmF0dXJl"
    api_key = "PARTNERKEY0123456789"
    har = tmp_path / "chrome.har"
    har.write_text(json.dumps(chrome_har(token, api_key)), encoding="utf-8")
    db = tmp_path / "flows.db"
    out = cli("import", str(har), "--db", str(db))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith(
        "5 HAR entries, 4 imported (#1–#4), 1 skipped (not Xero: 1); 3 error(s), 2 warning(s)"
    )
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    rows = {r["endpoint"] or r["path"]: r for r in conn.execute("SELECT * FROM flows")}
    typo = rows["job.api/add"]
    assert (typo["outcome"], typo["api_error"], typo["http_version"]) == (
        "api-error",
        "Invalid client identifier",
        "HTTP/2.0",
    )
    assert typo["server_addr"] == "[2606:4700::1]:443" and typo["duration_ms"] == 181.5
    assert ":authority" not in typo["request_headers"]  # pseudo-headers are the request line
    rules = {r["rule"] for r in conn.execute("SELECT rule FROM findings WHERE flow_id = ?", (typo["id"],))}
    assert {"xsd", "unknown-element", "xpm-error"} <= rules
    assert (
        rows["client.api/list"]["outcome"] == "ok" and rows["client.api/list"]["errors"] == 0
    )  # gzip header, text kept
    pdf_rules = {
        r
        for (r,) in conn.execute(
            "SELECT rule FROM findings f JOIN flows w ON w.id = f.flow_id WHERE w.endpoint = 'Invoices/{InvoiceID}'"
        )
    }
    assert pdf_rules == {"missing-tenant", "secret-in-query"}
    pdf = conn.execute(
        "SELECT b.data FROM bodies b JOIN flows f ON f.id = b.flow_id WHERE f.endpoint = 'Invoices/{InvoiceID}'"
    ).fetchone()
    assert pdf["data"] == b"%PDF-1.4\x00\xff"
    assert (
        rows["job.api/current"]["outcome"] == "transport-error"
        and rows["job.api/current"]["error"] == "net::ERR_CONNECTION_RESET"
    )
    conn.close()
    raw = db.read_bytes()
    assert token.encode() not in raw and api_key.encode() not in raw


def test_a_malformed_file_is_refused_whole_naming_the_entry(captured: Path, tmp_path: Path) -> None:
    db = tmp_path / "flows.db"
    shutil.copy(captured, db)
    before = count(db)
    doc = chrome_har("t.t.t", "k")
    doc["log"]["entries"][2]["response"]["status"] = "200"  # entry 3 of 5
    bad = tmp_path / "bad.har"
    bad.write_text(json.dumps(doc), encoding="utf-8")
    out = cli("import", str(bad), "--db", str(db))
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip() == (
        f"xero-inspector: error: {bad}: entry 3 of 5 (GET {XPM}/client.api/list): "
        "response.status is a string, not a number; nothing was imported"
    )
    assert count(db) == before
    assert "Traceback" not in out.stderr

    cut = tmp_path / "cut.mitm"
    whole = tmp_path / "whole.mitm"
    assert cli("export", "--db", str(captured), "--format", "mitm", "-o", str(whole)).returncode == 0
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    out = cli("import", str(cut), "--db", str(db))
    assert out.returncode == 2 and "cut.mitm: flow " in out.stderr and "nothing was imported" in out.stderr
    assert count(db) == before

    not_json = tmp_path / "broken.har"
    not_json.write_text('{"log": {"entries": [', encoding="utf-8")
    out = cli("import", str(not_json), "--db", str(tmp_path / "new.db"))
    assert out.returncode == 2 and "not valid JSON at line 1 column 22" in out.stderr
    assert not (tmp_path / "new.db").exists()  # no empty database left behind either


def test_curl_export_reproduces_each_call_with_secrets_as_variables(captured: Path, tmp_path: Path) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    script = tmp_path / "calls.sh"
    expr = "~u client.api/list | ~u practicemanager/3.0/job.api/add | ~u networktest"  # not the v1 calls
    out = cli("export", "--db", str(captured), "--format", "curl", "--filter", expr, "-o", str(script))
    assert out.returncode == 0, out.stderr
    text = script.read_text()
    assert "redacted:" not in text
    assert "Secrets were redacted; set these first: XERO_ACCESS_TOKEN, XERO_API_KEY, XERO_KEY" in text
    assert '"Authorization: Bearer ${XERO_ACCESS_TOKEN}"' in text and "apiKey=${XERO_API_KEY}" in text
    n = count(
        captured,
        "SELECT count(*) FROM flows WHERE url LIKE '%client.api/list%' OR url LIKE '%practicemanager/3.0/job.api/add%' "
        "OR url LIKE '%networktest%'",
    )
    assert text.count("\ncurl ") == n

    with MockXero() as mock:
        token = mock.app.tokens.issue(DEFAULT_SCOPES)
        partner, customer = mock.app.config.partner_key, next(iter(mock.app.config.customer_keys))
        port = mock.url.rsplit(":", 1)[1]
        # Point every api.xero.com / networktest call at the mock; the script itself is as exported.
        wrapper = (
            f'curl() {{ command curl -sS -o /dev/null --cacert "{mock.ca_path}" '
            f"--connect-to api.xero.com:443:127.0.0.1:{port} --connect-to networktest.xero.com:443:127.0.0.1:{port} "
            f'"$@"; }}; . "{script}"'
        )
        env = {**os.environ, "XERO_ACCESS_TOKEN": token, "XERO_API_KEY": partner, "XERO_KEY": customer}
        ran = subprocess.run(["bash", "-c", wrapper], capture_output=True, text=True, timeout=120, env=env)
        assert ran.returncode == 0, ran.stderr
        sent = list(mock.app.exchanges)
    assert len(sent) == n
    conn = sqlite3.connect(captured)
    recorded = conn.execute(
        "SELECT f.method, f.path, b.text, f.url, f.status FROM flows f LEFT JOIN bodies b ON b.flow_id = f.id AND b.side = 'request' "
        "WHERE f.url LIKE '%client.api/list%' OR f.url LIKE '%practicemanager/3.0/job.api/add%' OR f.url LIKE '%networktest%' "
        "ORDER BY f.id"
    ).fetchall()
    conn.close()
    for (method, path, body, url, status), exchange in zip(recorded, sent, strict=True):
        assert (exchange.request.method, exchange.request.path) == (method, path)
        assert exchange.request.body == (body or "").encode()
        if "networktest" not in url:
            assert exchange.request.header("authorization") == f"Bearer {token}"
        else:
            assert f"apiKey={partner}" in exchange.request.query
        # The token and keys from the variables were accepted (the demo's call to an organisation
        # the app is not connected to is refused again, as it was).
        assert exchange.status == 403 if status == 403 else exchange.status != 401


def test_exports_redact_a_store_that_kept_its_secrets_unless_asked(tmp_path: Path) -> None:
    from inspector.ingest.catalog import Catalog
    from inspector.ingest.pipeline import Ingest
    from inspector.ingest.record import FlowRecord
    from inspector.store.database import insert, open_db

    token, key = "eyJ0eXAiOiJKV1QifQ.eyJleHAiOjF9.c2ln", "CUSTOMERKEY42"
    rec = FlowRecord(
        started_at=time.time(),
        method="GET",
        url=f"https://api.xero.com/api.xro/2.0/Contacts?xeroKey={key}",
        http_version="HTTP/1.1",
        request_headers=(("Authorization", f"Bearer {token}"),),
        request_body=b"",
        status=200,
        response_headers=(("Content-Type", "application/json"),),
        response_body=gzip.decompress(gzip.compress(b'{"Contacts": []}')),
    )
    db = tmp_path / "kept.db"
    with open_db(db) as d:
        insert(d, [Ingest(Catalog.load(), keep_secrets=True)(rec)], time.time())
    assert token.encode() in db.read_bytes()  # recorded with --keep-secrets
    for fmt in ("har", "curl", "mitm"):
        out_file = tmp_path / f"out.{fmt}"
        assert cli("export", "--db", str(db), "--format", fmt, "-o", str(out_file)).returncode == 0
        data = out_file.read_bytes()
        assert token.encode() not in data and key.encode() not in data, fmt
        assert cli("export", "--db", str(db), "--format", fmt, "-o", str(out_file), "--keep-secrets").returncode == 0
        assert token.encode() in out_file.read_bytes(), fmt


def test_datasette_serves_the_views_and_explains_them(captured: Path, tmp_path: Path) -> None:
    db = tmp_path / "flows.db"
    shutil.copy(captured, db)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "datasette", "serve", str(db), "--port", str(port), "--host", "127.0.0.1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + WAIT
        while True:
            try:
                httpx.get(f"{base}/-/versions.json", timeout=5).raise_for_status()
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.stdout else ""
                time.sleep(0.2)
        with httpx.Client(base_url=base, timeout=30) as http:
            failed = http.get("/flows/failed_calls.json", params={"_shape": "array", "_size": "max"}).json()
            violations = http.get("/flows/schema_violations.json", params={"_shape": "array", "_size": "max"}).json()
            limits = http.get(
                "/flows/rate_limits.json", params={"_shape": "array", "_size": "max", "status": "429"}
            ).json()
            summary = http.get("/flows/endpoint_summary.json", params={"_shape": "array"}).json()
            page = http.get("/flows").text
            view = http.get("/flows/failed_calls").text
            plugins = http.get("/-/plugins.json").json()
            search = http.get("/flows/search_bodies.json", params={"_shape": "array", "text": "ClientId"}).json()
    finally:
        proc.terminate()
        proc.wait(timeout=WAIT)
    assert len(failed) == count(captured, f"SELECT count(*) FROM flows WHERE {failed_sql()}") > 0
    assert {f["failure"] for f in failed} >= {"api-error", "http-error", "rate-limited", "retired-endpoint"}
    assert (
        len(violations)
        == count(
            captured,
            "SELECT count(*) FROM findings WHERE rule IN ('xsd', 'unknown-element', 'not-well-formed', 'wrong-root', 'xml-dtd', 'duplicate-element', 'not-validated')",
        )
        > 0
    )
    assert any(v["rule"] == "xsd" and v["line"] and v["xpath"] for v in violations)
    assert len(limits) == count(captured, "SELECT count(*) FROM flows WHERE status = 429") > 0 and all(
        r["retry_after"] is not None for r in limits
    )
    assert sum(s["calls"] for s in summary) == count(captured)
    assert "flows: Xero calls" in page and "schema_violations" in page
    assert "Every failed call, and why" in view
    assert any(p["name"] == "xero-inspector" and "get_metadata" in p["hooks"] for p in plugins)
    assert search and all("[clientid]" in s["match"].lower() for s in search)  # FTS5 matches any case
