"""Replay and diff against the mock over TLS: calls recorded through the real proxy, then sent again
(as recorded, or edited) with a fresh token, and compared."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from inspector.samples.mock_xero import TENANTS, MockXero

from inspector.commands.diff import compare, normal_lines
from inspector.commands.replay import Options, Replayer, ReplayError, prepare, request_of, since, target_url
from inspector.ingest.catalog import Catalog
from inspector.ingest.validate import SchemaCache, Validator
from inspector.store.database import open_for_reading as connect
from inspector.store.flows import load
from tests.helpers import ROOT, ProxyProcess, client, copy_db, rows, wait_for_rows
from tests.test_capture_e2e import sign_in

pytestmark = pytest.mark.e2e

XPM = "https://api.xero.com/practicemanager/3.0"
ACCOUNTING = "https://api.xero.com/api.xro/2.0"
NETWORK = "https://networktest.xero.com/api.xro/1.0"
PRACTICE, ORGANISATION = TENANTS[0].id, TENANTS[1].id
TYPO_JOB = (
    "<Job>\n  <Name>Annual accounts</Name>\n  <ClientId>24097642</ClientId>\n"
    "  <StartDate>20260101</StartDate>\n  <DueDate>20260131</DueDate>\n</Job>\n"
)
INVOICE = (
    "<Invoices><Invoice><Type>ACCREC</Type><Contact><Name>ABC Furniture</Name></Contact><LineItems><LineItem>"
    "<Description>Desk</Description><Quantity>1</Quantity><UnitAmount>100.00</UnitAmount><AccountCode>200</AccountCode>"
    "</LineItem></LineItems></Invoice></Invoices>"
)


@dataclass
class Recorded:
    db: Path
    mock: MockXero
    token: str  # a fresh one, as the user would get from Xero
    ids: dict[str, int]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory, confdir: Path, upstream: MockXero) -> Recorded:
    """Five calls an app made through the real proxy: two failed, three fine."""
    tmp = tmp_path_factory.mktemp("replay")
    proxy = ProxyProcess(tmp, confdir, ["--redirect", upstream.url, "--upstream-ca", str(upstream.ca_path)]).start()
    try:
        with client(proxy) as http:
            token = sign_in(http, upstream)
            auth = {"Authorization": f"Bearer {token}"}
            xpm = {**auth, "xero-tenant-id": PRACTICE, "Content-Type": "text/xml; charset=utf-8"}
            expired = {**xpm, "Authorization": f"Bearer {upstream.app.expired_token()}"}
            calls = {
                "expired": ("GET", f"{XPM}/job.api/current", expired, None),
                "typo": ("POST", f"{XPM}/job.api/add", xpm, TYPO_JOB),
                "clients": ("GET", f"{XPM}/client.api/list", xpm, None),
                "invoice": (
                    "PUT",
                    f"{ACCOUNTING}/Invoices",
                    {**auth, "xero-tenant-id": ORGANISATION, "Idempotency-Key": str(uuid.uuid4())},
                    INVOICE,
                ),
                "network": (
                    "GET",
                    f"{NETWORK}/contacts?apiKey={_keys(upstream)[0]}&xeroKey={_keys(upstream)[1]}",
                    {},
                    None,
                ),
            }
            for name, (method, url, headers, body) in calls.items():
                http.request(method, url, headers={**headers, "X-Test": name}, content=body)
        wait_for_rows(proxy.db, "select id from flows where request_headers like '%X-Test%'", len(calls))
    finally:
        proxy.stop()
    ids = {
        name: rows(proxy.db, "select id from flows where request_headers like ?", [f'%"X-Test", "{name}"%'])[0]["id"]
        for name in calls
    }
    return Recorded(proxy.db, upstream, token, ids)


def _keys(mock: MockXero) -> tuple[str, str]:
    return mock.app.config.partner_key, next(iter(mock.app.config.customer_keys))


@pytest.fixture
def db(recorded: Recorded, tmp_path: Path) -> Path:
    """Each test replays into its own copy of the recording."""
    return copy_db(recorded.db, tmp_path / "flows.db")


def replay_cli(
    db: Path, *args: str, mock: MockXero | None = None, token: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "XERO_ACCESS_TOKEN"}
    if token:
        env["XERO_ACCESS_TOKEN"] = token
    target = ["--to", mock.url, "--ca", str(mock.ca_path)] if mock else []
    return subprocess.run(
        [sys.executable, "-m", "inspector", "replay", "--db", str(db), *target, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
    )


def replays(db: Path) -> list[sqlite3.Row]:
    return rows(db, "select * from flows where source = 'replay' order by id")


def test_a_replay_needs_a_token_and_says_so(recorded: Recorded, db: Path) -> None:
    before = len(recorded.mock.app.exchanges)
    result = replay_cli(db, str(recorded.ids["expired"]), mock=recorded.mock)
    assert result.returncode == 2
    assert "recorded with its token redacted: pass --token or set XERO_ACCESS_TOKEN" in result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1
    assert len(recorded.mock.app.exchanges) == before and replays(db) == []


def test_writes_are_refused_without_yes_and_nothing_reaches_the_upstream(recorded: Recorded, db: Path) -> None:
    before = len(recorded.mock.app.exchanges)
    ids = [str(recorded.ids[n]) for n in ("clients", "typo", "invoice")]
    result = replay_cli(db, *ids, mock=recorded.mock, token=recorded.token)
    assert result.returncode == 2
    assert f"refused: 2 of 3 chosen flow(s) create or change data (POST #{ids[1]}, PUT #{ids[2]})" in result.stderr
    assert "nothing was sent" in result.stderr and "--yes" in result.stderr
    assert len(recorded.mock.app.exchanges) == before and replays(db) == []


def test_editing_the_failed_job_add_and_replaying_fixes_it(recorded: Recorded, db: Path) -> None:
    catalog = Catalog.load()
    conn = connect(db)
    original = load(conn, recorded.ids["typo"])
    conn.close()
    assert original is not None and original.row["outcome"] == "api-error"
    assert any(f["rule"] == "unknown-element" for f in original.findings)
    opts = Options(token=recorded.token, to=recorded.mock.url, ca=str(recorded.mock.ca_path))
    request = request_of(original)
    assert request.body is not None
    edited = replace(request, body=request.body.replace(b"ClientId>", b"ClientID>"))
    with Replayer(db, catalog, Validator(SchemaCache()), opts) as replayer:
        result = replayer.send(original, replayer.prepare(original, edited))
    assert (result.before, result.after, result.verdict) == ("api-error", "ok", "fixed")

    sent = recorded.mock.app.exchanges[-1]
    assert b"<ClientID>24097642</ClientID>" in sent.request.body
    assert sent.request.header("authorization") == f"Bearer {recorded.token}"  # never the fingerprint
    (row,) = replays(db)
    assert (row["id"], row["replay_of"], row["outcome"], row["errors"]) == (result.replay, original.id, "ok", 0)
    assert row["url"] == f"{XPM}/job.api/add"  # the Xero URL, though it went to --to
    assert row["server_addr"].startswith("127.0.0.1:") and row["endpoint"] == "job.api/add"
    assert recorded.token not in row["request_headers"]  # the replay's token is redacted in the store too
    conn = connect(db)
    reloaded = load(conn, original.id)
    conn.close()
    assert reloaded is not None and reloaded.replays == [result.replay]

    out = subprocess.run(
        [sys.executable, "-m", "inspector", "diff", str(original.id), "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert out.returncode == 1, out.stderr
    text = out.stdout
    assert f"A #{original.id}" in text and f"B #{result.replay}" in text
    assert "outcome: api-error → ok" in text
    assert re.search(r"3\s+<ClientId>24097642</ClientId>\s+3\s+<ClientID>24097642</ClientID>", text)
    assert "gone warning request/unknown-element /Job/ClientId" in text
    assert "gone error request/xsd /Job: <Job> is missing required <ClientID>" in text
    # The mock gives every answer a fresh correlation id (Date too, unless both fell in one second):
    # named, but not what makes the two flows differ.
    assert re.search(r"different on every call: .*Xero-Correlation-Id", text, re.IGNORECASE)
    assert not re.search(r"^\s+~ (Date|Xero-Correlation-Id):", text, re.MULTILINE | re.IGNORECASE)
    same = subprocess.run(
        [sys.executable, "-m", "inspector", "diff", str(original.id), str(original.id), "--db", str(db), "--unified"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert same.returncode == 0 and same.stdout.strip() == ""


def test_failed_batch_replays_with_a_summary(recorded: Recorded, db: Path) -> None:
    result = replay_cli(db, "--failed", "--since", "1h", "--yes", mock=recorded.mock, token=recorded.token)
    assert result.returncode == 1, result.stderr  # the typo is sent as recorded and still fails
    out = result.stdout
    expired, typo = recorded.ids["expired"], recorded.ids["typo"]
    assert re.search(rf"#{expired} → #\d+\s+GET job.api/current\s+401 http-error → 200 ok\s+fixed", out)
    assert re.search(rf"#{typo} → #\d+\s+POST job.api/add\s+200 api-error → 200 api-error\s+still failing", out)
    assert "2 replayed: 1 fixed, 1 still failing, 0 newly failing, 0 ok" in out
    assert {r["replay_of"] for r in replays(db)} == {expired, typo}
    # replays are not failed calls to replay again: a second run picks the same two originals
    again = replay_cli(db, "--failed", "--yes", mock=recorded.mock, token=recorded.token)
    assert "2 replayed:" in again.stdout


def test_a_fresh_idempotency_key_unless_asked_to_keep_it(recorded: Recorded, db: Path) -> None:
    invoice = recorded.ids["invoice"]
    original_key = rows(db, "select request_headers from flows where id = ?", [invoice])[0][0]
    recorded_key = re.search(r'"Idempotency-Key", "([^"]+)"', original_key).group(1)  # type: ignore[union-attr]

    fresh = replay_cli(db, str(invoice), "--yes", mock=recorded.mock, token=recorded.token)
    assert fresh.returncode == 0, fresh.stderr
    assert "Idempotency-Key: a fresh one" in fresh.stdout
    sent_key = recorded.mock.app.exchanges[-1].request.header("idempotency-key")
    assert sent_key and sent_key != recorded_key

    kept = replay_cli(db, str(invoice), "--yes", "--keep-idempotency-key", mock=recorded.mock, token=recorded.token)
    assert kept.returncode == 0, kept.stderr
    assert recorded.mock.app.exchanges[-1].request.header("idempotency-key") == recorded_key

    def invoice_id(flow_id: int) -> str:
        body = rows(db, "select text from bodies where flow_id = ? and side = 'response'", [flow_id])[0][0]
        return re.search(r"<InvoiceID>([^<]+)</InvoiceID>", body).group(1)  # type: ignore[union-attr]

    first, second = (r["id"] for r in replays(db))
    # a fresh key created a second invoice; the recorded key got the first answer back
    assert invoice_id(first) != invoice_id(invoice) and invoice_id(second) == invoice_id(invoice)


def test_a_redacted_key_is_never_sent_upstream(recorded: Recorded, db: Path) -> None:
    flow = str(recorded.ids["network"])
    before = len(recorded.mock.app.exchanges)
    refused = replay_cli(db, flow, mock=recorded.mock)
    assert refused.returncode == 2 and "query parameter apiKey, query parameter xeroKey" in refused.stderr
    assert "--secret apiKey=VALUE" in refused.stderr and len(recorded.mock.app.exchanges) == before
    partner, customer = _keys(recorded.mock)
    sent = replay_cli(db, flow, "--secret", f"apiKey={partner}", "--secret", f"xeroKey={customer}", mock=recorded.mock)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert recorded.mock.app.exchanges[-1].request.param("xeroKey") == customer
    (row,) = replays(db)
    assert row["status"] == 200 and partner not in row["url"]


def test_tenant_override_and_target_url(recorded: Recorded, db: Path) -> None:
    conn = connect(db)
    flow = load(conn, recorded.ids["clients"])
    conn.close()
    assert flow is not None
    prepared = prepare(request_of(flow), Catalog.load(), Options(token="t0k", tenant=ORGANISATION))
    assert prepared.request.header("xero-tenant-id") == ORGANISATION
    assert prepared.request.header("authorization") == "Bearer t0k"
    assert [k for k, _ in prepared.request.headers].count("xero-tenant-id") == 1  # replaced in place, app's spelling
    assert target_url(f"{XPM}/job.api/get/1?detailed=true", "https://127.0.0.1:8443/sandbox/") == (
        "https://127.0.0.1:8443/sandbox/practicemanager/3.0/job.api/get/1?detailed=true"
    )
    with pytest.raises(ReplayError, match="not an http"):
        target_url(XPM, "ftp://x")
    assert since("2h", now=10_000.0) == 2_800.0
    with pytest.raises(ReplayError, match="--since takes"):
        since("yesterday")


def test_a_dead_upstream_is_a_recorded_transport_error(recorded: Recorded, db: Path) -> None:
    from inspector.proxy.spawn import free_port

    result = replay_cli(db, str(recorded.ids["clients"]), "--to", f"https://127.0.0.1:{free_port()}", token="x")
    assert result.returncode == 1 and "newly failing" in result.stdout and "ConnectError" in result.stdout
    (row,) = replays(db)
    assert row["outcome"] == "transport-error" and row["error"].startswith("ConnectError")


def test_xml_is_compared_canonically() -> None:
    a = normal_lines(b'<Job a="1" b="2">\n  <Name> x </Name>\n</Job>', "text/xml")
    b = normal_lines(b'<?xml version="1.0"?><Job b="2"  a="1"><Name>x</Name></Job>', None)
    assert a == b == ("xml", ['<Job a="1" b="2">', "  <Name>x</Name>", "</Job>"])
    assert normal_lines(b'{"b": 1, "a": [1]}', "application/json")[1][1] == '  "a": [', "keys sorted"


def test_diff_of_flows_lists_changed_headers_and_findings(recorded: Recorded, db: Path) -> None:
    conn = connect(db)
    a, b = load(conn, recorded.ids["expired"]), load(conn, recorded.ids["clients"])
    conn.close()
    assert a is not None and b is not None
    d = compare(a, b)
    names = {h.name.lower(): h for h in d.response.headers}
    assert names["content-type"].a.startswith("application/json") and names["content-type"].b.startswith("text/xml")  # type: ignore[union-attr]
    assert names["www-authenticate"].b is None and not d.same
    assert [f["rule"] for f in d.gone] == ["token-expired"] and d.new == []


def test_a_token_replaces_only_a_bearer_and_a_redacted_basic_is_refused() -> None:
    from inspector.commands.replay import NeedsToken, Request
    from inspector.ingest.redact import fingerprint

    catalog = Catalog.load()
    basic = Request(
        "POST",
        "https://identity.xero.com/connect/token",
        (("Authorization", f"Basic {fingerprint('id:secret')}"), ("Content-Type", "application/x-www-form-urlencoded")),
        b"grant_type=client_credentials",
    )
    with pytest.raises(ReplayError, match="header Authorization held a secret") as refused:
        prepare(basic, catalog, Options(token="t0k"))
    assert not isinstance(refused.value, NeedsToken)
    bare = Request("GET", f"{XPM}/job.api/current", (("xero-tenant-id", PRACTICE),))
    assert prepare(bare, catalog, Options(token="t0k")).request.header("authorization") == "Bearer t0k"
    with pytest.raises(NeedsToken):
        prepare(replace(bare, headers=(("authorization", f"Bearer {fingerprint('x')}"),)), catalog, Options())


def _this_hosts_address() -> str | None:
    """An address of this machine that is not loopback (no packet is sent to find it)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: only picks the outgoing interface
        except OSError:
            return None
        address = s.getsockname()[0]
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def test_a_token_never_travels_in_clear_unless_asked(recorded: Recorded, db: Path) -> None:
    """Plain HTTP to loopback (the mock, a stub) is fine; to any other host it is refused,
    and with --allow-plain-http it is sent and said."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    address = _this_hosts_address()
    if address is None:
        pytest.skip("this machine has no address other than loopback")
    seen: list[str | None] = []

    class Stub(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization"))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((address, 0), Stub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    plain = f"http://{address}:{server.server_address[1]}"
    clients = str(recorded.ids["clients"])
    try:
        refused = replay_cli(db, clients, "--to", plain, token="secret-token")
        assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
        assert f"refusing to send it over plain HTTP to {address}" in refused.stderr
        assert "--allow-plain-http" in refused.stderr and seen == [] and replays(db) == []

        allowed = replay_cli(db, clients, "--to", plain, "--allow-plain-http", token="secret-token")
        assert allowed.returncode == 0, allowed.stderr
        assert f"warning: sending over plain HTTP to {address}: the token and keys travel in clear" in allowed.stderr
        assert seen == ["Bearer secret-token"]
    finally:
        server.shutdown()
        server.server_close()
    # loopback over plain HTTP needs no flag (a local stub): refused only for want of a listener
    from inspector.proxy.spawn import free_port

    local = replay_cli(db, clients, "--to", f"http://127.0.0.1:{free_port()}", token="x")
    assert local.returncode == 1 and "ConnectError" in local.stdout and "plain HTTP" not in local.stderr
