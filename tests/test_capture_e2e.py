"""End to end: an httpx client -> the real proxy (its own process, TLS interception with the
generated CA) -> the mock Xero over TLS on loopback, and what lands in the SQLite file."""

from __future__ import annotations

import gzip
import json
import re
import shutil
import signal
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from inspector.samples.mock_xero import TENANTS, MockXero

from tests.helpers import ProxyProcess, client, h2_request, rows, wait_for_rows

pytestmark = pytest.mark.e2e

XPM = "https://api.xero.com/practicemanager/3.0"
PRACTICE = TENANTS[0].id


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory, confdir: Path, upstream: MockXero) -> Iterator[ProxyProcess]:
    tmp = tmp_path_factory.mktemp("e2e")
    p = ProxyProcess(
        tmp,
        confdir,
        ["--redirect", upstream.url, "--upstream-ca", str(upstream.ca_path), "--hosts", r"xero-gw\.corp\.test$"],
    ).start()
    yield p
    p.stop()


def sign_in(http: httpx.Client, mock: MockXero) -> str:
    """A client-credentials token from 'identity.xero.com', through the proxy like any app."""
    c = mock.app.config
    resp = http.post(
        "https://identity.xero.com/connect/token",
        data={"grant_type": "client_credentials"},
        auth=(c.client_id, c.client_secret),
    )
    assert resp.status_code == 200
    return str(resp.json()["access_token"])


@pytest.fixture(scope="module")
def token(proxy: ProxyProcess, upstream: MockXero) -> str:
    with client(proxy) as http:
        return sign_in(http, upstream)


def xpm_headers(token: str, tenant: str = PRACTICE, marker: str = "") -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "xero-tenant-id": tenant, "X-Test": marker or uuid.uuid4().hex}


def flows_marked(proxy: ProxyProcess, marker: str, count: int = 1) -> list:
    return wait_for_rows(
        proxy.db, "select * from flows where request_headers like ? order by id", count, [f"%{marker}%"]
    )


def test_xpm_call_is_recorded_classified_and_named(proxy: ProxyProcess, token: str) -> None:
    with client(proxy) as http:
        http.get("https://api.xero.com/connections", headers={"Authorization": f"Bearer {token}"})
        resp = http.get(f"{XPM}/job.api/get/J000001", headers=xpm_headers(token, marker="get-j1"))
    assert resp.status_code == 200 and b"<Status>OK</Status>" in resp.content
    (row,) = flows_marked(proxy, "get-j1")
    assert (row["family"], row["resource"], row["operation"]) == ("xpm-3.0", "job.api", "get")
    assert json.loads(row["path_params"]) == {"number": "J000001"}
    assert row["url"] == f"{XPM}/job.api/get/J000001"  # the Xero URL, not the mock's
    assert row["server_addr"].startswith("127.0.0.1:")  # where it really went
    assert row["tenant_id"] == PRACTICE and row["tls"] == 1 and row["scheme"] == "https"
    assert row["outcome"] == "ok" and row["api_status"] == "OK"
    assert row["correlation_id"] and row["rl_minute_remaining"] is not None and row["rl_day_remaining"] is not None
    assert row["token_client_id"] and "practicemanager" in row["token_scopes"].split()
    assert row["response_format"] == "xml" and row["response_size"] > 0
    named = rows(
        proxy.db, "select t.name from flows f join tenants t on t.id = f.tenant_id where f.id = ?", [row["id"]]
    )
    assert named[0]["name"] == "Demo Practice Ltd"


def test_xpm_error_inside_http_200_is_an_api_error(proxy: ProxyProcess, token: str) -> None:
    body = "<Job><Name>X</Name><ClientID>999</ClientID><StartDate>20240101</StartDate><DueDate>20240201</DueDate></Job>"
    with client(proxy) as http:
        resp = http.post(f"{XPM}/job.api/add", headers=xpm_headers(token, marker="bad-client"), content=body)
    assert resp.status_code == 200
    (row,) = flows_marked(proxy, "bad-client")
    assert (row["status"], row["outcome"], row["api_status"]) == (200, "api-error", "ERROR")
    assert row["api_error"] == "Invalid client identifier"
    assert row["request_format"] == "xml"
    body_rows = rows(proxy.db, "select side, text from bodies where flow_id = ? order by side", [row["id"]])
    assert [b["side"] for b in body_rows] == ["request", "response"]
    assert body_rows[0]["text"] == body


def test_client_receives_exactly_the_upstream_bytes(proxy: ProxyProcess, upstream: MockXero, token: str) -> None:
    marker = uuid.uuid4().hex
    with (
        client(proxy) as http,
        http.stream(
            "GET", f"{XPM}/client.api/list", headers={**xpm_headers(token, marker=marker), "Accept-Encoding": "gzip"}
        ) as resp,
    ):
        raw = b"".join(resp.iter_raw())
    sent = next(e for e in reversed(upstream.app.exchanges) if e.request.headers.get("x-test") == marker)
    assert ("Content-Encoding", "gzip") in sent.headers
    assert raw == sent.body  # byte for byte, still compressed: nothing re-encoded on the way
    (row,) = flows_marked(proxy, marker)
    assert row["response_raw_size"] == len(sent.body)
    (stored,) = rows(proxy.db, "select text from bodies where flow_id = ? and side = 'response'", [row["id"]])
    assert stored["text"].encode() == gzip.decompress(sent.body)  # stored decoded


def test_secrets_are_fingerprinted_not_stored(proxy: ProxyProcess, upstream: MockXero, token: str) -> None:
    c = upstream.app.config
    with client(proxy) as http:
        http.get(
            "https://api.workflowmax.com/job.api/current",
            params={"apiKey": c.legacy_api_key, "accountKey": c.legacy_account_key},
            headers={"X-Test": "legacy"},
        )
        http.get(
            "https://networktest.xero.com/api.xro/1.0/contacts",
            params={"apiKey": c.partner_key, "xeroKey": next(iter(c.customer_keys))},
            headers={"X-Test": "network"},
        )
        http.get(
            f"{XPM}/staff.api/list",
            headers={**xpm_headers(token, marker="cookie"), "Cookie": "session=s3cr3t-cookie-value"},
        )
    legacy = flows_marked(proxy, "legacy")[0]
    assert legacy["family"] == "wfm-legacy" and legacy["tenant_id"].startswith("redacted:sha256:")
    assert re.search(r"apiKey=redacted:sha256:[0-9a-f]{8}&accountKey=redacted:sha256:[0-9a-f]{8}$", legacy["url"])
    network = flows_marked(proxy, "network")[0]
    assert network["family"] == "network-1.0" and network["tenant_id"].startswith("redacted:sha256:")
    cookie = flows_marked(proxy, "cookie")[0]
    assert '"Cookie", "session=redacted:sha256:' in cookie["request_headers"]
    assert "Bearer redacted:sha256:" in cookie["request_headers"]
    # Nowhere in the file: not in any table, not in the WAL.
    secrets = [
        token,
        c.client_secret,
        c.legacy_api_key,
        c.legacy_account_key,
        c.partner_key,
        next(iter(c.customer_keys)),
        "s3cr3t-cookie-value",
    ]
    data = b"".join(p.read_bytes() for p in proxy.db.parent.glob(proxy.db.name + "*"))
    for secret in secrets:
        assert secret.encode() not in data, secret[:12]


def test_rate_limit_figures(tmp_path: Path, confdir: Path, token: str) -> None:
    from inspector.samples.mock_xero import MockConfig

    with MockXero(config=MockConfig(minute_limit=3)) as limited:
        p = ProxyProcess(tmp_path, confdir, ["--redirect", limited.url, "--upstream-ca", str(limited.ca_path)]).start()
        try:
            with client(p) as http:
                tok = sign_in(http, limited)
                statuses = [http.get(f"{XPM}/job.api/current", headers=xpm_headers(tok)).status_code for _ in range(5)]
        finally:
            p.stop()
    assert statuses == [200, 200, 200, 429, 429]
    found = rows(
        p.db,
        "select status, outcome, rl_minute_remaining, retry_after, rate_limit_problem from flows "
        "where family = 'xpm-3.0' order by id",
    )
    assert [r["rl_minute_remaining"] for r in found[:3]] == [2, 1, 0]
    last = found[-1]
    assert (last["status"], last["outcome"], last["rate_limit_problem"]) == (429, "rate-limited", "minute")
    assert 0 < last["retry_after"] <= 60


def test_dead_upstream_is_a_transport_error(tmp_path: Path, confdir: Path) -> None:
    dead = MockXero()
    url = dead.url
    dead.stop()  # nothing listens there any more
    p = ProxyProcess(tmp_path, confdir, ["--redirect", url]).start()
    try:
        with client(p) as http:
            resp = http.get(f"{XPM}/job.api/current", headers={"Authorization": "Bearer x", "xero-tenant-id": PRACTICE})
    finally:
        p.stop()
    assert resp.status_code == 502  # mitmproxy's answer to the app: the traffic is not hidden
    (row,) = rows(p.db, "select * from flows")
    assert (row["outcome"], row["status"], row["family"]) == ("transport-error", None, "xpm-3.0")
    assert re.search("refused|connect", row["error"] or "", re.IGNORECASE)


def test_other_hosts_are_tunnelled_not_decrypted_or_recorded(proxy: ProxyProcess, confdir: Path) -> None:
    """A non-Xero host keeps its own certificate end to end: the client verifies the real
    server's CA (which fails if the proxy had intercepted) and nothing is recorded."""
    with MockXero() as other, client(proxy, cafile=other.ca_path) as http:
        resp = http.get(f"https://localhost:{other.port}/connections", headers={"X-Test": "tunnelled"})
    assert resp.status_code == 401  # the other server answered, over its own TLS
    assert rows(proxy.db, "select id from flows where request_headers like '%tunnelled%'") == []


def test_gateway_host_from_hosts_option(proxy: ProxyProcess, token: str) -> None:
    with client(proxy) as http:
        resp = http.get(
            "https://xero-gw.corp.test/practicemanager/3.0/staff.api/list", headers=xpm_headers(token, marker="gw")
        )
    assert resp.status_code == 200
    (row,) = flows_marked(proxy, "gw")
    assert (row["host"], row["family"], row["operation"]) == ("xero-gw.corp.test", "xpm-3.0", "list")


def test_plain_http_to_a_xero_host_is_recorded_as_such(proxy: ProxyProcess, upstream: MockXero) -> None:
    c = upstream.app.config
    with client(proxy) as http:
        http.get(
            "http://api.workflowmax.com/client.api/list",
            params={"apiKey": c.legacy_api_key, "accountKey": c.legacy_account_key},
            headers={"X-Test": "plain"},
        )
    (row,) = flows_marked(proxy, "plain")
    assert (row["scheme"], row["tls"], row["family"], row["outcome"]) == ("http", 0, "wfm-legacy", "ok")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_shutdown_writes_everything_queued(tmp_path: Path, confdir: Path, mock: MockXero, sig: int) -> None:
    p = ProxyProcess(tmp_path, confdir, ["--redirect", mock.url, "--upstream-ca", str(mock.ca_path), "--quiet"]).start()
    with client(p) as http:
        for _ in range(40):
            http.get("https://api.xero.com/connections")
    assert p.stop(sig) in (0, -sig)
    assert rows(p.db, "select count(*) n from flows")[0]["n"] == 40
    (rec,) = rows(p.db, "select recorded, dropped, errors, stopped_at from recorders")
    assert (rec["recorded"], rec["dropped"], rec["errors"]) == (40, 0, 0) and rec["stopped_at"]


def test_reverse_mode(tmp_path: Path, confdir: Path, mock: MockXero) -> None:
    p = ProxyProcess(
        tmp_path,
        confdir,
        ["--mode", "reverse:https://api.xero.com", "--redirect", mock.url, "--upstream-ca", str(mock.ca_path)],
    ).start()
    try:
        resp = httpx.get(f"{p.url}/connections", timeout=30)  # the app's base URL is the proxy
    finally:
        p.stop()
    assert resp.status_code == 401
    (row,) = rows(p.db, "select url, family, status from flows")
    assert (row["url"], row["family"], row["status"]) == ("https://api.xero.com/connections", "connections", 401)


def test_mitmdump_script_gives_the_same_recording(tmp_path: Path, confdir: Path, mock: MockXero) -> None:
    mitmdump = shutil.which("mitmdump", path=str(Path(sys.executable).parent)) or "mitmdump"
    db = tmp_path / "dump.db"
    probe = ProxyProcess(tmp_path, confdir, db=db)
    probe.cmd = [
        mitmdump,
        "-q",
        "--listen-host",
        "127.0.0.1",
        "--listen-port",
        str(probe.port),
        "--set",
        f"confdir={confdir}",
        "-s",
        "addons/xero_inspector.py",
        "--set",
        f"inspector_db={db}",
        "--set",
        f"inspector_redirect={mock.url}",
        "--set",
        f"ssl_verify_upstream_trusted_ca={mock.ca_path}",
    ]
    probe.start()
    try:
        with client(probe) as http:
            http.get("https://api.xero.com/connections")
    finally:
        probe.stop()
    (row,) = rows(db, "select url, family, outcome, status from flows")
    assert (row["url"], row["family"], row["status"]) == ("https://api.xero.com/connections", "connections", 401)


def test_http2_client(proxy: ProxyProcess, token: str) -> None:
    answer = h2_request(proxy, "GET", f"{XPM}/staff.api/list", xpm_headers(token, marker="h2"))
    assert (answer.protocol, answer.status) == ("h2", 200) and b"<StaffList>" in answer.body
    (row,) = flows_marked(proxy, "h2")
    assert (row["http_version"], row["url"], row["family"]) == ("HTTP/2.0", f"{XPM}/staff.api/list", "xpm-3.0")
    assert row["response_http_version"] == "HTTP/1.1"  # the mock's own answer, through the proxy


def test_keep_secrets_flag_stores_them_as_they_are(tmp_path: Path, confdir: Path, mock: MockXero) -> None:
    p = ProxyProcess(tmp_path, confdir, ["--redirect", mock.url, "--upstream-ca", str(mock.ca_path), "--keep-secrets"])
    p.start()
    try:
        with client(p) as http:
            http.get("https://api.xero.com/connections", headers={"Authorization": "Bearer kept-token-123"})
    finally:
        p.stop()
    (row,) = rows(p.db, "select request_headers, redactions from flows")
    assert '"Bearer kept-token-123"' in row["request_headers"] and row["redactions"] == 0


def test_findings_are_recorded_as_the_proxy_ingests(proxy: ProxyProcess, token: str) -> None:
    typo = (
        b"<Job>\n  <Name>Payroll setup</Name>\n  <ClientId>24097642</ClientId>\n"
        b"  <StartDate>20240801</StartDate>\n  <DueDate>20240831</DueDate>\n</Job>\n"
    )
    headers = {**xpm_headers(token, marker="typo-e2e"), "Content-Type": "text/xml; charset=utf-8"}
    with client(proxy) as http:
        resp = http.post(f"{XPM}/job.api/add", content=typo, headers=headers)
    assert resp.status_code == 200 and b"<Status>ERROR</Status>" in resp.content  # Xero's answer, untouched
    (row,) = flows_marked(proxy, "typo-e2e")
    assert (row["errors"], row["warnings"]) == (2, 1)
    found = rows(proxy.db, "select * from findings where flow_id = ? order by id", [row["id"]])
    assert [(f["side"], f["rule"], f["line"], f["column"], f["xpath"]) for f in found] == [
        ("request", "unknown-element", 3, 3, "/Job/ClientId"),
        ("request", "xsd", 1, 1, "/Job"),
        ("response", "xpm-error", 2, None, "/Response/ErrorDescription"),
    ]
    assert found[0]["hint"] == "Did you mean <ClientID>? Xero drops <ClientId> silently."
    assert found[1]["schema"] == "xpm-3.0/requests.xsd#JobAdd"


def test_an_xxe_body_becomes_a_finding_and_nothing_is_read(proxy: ProxyProcess, token: str, tmp_path: Path) -> None:
    secret = tmp_path / "local-secret.txt"
    secret.write_text("TOP-SECRET-LOCAL-FILE")
    xxe = f'<?xml version="1.0"?><!DOCTYPE Job [<!ENTITY x SYSTEM "{secret.as_uri()}">]><Job><Name>&x;</Name></Job>'
    with client(proxy) as http:
        http.post(f"{XPM}/job.api/add", content=xxe.encode(), headers=xpm_headers(token, marker="xxe-e2e"))
    (row,) = flows_marked(proxy, "xxe-e2e")
    (f,) = rows(proxy.db, "select * from findings where flow_id = ? and rule = 'xml-dtd'", [row["id"]])
    assert f["side"] == "request" and "1 entity reference" in f["message"]
    assert b"TOP-SECRET-LOCAL-FILE" not in proxy.db.read_bytes() + Path(f"{proxy.db}-wal").read_bytes()
