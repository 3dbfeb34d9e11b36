"""Xero failing on purpose (proxy --fault), end to end: an httpx client through the real proxy
over TLS to the mock Xero. Each fault reaches the client with Xero's status, headers and body,
is recorded as injected, is found by ~injected, and is left out of the report."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx
import pytest
from inspector.samples.mock_xero import TENANTS, MockXero

from inspector.ingest.row import FlowRow
from inspector.proxy.fault_rules import FaultError, answer, load_file, parse
from inspector.proxy.spawn import free_port
from inspector.store import flows
from inspector.store.database import open_for_reading
from inspector.store.query import compile_filter
from inspector.tui import info
from inspector.tui.up import running_recorder, up
from tests.helpers import ROOT, WAIT, ProxyProcess, client, rows, wait_for_rows
from tests.test_capture_e2e import sign_in

pytestmark = pytest.mark.e2e

XPM = "https://api.xero.com/practicemanager/3.0"
PRACTICE = TENANTS[0].id
JOB = b"<Job><Name>Audit</Name><ClientID>24097642</ClientID><StartDate>20240101</StartDate><DueDate>20240201</DueDate></Job>"
RULES = [
    "rate-limit ~u job.api/current times 1",
    "token-expired ~u staff.api/list",
    "wrong-tenant ~u client.api/list",
    'xpm-error "Invalid client identifier" ~m POST & ~u job.api/add',
    "unavailable ~u time.api/list",
    "delay 20 ~u job.api/get",
    "drop ~u staff.api/get",
]


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory, confdir: Path, upstream: MockXero) -> Iterator[ProxyProcess]:
    tmp = tmp_path_factory.mktemp("faults")
    faults = tmp / "faults.toml"
    faults.write_text('faults = ["wrong-tenant ~u job.api/list every 2"]\n')
    args = ["--redirect", upstream.url, "--upstream-ca", str(upstream.ca_path), "--faults", str(faults)]
    for rule in RULES:
        args += ["--fault", rule]
    p = ProxyProcess(tmp, confdir, args).start()
    yield p
    p.stop()


@pytest.fixture(scope="module")
def token(proxy: ProxyProcess, upstream: MockXero) -> str:
    with client(proxy) as http:
        return sign_in(http, upstream)


def call(
    proxy: ProxyProcess, token: str, method: str, path: str, body: bytes | None = None
) -> tuple[httpx.Response, str]:
    marker = uuid.uuid4().hex
    headers = {"Authorization": f"Bearer {token}", "xero-tenant-id": PRACTICE, "X-Test": marker}
    with client(proxy) as http:
        return http.request(method, f"{XPM}/{path}", headers=headers, content=body), marker


def recorded(proxy: ProxyProcess, marker: str) -> dict:
    (row,) = wait_for_rows(proxy.db, "select * from flows where request_headers like ?", 1, [f"%{marker}%"])
    return dict(row)


def reached_xero(upstream: MockXero, marker: str) -> bool:
    return any(e.request.headers.get("x-test") == marker for e in upstream.app.exchanges)


def test_rate_limit_is_xeros_429_once_then_xero_answers(proxy: ProxyProcess, token: str, upstream: MockXero) -> None:
    resp, marker = call(proxy, token, "GET", "job.api/current")
    assert resp.status_code == 429 and resp.content == b""
    assert resp.headers["Retry-After"] == "60" and resp.headers["X-Rate-Limit-Problem"] == "minute"
    assert resp.headers["X-MinLimit-Remaining"] == "0"
    assert int(resp.headers["X-DayLimit-Remaining"]) > 0 and int(resp.headers["X-AppMinLimit-Remaining"]) > 0
    assert resp.headers["Xero-Correlation-Id"] and not reached_xero(upstream, marker)
    row = recorded(proxy, marker)
    assert (row["injected"], row["outcome"], row["retry_after"], row["rate_limit_problem"]) == (
        "rate-limit",
        "rate-limited",
        60,
        "minute",
    )
    again, marker = call(proxy, token, "GET", "job.api/current")  # times 1: spent
    assert again.status_code == 200 and reached_xero(upstream, marker)
    assert recorded(proxy, marker)["injected"] is None


def test_token_expired_and_wrong_tenant_are_xeros_problem_documents(proxy: ProxyProcess, token: str) -> None:
    resp, marker = call(proxy, token, "GET", "staff.api/list")
    assert resp.status_code == 401 and resp.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    doc = resp.json()
    assert (doc["Title"], doc["Status"]) == ("Unauthorized", 401)
    assert doc["Detail"].startswith("TokenExpired: token expired at ")
    assert recorded(proxy, marker)["injected"] == "token-expired"
    resp, marker = call(proxy, token, "GET", "client.api/list")
    assert resp.status_code == 403 and resp.json()["Detail"] == "AuthenticationUnsuccessful"
    row = recorded(proxy, marker)
    assert row["injected"] == "wrong-tenant" and row["api_error"] == "Forbidden: AuthenticationUnsuccessful"


def test_xpm_error_hides_in_a_200_as_xero_does(proxy: ProxyProcess, token: str, upstream: MockXero) -> None:
    resp, marker = call(proxy, token, "POST", "job.api/add", JOB)
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("text/xml")
    assert b'<Response api-method="Add"><Status>ERROR</Status>' in resp.content
    assert b"<ErrorDescription>Invalid client identifier</ErrorDescription>" in resp.content
    assert not reached_xero(upstream, marker)  # nothing was created
    row = recorded(proxy, marker)
    assert (row["injected"], row["outcome"], row["api_error"]) == (
        "xpm-error",
        "api-error",
        "Invalid client identifier",
    )


def test_unavailable_delay_and_drop(proxy: ProxyProcess, token: str, upstream: MockXero) -> None:
    resp, marker = call(proxy, token, "GET", "time.api/list")
    assert resp.status_code == 503 and recorded(proxy, marker)["injected"] == "unavailable"
    resp, marker = call(proxy, token, "GET", "job.api/get/J000001")  # delayed: Xero's own answer
    assert resp.status_code == 200 and b"<Status>OK</Status>" in resp.content and reached_xero(upstream, marker)
    assert recorded(proxy, marker)["injected"] == "delay"
    marker = uuid.uuid4().hex
    with client(proxy) as http, pytest.raises(httpx.HTTPError):
        http.get(
            f"{XPM}/staff.api/get/859230",
            headers={"Authorization": f"Bearer {token}", "xero-tenant-id": PRACTICE, "X-Test": marker},
        )
    row = recorded(proxy, marker)
    assert row["injected"] == "drop" and row["status"] is None and row["error"]
    assert not reached_xero(upstream, marker)


def test_a_rule_from_the_faults_file_fires_every_second_match(proxy: ProxyProcess, token: str) -> None:
    statuses = [call(proxy, token, "GET", "job.api/list")[0].status_code for _ in range(4)]
    assert statuses == [200, 403, 200, 403]


def test_traffic_no_rule_matches_is_untouched(proxy: ProxyProcess, token: str, upstream: MockXero) -> None:
    resp, marker = call(proxy, token, "GET", "client.api/get/24097642")
    assert resp.status_code == 200 and reached_xero(upstream, marker)
    assert recorded(proxy, marker)["injected"] is None


def test_injected_answers_are_found_and_kept_out_of_the_report(proxy: ProxyProcess, token: str) -> None:
    _, marker = call(proxy, token, "GET", "time.api/list")  # one more injected answer, surely stored
    recorded(proxy, marker)
    where = compile_filter("~injected")
    found = rows(proxy.db, f"select injected from flows where {where.sql}", where.params)
    everything = rows(proxy.db, "select injected from flows where injected is not null")
    assert len(found) == len(everything) >= 7
    ours = sum(r["injected"] != "delay" for r in everything)
    out = subprocess.run(
        [sys.executable, "-m", "inspector", "report", "--db", str(proxy.db), "--format", "json", "--fail-on", "never"],
        capture_output=True,
        cwd=ROOT,
        check=True,
    )
    report = json.loads(out.stdout)
    assert report["injected"] == ours
    failed = {f["failure"] for f in report["failures"]}
    assert "rate-limited" not in failed and "transport-error" not in failed  # ours, not Xero's
    asked = subprocess.run(
        [sys.executable, "-m", "inspector", "report", "--db", str(proxy.db), "--filter", "~injected"],
        capture_output=True,
        cwd=ROOT,
        text=True,
    )
    assert "rate-limited" in asked.stdout and "left out" not in asked.stdout
    with closing(open_for_reading(proxy.db)) as conn:  # the browser's Info tab says whose answer it is
        (flow_id,) = conn.execute("select id from flows where injected = 'rate-limit' limit 1").fetchone()
        shown = info.render(flows.load(conn, flow_id))
    assert "injected[/] rate-limit: a fault rule made this answer, not Xero" in shown


def test_up_passes_fault_rules_to_the_proxy_it_starts(tmp_path: Path, confdir: Path, upstream: MockXero) -> None:
    db = tmp_path / "flows.db"
    port = free_port()
    statuses: list[int] = []

    def browse(proc: object, log: str) -> None:
        deadline = time.monotonic() + WAIT
        while running_recorder(db) is None:
            assert time.monotonic() < deadline, "no live recorder"
            time.sleep(0.05)
        probe = ProxyProcess(tmp_path, confdir)
        probe.port = port
        with client(probe) as http:
            statuses.append(http.get(f"{XPM}/client.api/list", headers={"xero-tenant-id": PRACTICE}).status_code)
        wait_for_rows(db, "SELECT id FROM flows WHERE injected = 'wrong-tenant'", 1)

    args = ["--confdir", str(confdir), "--redirect", upstream.url, "--upstream-ca", str(upstream.ca_path)]
    up(str(db), "127.0.0.1", port, [*args, "--fault", "wrong-tenant ~res client.api"], browse, lambda _: None)
    assert statuses == [403]


def test_rules_parse_or_say_why_in_one_line(tmp_path: Path) -> None:
    r = parse("rate-limit day retry=5 ~api xpm & ~m POST every 3")
    assert (r.kind, r.problem, r.retry_after, r.filter, r.every) == ("rate-limit", "day", 5, "~api xpm & ~m POST", 3)
    r = parse("delay 2s ~api accounting p=0.25")
    assert (r.delay_ms, r.p, r.filter) == (2000, 0.25, "~api accounting")
    assert [r.fires(draw) for draw in (0.1, 0.3)] == [True, False] and r.matched == 2
    for bad, why in (
        ("nope ~m GET", "starts with one of rate-limit"),
        ("delay soon", "delay takes milliseconds"),
        ("rate-limit ~c", "~c needs a value"),
        ("xpm-error p=2", "probability from 0 to 1"),
        ("drop every 0", "every takes 1 or more"),
    ):
        with pytest.raises(FaultError, match=why) as e:
            parse(bad)
        assert "\n" not in str(e.value)
    f = tmp_path / "faults.toml"
    f.write_text("faults = 3\n")
    with pytest.raises(FaultError, match="expected faults ="):
        load_file(f)


def test_counts_decide_which_matches_fire() -> None:
    once, second, never, always = (parse(t) for t in ("drop times 1", "drop every 2", "drop p=0", "drop"))
    assert [once.fires() for _ in range(3)] == [True, False, False]
    assert [second.fires() for _ in range(4)] == [False, True, False, True]
    assert [never.fires() for _ in range(3)] == [False] * 3 and [always.fires() for _ in range(2)] == [True] * 2
    half = parse("drop p=0.5")
    assert [half.fires(draw) for draw in (0.1, 0.9)] == [True, False]


def test_an_xpm_error_names_the_calls_api_method() -> None:
    row = FlowRow(started_at=0.0, method="PUT", url="u", outcome="ok", path="/practicemanager/3.0/job.api/state")
    assert b'api-method="State"' in answer(parse("xpm-error"), row).body
    staff = FlowRow(started_at=0.0, method="POST", url="u", outcome="ok", path="/practicemanager/3.0/staff.api/add")
    assert b'api-method="Get"' in answer(parse("xpm-error"), staff).body  # as Xero answers staff.api/add


def test_mitmdump_users_set_rules_with_inspector_fault(tmp_path: Path, confdir: Path, upstream: MockXero) -> None:
    mitmdump = shutil.which("mitmdump", path=str(Path(sys.executable).parent)) or "mitmdump"
    db = tmp_path / "dump.db"
    probe = ProxyProcess(tmp_path, confdir, db=db)
    probe.cmd = [
        mitmdump, "-q", "--listen-host", "127.0.0.1", "--listen-port", str(probe.port),
        "--set", f"confdir={confdir}", "-s", "addons/xero_inspector.py", "--set", f"inspector_db={db}",
        "--set", f"inspector_redirect={upstream.url}", "--set", f"ssl_verify_upstream_trusted_ca={upstream.ca_path}",
        "--set", "inspector_fault=rate-limit appminute retry=7 ~api xpm",
    ]  # fmt: skip
    probe.start()
    try:
        with client(probe) as http:
            resp = http.get(f"{XPM}/job.api/current", headers={"xero-tenant-id": PRACTICE})
    finally:
        probe.stop()
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "7"
    assert (resp.headers["X-Rate-Limit-Problem"], resp.headers["X-AppMinLimit-Remaining"]) == ("appminute", "0")
    (row,) = rows(db, "select injected, outcome from flows")
    assert (row["injected"], row["outcome"]) == ("rate-limit", "rate-limited")


def test_a_bad_rule_stops_the_proxy_with_one_line(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "inspector", "proxy", "--db", str(tmp_path / "f.db"), "--fault", "rate-limit ~c ("],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == [
        "xero-inspector: error: fault rule 'rate-limit ~c (': bad filter at column 1: ~c needs a value"
    ], out.stderr


def test_a_rule_is_logged_as_it_could_be_typed_again() -> None:
    for text in ('xpm-error "Invalid client identifier" ~m POST every 3', "delay 2s ~api accounting p=0.2", "drop"):
        shown = parse(text).describe()
        assert parse(shown).describe() == shown
    assert parse("rate-limit ~res job.api times 1").describe() == "rate-limit minute retry=60 ~res job.api times 1"


def test_a_running_proxy_takes_the_rules_the_browser_wrote(tmp_path: Path, confdir: Path, upstream: MockXero) -> None:
    from inspector.store import controls
    from inspector.store.database import open_db

    args = ["--redirect", upstream.url, "--upstream-ca", str(upstream.ca_path)]
    proxy = ProxyProcess(tmp_path, confdir, args).start()
    try:
        with client(proxy) as http:
            headers = {"xero-tenant-id": PRACTICE}
            assert http.get(f"{XPM}/job.api/current", headers=headers).status_code == 401  # no token: Xero's
            wait_for_rows(proxy.db, "select id from flows", 1)
            with closing(open_db(proxy.db)) as db:  # what the browser's `i` does
                controls.set_faults(db.conn, ["unavailable ~res job.api"])
            deadline = time.monotonic() + WAIT
            while (status := http.get(f"{XPM}/job.api/current", headers=headers).status_code) != 503:
                assert time.monotonic() < deadline, f"the proxy never took the rule ({status})"
                time.sleep(0.2)
            with closing(open_db(proxy.db)) as db:
                controls.set_faults(db.conn, [])
            while http.get(f"{XPM}/job.api/current", headers=headers).status_code == 503:
                assert time.monotonic() < deadline, "the proxy never dropped the rule"
                time.sleep(0.2)
    finally:
        proxy.stop()
    assert "fault rules from the browser: unavailable ~res job.api" in proxy.output()
