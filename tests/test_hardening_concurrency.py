"""Hardening: two proxies record into one file at full speed while the browser, report and export
read it. Nobody is told "database is locked", and every exchange either proxy answered is stored."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from inspector.samples.mock_xero import TENANTS, MockConfig, MockXero

from inspector.tui.app import InspectorApp
from tests.helpers import ROOT, WAIT, ProxyProcess, client, wait_for_rows

pytestmark = [pytest.mark.hardening, pytest.mark.e2e]

URL = "https://api.xero.com/practicemanager/3.0/client.api/list"
CALLS = 250  # per client; 4 clients over 2 proxies


@pytest.fixture
def unlimited() -> Iterator[MockXero]:
    with MockXero(config=MockConfig(minute_limit=10**9, day_limit=10**9, app_minute_limit=10**9)) as server:
        yield server


def test_two_writers_and_three_readers_share_one_file(tmp_path: Path, confdir: Path, unlimited: MockXero) -> None:
    db = tmp_path / "shared.db"
    args = ["--redirect", unlimited.url, "--upstream-ca", str(unlimited.ca_path), "--quiet"]
    proxies = [ProxyProcess(tmp_path, confdir, args, db=db).start() for _ in range(2)]
    token = unlimited.app.tokens.issue(["practicemanager"])
    answered: list[str] = []
    lock, loading = threading.Lock(), threading.Event()
    loading.set()

    def load(proxy: ProxyProcess, name: str) -> None:
        with client(proxy) as http:
            for n in range(CALLS):
                probe = f"{name}-{n}"
                headers = {"Authorization": f"Bearer {token}", "xero-tenant-id": TENANTS[0].id, "X-Probe": probe}
                if http.get(URL, headers=headers).status_code == 200:
                    with lock:
                        answered.append(probe)

    complaints: list[str] = []
    reads = [0]

    def read_with_the_cli() -> None:
        while loading.is_set():
            for command in (
                ("report", "--db", str(db), "--format", "json"),
                ("export", "--db", str(db), "--format", "har", "--filter", "~u client.api"),
            ):
                out = subprocess.run(
                    [sys.executable, "-m", "inspector", *command], capture_output=True, cwd=ROOT, timeout=120
                )
                if out.returncode not in (0, 1) or b"locked" in out.stderr + out.stdout[:200]:
                    complaints.append(f"{command[0]}: {out.returncode} {out.stderr[-300:]!r}")
                reads[0] += 1

    async def browse() -> int:
        """The browser, live on the file while both proxies write: how many flows it came to show."""
        app = InspectorApp(db)
        async with app.run_test(size=(140, 40)) as pilot:
            app.set_filter("~u client.api")
            while loading.is_set():
                await pilot.press("end")
                await pilot.pause(0.1)
            deadline = time.monotonic() + WAIT
            while app.flows.total < 4 * CALLS and time.monotonic() < deadline:  # the last polls
                await pilot.pause(0.2)
            shown = app.flows.total
            status = str(app.query_one("#status").render())
        if "locked" in status:
            complaints.append(f"browser: {status}")
        return shown

    threads = [threading.Thread(target=load, args=(p, f"{i}{j}")) for i, p in enumerate(proxies) for j in range(2)]
    readers = [threading.Thread(target=read_with_the_cli)]
    for t in threads + readers:
        t.start()
    shown = 0
    try:
        loop_result: dict[str, int] = {}

        def run_browser() -> None:
            loop_result["shown"] = asyncio.run(browse())

        wait_for_rows(db, "select 1", 1)  # the writers make the file a moment after the proxies listen
        browser = threading.Thread(target=run_browser)
        browser.start()
        for t in threads:
            t.join(WAIT * 4)
        time.sleep(0.5)
        loading.clear()
        for t in [*readers, browser]:
            t.join(WAIT * 4)
        shown = loop_result.get("shown", -1)
    finally:
        loading.clear()
        codes = [p.stop() for p in proxies]
    logs = "".join(p.output() for p in proxies)
    assert len(answered) == 4 * CALLS and codes == [0, 0]
    assert reads[0] >= 2 and complaints == [] and "locked" not in logs.lower() and "traceback" not in logs.lower()
    wait_for_rows(db, "select id from flows where url like '%client.api%'", 4 * CALLS)
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = [
            v
            for (h,) in conn.execute("SELECT request_headers FROM flows")
            for k, v in json.loads(h)
            if k.lower() == "x-probe"
        ]
        recorders = conn.execute("SELECT recorded, dropped FROM recorders").fetchall()
    assert sorted(stored) == sorted(answered)  # each once: none lost, none twice
    assert len(recorders) == 2 and sum(r[0] for r in recorders) == 4 * CALLS and all(r[1] == 0 for r in recorders)
    assert shown == 4 * CALLS  # the browser, live all along, came to show every one
