"""Breakpoints (proxy --break), end to end: an httpx client through the real proxy over TLS to the
mock Xero, held at a breakpoint and answered through store/pauses.py, the functions the browser
calls. An edited POST reaches Xero edited and is recorded with both bodies; an untouched one goes
on at the timeout; a killed one never reaches Xero; an answer can be held and changed too."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import httpx
import pytest
from inspector.samples.mock_xero import TENANTS, MockXero

from inspector.proxy.break_rules import BreakError, parse
from inspector.store import controls, pauses
from inspector.store.browse import FlowQuery
from inspector.store.database import open_db, open_for_reading
from inspector.store.pauses import Edit, Paused
from tests.helpers import WAIT, ProxyProcess, client, rows, wait_for_rows
from tests.test_capture_e2e import sign_in

pytestmark = pytest.mark.e2e

XPM = "https://api.xero.com/practicemanager/3.0"
PRACTICE = TENANTS[0].id
JOB = b"<Job><Name>Audit</Name><ClientID>24097642</ClientID><StartDate>20240101</StartDate><DueDate>20240201</DueDate></Job>"
TIMEOUT_S = 4
BREAKS = ["~m POST & ~u job.api/add", "~u client.api/list", "response ~u staff.api/list", "~u job.api/get"]


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory, confdir: Path, upstream: MockXero) -> Iterator[ProxyProcess]:
    tmp = tmp_path_factory.mktemp("breaks")
    args = ["--redirect", upstream.url, "--upstream-ca", str(upstream.ca_path), "--break-timeout", str(TIMEOUT_S)]
    for rule in BREAKS:
        args += ["--break", rule]
    p = ProxyProcess(tmp, confdir, args).start()
    yield p
    p.stop()


@pytest.fixture(scope="module")
def token(proxy: ProxyProcess, upstream: MockXero) -> str:
    with client(proxy) as http:
        return sign_in(http, upstream)


@pytest.fixture(scope="module")
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(4) as p:
        yield p


def send(
    pool: ThreadPoolExecutor, proxy: ProxyProcess, token: str, method: str, path: str, body: bytes | None = None
) -> tuple[Future[httpx.Response], str]:
    """The app's call, on its own thread: it waits at the breakpoint while the test answers."""
    marker = uuid.uuid4().hex
    headers = {"Authorization": f"Bearer {token}", "xero-tenant-id": PRACTICE, "X-Test": marker}

    def go() -> httpx.Response:
        with client(proxy) as http:
            return http.request(method, f"{XPM}/{path}", headers=headers, content=body)

    return pool.submit(go), marker


def held(proxy: ProxyProcess, marker: str) -> Paused:
    """The browser's view: the paused call with this marker (an answer: to this URL), once the
    proxy has written it."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if proxy.db.exists():
            with closing(open_for_reading(proxy.db)) as conn:
                for p in pauses.paused(conn):
                    if ("X-Test", marker) in p.headers or (p.side == "response" and p.url.endswith(marker)):
                        return p
        time.sleep(0.05)
    raise AssertionError(f"no paused call with {marker}")


def answer(proxy: ProxyProcess, fn: object, *args: object) -> object:
    with closing(open_db(proxy.db, create=False)) as db:
        return fn(db.conn, *args)  # type: ignore[operator]


def recorded(proxy: ProxyProcess, marker: str) -> dict:
    (row,) = wait_for_rows(proxy.db, "select * from flows where request_headers like ?", 1, [f"%{marker}%"])
    return dict(row)


def bodies(proxy: ProxyProcess, flow_id: int) -> dict[str, str]:
    return {r["side"]: r["text"] for r in rows(proxy.db, "select side, text from bodies where flow_id = ?", [flow_id])}


def received(upstream: MockXero, marker: str) -> list[bytes]:
    return [e.request.body for e in upstream.app.exchanges if e.request.headers.get("x-test") == marker]


def test_a_held_post_goes_to_xero_as_edited_and_the_record_keeps_both_bodies(
    proxy: ProxyProcess, token: str, upstream: MockXero, pool: ThreadPoolExecutor
) -> None:
    pending, marker = send(pool, proxy, token, "POST", "job.api/add", JOB)
    p = held(proxy, marker)
    assert (p.side, p.method, p.url, p.body) == ("request", "POST", f"{XPM}/job.api/add", JOB)
    auth = dict(p.headers)["Authorization"]
    assert auth.startswith("Bearer redacted:sha256:") and token not in auth  # the file never sees the token
    assert answer(proxy, pauses.take_longer, p.id) is not None  # the editor opened it: more time, once
    assert answer(proxy, pauses.take_longer, p.id) is None
    assert not received(upstream, marker)  # held: Xero has not seen it
    edited = JOB.replace(b"<Name>Audit</Name>", b"<Name>Audit FY24</Name>")
    # The editor sends back everything it showed, the redacted token included: the proxy puts it back.
    assert answer(proxy, pauses.resume, p.id, Edit(p.method, p.url, p.headers, edited))
    resp = pending.result(WAIT)
    assert resp.status_code == 200 and b"<Status>OK</Status>" in resp.content  # the real token went
    assert received(upstream, marker) == [edited]
    row = recorded(proxy, marker)
    assert row["paused"].startswith("request edited (body) after ")
    kept = bodies(proxy, row["id"])
    assert "Audit FY24" in kept["request"] and "<Name>Audit</Name>" in kept["request-original"]
    with closing(open_for_reading(proxy.db)) as conn:
        assert row["id"] in [f.id for f in FlowQuery("~paused & ~m POST").last(conn, 50, 10**9)]
    assert not rows(proxy.db, "select * from pauses where id = ?", [p.id])  # gone once it went on


def test_a_call_nobody_answers_goes_on_unchanged_at_the_timeout(
    proxy: ProxyProcess, token: str, upstream: MockXero, pool: ThreadPoolExecutor
) -> None:
    pending, marker = send(pool, proxy, token, "GET", "client.api/list")
    p = held(proxy, marker)
    assert p.deadline - p.created_at == TIMEOUT_S
    resp = pending.result(WAIT)
    assert resp.status_code == 200 and len(received(upstream, marker)) == 1
    row = recorded(proxy, marker)
    assert row["paused"].startswith("request resumed unchanged at the timeout after ")
    assert "request-original" not in bodies(proxy, row["id"])


def test_a_killed_call_never_reaches_xero_and_the_app_gets_a_closed_connection(
    proxy: ProxyProcess, token: str, upstream: MockXero, pool: ThreadPoolExecutor
) -> None:
    pending, marker = send(pool, proxy, token, "GET", "job.api/get/J1")
    p = held(proxy, marker)
    assert answer(proxy, pauses.kill, p.id)
    assert not answer(proxy, pauses.resume, p.id)  # answered already: a second answer changes nothing
    with pytest.raises(httpx.RemoteProtocolError):
        pending.result(WAIT)
    row = recorded(proxy, marker)
    assert row["paused"].startswith("request killed after ") and row["status"] is None and row["error"]
    assert not received(upstream, marker)


def test_an_answer_is_held_and_the_app_gets_it_as_edited(
    proxy: ProxyProcess, token: str, upstream: MockXero, pool: ThreadPoolExecutor
) -> None:
    pending, marker = send(pool, proxy, token, "GET", "staff.api/list")
    p = held(proxy, "staff.api/list")
    assert p.side == "response" and p.status == 200 and b"<StaffList>" in (p.body or b"")
    assert len(received(upstream, marker)) == 1  # Xero answered; the app has not had it yet
    changed = (p.body or b"").replace(b"<Status>OK</Status>", b"<Status>ERROR</Status>", 1)
    assert answer(proxy, pauses.resume, p.id, Edit(body=changed))
    resp = pending.result(WAIT)
    assert resp.content == changed
    row = recorded(proxy, marker)
    assert row["paused"].startswith("response edited (body) after ") and row["api_status"] == "ERROR"
    assert "<Status>OK</Status>" in bodies(proxy, row["id"])["response-original"]


def test_resume_all_and_breakpoints_set_from_the_browser(
    proxy: ProxyProcess, token: str, upstream: MockXero, pool: ThreadPoolExecutor
) -> None:
    answer(proxy, controls.set_breaks, ["~u time.api/list"])  # as the browser's `b` does
    deadline = time.monotonic() + WAIT
    while "breakpoints from the browser: ~u time.api/list" not in proxy.log.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    first, m1 = send(pool, proxy, token, "GET", "time.api/list")
    second, m2 = send(pool, proxy, token, "GET", "client.api/list")
    held(proxy, m1), held(proxy, m2)
    assert answer(proxy, pauses.resume_all) == 2
    assert first.result(WAIT).status_code == 200 and second.result(WAIT).status_code == 200
    assert recorded(proxy, m1)["paused"].startswith("request resumed after ")
    answer(proxy, controls.set_breaks, [])


def test_traffic_no_breakpoint_matches_is_not_held(proxy: ProxyProcess, token: str, pool: ThreadPoolExecutor) -> None:
    pending, marker = send(pool, proxy, token, "GET", "job.api/current")
    assert pending.result(WAIT).status_code == 200
    assert recorded(proxy, marker)["paused"] is None


def test_breakpoint_rules_parse_with_their_side_or_say_what_is_wrong() -> None:
    assert parse("~m POST").sides == ("request",)
    assert parse("response ~api xpm").sides == ("response",) and parse("response ~api xpm").filter == "~api xpm"
    assert parse("both").sides == ("request", "response") and parse("both").filter == ""
    assert parse("responses").filter == "responses"  # a word that is not a side is the filter's
    with pytest.raises(BreakError, match="breakpoint '~zz': "):
        parse("~zz")


def test_a_bad_breakpoint_is_one_line_and_no_proxy(tmp_path: Path, confdir: Path) -> None:
    cmd = [sys.executable, "-m", "inspector", "proxy", "--db", str(tmp_path / "f.db"), "--confdir", str(confdir)]
    out = subprocess.run([*cmd, "--break", "~m POST &"], capture_output=True, text=True, timeout=WAIT)
    assert out.returncode == 2 and out.stderr.startswith("xero-inspector: error: --break: breakpoint '~m POST &'")
    assert len(out.stderr.strip().splitlines()) == 1 and not (tmp_path / "f.db").exists()
